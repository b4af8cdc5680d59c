"""``bench.rates``: the score phase's windows and their spread, the latency phase's per-second p99s and the
fell-behind flag, on synthetic timestamps (no broker, no timing)."""

from __future__ import annotations

import pytest

from bench.rates import kept_up, latency_phase, per_second, score_rate, spread, window_rates


def _steady(rate: float, seconds: float, t0: float = 1_000_000.0) -> list[float]:
    """Timestamps (ms) of events at ``rate`` per second for ``seconds``."""
    return [t0 + i * 1000.0 / rate for i in range(int(rate * seconds))]


def test_window_rates_count_each_full_window_and_drop_the_partial_one() -> None:
    stamps = _steady(1000, 2.2)  # 2,200 events: four full half-second windows and a 0.2 s tail
    assert window_rates(stamps, 0.5) == [1000.0] * 4
    assert window_rates([], 0.5) == [] and window_rates([5.0], 0.5) == []


def test_a_quiet_moment_does_not_set_the_rate_the_windows_median_does() -> None:
    # 3 s at 10,000/s, then 0.5 s at 30,000/s (the machine went quiet), then 1 s at 10,000/s.
    fast_from = 1_000_000.0 + 3000.0
    stamps = _steady(10_000, 3) + _steady(30_000, 0.5, fast_from) + _steady(10_000, 1, fast_from + 500.0)
    out = score_rate(stamps)
    assert out["score_window_eps"] == [10_000.0] * 6 + [30_000.0] + [10_000.0]
    assert out["score_rate_eps"] == out["score_window_eps_median"] == 10_000.0
    assert out["score_rate_basis"] == "window_median"
    assert (out["score_window_eps_min"], out["score_window_eps_max"]) == (10_000.0, 30_000.0)
    assert out["score_window_spread"] == pytest.approx(2.0)
    # The phase's rate first to last is pulled up by the quiet half second; the median is not.
    whole = (len(stamps) - 1) / ((max(stamps) - min(stamps)) / 1000)
    assert whole > 11_000


def test_a_phase_too_short_for_three_windows_keeps_its_own_rate() -> None:
    stamps = _steady(20_000, 1.2)  # two full windows only
    out = score_rate(stamps)
    assert out["score_rate_basis"] == "phase" and len(out["score_window_eps"]) == 2
    assert out["score_rate_eps"] == pytest.approx((len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1000))


def test_spread_is_the_range_over_the_median() -> None:
    assert spread([8.0, 10.0, 12.0, 30.0]) == {"median": 11.0, "min": 8.0, "max": 30.0, "spread": 2.0}
    assert spread([]) == {"median": None, "min": None, "max": None, "spread": None}


def test_per_second_p99_groups_events_by_the_second_they_were_sent() -> None:
    sent = _steady(200, 3)  # 600 events over 3 s
    lat = [5.0] * 600
    lat[250] = 400.0  # one slow event in the second second, three in the third
    lat[450] = lat[451] = lat[452] = 90.0
    # Nearest rank: the p99 of 200 events is the 198th, so one slow event of a second is under it, three are not.
    assert per_second(sent, lat, 99.0) == [5.0, 5.0, 90.0]
    assert per_second(sent, lat, 100.0) == [5.0, 400.0, 90.0]


def test_per_second_drops_a_last_second_of_a_few_spilled_events() -> None:
    # Five events spilled into a fourth second.
    sent = _steady(200, 3) + [1_000_000.0 + 3000.0 + i for i in range(5)]
    lat = [5.0] * 600 + [1.0] * 5
    assert per_second(sent, lat, 99.0) == [5.0, 5.0, 5.0]
    # A last second with half the events or more is a second of the phase.
    half = _steady(200, 3) + [1_000_000.0 + 3000.0 + i for i in range(100)]
    assert per_second(half, [5.0] * 600 + [1.0] * 100, 99.0) == [5.0, 5.0, 5.0, 1.0]


def test_a_worker_that_keeps_up_through_a_stall_is_not_flagged() -> None:
    sent = _steady(1000, 8)
    done = [t + 5.0 for t in sent]
    for i in range(3000, 3200):  # a 200 ms stall caught up within the phase
        done[i] = sent[3200] + 5.0
    out = kept_up(sent, done)
    assert out["latency_fell_behind"] is False and out["latency_drain_ms"] == pytest.approx(5.0)
    assert out["latency_out_vs_in"] > 0.99


def test_a_worker_that_cannot_keep_up_is_flagged() -> None:
    # Events sent at 1,000/s for 8 s, predictions out at 700/s: the backlog grows all phase and drains after it.
    sent = _steady(1000, 8)
    done = [sent[0] + i * 1000.0 / 700 for i in range(len(sent))]
    out = kept_up(sent, done)
    assert out["latency_fell_behind"] is True
    assert out["latency_out_vs_in"] == pytest.approx(0.7, abs=0.01)
    assert out["latency_drain_ms"] == pytest.approx(done[-1] - sent[-1])
    assert kept_up(sent[:1], done[:1])["latency_fell_behind"] is None  # one event is no rate


def test_latency_phase_reports_the_per_second_p99s_and_both_flags() -> None:
    sent = _steady(500, 4)
    # The first event of each second is slow: one of 500, under each second's p99.
    done = [t + (3.0 if i % 500 else 60.0) for i, t in enumerate(sent)]
    out = latency_phase(sent, done, rate=500.0, achieved=480.0)
    assert out["latency_p99_by_second_ms"] == [3.0, 3.0, 3.0, 3.0]
    assert out["latency_p99_s_median_ms"] == 3.0 and out["latency_p99_s_max_ms"] == 3.0
    assert out["latency_fell_behind"] is False and out["latency_send_behind"] is False
    assert latency_phase(sent, done, rate=500.0, achieved=400.0)["latency_send_behind"] is True
