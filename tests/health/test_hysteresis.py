"""The gdnsd-style asymmetric hysteresis, result by result."""

from __future__ import annotations

from healthcheck.hysteresis import Hysteresis


def feed(h: Hysteresis, pattern: str) -> list[bool | None]:
    """Feed 'S'uccess / 'F'ailure results; the state after each one."""
    states = []
    for c in pattern:
        h.record(c == "S")
        states.append(h.up)
    return states


def test_first_success_settles_up_and_failures_settle_down():
    assert feed(Hysteresis(), "S") == [True]
    assert feed(Hysteresis(), "FFF") == [None, None, False]


def test_down_after_fall_failures_that_need_not_be_consecutive():
    h = Hysteresis(fall=3, reset=2, rise=4)
    states = feed(h, "SFSFSF")  # one success between failures never clears the count
    assert states[-1] is False and states[-2] is True


def test_a_streak_of_successes_resets_the_failure_count():
    h = Hysteresis(fall=3, reset=2, rise=4)
    feed(h, "SFF")
    assert h.changing and h.failures == 2
    feed(h, "SS")
    assert h.failures == 0 and not h.changing
    assert feed(h, "FF") == [True, True]


def test_losing_one_probe_in_three_never_goes_down():
    assert all(feed(Hysteresis(), "SSF" * 100))


def test_up_only_after_rise_successes_in_a_row():
    h = Hysteresis(fall=3, reset=2, rise=4)
    feed(h, "SFFF")
    assert h.up is False
    assert feed(h, "SSSFSSS") == [False] * 7  # a failure restarts the count
    assert h.changing
    assert feed(h, "S") == [True]
    assert not h.changing
