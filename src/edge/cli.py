"""The ``edge`` command: ``serve``, ``make-models``, ``plan``, and model distribution
(``publish``, ``models``, ``purge``, ``rollout``: see edge.distribution.cli).

``edge serve`` is a thin layer over `EdgeConfig`: ``--config FILE`` first, then flags.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from edge.app import build_app
from edge.config import ConfigError, EdgeConfig, config_from_mapping, load_config
from edge.distribution import cli as dist_cli
from edge.distribution.cli import TOKEN_ENV
from edge.modelgen import make_models
from edge.planner import add_plan_arguments, run_plan
from geocdn.auth import TokenError, add_token_option, read_token


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run an edge, a shield or the origin")
    d = EdgeConfig()
    p.add_argument("--config", type=Path, help="YAML or TOML file with any of the options")
    p.add_argument("--listen", help=f"HOST:PORT (default {d.listen})")
    p.add_argument("--grpc-listen", help="HOST:PORT of the gRPC inference service (default off)")
    p.add_argument("--upstream", help="URL of the shield or origin; none = this is the origin")
    p.add_argument("--models", dest="models_dir", help="model folder (the master store on "
                   "the origin): <name>/<version>/model.onnx")
    p.add_argument("--cache-dir",
                   help="L2 and artifact cache folder (default var/edge-cache/<host>-<port>)")
    p.add_argument("--l1", choices=["memory", "redis"], help="L1 tier (default memory)")
    p.add_argument("--redis", dest="redis_url",
                   help="Redis URL for --l1 redis (and the stream, unless --dist-redis)")
    p.add_argument("--dist-redis", dest="dist_redis_url",
                   help="Redis URL of the model and invalidation stream, when it is not "
                   "the L1's (e.g. L1 on db 1, the stream on the origin's db 0)")
    p.add_argument("--l1-bytes", help="L1 memory bound, e.g. 64MiB")
    p.add_argument("--l2-bytes", help="L2 disk bound, e.g. 1GiB")
    p.add_argument("--l1-ttl", dest="l1_ttl_s", type=float, help="L1 TTL in seconds")
    p.add_argument("--l2-ttl", dest="l2_ttl_s", type=float, help="L2 TTL in seconds")
    p.add_argument("--stale-grace", dest="stale_grace_s", type=float,
                   help="serve expired entries this long when the upstream is down")
    p.add_argument("--miss-order", choices=["upstream-first", "local-first"],
                   help="a miss on a node holding the model: ask the upstream first "
                   "(default) or compute locally first")
    p.add_argument("--region", help="region name shown in answers and /health")
    p.add_argument("--location", help="LAT,LON of this node")
    p.add_argument("--capacity", type=int, help="concurrent requests that count as load 1.0")
    p.add_argument("--max-batch", type=int, help="rows per inference batch (1 = no batching)")
    p.add_argument("--max-queue-delay-ms", type=float, help="longest wait for a batch to fill")
    add_token_option(p, TOKEN_ENV, "for /admin/* and publishing",
                     otherwise="only loopback clients are let in")
    p.add_argument("--dist-store", help="origin: model distribution store folder (/dist/v1)")
    p.add_argument("--oci-registry", help="edges: fetch version files from this OCI "
                   "registry first, http(s)://[USER:PASSWORD@]HOST:PORT/REPOSITORY (the region's; "
                   "${NAME} in it is an environment variable)")
    p.add_argument("--dist-url", help="edge: origin URL to fetch versions from (default: "
                   "--upstream)")
    p.add_argument("--edge-id", help="name of this node in rollout reports")
    p.add_argument("--int8", dest="prefer_int8", action="store_const", const=True,
                   help="edge: run the INT8 variant of versions published with one")
    p.add_argument("--no-fsync", dest="l2_fsync", action="store_const", const=False,
                   help="do not fsync L2 writes (still atomic renames)")
    p.add_argument("--latency-redis", help="Redis URL that beacons and kernel RTTs go to")
    p.add_argument("--latency-name", help="this node's member name in the pool "
                   "(default: --edge-id)")
    p.add_argument("--latency-peers", help="NAME=URL,... of the other members clients may time")
    p.add_argument("--log-level", default="INFO")


def serve_config(args: argparse.Namespace) -> EdgeConfig:
    base = load_config(args.config) if args.config else EdgeConfig()
    flags = {k: v for k, v in vars(args).items()
             if k not in ("command", "config", "log_level", "admin_token_file")
             and v is not None}
    token = read_token(args.admin_token_file, TOKEN_ENV)
    if token is not None and (args.admin_token_file is not None or base.admin_token is None):
        flags["admin_token"] = token  # the file named here, else the environment's if unset
    return config_from_mapping(flags, base=base, source="command line")


async def serve(config: EdgeConfig) -> None:
    """Run until SIGINT/SIGTERM; prints one line when listening."""
    app = build_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, port = config.host_port
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    role = "origin" if config.is_origin else f"edge (upstream {config.upstream})"
    print(f"edge listening on http://{host}:{port} as {role}, region {config.region}",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    mm = sub.add_parser("make-models", help="write the example models into a folder")
    mm.add_argument("dir", type=Path)
    mm.add_argument("--hidden", type=int, default=64, help="ranker hidden width (default 64)")
    add_plan_arguments(sub.add_parser("plan", help="size the cache tiers for a trace"))
    dist_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    if hasattr(args, "dist_cmd"):  # publish, models, purge, rollout
        return dist_cli.run(args)

    if args.command == "make-models":
        for path in make_models(args.dir, hidden=args.hidden):
            print(path)
        return 0
    if args.command == "plan":
        return run_plan(args)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = serve_config(args)
    except (ConfigError, TokenError) as e:
        print(f"edge: {e}", file=sys.stderr)
        return 2
    run = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop
        run = uvloop.run
    try:
        run(serve(config))
    except OSError as e:
        print(f"edge: cannot listen on {config.listen}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
