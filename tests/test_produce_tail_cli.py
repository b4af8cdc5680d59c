"""``driftline produce`` and ``driftline tail`` as a user runs them: subprocesses against the real broker."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from driftline.settings import Settings
from tests.pipeline_helpers import KAFKA_BOOTSTRAP
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka

DRIFTLINE = str(Path(sys.executable).with_name("driftline"))


def _env(partitions: int = 1) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    env["DRIFTLINE__KAFKA__PARTITIONS"] = str(partitions)
    return env


def _run(
    prefix: str, *args: str, partitions: int = 1, check: bool = True
) -> subprocess.CompletedProcess[str]:
    cmd = [DRIFTLINE, "--bootstrap", KAFKA_BOOTSTRAP, "--topic-prefix", prefix, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(partitions), timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _lines(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_produce_features_with_labels_then_tail(prefix: str, tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a,b,class\n" + "".join(f"{i},{i / 2},{i % 2}\n" for i in range(20)))
    summary = json.loads(
        _run(
            prefix,
            "produce",
            "features",
            "--file",
            str(data),
            "--label-col",
            "class",
            "--with-labels",
            "--json",
        ).stdout
    )
    assert summary["features"] == 20 and summary["labels"] == 20 and summary["sent"] == 40

    records = _lines(_run(prefix, "tail", "features", "-n", "3", "--json"))
    assert [r["value"]["id"] for r in records] == ["17", "18", "19"]
    assert records[-1]["value"]["features"] == {"a": 19, "b": 9.5}  # label column excluded
    assert records[-1]["key"] == "19" and records[-1]["topic"] == f"{prefix}features"

    labels = _lines(_run(prefix, "tail", "labels", "-n", "2", "--json"))
    assert [(r["value"]["id"], r["value"]["label"]) for r in labels] == [("18", 0), ("19", 1)]

    everything = _lines(_run(prefix, "tail", "features", "--from-beginning", "--json"))
    assert [r["value"]["id"] for r in everything] == [str(i) for i in range(20)]
    # -n with --from-beginning: the first N (it was silently ignored, printing all 20; contract33).
    first = _lines(_run(prefix, "tail", "features", "--from-beginning", "-n", "3", "--json"))
    assert [r["value"]["id"] for r in first] == ["0", "1", "2"]
    both = _run(prefix, "tail", "features", "--from-beginning", "-n", "3", "--follow", check=False)
    assert both.returncode == 2 and "--follow" in both.stderr and both.stdout == ""

    text = _run(prefix, "tail", "features", "-n", "1").stdout.strip().splitlines()
    assert len(text) == 1 and '"id": "19"' in text[0] and "key=19" in text[0]


def test_tail_merges_partitions_and_reads_foreign_json(prefix: str, settings: Settings) -> None:
    out = _run(prefix, "produce", "synthetic", "--stream", "sine", "--events", "40", "--json", partitions=4)
    assert json.loads(out.stdout)["features"] == 40
    tail = _lines(_run(prefix, "tail", "features", "-n", "5", "--json", partitions=4))
    assert len(tail) == 5 and len({r["value"]["id"] for r in tail}) == 5

    # Any Kafka client may publish a JSON object; tail reads it back like the Avro ones.
    raw = Producer({"bootstrap.servers": settings.kafka.bootstrap})
    raw.produce(
        f"{prefix}features", json.dumps({"id": "x1", "ts": 1, "features": {"a": 1.5}}).encode(), b"x1"
    )
    raw.produce(f"{prefix}features", b"\x00\xffgarbage", b"bad")
    raw.flush(10)
    tail = _lines(_run(prefix, "tail", "features", "-n", "2", "--json", partitions=4))
    by_key = {r["key"]: r for r in tail}
    assert by_key["x1"]["value"] == {"id": "x1", "ts": 1, "key": None, "features": {"a": 1.5}, "model": None}
    assert "c301" in by_key["bad"]["error"] and "value" not in by_key["bad"]

    text = _run(prefix, "tail", "features", "-n", "2", partitions=4)
    assert "ERROR" in text.stdout and '"a": 1.5' in text.stdout


def test_produce_synthetic_with_label_delay(prefix: str) -> None:
    out = json.loads(
        _run(
            prefix,
            "produce",
            "synthetic",
            "--stream",
            "sea-drift",
            "--events",
            "30",
            "--label-delay",
            "5",
            "--seed",
            "3",
            "--id-prefix",
            "run1-",
            "--json",
        ).stdout
    )
    assert (out["features"], out["labels"]) == (30, 30)
    labels = _lines(_run(prefix, "tail", "labels", "--from-beginning", "--json"))
    assert [r["value"]["id"] for r in labels] == [f"run1-{i}" for i in range(30)]
    assert all(isinstance(r["value"]["label"], bool) for r in labels)


def test_produce_json_encoding_is_readable_by_tail(prefix: str, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "j1", "x": 1.25, "y": "up"}\n{"id": "j2", "x": 2, "y": "down"}\n')
    _run(
        prefix,
        "produce",
        "labels",
        "--file",
        str(data),
        "--id-col",
        "id",
        "--label-col",
        "y",
        "--encoding",
        "json",
    )
    (last,) = _lines(_run(prefix, "tail", "labels", "-n", "1", "--json"))
    assert last["value"]["id"] == "j2" and last["value"]["label"] == "down"


def test_tail_follow_prints_new_records(prefix: str, settings: Settings) -> None:
    _run(prefix, "produce", "synthetic", "--stream", "stagger", "--events", "3", "--no-labels")
    cmd = [
        DRIFTLINE,
        "--bootstrap",
        KAFKA_BOOTSTRAP,
        "--topic-prefix",
        prefix,
        "tail",
        "features",
        "-n",
        "1",
        "--follow",
        "--json",
    ]
    # Started with SIGINT ignored, as a shell without job control starts a background command (CI did): the CLI
    # must still stop on an interrupt.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or []], daemon=True).start()
    try:
        first = json.loads(lines.get(timeout=30))
        assert first["value"]["id"] == "2"
        raw = Producer({"bootstrap.servers": settings.kafka.bootstrap})
        raw.produce(f"{prefix}features", json.dumps({"id": "live", "features": {"z": True}}).encode())
        raw.flush(10)

        def live() -> dict[str, Any] | None:
            rec = json.loads(lines.get(timeout=1))
            return rec if rec.get("value", {}).get("id") == "live" else None

        seen = wait_until("the live record in the tail", live, 30, 0)
        assert seen["value"]["features"] == {"z": True}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 130


def test_tail_errors_are_clear(prefix: str) -> None:
    missing = _run(prefix, "tail", "models", check=False)
    assert (
        missing.returncode == 1 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    )
    unknown = _run(prefix, "tail", "nonsense", check=False)
    assert unknown.returncode == 2 and "not a contract topic" in unknown.stderr
    # ...and says which names are: every topic `tail` reads.
    assert all(
        name in unknown.stderr for name in ("features", "labels", "predictions", "deadletter", "control")
    )


def test_a_file_with_a_bad_row_sends_nothing_and_names_the_row(prefix: str, tmp_path: Path) -> None:
    """Found from outside (session 28): the rows before a bad one were already on the topic when produce stopped
    with the error, so fixing the file and sending it again duplicated them. The file is checked whole first."""
    data = tmp_path / "d.csv"
    data.write_text("id,x,class\na,1,0\nb,2,1\nc,3,1,EXTRA\nd,4,0\n")
    proc = _run(prefix, "produce", "features", "--file", str(data), "--id-col", "id", check=False)
    assert proc.returncode == 2 and "line 4: 4 cells, the header has 3 columns" in proc.stderr
    keyed = tmp_path / "k.jsonl"
    keyed.write_text('{"id": "a", "user": "u1", "x": 1}\n{"id": "b", "x": 2}\n')
    proc = _run(
        prefix,
        "produce",
        "features",
        "--file",
        str(keyed),
        "--id-col",
        "id",
        "--key-col",
        "user",
        check=False,
    )
    assert proc.returncode == 2 and "--key-col: no column 'user' in event b" in proc.stderr
    _run(
        prefix, "produce", "features", "--file", str(tmp_path / "ok.csv"), check=False
    )  # creates nothing either
    tail = _run(prefix, "tail", "features", "--from-beginning", "--json", check=False)
    assert _lines(tail) == []


def test_an_interrupted_produce_says_how_much_it_sent(prefix: str) -> None:
    """outside10: Ctrl-C on `produce` printed only "interrupted": what was on the topic, so what to send again,
    could only be found by reading it back. It now names the features and labels it had sent."""
    cmd = [DRIFTLINE, "--bootstrap", KAFKA_BOOTSTRAP, "--topic-prefix", prefix, "produce", "synthetic"]
    cmd += ["--stream", "sea", "--events", "100000", "--rate", "50", "--label-delay", "5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        wait_until(
            "some events on the topic",
            lambda: int(_run(prefix, "tail", "features", "-n", "1", "--json").stdout.count("\n")) > 0,
            60,
            0.5,
        )
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    line = next(x for x in err.splitlines() if "interrupted after" in x)
    features = int(line.split("queueing ")[1].split(" features")[0])
    labels = int(line.split(" and ")[1].split(" labels")[0])
    # Each label follows the fifth feature after its own (one fewer if Ctrl-C came between the two sends).
    assert 0 < features < 100_000 and max(0, features - 6) <= labels <= max(0, features - 5), line


def test_an_interrupt_lost_inside_a_client_call_still_ends_as_an_interrupt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C during a librdkafka poll that runs delivery callbacks came out of confluent-kafka as `SystemError:
    <method 'poll' of 'cimpl.Producer' objects> returned NULL without setting an exception`: a traceback and exit
    1 (found by the test above, about one run in three, before the pacer slept in Python). After a SIGINT that
    error is the interrupt (130); without one it is still raised."""
    import streams.cli
    import streams.commands.produce as produce

    def lost_interrupt(args: Any) -> int:
        with contextlib.suppress(KeyboardInterrupt):  # swallowed inside the C call
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # type: ignore[operator]
        raise SystemError(
            "<method 'poll' of 'cimpl.Producer' objects> returned NULL without setting an exception"
        )

    monkeypatch.setattr(streams.cli, "_INTERRUPTED", [])
    monkeypatch.setattr(produce, "_synthetic", lost_interrupt)
    previous = signal.getsignal(signal.SIGINT)
    try:
        assert streams.cli.main(["produce", "synthetic"]) == 130
        assert "interrupted" in capsys.readouterr().err
        monkeypatch.setattr(streams.cli, "_INTERRUPTED", [])
        monkeypatch.setattr(produce, "_synthetic", lambda args: (_ for _ in ()).throw(SystemError("other")))
        with pytest.raises(SystemError, match="other"):
            streams.cli.main(["produce", "synthetic"])
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_river_data_set_brings_its_own_labels_and_refuses_column_flags(prefix: str) -> None:
    """outside10: `produce ... --file river:Phishing --label-col nosuch` was accepted and the flag ignored (River's
    own target was sent), while `produce labels` required --label-col even there. Now the column flags are refused
    for a River data set, and its labels are published without one."""
    bad = _run(prefix, "produce", "labels", "--file", "river:Phishing", "--label-col", "nosuch", check=False)
    assert bad.returncode == 2 and "--label-col: not for river:Phishing" in bad.stderr, bad.stderr
    bad = _run(prefix, "produce", "features", "--file", "river:Phishing", "--id-col", "x", check=False)
    assert bad.returncode == 2 and "--id-col: not for river:Phishing" in bad.stderr, bad.stderr
    sent = json.loads(
        _run(prefix, "produce", "labels", "--file", "river:Phishing", "--limit", "20", "--json").stdout
    )
    assert (sent["labels"], sent["features"]) == (20, 0)
    sent = json.loads(
        _run(
            prefix,
            "produce",
            "features",
            "--file",
            "river:Phishing",
            "--limit",
            "5",
            "--with-labels",
            "--json",
        ).stdout
    )
    assert (sent["features"], sent["labels"]) == (5, 5)


def test_an_interrupt_lost_inside_a_client_call_still_says_how_much_was_queued(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The interrupt that comes out of a librdkafka call as a SystemError (the test above) is still an
    interrupt for `produce`: it names what it had queued, as for a KeyboardInterrupt."""
    import streams.cli
    import streams.commands.produce as produce

    class NoProducer:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def __enter__(self) -> NoProducer:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    def interrupted_publish(producer: Any, events: Any, *, summary: Any, **kwargs: Any) -> Any:
        summary.features, summary.labels = 7, 2
        with contextlib.suppress(KeyboardInterrupt):  # swallowed inside the C call
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # type: ignore[operator]
        raise SystemError(
            "<method 'poll' of 'cimpl.Producer' objects> returned NULL without setting an exception"
        )

    monkeypatch.setattr(streams.cli, "_INTERRUPTED", [])
    monkeypatch.setattr(produce, "check_reachable", lambda settings: None)
    monkeypatch.setattr(produce, "ensure_topics", lambda settings: None)
    monkeypatch.setattr(produce, "EventProducer", NoProducer)
    monkeypatch.setattr(produce, "publish", interrupted_publish)
    previous = signal.getsignal(signal.SIGINT)
    try:
        assert streams.cli.main(["produce", "synthetic", "--events", "10"]) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert "interrupted after queueing 7 features and 2 labels" in err, err


def test_the_global_model_flag_names_the_model_of_every_event_produced(prefix: str, tmp_path: Path) -> None:
    """`driftline --model M produce ...` sent every event to the default model (found by outside17: four files
    meant for four models trained one); an event that names its own model keeps it."""
    _run(prefix, "--model", "m7", "produce", "synthetic", "--stream", "sea", "--events", "5", "--no-labels")
    data = tmp_path / "e.jsonl"
    data.write_text(
        '{"id": "a", "ts": 1, "features": {"x": 1.0}, "model": "own"}\n{"id": "b", "ts": 2, "features": {"x": 2.0}}\n'
    )
    _run(prefix, "--model", "m8", "produce", "features", "--file", str(data))
    events = [r["value"] for r in _lines(_run(prefix, "tail", "features", "--from-beginning", "--json"))]
    assert [e["model"] for e in events] == ["m7"] * 5 + ["own", "m8"]
    refused = _run(prefix, "--model", "../x", "produce", "features", "--file", str(data), check=False)
    assert refused.returncode == 2 and "cannot name a model" in refused.stderr


def test_tail_from_beginning_with_n_reads_only_the_first_n_of_each_partition(
    prefix: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `tail T -n 3 --from-beginning` read (and decoded) the whole topic to print three records (fixes34, item 5).
    import connectors.tail
    from streams.cli import main

    out = _run(prefix, "produce", "synthetic", "--stream", "sine", "--events", "3000", "--json", partitions=4)
    assert json.loads(out.stdout)["features"] == 3000
    everything = _lines(_run(prefix, "tail", "features", "--from-beginning", "--json", partitions=4))
    assert len(everything) == 3000
    decoded: list[int] = []
    real = connectors.tail.decode_message

    def counting(*args: Any, **kwargs: Any) -> Any:
        decoded.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(connectors.tail, "decode_message", counting)
    capsys.readouterr()
    args = ["--bootstrap", KAFKA_BOOTSTRAP, "--topic-prefix", prefix, "tail", "features", "--from-beginning"]
    assert main([*args, "-n", "3", "--json"]) == 0
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # The same first three as the whole topic's, merged by timestamp; at most three read from each partition.
    assert [(r["partition"], r["offset"]) for r in first] == [
        (r["partition"], r["offset"]) for r in everything[:3]
    ]
    assert len(decoded) <= 3 * 4, f"{len(decoded)} records decoded to print 3"
    decoded.clear()
    assert main([*args, "-n", "0", "--json"]) == 0
    assert capsys.readouterr().out == "" and decoded == []


def test_producing_features_without_label_col_warns_that_the_label_column_is_a_feature(
    prefix: str, tmp_path: Path
) -> None:
    # Found from outside (session 37, hostile37): the `label` column went out as a feature, without a word, and
    # the model learned its label from its features; `driftline replay` on the same file leaves it out.
    data = tmp_path / "d.csv"
    data.write_text("a,label\n1,0\n2,1\n")
    proc = _run(prefix, "produce", "features", "--file", str(data))
    assert "'label'" in proc.stderr and "--label-col label" in proc.stderr, proc.stderr
    records = _lines(_run(prefix, "tail", "features", "-n", "1", "--json"))
    assert records[-1]["value"]["features"] == {"a": 2, "label": 1}  # still sent as written: a warning only
    quiet = _run(prefix, "produce", "features", "--file", str(data), "--label-col", "label")
    assert "warning" not in quiet.stderr, quiet.stderr
    other = tmp_path / "e.csv"
    other.write_text("a,b\n1,0\n")
    assert "warning" not in _run(prefix, "produce", "features", "--file", str(other)).stderr


ESC = "\x1b[2J\x1b]0;pwned\x07\x9b31m"


def test_terminal_escapes_in_records_are_shown_not_obeyed(
    prefix: str, settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    """Anyone who can write ``features`` chooses an event's id, and a dead letter quotes what came: ``tail``,
    ``status`` and ``explain`` printed them raw, so the operator's terminal obeyed the escape sequences in them
    (clear the screen, set the window title, ...). Found from outside by docs/experiments/hostile40.py."""
    from connectors.topics import ensure_topics
    from schemas.codec import default_codec

    ensure_topics(settings)
    raw = Producer({"bootstrap.servers": settings.kafka.bootstrap})
    fid = "h40" + ESC
    raw.produce(f"{prefix}features", json.dumps({"id": fid, "ts": 1, "features": {"a": 1.5}}).encode(), b"k")
    dead = {"source_topic": f"{prefix}features", "partition": 0, "offset": 0, "key": b"k", "value": ESC.encode(),
            "error": "SchemaError: " + ESC, "ts": 1}  # fmt: skip
    raw.produce(f"{prefix}deadletter", default_codec().encode("DeadLetter", dead), b"k")
    raw.flush(10)
    env = _env() | {"DRIFTLINE_REDIS_URL": redis_url, "DRIFTLINE_STATE_DIR": str(tmp_path)}
    outputs = {}
    for args in (
        ["tail", "features", "-n", "1"],
        ["tail", "deadletter", "-n", "1"],
        ["status"],
        ["explain", fid],
    ):
        cmd = [DRIFTLINE, "--bootstrap", KAFKA_BOOTSTRAP, "--topic-prefix", prefix, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        outputs[" ".join(args[:2])] = proc.stdout + proc.stderr
    for name, text in outputs.items():
        assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text, f"{name}: {text!r}"
    # shown, as an escape (JSON's for the value of a record, \\x.. for the rest)
    assert "\\x9b31m" in outputs["tail features"] and "pwned" in outputs["tail deadletter"]


def test_newlines_in_records_stay_on_their_line(
    prefix: str, settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    """Found from outside (session 46, adv46): ``terminal_safe`` keeps newlines, so a key, an id or a dead letter's
    reason holding one printed a line of its own in ``tail`` (one record, two lines: the second could be a forged
    record) and ``status`` (``kafka ... up`` after a dead letter's reason)."""
    from connectors.topics import ensure_topics
    from schemas.codec import default_codec

    ensure_topics(settings)
    raw = Producer({"bootstrap.servers": settings.kafka.bootstrap})
    forged = "2026-01-01T00:00:00.000Z p0@0 key=x FORGED"
    fid = "n46\n" + forged + "\u202e"
    raw.produce(
        f"{prefix}features", json.dumps({"id": fid, "ts": 1, "features": {"a": 1.5}}).encode(), fid.encode()
    )
    dead = {"source_topic": f"{prefix}features", "partition": 0, "offset": 0, "key": b"k", "value": b"v",
            "error": "SchemaError: x\nkafka FORGED up", "ts": int(time.time() * 1000)}  # fmt: skip
    raw.produce(f"{prefix}deadletter", default_codec().encode("DeadLetter", dead), b"k")
    raw.flush(10)
    env = _env() | {"DRIFTLINE_REDIS_URL": redis_url, "DRIFTLINE_STATE_DIR": str(tmp_path)}
    outputs = {}
    for args in (["tail", "features", "-n", "1"], ["status"]):
        cmd = [DRIFTLINE, "--bootstrap", KAFKA_BOOTSTRAP, "--topic-prefix", prefix, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        outputs[args[0]] = proc.stdout
    assert len(outputs["tail"].splitlines()) == 1, outputs["tail"]
    assert "key=n46\\n2026-01-01" in outputs["tail"] and "\u202e" not in outputs["tail"]
    assert "FORGED" in outputs["status"], outputs["status"]
    assert not [line for line in outputs["status"].splitlines() if line.startswith("kafka FORGED")]


def test_tail_json_stays_json_with_c1_controls_in_a_record(prefix: str, settings: Settings) -> None:
    """Found from outside (session 46, adv46): JSON escapes C0 controls, not C1, and terminal_safe then wrote a C1
    control as ``\\x9b``, which is no JSON escape: ``tail features --json`` printed a line ``json.loads`` refused."""
    from connectors.topics import ensure_topics

    ensure_topics(settings)
    raw = Producer({"bootstrap.servers": settings.kafka.bootstrap})
    fid = "c1\x9b31mX\x85Y\x7f\u202e\\\x9b"
    raw.produce(f"{prefix}features", json.dumps({"id": fid, "ts": 1, "features": {"a": 1.0}}).encode(), b"k")
    raw.flush(10)
    out = _run(prefix, "tail", "features", "-n", "1", "--json")
    assert not set(out.stdout) & {"\x9b", "\x85", "\x7f", "\u202e"}, repr(out.stdout)
    (record,) = _lines(out)
    assert record["value"]["id"] == fid


def test_produce_reads_standard_input_with_file_dash(prefix: str) -> None:
    """Session 41 (first41): `... | driftline produce features --file -` was refused as "not a .csv or .jsonl file"."""

    def produce(text: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [DRIFTLINE, "--bootstrap", KAFKA_BOOTSTRAP, "--topic-prefix", prefix, "produce", *args]
        return subprocess.run(cmd, input=text, capture_output=True, text=True, env=_env(), timeout=120)

    lines = "".join(json.dumps({"id": f"s{i}", "x": i, "y": i % 2}) + "\n" for i in range(5))
    done = produce(lines, "features", "--file", "-", "--label-col", "y", "--with-labels", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["features"] == 5 and json.loads(done.stdout)["labels"] == 5
    done = produce("a,class\n1,0\n2,1\n", "labels", "--file", "-", "--label-col", "class", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["labels"] == 2, done.stderr
    records = _lines(_run(prefix, "tail", "features", "--from-beginning", "--json"))
    assert [r["value"]["id"] for r in records] == [f"s{i}" for i in range(5)]
    # A bad row is named as a line of <stdin>, not of the temporary file it was kept in.
    bad = produce("a,class\n1,0\n2,1,3\n", "features", "--file", "-", "--label-col", "class")
    assert bad.returncode == 2 and "<stdin> line 3" in bad.stderr and "driftline-input-" not in bad.stderr


def test_produce_sniffs_a_path_without_a_known_suffix(prefix: str, tmp_path: Path) -> None:
    """Session 41 (misc41): `--file /dev/stdin`, a FIFO or a shell's `<(...)` was refused as "expected a .csv or
    .jsonl file": such a path is read as `-` is, JSON lines when it starts with '{', else CSV, errors naming it."""

    def produce(text: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [DRIFTLINE, "--bootstrap", KAFKA_BOOTSTRAP, "--topic-prefix", prefix, "produce", *args]
        return subprocess.run(cmd, input=text, capture_output=True, text=True, env=_env(), timeout=120)

    lines = "".join(json.dumps({"id": f"j{i}", "x": i}) + "\n" for i in range(3))
    done = produce(lines, "features", "--file", "/dev/stdin", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["features"] == 3, done.stderr
    fifo = tmp_path / "rows"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=("id,a,class\nc0,1,0\nc1,2,1\n",))
    writer.start()
    done = produce("", "labels", "--file", str(fifo), "--label-col", "class", "--json")
    writer.join(30)
    assert done.returncode == 0 and json.loads(done.stdout)["labels"] == 2, done.stderr
    records = _lines(_run(prefix, "tail", "features", "--from-beginning", "--json"))
    assert [r["value"]["id"] for r in records] == [f"j{i}" for i in range(3)]
    bad = produce("a,class\n1,0\n2,1,3\n", "features", "--file", "/dev/stdin", "--label-col", "class")
    assert bad.returncode == 2 and "/dev/stdin line 3" in bad.stderr and "driftline-input-" not in bad.stderr
