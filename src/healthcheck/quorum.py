"""Combine the states that several vantage points report for one target."""

from __future__ import annotations

from dataclasses import dataclass

from geodns.steering.health import MemberHealth, Status


@dataclass(frozen=True, slots=True)
class Vote:
    vantage: str
    health: MemberHealth


def needed(live: int, quorum: int | None) -> int:
    """Votes needed to call a target DOWN: `quorum`, else a majority of `live`."""
    return quorum if quorum else live // 2 + 1


def combine(votes: list[Vote], quorum: int | None = None) -> MemberHealth | None:
    """The combined state, or None when no vantage point has an opinion yet.

    DOWN only when at least `needed()` of the vantage points that have an opinion say
    DOWN. Otherwise the target is alive: DRAINING if a vantage point that reaches it
    reads `draining` from its document, else UP; load and hit rate are the mean of what
    the vantage points that reach it read. A split vote marks the state as changing
    (answers then carry the short TTL).
    """
    known = [v for v in votes if v.health.status != Status.UNKNOWN]
    if not known:
        return None
    down = [v for v in known if v.health.status == Status.DOWN]
    alive = [v for v in known if v.health.status != Status.DOWN]
    need = needed(len(known), quorum)
    split = bool(down) and bool(alive)
    if len(down) >= need:
        first = min(down, key=lambda v: v.health.since)
        return MemberHealth(
            status=Status.DOWN,
            since=max(v.health.since for v in down[:need]),
            reason=f"{len(down)} of {len(known)} vantage points say down "
                   f"({first.vantage}: {first.health.reason})",
            changing=split or any(v.health.changing for v in known),
        )
    if not alive:  # a quorum larger than the vantage points alive: cannot call it down
        return MemberHealth(
            status=Status.UP, since=max(v.health.since for v in known),
            reason=f"{len(down)} vantage points say down, short of the quorum of {need}",
            changing=True,
        )
    draining = any(v.health.status == Status.DRAINING for v in alive)
    latencies = [v.health.latency_ms for v in alive if v.health.latency_ms is not None]
    return MemberHealth(
        status=Status.DRAINING if draining else Status.UP,
        load=round(sum(v.health.load for v in alive) / len(alive), 4),
        hit_rate=round(sum(v.health.hit_rate for v in alive) / len(alive), 4),
        latency_ms=min(latencies) if latencies else None,
        since=max(v.health.since for v in alive),
        reason=f"{len(alive)} of {len(known)} vantage points reach it "
               f"({alive[0].vantage}: {alive[0].health.reason})",
        changing=split or any(v.health.changing for v in known),
    )
