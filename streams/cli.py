"""The ``driftline`` command line. Each subcommand lives in ``streams/commands/<name>.py`` and exposes
``register(subparsers)``; this module only parses the global options, configures logging and dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import re
import shutil
import signal
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from connectors.localproc import stop_with_parent
from driftline import __version__
from driftline.errors import ConfigError, DriftlineError
from driftline.settings import (
    MaskSecrets,
    Settings,
    load_settings,
    mask_excepthook,
    mask_secrets,
    unknown_variables,
)

# Subcommand modules, in the order --help lists them.
COMMANDS = (
    "stack",
    "topics",
    "doctor",
    "config",
    "worker",
    "produce",
    "tail",
    "models",
    "replay",
    "demo",
    "status",
    "bench",
    "console",
    "audit",
    "cleanup",
    "explain",
)


def _positive_float(unit: str, amount: str) -> Callable[[str], float]:
    """An argparse type for a finite number > 0 of ``unit`` (``amount`` names it in the range error)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {unit}, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"expected {amount} > 0, got {text!r}")
        return value

    return parse


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type for a whole number >= ``low``."""

    def parse(text: str) -> int:
        try:
            # ASCII digits: int() reads a fullwidth 5 as 5 and '5_0' as 50 (adv46: `models show 5_0` showed v50).
            if not (text.isascii() and text.removeprefix("-").isdigit()):
                raise ValueError(text)
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, got {value}")
        return value

    return parse


#: ``--timeout S``: a negative one made `doctor` report Kafka and Redis as failing, and ``nan`` waited for nothing.
positive_seconds = _positive_float("seconds", "a number of seconds")
#: a count such as ``-n N`` (``audit show -n -3`` printed every entry but the first three).
whole_number = _int_at_least(0)
#: a model version (``models show V``, ``models diff A B``).
version_number = _int_at_least(1)
#: a size such as ``bench --events N``.
positive_int = _int_at_least(1)
_rate = _positive_float("events per second", "events per second")
#: The slowest ``--rate``: one event a day (``produce --rate 1e-300`` sent one event, then slept for good).
MIN_RATE = 1 / 86400


def positive_rate(text: str) -> float:
    """An argparse type for ``--rate N`` events per second, one a day or more (``demo --rate 0`` divided by it)."""
    value = _rate(text)
    if value < MIN_RATE:
        raise argparse.ArgumentTypeError(
            f"expected events per second >= {MIN_RATE:.3g} (one a day), got {text!r}"
        )
    return value


def port_number(text: str) -> int:
    """An argparse type for a TCP port, 1-65535 (``stack up --kafka-port 99999`` ended in a traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a TCP port (1-65535), got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port (1-65535), got {value}")
    return value


def port_or_any(text: str) -> int:
    """An argparse type for a port this command may pick itself: 1-65535, or 0 for any free one (``demo
    --console-port 0`` picked a free port until the ports were checked, session 34)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a TCP port (1-65535, 0: any free one), got {text!r}"
        ) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port (1-65535, 0: any free one), got {value}")
    return value


def report_dir(path: str, flag: str = "--report") -> None:
    """Create a report directory before the run, or refuse it naming ``flag`` (an unwritable one was a traceback
    from the report writer, after the whole run)."""
    where = Path(path)
    if where.exists() and not where.is_dir():
        raise ConfigError(f"{flag}: {path} is a file; name the directory to write the report into")
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{flag}: cannot create {path} ({exc.strerror}); name a directory you can write"
        ) from exc


def global_overrides(args: argparse.Namespace) -> dict[str, object]:
    """Settings overrides from the global flags (flags beat environment and file)."""
    return {
        "kafka.bootstrap": getattr(args, "bootstrap", None),
        "redis.url": getattr(args, "redis_url", None),
        "kafka.topic_prefix": getattr(args, "topic_prefix", None),
        "model.name": getattr(args, "model", None),
    }


def unknown_model(command: str, name: str, what: str, known: Iterable[str]) -> str:
    """The one message of a command named a model (``--model``) nothing was seen for: what was looked at, and which
    models there are (``models list``, ``status``, ``audit show`` say it alike, and exit 1)."""
    others = sorted({str(k) for k in known} - {name})
    return (
        f"driftline {command}: model {name!r} {what} (models: {', '.join(others) or 'none'}; check --model)"
    )


def settings_from_args(args: argparse.Namespace, extra: Mapping[str, object] | None = None) -> Settings:
    """The settings a command runs with: defaults < ``--config`` file < environment < global flags < ``extra``
    (a command's own overrides, by dotted path). The one preamble every command shares."""
    return load_settings(getattr(args, "config", None), overrides={**global_overrides(args), **(extra or {})})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline",
        description=(
            "Event-streaming continuous learning: score live Kafka events with River models, join delayed labels, "
            "learn online, and let only guarded updates reach users."
        ),
        epilog="Settings: flag > environment (DRIFTLINE_*) > YAML file (--config / DRIFTLINE_CONFIG) > default.",
    )
    parser.add_argument("--version", action="version", version=f"driftline {__version__}")
    parser.add_argument("--config", metavar="FILE", help="YAML settings file (default: $DRIFTLINE_CONFIG)")
    parser.add_argument(
        "--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (DRIFTLINE_KAFKA_BOOTSTRAP)"
    )
    parser.add_argument("--redis-url", metavar="URL", help="Redis URL (DRIFTLINE_REDIS_URL)")
    parser.add_argument("--topic-prefix", metavar="PREFIX", help="topic name prefix (DRIFTLINE_TOPIC_PREFIX)")
    parser.add_argument("--model", metavar="NAME", help="model name (default: settings model.name)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"streams.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"streams.commands.{name}":
                raise
            continue
        module.register(sub)
    _finish_help(parser, ("driftline",))
    return parser


# One or two lines a user can copy, per command: shown under "examples:" at the end of its --help.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "stack up": ("driftline stack up", "driftline stack up --kafka-port 19092 --redis-port 16380 --state-dir /tmp/s"),
    "stack down": ("driftline stack down", "driftline stack down --force   # even while workers are running"),
    "stack status": ("driftline stack status --json",),
    "topics create": ("driftline topics create --dry-run", "driftline --bootstrap kafka:9092 topics create"),
    "topics list": ("driftline topics list",),
    "topics describe": ("driftline topics describe models control --json",),
    "doctor": ("driftline doctor", "driftline doctor --json"),
    "config show": ("driftline config show", "DRIFTLINE_CONFIG=prod.yaml driftline config show --json"),
    "config validate": ("driftline config validate prod.yaml   # exit 2 naming the bad field",),
    "worker": ("DRIFTLINE_SIGNING_KEY=$(openssl rand -hex 32) driftline worker --role all",
               "driftline worker --role score --metrics-port 9109"),
    "produce features": ("driftline produce features --file events.csv --id-col id --rate 100",),
    "produce labels": ("driftline produce labels --file labels.csv --id-col id --label-col label",),
    "produce synthetic": ("driftline produce synthetic --events 2000 --label-delay 300",),
    "tail": ("driftline tail predictions -n 5", "driftline tail deadletter --json --follow"),
    "models list": ("driftline models list", "driftline models list --json"),
    "models show": ("driftline models show", "driftline models show 3 --json"),
    "models promote": ("driftline models promote 3", "driftline models promote held"),
    "models rollback": ("driftline models rollback --model default",),
    "models pause": ("driftline models pause", "driftline models pause --discard"),
    "models resume": ("driftline models resume",),
    "models set": ("driftline models set guard.alpha=0.01 drift.ph_loss_threshold=200",),
    "models settings": ("driftline models settings --json",),
    "models diff": ("driftline models diff 3 4 --json",),
    "replay": ("driftline replay --stream sea-drift --json",
               "driftline replay --file data.csv --label-col class --delay 300 --out served.jsonl"),
    "demo": ("driftline demo --events 3000 --rate 300 --no-live",),
    "status": ("driftline status", "driftline --model m1 status --json"),
    "bench": ("driftline bench --quick --json",),
    "console": ("driftline console --port 8765",),
    "audit verify": ("driftline audit verify --json",),
    "audit show": ("driftline audit show --model default --json",),
    "cleanup": ("driftline cleanup --prefix trial. --dry-run", "driftline cleanup --prefix trial."),
    "explain": ("driftline explain e1 --json",),
}  # fmt: skip


def _finish_help(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
    """Give every command's --help a description (its one-line help when it had none; no reST quotes) and its
    examples. Walks the sub-commands, so a command registered without them still gets the same layout."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {c.dest: c.help for sub in subs for c in sub._choices_actions}
    for sub in subs:
        for name, child in sub.choices.items():
            text = (child.description or helps.get(name) or "").replace("``", "`").strip()
            if text:
                text = text[0].upper() + text[1:]
                child.description = text if text.endswith(".") else text + "."
            examples = EXAMPLES.get(" ".join((*path[1:], name)))
            if examples:
                width = max(40, shutil.get_terminal_size().columns - 2)
                child.description = "\n\n".join(
                    textwrap.fill(p, width) for p in child.description.split("\n\n")
                )
                before = textwrap.fill(child.epilog, width) + "\n\n" if child.epilog else ""
                child.epilog = before + "examples:\n" + "\n".join(f"  {line}" for line in examples)
                child.formatter_class = argparse.RawDescriptionHelpFormatter
            _name_defaults(child)
            _finish_help(child, (*path, name))


def _name_defaults(parser: argparse.ArgumentParser) -> None:
    """Say an option's default in its help when the help does not (session 34: `produce synthetic --seed`,
    `--label-delay`, `stack up --timeout` and two dozen more left the operator to guess)."""
    for action in parser._actions:
        default = action.default
        if (
            not action.option_strings
            or action.help in (None, argparse.SUPPRESS)
            or default in (None, "", argparse.SUPPRESS)
            or isinstance(default, bool)
            or action.nargs == 0  # flags (store_true, count, help, version)
            or "default" in str(action.help).lower()
        ):
            continue
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        action.help = f"{action.help} (default: {shown})".replace("%", "%%")


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_level(verbose: int) -> int:
    """The log level ``-v`` flags ask for: WARNING, INFO with one, DEBUG with two or more."""
    return logging.WARNING - 10 * min(verbose, 2)


_INTERRUPTED: list[int] = []  # the SIGINTs this process received (see main)


def _interrupt(signum: int, frame: object) -> None:
    """SIGINT: remembered, then Python's own KeyboardInterrupt."""
    _INTERRUPTED.append(signum)
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """Let SIGTERM stop this command as Ctrl-C does, so its clean-up runs: for commands that start processes of
    their own (`bench`, `demo`). Stopped by a SIGTERM (`timeout`, the end of a CI job), `bench` died at once and
    left its score worker running, orphaned, and its topics on the broker (session 34)."""
    signal.signal(signal.SIGTERM, _interrupt)


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is the user's interrupt: a KeyboardInterrupt, or the SystemError that Ctrl-C inside a
    librdkafka call running Python callbacks (a producer's poll or flush serving delivery reports) comes out as,
    "returned NULL without setting an exception", once this process has had a SIGINT."""
    return isinstance(exc, KeyboardInterrupt) or (isinstance(exc, SystemError) and bool(_INTERRUPTED))


_FIELD = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")


# The last part of a setting's name that holds a secret (kafka.sasl_password, model.signing_key, redis.url, ...).
_SECRET_FIELD = re.compile(r"(?:^|[._])(?:\w*password|passwd|pwd|\w*secret|\w*token|\w*key|url)$")
# A quoted value in an error about such a setting ("got 'hunter2'").
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
# Environment variables whose values are secrets, masked wherever an error quotes them.
_SECRET_ENV = re.compile(r"DRIFTLINE_\w*(?:PASSWORD|SECRET|TOKEN|SIGNING_KEY|OPERATOR_KEY)")


def _masked_error(message: str) -> str:
    """``message`` through :func:`mask_secrets` (an error may carry a setting holding a password, such as a
    ``sasl_ssl://user:pw@`` bootstrap), except for the name of the field it starts with: "kafka.sasl_password:
    set twice ..." is a message about that field, not the field's value. But a value after that name is masked
    (session 36: "kafka.sasl_password: 'hunter2' ..." kept it): a quoted value in an error about a secret
    setting, and the value of any secret ``DRIFTLINE_*`` variable wherever the message quotes it."""
    field, sep, rest = message.partition(": ")
    if sep and _FIELD.fullmatch(field):
        if _SECRET_FIELD.search(field):
            rest = _QUOTED.sub("'***'", rest)
        message = field + sep + mask_secrets(rest)
    else:
        message = mask_secrets(message)
    for name, value in os.environ.items():
        if len(value) >= 4 and value in message and _SECRET_ENV.fullmatch(name):
            message = message.replace(value, "***")
    return message


def main(argv: Sequence[str] | None = None) -> int:
    stop_with_parent()  # a worker or console started by demo/bench: stop when it dies (before the variable check)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=log_level(args.verbose), format=LOG_FORMAT, stream=sys.stderr)
    for handler in logging.getLogger().handlers:  # no password in a URL reaches a log line
        handler.addFilter(MaskSecrets())
    sys.excepthook = mask_excepthook  # ... nor a crash's traceback
    for warning in unknown_variables(os.environ):  # a misspelt variable is otherwise ignored without a word
        print(f"driftline: warning: {warning}", file=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # A shell without job control (a script, CI) starts `driftline ... &` with SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: `kill -INT` would be ignored, and `demo` and `tail --follow` (which stop
    # on Ctrl-C) would run on. Here an interrupt always means "stop cleanly".
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.default_int_handler):
        signal.signal(signal.SIGINT, _interrupt)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here when the output was buffered
        return code
    except DriftlineError as exc:
        print(f"driftline {args.command}: error: {_masked_error(str(exc))}", file=sys.stderr)
        return 2 if exc.__class__.__name__ == "ConfigError" else 1
    except KeyboardInterrupt:
        print(f"driftline {args.command}: interrupted", file=sys.stderr)
        return 130
    except SystemError as exc:
        if not interrupted(exc):
            raise
        print(f"driftline {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`driftline models list | head`): not an error worth a traceback. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it


if __name__ == "__main__":
    sys.exit(main())
