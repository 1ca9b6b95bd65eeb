"""`priority` (ordered failover) and `first_n` (how many answers)."""

from __future__ import annotations

from typing import Any

from ..chain import Candidate, Context, Filter
from ._args import no_args


def priority(ctx: Context, cands: list[Candidate], args: None) -> list[Candidate]:
    """Keep the best (lowest) priority level present: the next level takes over only
    when every member of the better ones is gone (put `healthy` before it)."""
    if not cands:
        return cands
    best = min(c.member.priority for c in cands)
    ctx.notes.append(f"priority level {best}")
    return [c for c in cands if c.member.priority == best]


def first_n(ctx: Context, cands: list[Candidate], n: int | None) -> list[Candidate]:
    """Keep the first n (default: the pool's `answers`)."""
    return cands[: n or ctx.pool.answers]


def _parse_n(args: Any) -> int | None:
    if args is None:
        return None
    if isinstance(args, bool) or not isinstance(args, int) or args < 1:
        raise ValueError(f"first_n takes a count >= 1, got {args!r}")
    return args


PRIORITY = Filter(priority, no_args)
FIRST_N = Filter(first_n, _parse_n)
