"""Every command's ``--help`` explains what it does and shows how it is called (outside, session 29: fifteen
subcommands, e.g. ``models set``, ``produce features``, ``config validate``, printed only their options, and none
had an example). In-process: walks the parser, no broker."""

from __future__ import annotations

import argparse

import pytest

from streams.cli import build_parser


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [path]
    out: list[tuple[str, ...]] = []
    for name, child in subs[0].choices.items():
        out += _leaves(child, (*path, name))
    return out


def _parser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


LEAVES = _leaves(build_parser())


def test_the_walk_finds_the_commands_of_the_readme() -> None:
    for path in [("models", "set"), ("produce", "features"), ("config", "validate"), ("tail",), ("doctor",)]:
        assert path in LEAVES


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(p) for p in LEAVES])
def test_help_explains_and_has_an_example(path: tuple[str, ...]) -> None:
    text = _parser(path).format_help()
    head = text.split("\n\n")[1] if "\n\n" in text else ""
    assert not head.startswith(("positional arguments:", "options:")), f"no description:\n{text}"
    assert len(head.split()) >= 5, text
    assert "``" not in head, text  # reST quotes from a docstring, not text for a terminal
    examples = text.split("examples:", 1)
    assert len(examples) == 2, f"no examples:\n{text}"
    assert f"driftline {' '.join(path)}" in examples[1], text


def test_worker_help_says_train_workers_share_the_models() -> None:
    """Issue 15 made a deployment serve many models and let several train workers share them (one owner per
    model); `worker --help` still said "for one model" and "the single writer of the model" (outside12)."""
    text = " ".join(_parser(("worker",)).format_help().split())
    assert "for one model" not in text
    assert "several train workers share the models" in text


@pytest.mark.parametrize("path", LEAVES, ids=[" ".join(p) for p in LEAVES])
def test_every_option_with_a_default_says_it(path: tuple[str, ...]) -> None:
    """Session 34: `produce synthetic --seed` (42), `--label-delay` (0), `stack up --timeout` (120) and two dozen
    more had a default the help did not name."""
    for action in _parser(path)._actions:
        default = action.default
        if (
            not action.option_strings
            or action.nargs == 0
            or action.help == argparse.SUPPRESS
            or default in (None, "", argparse.SUPPRESS)
        ):
            continue
        assert "default" in (action.help or "").lower(), (path, action.option_strings, default)
