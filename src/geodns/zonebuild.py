"""Zone sets built in a child process and handed to the server in small pieces.

Reading a big zone (YAML parsed in C, every record validated and compiled to wire
octets) takes seconds of CPU. Done in the serving process, even in a thread, it would
stall the event loop: the C YAML parser holds the GIL for the whole file, and the
garbage collector walks every object built. So `build()` forks a child that runs
`load_zones`; the child sends the zones back as pickled pieces of a few milliseconds'
work each for the caller's thread, which gives the GIL back after each: the names
stored `packed` (most of a big zone's: the loader makes them so) as a dict it merges at
once, 5,000 a piece; the others as plain tuples it turns back into RRsets, 500 a piece;
pools 50 a piece. The collector is paused meanwhile, and the new objects are then
frozen out of its reach (`gc.freeze`: they are freed by reference counting when a later
reload drops them), so no collection walks a big zone while queries wait. The serving
process never holds the YAML tree, which keeps its memory near the compiled zones'
size. The caller swaps the returned set in at once; until then the last good zones
answer. `release()` then frees the zones it replaced, one name at a time, from a
thread: freeing a big zone in one go would hold the GIL as long as building it.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from geodns.steering import ZoneSteering
from geodns.steering.nets import NetTable
from geodns.zone import Node, RRset, Zone, packed
from geodns.zonefile import Problem, load_zones

CHUNK = 500  # names not packed (or 10 x CHUNK packed, or CHUNK / 10 pools) per piece
PAUSE = 0.001  # seconds the assembling thread gives up the GIL after each piece


def _pieces(zones: dict[str, Zone]) -> Iterator[tuple[str, Any]]:
    for zone in zones.values():
        steering = zone.steering
        yield "zone", (zone.origin, zone.path, zone.soa, zone.pools,
                       None if steering is None else steering.nets.overrides)
        yield from _node_pieces(zone.nodes)
        if steering is not None:
            pools = list(steering.pools.items())
            for i in range(0, len(pools), CHUNK // 10):
                yield "pools", pools[i : i + CHUNK // 10]
        yield "done", None


def _node_pieces(nodes: dict[str, Node | bytes]) -> Iterator[tuple[str, Any]]:
    """("nodes", (packed names, the others' RRset fields)), 10 x CHUNK packed names or
    CHUNK others (or a mix that costs as much) a piece."""
    compact: dict[str, bytes] = {}
    full: list[tuple[str, list[tuple[int, int, int, tuple]]]] = []
    cost = 0
    for owner, node in nodes.items():
        portable = _portable(node)
        if isinstance(portable, bytes):
            compact[owner] = portable
            cost += 1
        else:
            full.append((owner, portable))
            cost += 10
        if cost >= 10 * CHUNK:
            yield "nodes", (compact, full)
            compact, full, cost = {}, [], 0
    if cost:
        yield "nodes", (compact, full)


def _portable(node: Node | bytes) -> bytes | list[tuple[int, int, int, tuple]]:
    """A node as sent to the server: `packed` when it can be, else its RRsets' fields."""
    if isinstance(node, bytes):
        return node
    if len(node) == 1 and (compact := packed(next(iter(node.values())))) is not None:
        return compact
    return [(s.rtype, s.ttl, s.rclass, tuple(s.rdata)) for s in node.values()]


def _child(directory: Path, conn: Connection) -> None:
    gc.disable()  # a short life: exiting frees everything; collections would double the time
    zones, problems = load_zones(directory)
    conn.send(("problems", problems))
    if not problems:
        for piece in _pieces(zones):
            conn.send(piece)
    conn.send(("end", None))
    conn.close()


def _assemble(conn: Connection) -> dict[str, Zone]:
    zones: dict[str, Zone] = {}
    head: Any = None
    nodes: dict[str, Node | bytes] = {}
    pools: dict[str, Any] = {}
    ttls: dict[int, int] = {}  # one int object per distinct TTL, not one per RRset
    while True:
        kind, value = conn.recv()
        if kind == "end":
            return zones
        if kind == "zone":
            head, nodes, pools = value, {}, {}
        elif kind == "nodes":
            compact, full = value
            nodes.update(compact)
            for owner, sets in full:
                rrsets = [RRset(owner, rtype, ttls.setdefault(ttl, ttl), rdata, rclass)
                          for rtype, ttl, rclass, rdata in sets]
                nodes[owner] = rrsets[0] if len(rrsets) == 1 else {
                    r.rtype: r for r in rrsets}
            time.sleep(PAUSE)  # let the event loop's thread take the GIL
        elif kind == "pools":
            pools.update(value)
            time.sleep(PAUSE)
        elif kind == "done":
            origin, path, soa, bound, overrides = head
            steering = None if overrides is None else ZoneSteering(
                zone=origin, pools=pools, nets=NetTable(overrides))
            zones[origin] = Zone(origin=origin, path=path, soa=soa, nodes=nodes,
                                 pools=bound, steering=steering)


def build(directory: Path) -> tuple[dict[str, Zone], list[Problem]]:
    """`load_zones(directory)`, computed in a child process (see the module docstring).
    Blocks: call it from a thread when an event loop runs."""
    receiver, sender = mp.Pipe(duplex=False)
    pid = os.fork()  # not multiprocessing.Process: worker processes may not have one
    if pid == 0:
        code = 1
        try:
            receiver.close()
            _child(directory, sender)
            code = 0
        finally:
            os._exit(code)
    sender.close()
    enabled = gc.isenabled()
    gc.disable()
    try:
        kind, problems = receiver.recv()
        zones = _assemble(receiver)
        gc.freeze()
    except EOFError:
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        return {}, [Problem(str(directory), None, None, "the process reading the zones "
                            f"ended without an answer (exit code {code})")]
    finally:
        if enabled:
            gc.enable()
        receiver.close()
    os.waitpid(pid, 0)
    return zones, problems


def release(zones: dict[str, Zone]) -> None:
    """Free zones that nothing else holds, piece by piece (call it from a thread)."""
    for zone in zones.values():
        while zone.nodes:
            zone.nodes.popitem()
            if len(zone.nodes) % CHUNK == 0:
                time.sleep(PAUSE)
        zone.empty.clear()
    zones.clear()
