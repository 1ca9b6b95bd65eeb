"""`nearest` (by great-circle distance, minus each member's bias) and `geofence`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..chain import Candidate, Context, Filter
from ._args import mapping, no_args


def nearest(ctx: Context, cands: list[Candidate], args: None) -> list[Candidate]:
    """Order by distance (bias subtracted); without a client location keep the order."""
    if ctx.location is None:
        ctx.notes.append("client location unknown: order kept")
        return cands
    km = {c.name: ctx.distance(c) for c in cands}
    known = [c for c in cands if km[c.name] is not None]
    unknown = [c for c in cands if km[c.name] is None]  # members without coordinates
    return sorted(known, key=lambda c: km[c.name] or 0.0) + unknown


@dataclass(frozen=True, slots=True)
class Fence:
    by: str = "continent"  # "continent" | "country"
    strict: bool = False  # True: never answer a member outside the client's region


def geofence(ctx: Context, cands: list[Candidate], fence: Fence) -> list[Candidate]:
    """Keep the members in the client's continent (or country).

    If the client's region is unknown, or (unless `strict`) no candidate is in it, the
    candidates are kept: a fence that would leave nothing is not applied. A `strict`
    fence fails closed: the all-down policy then never answers a member outside it
    (`decide`: NODATA, or the pool's fallback CNAME).
    """
    location = ctx.location
    region = getattr(location, fence.by, None) if location else None
    if region is None:
        ctx.notes.append(f"client {fence.by} unknown: not applied")
        return cands
    inside = [c for c in cands if getattr(c.member, fence.by) == region]
    if fence.strict:
        allowed = {c.name for c in inside}
        ctx.fence = allowed if ctx.fence is None else ctx.fence & allowed
    if not inside and not fence.strict:
        ctx.notes.append(f"no candidate in {region}: not applied")
        return cands
    ctx.notes.append(f"client {fence.by} {region}")
    return inside


def _parse_fence(args: Any) -> Fence:
    if isinstance(args, str):
        args = {"by": args}
    spec = mapping(args, {"by", "strict"})
    by = spec.get("by", "continent")
    if by not in ("continent", "country"):
        raise ValueError(f"geofence by must be continent or country, got {by!r}")
    strict = spec.get("strict", False)
    if not isinstance(strict, bool):
        raise ValueError("geofence strict must be true or false")
    return Fence(by, strict)



NEAREST = Filter(nearest, no_args)
GEOFENCE = Filter(geofence, _parse_fence)
