"""`latency`: order members by the latency measured from the client's network.

The figures come from the context's `LatencyView` (`steering.measured`): the client's
own /24 or /48 when it has figures, else the nearest covering network that has some.
Proximity first: the member that leads the incoming order (the nearest, after
`nearest` or `score`) keeps the lead unless a member measured faster by more than
`margin_ms` exists; those go before it, fastest first. The other measured members
follow it, fastest first, then the members without a figure in the order they came.
With no figure for the leading member the order is kept: a network nobody measured
is steered by distance. A decision that looked figures up depends on the client's
network at the prefix the view names, which becomes the answer's ECS scope.

    chain: [nearest, latency, healthy, first_n]          # margin_ms 10
    chain: [score, {latency: {margin_ms: 20}}, shed, healthy, first_n]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..chain import Candidate, Context, Filter
from ._args import mapping

# Measured noise (a few ms of jitter, a busy client) must not move clients away from
# the nearest edge; a congested route (tens of ms) must.
DEFAULT_MARGIN_MS = 10.0


@dataclass(frozen=True, slots=True)
class LatencyArgs:
    margin_ms: float = DEFAULT_MARGIN_MS


def latency(ctx: Context, cands: list[Candidate], args: LatencyArgs) -> list[Candidate]:
    measured = ctx.measured() if cands else None
    if measured is None:
        ctx.notes.append("no latency measurements here: order kept")
        return cands
    figures = {c.name: measured.figures[c.name] for c in cands if c.name in measured.figures}
    lead = cands[0]
    if not figures:
        ctx.notes.append(f"no figures for {measured.network} or around it: order kept")
        return cands
    source = (measured.network if measured.networks == 1
              else f"{measured.network} (median of {measured.networks} networks)")
    shown = ", ".join(f"{name} {f.ms:g} ms ({f.samples} samples)"
                      for name, f in sorted(figures.items(), key=lambda x: x[1].ms))
    ctx.notes.append(f"measured from {source}: {shown}")
    if lead.name not in figures:
        ctx.notes.append(f"{lead.name} (leading) not measured: order kept")
        return cands
    bar = figures[lead.name].ms - args.margin_ms
    known = [c for c in cands if c.name in figures and c is not lead]
    faster = sorted((c for c in known if figures[c.name].ms < bar),
                    key=lambda c: figures[c.name].ms)
    rest = sorted((c for c in known if figures[c.name].ms >= bar),
                  key=lambda c: figures[c.name].ms)
    if faster:
        ctx.notes.append(f"{faster[0].name} beats {lead.name} by more than {args.margin_ms:g} ms")
    return faster + [lead] + rest + [c for c in cands if c.name not in figures and c is not lead]


def _parse(args: Any) -> LatencyArgs:
    spec = mapping(args, {"margin_ms"})
    margin = spec.get("margin_ms", DEFAULT_MARGIN_MS)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or margin < 0:
        raise ValueError("latency margin_ms must be a number of milliseconds, 0 or more")
    return LatencyArgs(float(margin))


LATENCY = Filter(latency, _parse)
