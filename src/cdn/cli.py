"""`cdn`: the whole network on one machine.

    cdn up          start Redis, the origin, every edge and GeoDNS on loopback
    cdn down        stop it (from any terminal)
    cdn client      resolve the steered name as some client, call the edge it got
    cdn simulate    a world of clients; per-region and per-edge report and plots
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
import time
from pathlib import Path

import aiohttp
from dns.exception import DNSException

from cdn.beacon import beacon
from cdn.cities import city_network, demo_cities
from cdn.client import EdgeClient, ResolveError, resolve
from cdn.control import StateFileController
from cdn.errors import CdnError
from cdn.processes import StartError
from cdn.simulate import SimConfig, Simulation, payload, plot, report
from cdn.stack import (
    TOKEN_FILE,
    Stack,
    StackConfig,
    clean_run_dir,
    running_state,
    stop_stack,
)
from cdn.topology import load_topology
from geocdn.auth import TokenError, add_token_option, read_token
from geocdn.hostport import format_host_port, host_port_type
from geocdn.urls import redacted

hostport = host_port_type()


def shell_cmd(name: str) -> str:
    """How to type one of our console scripts from the current directory."""
    beside = Path(sys.executable).parent / name
    try:
        rel = beside.relative_to(Path.cwd())
        return str(rel) if beside.exists() else name
    except ValueError:
        return name


# -- cdn up ------------------------------------------------------------------------------


def commands_to_try(stack: Stack) -> list[tuple[str, str]]:
    """The commands `cdn up` prints, exactly as a user would type them."""
    c, topo = stack.config, stack.topology
    cdn, edge = shell_cmd("cdn"), shell_cmd("edge")
    run = "" if c.run_dir == Path("run") else f" --run-dir {c.run_dir}"
    host, port = c.dns_host_port
    v2 = c.run_dir / "models-v2"
    origin = f"--origin http://{c.origin} --admin-token-file {c.run_dir / TOKEN_FILE}"
    return [
        (f"dig @{host} -p {port} {topo.steered_name} A +subnet={city_network('tokyo')}",
         "a client in Tokyo gets the tokyo edge"),
        (f"{cdn} client{run} --city tokyo", "resolve as Tokyo, predict on the edge it got"),
        (f"{cdn} client{run} --city sao-paulo --kserve", "the same over KServe v2"),
        (f"{cdn} client{run} --source 127.0.3.1", "a host in London (the zone's demo nets)"),
        (f"{cdn} simulate{run} --requests 3000", "a world of clients, with plots"),
        (f"{cdn} simulate{run} --duration 60 --kill tokyo --at 10 --restart-after 35",
         "failover: Tokyo's clients move on as their TTL ends"),
        (f"{edge} make-models --hidden 32 {v2}", "another ranker, to publish"),
        (f"{edge} publish {v2}/ranker/1/model.onnx --name ranker --version 2 --activate "
         f"{origin}", "every edge moves to version 2 (cdn client shows it)"),
        (f"{edge} rollout {origin}", "each edge's versions and stream position"),
    ]


def summary(stack: Stack) -> str:
    c = stack.config
    lines = ["", "The local CDN is up:", ""]
    pid = stack.redis.pid if stack.redis else None
    redis_pid = f"pid {pid:<7}" if pid else "given"
    lines.append(f"  {'redis':<16} {redis_pid:<11} {redacted(stack.redis_url)}")
    grpc = {f"edge-{site.name}": f"  gRPC {site.grpc_listen}" for site in stack.topology.edges}
    for ch in stack.children:
        lines.append(f"  {ch.name:<16} pid {ch.pid:<7} {ch.where}{grpc.get(ch.name, '')}")
    lines += [
        "",
        f"  Dashboard:   http://{c.http}/",
        f"  Admin token: in {c.run_dir / TOKEN_FILE}   (for drain/undrain on the dashboard)",
        f"  Logs:        {stack.run_dir / 'logs'}/",
        "",
        "Try:",
    ]
    for cmd, why in commands_to_try(stack):
        lines += [f"  # {why}", f"  {cmd}"]
    lines += ["", "Ctrl-C stops everything."]
    return "\n".join(lines)


def cmd_up(args: argparse.Namespace) -> int:
    if args.clean:
        for path in clean_run_dir(args.run_dir):
            print(f"removed {path}")
    config = StackConfig(
        zones=args.zones, run_dir=args.run_dir, redis_url=args.redis, dns=args.dns,
        http=args.http, origin=args.origin, geoip=args.geoip,
    )
    try:
        token = read_token(args.admin_token_file, "CDN_ADMIN_TOKEN")
    except TokenError as err:
        print(f"cdn up: {err}", file=sys.stderr)
        return 2
    if token:
        config.admin_token = token
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stack = Stack(config)
    print(f"starting {len(stack.topology.edges)} edges, the origin, GeoDNS and Redis "
          f"(logs in {stack.run_dir / 'logs'}) ...", flush=True)
    try:
        stack.start()
    except (StartError, OSError) as err:
        print(f"cdn up: {err}", file=sys.stderr)
        return 1
    print(summary(stack), flush=True)
    stack.report = lambda message: print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        print("stopping ...", flush=True)
        stack.stop()
        print("stopped.")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    print(stop_stack(args.run_dir))
    return 0


# -- cdn client --------------------------------------------------------------------------


def use_running_stack(args: argparse.Namespace) -> None:
    """Fill --server and --zones from the stack that `cdn up` runs (run/stack.json);
    without one (and without both options) a StartError says how to start one."""
    if args.server is not None and args.zones is not None:
        return
    state = running_state(args.run_dir)
    if args.server is None:
        args.server = hostport(state["dns"])
    if args.zones is None:
        args.zones = Path(state["zones"])


async def client_once(args: argparse.Namespace) -> int:
    use_running_stack(args)
    topo = load_topology(args.zones)
    ecs = args.ecs or (str(city_network(args.city)) if args.city else None)
    who = (f"city {args.city} (ECS {ecs})" if args.city else f"ECS {ecs}" if ecs
           else f"source {args.source or 'default'}")
    try:
        res = await resolve(topo.steered_name, args.server, source=args.source, ecs=ecs)
    except (ResolveError, DNSException, OSError) as err:
        host, port = args.server
        print(f"cdn client: no answer from the DNS server at {format_host_port(host, port)}: "
              f"{err}", file=sys.stderr)
        return 1
    address = res.addresses[0]
    site = topo.by_address(address)
    scope = f", ECS scope /{res.scope}" if res.scope is not None else ""
    print(f"client:   {who}")
    print(f"DNS:      {topo.steered_name} A → {', '.join(res.addresses)} "
          f"(TTL {res.ttl}{scope}) in {res.elapsed_ms:.1f} ms")
    body = payload(args.model, args.item)
    if args.kserve:
        path = f"/v2/models/{args.model}/infer"
        body = kserve_request(body)
    else:
        path = "/predict"
    async with EdgeClient(port=site.port if site else 8000, source=args.source) as edge:
        try:
            reply = await edge.predict(address, body, path)
        except OSError as err:
            print(f"edge {address}: {err}", file=sys.stderr)
            return 1
    name = site.name if site else address
    print(f"edge:     {name} ({address}) answered HTTP {reply.status}, region {reply.region}, "
          f"cache tier {reply.tier}")
    print(f"timing:   DNS {res.elapsed_ms:.1f} ms, connect {reply.connect_ms:.1f} ms, "
          f"connect+request {reply.request_ms:.1f} ms")
    version = reply.body.get("model_version", "?")
    print(f"answer:   {args.model} version {version} → {brief(reply.prediction)}")
    if args.beacon:
        connector = aiohttp.TCPConnector(local_addr=(args.source, 0) if args.source else None)
        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                out = await beacon(session, f"http://{address}:{site.port if site else 8000}")
            except (aiohttp.ClientError, OSError) as err:
                print(f"beacon:   {err}", file=sys.stderr)
                return 1
        times = ", ".join(f"{s['edge']} {s['ms']:.1f} ms" for s in out["samples"])
        print(f"beacon:   {times} → HTTP {out['status']}")
    return 0 if reply.status == 200 else 1


def brief(value: object) -> str:
    """A prediction on one line: a score, or the head of a vector."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, list) and all(isinstance(v, float) for v in value):
        head = ", ".join(f"{v:.4f}" for v in value[:4])
        return f"[{head}{', …' if len(value) > 4 else ''}] ({len(value)} values)"
    return str(value)


def kserve_request(body: dict) -> dict:
    """The same input as an Open Inference Protocol (KServe v2) request."""
    if body["model"] == "ranker":
        data = body["features"]
        return {"inputs": [{"name": "features", "shape": [1, len(data)], "datatype": "FP32",
                            "data": data}]}
    return {"inputs": [{"name": "item_id", "shape": [1, 1], "datatype": "INT64",
                        "data": body["features"]}]}


def cmd_client(args: argparse.Namespace) -> int:
    return asyncio.run(client_once(args))


# -- cdn simulate ------------------------------------------------------------------------


def simulate_world(args: argparse.Namespace) -> int:
    from cdn.world_sim import plot_world, run_world, world_table

    samples = asyncio.run(run_world(args.world_seconds, args.world_seconds, args.world_clients))
    print(world_table(samples))
    out = plot_world(samples, (args.plot_dir or args.run_dir / "plots") / "simulate-world.png")
    print(f"plot: {out}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.world:
        return simulate_world(args)
    use_running_stack(args)
    topo = load_topology(args.zones)
    controller = None
    if args.kill:
        running_state(args.run_dir)  # kill needs a stack started by `cdn up`
        topo.edge(args.kill)  # an unknown edge is an error before the run starts
        controller = StateFileController(args.run_dir)
    config = SimConfig(
        requests=None if args.duration else args.requests, duration=args.duration,
        concurrency=args.concurrency, zipf_s=args.zipf, inputs=args.inputs, seed=args.seed,
        kill=args.kill, kill_at=args.at, restart_after=args.restart_after,
    )
    try:  # one question first: with no DNS server there, say so instead of a report
        asyncio.run(resolve(topo.steered_name, args.server))
    except (ResolveError, DNSException, OSError) as err:
        host, port = args.server
        print(f"cdn simulate: no answer from a DNS server at {format_host_port(host, port)} "
              f"({err}); is the stack up? start one with bin/up", file=sys.stderr)
        return 1
    sim = Simulation(topo, demo_cities(), args.server, config, controller)
    started = time.monotonic()
    samples = asyncio.run(sim.run())
    text = report(samples, time.monotonic() - started)
    for t, what in sim.events:
        text += f"\n{t:6.1f} s  {what}"
    print(text)
    for path in plot(samples, sim.events, args.plot_dir or args.run_dir / "plots", args.kill):
        print(f"wrote {path}")
    return 0


# -- the parser --------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cdn", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    default_zones = Path("zones")

    up = sub.add_parser("up", help="start the whole network on loopback")
    up.add_argument("--zones", type=Path, default=default_zones)
    up.add_argument("--run-dir", type=Path, default=Path("run"),
                    help="logs, caches, generated models (default: run)")
    up.add_argument("--redis", help="use this Redis URL instead of starting a server")
    up.add_argument("--dns", default="127.0.0.1:5353", help="DNS listen address")
    up.add_argument("--http", default="127.0.0.1:8053", help="GeoDNS admin/dashboard address")
    up.add_argument("--origin", default="127.0.9.1:8000", help="origin listen address")
    up.add_argument("--geoip", type=Path, help="GeoIP2 City database (default: the demo one)")
    add_token_option(up, "CDN_ADMIN_TOKEN", "of the origin and GeoDNS",
                     otherwise="a random one, written to RUN_DIR/admin-token")
    up.add_argument("--clean", action="store_true",
                    help="first remove what earlier runs left in RUN_DIR: models (a published "
                    "version 2), caches, the distribution store, overrides, logs")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop the stack that `cdn up` runs (from any terminal)")
    down.add_argument("--run-dir", type=Path, default=Path("run"),
                      help="where `cdn up` keeps stack.json (default: run)")
    down.set_defaults(func=cmd_down)

    def dns_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--run-dir", type=Path, default=Path("run"),
                       help="where `cdn up` keeps stack.json (default: run)")
        p.add_argument("--zones", type=Path,
                       help="zone files (default: the running stack's, else ./zones)")
        p.add_argument("--server", type=hostport,
                       help="our DNS server (default: the running stack's, else "
                       "127.0.0.1:5353)")

    cl = sub.add_parser("client", help="resolve as a client, then call the edge it got")
    dns_args(cl)
    who = cl.add_mutually_exclusive_group()
    who.add_argument("--city", help="pose as a client in this demo city (sends its ECS net)")
    who.add_argument("--ecs", help="send this EDNS Client Subnet, e.g. 198.18.2.0/24")
    cl.add_argument("--source", help="bind the query and the request to this loopback address")
    cl.add_argument("--model", default="ranker", choices=("ranker", "embedder"))
    cl.add_argument("--item", type=int, default=1, help="which input (same item = same key)")
    cl.add_argument("--kserve", action="store_true", help="use /v2/models/{m}/infer")
    cl.add_argument("--beacon", action="store_true",
                    help="then time the edge (and, sampled, alternates) and post a beacon")
    cl.set_defaults(func=cmd_client)

    sim = sub.add_parser("simulate", help="clients in the example cities, with a report")
    dns_args(sim)
    sim.add_argument("--requests", type=int, default=2000)
    sim.add_argument("--duration", type=float, help="run for seconds instead of --requests")
    sim.add_argument("--concurrency", type=int, default=8,
                     help="requests in flight at once")
    sim.add_argument("--zipf", type=float, default=1.1, help="popularity exponent")
    sim.add_argument("--inputs", type=int, default=1000, help="distinct inputs per model")
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--kill", metavar="EDGE", help="kill this edge during the run")
    sim.add_argument("--at", type=float, default=5.0, help="when to kill it (s)")
    sim.add_argument("--restart-after", type=float, help="restart it this long after (s)")
    sim.add_argument("--plot-dir", type=Path, help="where to write the PNGs "
                     "(default: RUN_DIR/plots)")
    sim.add_argument("--world", action="store_true",
                     help="run the clients in the latency world instead (its own edges, "
                     "GeoDNS and Redis): origin-only, geo and latency steering compared")
    sim.add_argument("--world-seconds", type=float, default=60.0,
                     help="--world: seconds per mode (default 60), after as long a warm-up")
    sim.add_argument("--world-clients", type=int, default=2, help="--world: clients per city")
    sim.set_defaults(func=cmd_simulate)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except CdnError as err:
        print(f"cdn {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
