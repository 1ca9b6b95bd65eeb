"""Measured latency, as steering reads it (the contract with the `latency` package).

A `LatencyView` answers, for a client address, the figures measured from the client's
network to each member: the network's own figures when it has any, else those of the
nearest covering network that has data. Steering never imports the package that
collects them; `latency.table.FigureTable` implements this view, and `NoLatency` is the
view of a server that has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .model import IPAddress


@dataclass(frozen=True, slots=True)
class Figure:
    ms: float  # robust round-trip figure (a decayed low quantile of the samples)
    samples: int  # samples behind it (for a covering network: its networks' samples)


@dataclass(frozen=True, slots=True)
class Measured:
    network: str  # the network the figures were aggregated for, e.g. "192.0.2.0/24"
    # The client prefix on which this lookup's result is the same (the ECS scope a
    # decision on it needs): the client's own network when it or a neighbour has
    # figures, the widest covering network when nothing around it has any.
    prefix: int
    figures: Mapping[str, Figure]  # member name -> figure (usable ones only; may be empty)
    networks: int = 1  # client networks behind the figures (1 for the client's own)


class LatencyView(Protocol):
    # Changes whenever a lookup could give a different ranking of members.
    generation: int

    def lookup(self, address: IPAddress) -> Measured | None: ...


class NoLatency:
    """The view of a server that collects no measurements: every lookup is empty."""

    generation = 0

    def lookup(self, address: IPAddress) -> Measured | None:
        return None
