"""The whole network on loopback: Redis, the origin, one edge per pool member, GeoDNS.

`Stack(config).start()` runs every part as a child process (the same programs an
operator runs: `edge serve`, `geodns serve`), waits until each is ready and until the
health checker sees every edge up, and records what runs where in `run/stack.json` so
that other commands (`cdn simulate --kill`) can find the processes. `stop()` ends them
in reverse order, by PID. The `cdn up` command and the end-to-end tests both use this.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path

from cdn.processes import Child, StartError, http_ready, process_start, same_process
from cdn.redis_server import RedisServer
from cdn.topology import Topology, load_topology
from geocdn.files import write_private
from geocdn.hostport import parse_host_port

STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"  # held while one process changes stack.json
RESTART_BACKOFF = (1.0, 30.0)  # a dying child waits 1 s, 2 s, 4 s ... up to 30 s
STEADY_AFTER = 60.0  # a child that ran this long starts its backoff afresh
TOKEN_FILE = "admin-token"

# Response rate limiting as every deployment runs it (docker-compose.yml and
# deploy/k8s carry the same flags; docs/dns.md explains the rates).
RRL_ARGS = ["--rrl-rate", "20", "--rrl-nxdomain-rate", "5", "--rrl-error-rate", "5"]


# The password of our own Redis reaches the children by the environment: their Redis
# URLs say ${CDN_REDIS_PASSWORD}, so no command line shows it. Another program joins the
# same Redis with CDN_REDIS_PASSWORD=$(cat run/redis-password).
REDIS_PASSWORD_ENV = "CDN_REDIS_PASSWORD"
REDIS_PASSWORD_FILE = "redis-password"  # 0600 in the run folder, for a second checker


@dataclass
class StackConfig:
    zones: Path = Path("zones")
    pool: str = "edges"
    run_dir: Path = Path("run")  # logs, caches, generated models, stack.json
    redis_url: str | None = None  # None: start a Redis-protocol server of our own
    dns: str = "127.0.0.1:5353"
    http: str = "127.0.0.1:8053"
    origin: str = "127.0.9.1:8000"  # outside the zone's demo client nets
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    # Small on purpose: the example inputs fit in a few MiB, and with a big L1 the demo
    # would never show the L2 tier at work.
    edge_l1_bytes: str = "64KiB"
    geoip: Path | None = None  # None: geodns's own default (the demo database)
    ready_timeout: float = 60.0

    @property
    def dns_host_port(self) -> tuple[str, int]:
        return parse_host_port(self.dns)


def program(name: str) -> str:
    """A console script of this project, from the same environment as this Python."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise StartError(f"`{name}` is not installed; run bin/setup")
    return found


class Stack:
    def __init__(self, config: StackConfig):
        self.config = config
        self.topology: Topology = load_topology(config.zones, config.pool)
        self.redis: RedisServer | None = None
        self.redis_url = config.redis_url or ""
        self.env: dict[str, str] = {}  # for every child: our Redis's password
        self.children: list[Child] = []
        self.run_dir = config.run_dir.resolve()
        self.report: Callable[[str], None] = lambda message: None  # supervisor's news
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._failures: dict[str, int] = {}
        self._due: dict[str, float] = {}  # name -> when a dead child starts again
        self._started: dict[str, float] = {}
        self._held: set[str] = set()

    @property
    def token_file(self) -> Path:
        """The admin token of the origin, every edge and GeoDNS (never on a command
        line)."""
        return self.run_dir / TOKEN_FILE

    # -- the parts -------------------------------------------------------------------

    def _child(self, name: str, argv: list[str], ready_url: str | None, where: str) -> Child:
        return Child(
            name=name,
            argv=argv,
            log_path=self.run_dir / "logs" / f"{name}.log",
            ready=http_ready(ready_url) if ready_url else None,
            where=where,
            env=self.env,
        )

    def _prepare_models(self) -> Path:
        models = self.run_dir / "models"
        if not any(models.glob("*")):
            models.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [program("edge"), "make-models", str(models)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        return models

    def origin_child(self, models: Path) -> Child:
        host = self.config.origin
        argv = [
            program("edge"), "serve",
            "--listen", host,
            "--models", str(models),
            "--cache-dir", str(self.run_dir / "cache" / "origin"),
            "--region", "origin",
            # Model distribution: `edge publish --origin` reaches every edge through
            # the store and the Redis stream.
            "--dist-store", str(self.run_dir / "store"),
            "--redis", self.redis_url,
            "--admin-token-file", str(self.token_file),
        ]
        return self._child("origin", argv, f"http://{host}/health", f"http://{host}")

    def edge_child(self, name: str) -> Child:
        site = self.topology.edge(name)
        argv = [
            program("edge"), "serve",
            "--listen", site.listen,
            "--grpc-listen", site.grpc_listen,  # the Open Inference Protocol over gRPC
            "--upstream", f"http://{self.config.origin}",
            "--cache-dir", str(self.run_dir / "cache" / site.name),
            "--l1-bytes", self.config.edge_l1_bytes,
            "--region", site.name,
            f"--location={site.lat},{site.lon}",  # "=": a latitude may be negative
            "--redis", self.redis_url,  # the model and invalidation stream
            "--edge-id", site.name,
            "--admin-token-file", str(self.token_file),  # /admin/* needs it
            # latency beacons and kernel RTTs (`latency.edge`), for GeoDNS to follow
            "--latency-redis", self.redis_url,
            "--latency-peers", ",".join(f"{e.name}={e.base_url}" for e in self.topology.edges),
        ]
        return self._child(f"edge-{site.name}", argv, f"{site.base_url}/health", site.base_url)

    def geodns_child(self) -> Child:
        c = self.config
        # The health checker runs inside the server and publishes to Redis as vantage
        # "local", where more DNS servers or standalone checkers could join it.
        argv = [
            program("geodns"), "serve",
            "--zones", str(Path(c.zones).resolve()),
            "--listen", c.dns,
            "--http", c.http,
            "--redis", self.redis_url,
            "--vantage", "local",
            "--overrides", str(self.run_dir / "overrides.yaml"),
            "--admin-token-file", str(self.token_file),
            *RRL_ARGS,
            "--latency-redis", self.redis_url,
        ]
        if c.geoip:
            argv += ["--geoip", str(c.geoip)]
        where = f"DNS {c.dns} (UDP+TCP), HTTP http://{c.http}"
        return self._child("geodns", argv, f"http://{c.http}/metrics", where)

    # -- lifecycle -------------------------------------------------------------------

    def check_addresses(self) -> None:
        """Refuse to start when an address is taken (a second `cdn up`, say): otherwise
        the readiness checks would be answered by the other program's servers."""
        c = self.config
        tcp = [c.origin, c.http, c.dns,
               *(a for site in self.topology.edges for a in (site.listen, site.grpc_listen))]
        taken = [f"{a} (TCP)" for a in tcp if not can_bind(a, socket.SOCK_STREAM)]
        taken += [f"{c.dns} (UDP)"] if not can_bind(c.dns, socket.SOCK_DGRAM) else []
        twice = sorted({a for a in tcp if tcp.count(a) > 1})
        if twice:  # say two edges on one address, ports 8000 and 8001 (gRPC is port + 1)
            raise StartError(f"two of our servers would listen on {', '.join(twice)}; "
                             "an edge's gRPC port is its HTTP port + 1")
        if taken:
            raise StartError(
                f"already in use: {', '.join(taken)}; is another `cdn up` running? "
                "(--dns, --http and --origin move our servers; the edges' addresses "
                "come from the zone's pool)"
            )

    def start(self) -> Stack:
        self.check_addresses()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_private(self.token_file, self.config.admin_token + "\n")
        try:
            if not self.redis_url:  # our own, with a password of its own
                password = secrets.token_urlsafe(18)
                self.redis = RedisServer(host="127.0.0.1", password=password).start()
                self.env[REDIS_PASSWORD_ENV] = password
                write_private(self.run_dir / REDIS_PASSWORD_FILE, password + "\n")
                self.redis_url = (f"redis://:${{{REDIS_PASSWORD_ENV}}}@127.0.0.1:"
                                  f"{self.redis.port}/0")
            models = self._prepare_models()
            self._launch(self.origin_child(models))
            for site in self.topology.edges:
                self._launch(self.edge_child(site.name), wait=False)
            for child in self.children[1:]:
                child.wait_ready(self.config.ready_timeout)
            self._launch(self.geodns_child())
            self.save_state()
            self.wait_all_up(self.config.ready_timeout)
        except BaseException:
            self.stop()
            raise
        self._supervisor = threading.Thread(target=self._supervise, name="cdn-supervisor",
                                            daemon=True)
        self._supervisor.start()
        return self

    # -- keeping the children up --------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            for message in self.supervise_once():
                self.report(message)

    def supervise_once(self) -> list[str]:
        """Start again the children that died, after a backoff that doubles while they
        keep dying; a child held (killed on purpose, `cdn simulate --kill`) stays down."""
        news = []
        with self._lock, state_lock(self.run_dir):
            held = held_in(self.run_dir)
            released = self._held - held
            self._held = held
            now = time.monotonic()
            changed = False
            for ch in self.children:
                if ch.name in held:
                    continue
                if ch.running():
                    if now - self._started.get(ch.name, 0.0) > STEADY_AFTER:
                        self._failures.pop(ch.name, None)
                    continue
                if ch.name in released:
                    self._due[ch.name] = now  # a held child let go: at once
                if ch.name not in self._due:
                    failures = self._failures.get(ch.name, 0)
                    delay = min(RESTART_BACKOFF[1], RESTART_BACKOFF[0] * 2**failures)
                    self._due[ch.name] = now + delay
                    code = ch.proc.returncode if ch.proc else None
                    news.append(f"{ch.name} exited (code {code}); starting it again in "
                                f"{delay:.0f} s; see {ch.log_path}")
                elif now >= self._due[ch.name]:
                    del self._due[ch.name]
                    self._failures[ch.name] = self._failures.get(ch.name, 0) + 1
                    self._started[ch.name] = now
                    ch.start()
                    changed = True
                    news.append(f"{ch.name} started again (pid {ch.pid})")
            if changed:
                write_state(self.run_dir, self.state())
        return news

    def _launch(self, child: Child, wait: bool = True) -> None:
        child.start()
        self.children.append(child)
        if wait:
            child.wait_ready(self.config.ready_timeout)

    def child(self, name: str) -> Child:
        for c in self.children:
            if c.name == name or c.name == f"edge-{name}":
                return c
        raise KeyError(name)

    def member_states(self) -> dict[str, str]:
        """Member name → state, as the DNS server's health service sees it now."""
        url = f"http://{self.config.http}/admin/health"
        with urllib.request.urlopen(url, timeout=2) as resp:
            doc = json.load(resp)
        return {
            m["member"]: m["status"] for m in doc["members"] if m["pool"] == self.config.pool
        }

    def wait_all_up(self, timeout: float) -> None:
        """Until the health checker sees every edge up. Whatever goes wrong while asking
        (no answer yet, another program's reply, a half-written one) is "not up yet";
        at the deadline a StartError names what did not come up and its log."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        failure = "no members in the reply"
        while time.monotonic() < deadline:
            try:
                states = self.member_states()
            except (OSError, ValueError, LookupError, TypeError, HTTPException) as err:
                states, failure = {}, f"{type(err).__name__}: {err}"
            if states and all(s == "up" for s in states.values()):
                return
            time.sleep(0.2)
        if not states:
            raise StartError(
                f"geodns's health API (http://{self.config.http}/admin/health) did not "
                f"report the pool {self.config.pool!r} within {timeout:.0f} s ({failure}); "
                f"see {self.run_dir / 'logs' / 'geodns.log'}")
        down = [f"edge-{m} ({s}; see {self.run_dir / 'logs' / f'edge-{m}.log'})"
                for m, s in sorted(states.items()) if s != "up"]
        raise StartError(f"not up after {timeout:.0f} s: {', '.join(down)}")

    def kill(self, name: str) -> None:
        """SIGKILL one child (an edge dying without goodbye), for failover demos; it is
        held down (not started again) until `restart`."""
        c = self.child(name)
        with self._lock:
            set_held(self.run_dir, c.name, True)
            self._held.add(c.name)
            c.kill()

    def restart(self, name: str) -> None:
        """Start a stopped or killed child again with the same command line."""
        c = self.child(name)
        with self._lock:
            set_held(self.run_dir, c.name, False)
            self._held.discard(c.name)
            self._due.pop(c.name, None)
            c.stop()
            c.start()
            self._started[c.name] = time.monotonic()
            self.save_state()
        c.wait_ready(self.config.ready_timeout)

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        for child in reversed(self.children):
            child.stop()
        if self.redis:
            self.redis.stop()
        state = self.run_dir / STATE_FILE
        if state.exists():
            state.unlink()

    # -- what other commands read ------------------------------------------------------

    def state(self) -> dict:
        c = self.config
        return {
            "launcher_pid": os.getpid(),
            "launcher_started": process_start(os.getpid()),
            "zones": str(Path(c.zones).resolve()),
            "pool": c.pool,
            "name": self.topology.steered_name,
            "dns": c.dns,
            "http": c.http,
            "origin": c.origin,
            "redis": self.redis_url,
            "redis_pid": self.redis.pid if self.redis else None,
            "redis_started": process_start(self.redis.pid) if self.redis else None,
            "admin_token": c.admin_token,
            "children": [
                {"name": ch.name, "pid": ch.pid, "started": ch.started, "argv": ch.argv,
                 "log": str(ch.log_path), "where": ch.where, "held": ch.name in self._held}
                for ch in self.children
            ],
        }

    def save_state(self) -> None:
        with state_lock(self.run_dir):
            write_state(self.run_dir, self.state())


@contextmanager
def state_lock(run_dir: Path) -> Iterator[None]:
    """One process at a time changes the state file (cdn up, cdn simulate --kill)."""
    fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def held_in(run_dir: Path) -> set[str]:
    """The children held down on purpose, as the state file says."""
    path = Path(run_dir) / STATE_FILE
    if not path.exists():
        return set()
    return {e["name"] for e in json.loads(path.read_text())["children"] if e.get("held")}


def set_held(run_dir: Path, name: str, held: bool) -> None:
    """Mark one child held down (or not) in the state file, for the launcher to see."""
    with state_lock(run_dir):
        path = Path(run_dir) / STATE_FILE
        if not path.exists():
            return
        state = json.loads(path.read_text())
        for entry in state["children"]:
            if entry["name"] == name:
                entry["held"] = held
        write_state(run_dir, state)


def can_bind(address: str, kind: socket.SocketKind) -> bool:
    host, port = parse_host_port(address)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:  # as servers do: a socket in TIME_WAIT is no clash
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def stop_pid(pid: int, grace: float = 5.0) -> None:
    """SIGTERM one process by PID, SIGKILL after `grace`; gone already is fine."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if process_start(pid) is None:  # gone, or a zombie for its parent to reap
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def write_state(run_dir: Path, state: dict) -> None:
    """Replace the state file in one step, readable by its owner only."""
    path = Path(run_dir) / STATE_FILE
    write_private(path, json.dumps(state, indent=2))  # it holds the admin token


def read_state(run_dir: Path) -> dict:
    """What `cdn up` recorded in `run_dir`, even when it is gone (`cdn down` cleans up)."""
    path = Path(run_dir) / STATE_FILE
    if not path.exists():
        raise StartError(f"no stack is running (no {path}); start one with bin/up "
                         "(or `cdn up`)")
    return json.loads(path.read_text())


def running_state(run_dir: Path) -> dict:
    """The state of the stack running from `run_dir`; StartError when none is."""
    state = read_state(run_dir)
    if not same_process(state.get("launcher_pid"), state.get("launcher_started")):
        raise StartError(f"no stack is running (the `cdn up` that wrote "
                         f"{Path(run_dir) / STATE_FILE} is gone; `cdn down` cleans up after "
                         "it); start one with bin/up (or `cdn up`)")
    return state


# What `cdn up` writes under its run directory; `cdn up --clean` removes it first.
GENERATED = ("models", "models-v2", "cache", "store", "overrides.yaml", "logs", "plots",
             TOKEN_FILE, STATE_FILE, LOCK_FILE)


def clean_run_dir(run_dir: Path) -> list[Path]:
    """Remove what earlier runs left in `run_dir` (models, caches, overrides, logs)."""
    if (Path(run_dir) / STATE_FILE).exists():
        try:
            state = running_state(run_dir)
        except StartError:
            pass
        else:
            raise StartError(f"a stack is running from {run_dir} (cdn up, pid "
                             f"{state['launcher_pid']}); stop it first with `cdn down`")
    removed = []
    for name in GENERATED:
        path = Path(run_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


def stop_stack(run_dir: Path, timeout: float = 120.0) -> str:
    """Stop the stack of `run_dir` from any terminal: its `cdn up` stops what it
    started; when that launcher is gone, stop the processes it recorded. A PID is
    signalled only while it runs the very process recorded (`process_start`): after a
    crash or a reboot the number may belong to another program, which is left alone."""
    state = read_state(run_dir)
    launcher = int(state.get("launcher_pid") or 0)
    path = Path(run_dir) / STATE_FILE
    started = state.get("launcher_started")
    if same_process(launcher, started):
        os.kill(launcher, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while same_process(launcher, started) and time.monotonic() < deadline:
            time.sleep(0.1)
        if same_process(launcher, started):
            raise StartError(f"cdn up (pid {launcher}) did not stop within {timeout:.0f} s")
        return f"stopped the stack of {run_dir} (cdn up, pid {launcher})"
    recorded = [(e["name"], e["pid"], e.get("started")) for e in state.get("children", [])
                if e.get("pid")]
    if state.get("redis_pid"):
        recorded.append(("redis", state["redis_pid"], state.get("redis_started")))
    lines, stopped = [], 0
    for name, pid, started in reversed(recorded):
        if same_process(pid, started):
            stop_pid(pid)
            stopped += 1
        elif process_start(pid) is not None:
            lines.append(f"skipped {name} (pid {pid}): that PID now runs another process")
    path.unlink(missing_ok=True)
    lines.insert(0, f"stopped {stopped} processes left by a `cdn up` that is gone "
                    f"({run_dir})")
    return "\n".join(lines)
