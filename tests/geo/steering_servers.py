"""A fleet of `geodns serve` processes (started by `server.start`) with health checking,
in a health and load state the test sets, for the steering consistency tests.

The members' health documents come from one small HTTP server (`HealthDocs`) whose
answers the test changes (load); states come from the override file that every server
of a `Fleet` shares. Pools use `smoothing: 1` so a server's loads equal the documents'
after one probe, and `fall: 1000` so a probe that is slow on a loaded machine never
takes a member down. Two zones: `nets.example` (the example pool and its
`nets:`, one of which lists members) and `plain.example` (the same pool, no `nets`,
a second pool behind a strict continent fence, and `www`, a CNAME to the pool-bound
`edge`).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.edns
import dns.message
import dns.rcode
import yaml

from .conftest import EXAMPLE_ZONE
from .server import Server, start

EXAMPLE = yaml.safe_load(EXAMPLE_ZONE.read_text())
MEMBERS = [m["name"] for m in EXAMPLE["pools"]["edges"]["members"]]


class HealthDocs:
    """One HTTP server answering `/h/NAME` with the edge health document of NAME."""

    def __init__(self) -> None:
        self.loads: dict[str, float] = dict.fromkeys(MEMBERS, 0.1)
        self.hit_rates: dict[str, float] = dict.fromkeys(MEMBERS, 0.5)
        docs = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                name = self.path.rsplit("/", 1)[-1]
                body = json.dumps({"status": "ok", "load": docs.loads.get(name, 0.0),
                                   "hit_rate": docs.hit_rates.get(name, 0.0)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/h/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_zones(directory: Path, docs: HealthDocs) -> None:
    pool = dict(EXAMPLE["pools"]["edges"])
    pool["members"] = [{**m, "health_url": docs.url(m["name"])} for m in pool["members"]]
    # A loaded machine makes probes slow: states come from the override file only (a
    # member never falls DOWN: fall 1000), loads from one successful probe (rise 1).
    pool["health"] = {"smoothing": 1.0, "interval": 0.5, "timeout": 0.5, "fall": 1000,
                      "rise": 1}
    fenced = {**pool, "chain": [{"geofence": {"by": "continent", "strict": True}},
                                "healthy", "weighted", "first_n"]}
    base = {k: EXAMPLE[k] for k in ("ttl", "soa")}
    records = {"@": {"NS": ["ns1"]}, "ns1": {"A": "127.0.0.1"}, "edge": {"pool": "edges"}}
    directory.mkdir(parents=True, exist_ok=True)
    with_nets = {**base, "zone": "nets.example", "records": records,
                 "pools": {"edges": pool}, "nets": EXAMPLE["nets"]}
    plain = {**base, "zone": "plain.example",
             "records": {**records, "fenced": {"pool": "fenced"}, "www": {"CNAME": "edge"}},
             "pools": {"edges": pool, "fenced": fenced}}
    for doc in (with_nets, plain):
        (directory / f"{doc['zone']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


@dataclass(frozen=True)
class State:
    """A health and load state: member loads and hit rates (`idle` and `hit_rate` for
    the members not listed), and members forced down or draining."""

    name: str
    loads: dict[str, float] = field(default_factory=dict)
    forced: dict[str, str] = field(default_factory=dict)  # member -> down | draining
    hit_rates: dict[str, float] = field(default_factory=dict)
    idle: float = 0.1
    hit_rate: float = 0.5

    def load(self, member: str) -> float:
        return self.loads.get(member, self.idle)


STATES = [
    State("idle"),
    State("loaded", loads={"virginia": 0.3, "tokyo": 0.8, "london": 0.6}),
    State("failing", loads={"frankfurt": 0.85}, forced={"london": "draining", "sydney": "down"}),
]


@dataclass
class Fleet:
    """Servers sharing one health document server and one override file."""

    tmp: Path
    docs: HealthDocs = field(default_factory=HealthDocs)
    servers: list[Server] = field(default_factory=list)
    state: State = STATES[0]  # what the documents and the override file say now

    def __post_init__(self) -> None:
        self.zones = self.tmp / "zones"
        write_zones(self.zones, self.docs)
        self.overrides = self.tmp / "overrides.yaml"
        self.overrides.write_text("overrides: []\n")

    def start(self, *extra: str, env: dict[str, str] | None = None) -> Server:
        """One more server of the fleet, once its health view shows the fleet's state."""
        server = start(self.zones, self.tmp, "--overrides", str(self.overrides), *extra,
                       env=env)
        self.servers.append(server)
        wait_state(server, self.state)
        return server

    def set_state(self, state: State) -> None:
        self.state = state
        self.docs.loads = {m: state.load(m) for m in MEMBERS}
        self.docs.hit_rates = {m: state.hit_rates.get(m, state.hit_rate) for m in MEMBERS}
        entries = [{"site": m, "state": s} for m, s in state.forced.items()]
        self.overrides.write_text(yaml.safe_dump({"overrides": entries}))
        for server in self.servers:
            wait_state(server, state)

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        self.docs.close()


def wait_state(server: Server, state: State, timeout: float = 120.0) -> None:
    """Until the server's health view shows `state` for every member of every pool,
    settled and steady."""
    deadline = time.monotonic() + timeout
    want = {m: (state.forced.get(m, "up"), state.load(m),
                state.hit_rates.get(m, state.hit_rate)) for m in MEMBERS}
    while True:
        rows = server.http("GET", "/admin/health")["members"]  # type: ignore[index]
        got = {(r["zone"], r["pool"], r["member"]): (r["status"], round(r["load"], 3),
                                                      round(r["hit_rate"], 3), r["changing"],
                                                      r["settled"])
               for r in rows}
        if got and all(v == (*want[k[2]], False, True) for k, v in got.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"state {state.name} not reached: {got}")
        time.sleep(0.1)


def generation(server: Server) -> int:
    return server.http("GET", "/admin/health")["generation"]  # type: ignore[index]


def answer_of(r: dns.message.Message) -> tuple[str, tuple[str, ...]]:
    """(rcode, the sorted records of the answer section as text)."""
    records = sorted(f"{rr.name} {rr.rdtype} {item}" for rr in r.answer for item in rr)
    return dns.rcode.to_text(r.rcode()), tuple(records)


def scope_of(r: dns.message.Message) -> int | None:
    for o in r.options:
        if isinstance(o, dns.edns.ECSOption):
            return o.scopelen
    return None
