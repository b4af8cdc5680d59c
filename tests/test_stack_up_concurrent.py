"""Two ``driftline stack up`` at once: only the one that started a service says "started" (no servers: the
services are fakes that start when asked, so the race is played in order rather than timed)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

import connectors.stack as stack_mod
import streams.commands.stack as stack_cmd
from connectors.stack import StackConfig, StackStatus, stack_up
from connectors.stack_config import ServiceStatus


class FakeServices:
    """Kafka and Redis that are down until started; counts the starts."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.up = {"kafka": False, "redis": False}
        self.starts = {"kafka": 0, "redis": 0}

    def status(self, name: str) -> ServiceStatus:
        address = self.cfg.kafka_address if name == "kafka" else self.cfg.redis_address
        return ServiceStatus(
            name, address, "up" if self.up[name] else "down", 1000 if self.up[name] else None
        )

    def start(self, name: str) -> ServiceStatus:
        if not self.up[name]:
            self.up[name], self.starts[name] = True, self.starts[name] + 1
        return self.status(name)

    def stack(self) -> StackStatus:
        return StackStatus(self.status("kafka"), self.status("redis"), self.cfg.state_dir)


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeServices:
    cfg = StackConfig(tmp_path / "stack", kafka_port=18999, controller_port=19000, redis_port=19001)
    fake = FakeServices(cfg)
    monkeypatch.setattr(stack_mod, "check_tools", lambda needed: None)
    monkeypatch.setattr(stack_mod, "kafka_status", lambda c: fake.status("kafka"))
    monkeypatch.setattr(stack_mod, "kafka_needs_start", lambda c: not fake.up["kafka"])
    monkeypatch.setattr(stack_mod, "kafka_up", lambda c, timeout_s: fake.start("kafka"))
    monkeypatch.setattr(stack_mod, "_redis_status", lambda c: fake.status("redis"))
    monkeypatch.setattr(stack_mod, "_redis_up", lambda c, timeout_s: fake.start("redis"))
    return fake


def test_stack_up_reports_what_it_started_itself(services: FakeServices) -> None:
    first = stack_up(services.cfg)
    second = stack_up(services.cfg)
    assert first.started == ("kafka", "redis")
    assert second.started == ()
    assert services.starts == {"kafka": 1, "redis": 1}


def test_a_stack_up_racing_another_does_not_say_started(
    services: FakeServices, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command looks at the stack (both down), then another `stack up` takes the lock first and starts both:
    this command only finds them up, and must say so rather than "started"."""
    looks: list[StackStatus] = []

    def look_then_race(cfg: Any) -> StackStatus:
        looks.append(services.stack())
        stack_up(services.cfg)  # the other `stack up`, done before this one gets the lock
        return looks[-1]

    monkeypatch.setattr(stack_cmd, "stack_status", look_then_race)
    monkeypatch.setattr(stack_cmd, "_settings_and_config", lambda args: (None, services.cfg))
    warmed: list[Any] = []
    monkeypatch.setattr(stack_cmd, "_warm", lambda *a: warmed.append(a))
    args = argparse.Namespace(timeout=5.0, no_topics=True, warm=True, json=False)
    assert stack_cmd._up(args) == 0
    assert warmed == []  # --warm warms only a broker this command started
    out = capsys.readouterr().out
    assert not looks[0].kafka.up and not looks[0].redis.up
    assert services.starts == {"kafka": 1, "redis": 1}
    assert "started\n" not in out and "(started)" not in out, out
    for name in ("kafka", "redis"):
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert "already up: started by another `stack up` meanwhile" in line, line
