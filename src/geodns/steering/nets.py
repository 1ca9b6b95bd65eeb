"""`nets:` overrides: client networks whose location (or members) the operator states.

The longest matching prefix wins, and any match beats the GeoIP database. A lookup
also says how long a prefix around the client is guaranteed to see the same override
(or the same absence of one), which bounds the ECS scope.
"""

from __future__ import annotations

from dataclasses import dataclass

from .addresses import BITS, common_prefix
from .model import IPAddress, NetOverride


@dataclass(frozen=True, slots=True)
class NetMatch:
    override: NetOverride | None
    prefix: int  # every address sharing this many leading bits gets the same `override`


class NetTable:
    def __init__(self, overrides: list[NetOverride]) -> None:
        self.overrides = sorted(overrides, key=lambda o: -o.network.prefixlen)
        self._by_family: dict[int, list[tuple[int, int, NetOverride]]] = {4: [], 6: []}
        for o in self.overrides:
            net = o.network
            self._by_family[net.version].append((int(net.network_address), net.prefixlen, o))

    @property
    def has_members(self) -> bool:
        return any(o.members for o in self.overrides)

    def lookup(self, address: IPAddress) -> NetMatch:
        bits = BITS[address.version]
        a = int(address)
        need = 0
        for start, plen, o in self._by_family[address.version]:  # longest prefix first
            if (a ^ start) >> (bits - plen) == 0:
                return NetMatch(o, max(need, plen))
            # A more specific override that does not hold the client: the scope must be
            # narrow enough to leave it out.
            need = max(need, common_prefix(a, start, bits) + 1)
        return NetMatch(None, need)
