"""The live state of one probe target: hysteresis, smoothed figures, what it publishes.

A `Check` is shared by every pool member (in any zone) whose health URL and check
settings are the same, so one target costs one probe however often it is named.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from geodns.steering.health import MemberHealth, Status
from geodns.steering.health_settings import HealthSettings
from healthcheck.hysteresis import Hysteresis
from healthcheck.probes import ProbeResult
from healthcheck.smoothing import Ewma

# A smoothed load or hit rate is republished (and answers may change) only when it has
# moved by more than this since it was last published: decision caches stay warm.
EPSILON = 0.02

CheckKey = tuple[str, tuple]  # (health URL, HealthSettings.check_fields())


def check_key(url: str, settings: HealthSettings) -> CheckKey:
    return (url, settings.check_fields())


@dataclass
class Check:
    url: str
    settings: HealthSettings
    interval: float  # the shortest interval among the pools that use this target
    jitter: float
    hysteresis: Hysteresis = field(init=False)
    load: Ewma = field(init=False)
    hit_rate: Ewma = field(init=False)
    draining: bool = False
    health: MemberHealth = field(init=False)  # the published, answer-relevant state
    last_result: ProbeResult | None = None
    last_probe: float | None = None  # unix time
    inconclusive: int = 0  # timeouts in a row not counted (the checker itself stalled)

    def __post_init__(self) -> None:
        s = self.settings
        self.hysteresis = Hysteresis(fall=s.fall, reset=s.reset, rise=s.rise)
        self.load = Ewma(s.smoothing)
        self.hit_rate = Ewma(s.smoothing)
        self.health = MemberHealth(
            status=Status.UNKNOWN, since=time.time(), reason="no probe result yet",
            changing=True,
        )

    def status(self) -> Status:
        up = self.hysteresis.up
        if up is None:
            return Status.UNKNOWN
        if not up:
            return Status.DOWN
        return Status.DRAINING if self.draining else Status.UP

    def record(self, result: ProbeResult, now: float | None = None) -> bool:
        """Count one probe result; True when the published state changed."""
        now = time.time() if now is None else now
        self.last_result, self.last_probe = result, now
        self.hysteresis.record(result.ok)
        if result.ok:
            self.draining = result.draining
            if result.load is not None:
                self.load.add(result.load)
            if result.hit_rate is not None:
                self.hit_rate.add(result.hit_rate)
        old = self.health
        status = self.status()
        since, reason = old.since, old.reason
        if status != old.status:
            since, reason = now, self._reason(old.status, status, result)
        new = MemberHealth(
            status=status,
            load=_moved(old.load, self.load.value),
            hit_rate=_moved(old.hit_rate, self.hit_rate.value),
            latency_ms=round(result.latency_ms, 3),
            since=since,
            reason=reason,
            changing=self.hysteresis.changing,
        )
        if (new.status, new.changing, new.load, new.hit_rate) == (
            old.status, old.changing, old.load, old.hit_rate
        ):
            return False
        self.health = new
        return True

    def _reason(self, old: Status, new: Status, result: ProbeResult) -> str:
        s = self.settings
        if new == Status.DOWN:
            return f"{result.reason} ({s.fall} failed probes)"
        if new == Status.DRAINING:
            return "the health document says draining"
        if old == Status.DOWN:
            return f"{s.rise} probes in a row succeeded ({result.reason})"
        if old == Status.UNKNOWN:
            return f"first probe succeeded ({result.reason})"
        return f"no longer draining ({result.reason})"


def _moved(published: float, current: float | None) -> float:
    if current is None or abs(current - published) <= EPSILON:
        return published
    return round(current, 4)
