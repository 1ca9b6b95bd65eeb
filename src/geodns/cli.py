"""The `geodns` command: serve, check (and explain, which geo steering adds as a plugin
command: `add_commands(subparsers)` registering a subparser with `set_defaults(func=f)`,
`f(args) -> int` being its exit status).

A thin layer over `ServerConfig` / `GeoDNSServer`: the same server starts from code
in tests. Options of other features come from plugins (`geodns.plugins`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from geocdn.auth import TokenError, add_token_option, read_token
from geocdn.hostport import host_port_type
from geodns.plugins import Plugin

DEFAULT_LISTEN = "127.0.0.1:5353"
TOKEN_ENV = "GEODNS_ADMIN_TOKEN"


host_port = host_port_type()


def at_least(kind: type[int] | type[float], low: float, *,
             above: bool = False) -> Callable[[str], float]:
    """An argparse type: a number of `kind` that is >= low (> low with `above`)."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value != value:  # not parsed, or NaN
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        if value < low or (above and value == low):
            raise argparse.ArgumentTypeError(f"{text} must be {'above' if above else 'at least'}"
                                             f" {low:g}")
        return value

    return parse


POSITIVE = at_least(float, 0, above=True)
NON_NEGATIVE = at_least(float, 0)


def secret(text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError("the cookie secret is hex, e.g. 32 hex digits") from None
    if len(value) != 16:
        raise argparse.ArgumentTypeError("the cookie secret is 16 octets (32 hex digits), "
                                         "the SipHash-2-4 key of RFC 9018")
    return value


def build_parser(plugins: list[Plugin]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geodns", description="Authoritative GeoDNS server "
                                     "for YAML zones.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # No abbreviated options: `--workers` is also read before parsing (metrics setup).
    serve = sub.add_parser("serve", help="serve the zones of a directory over UDP and TCP",
                           description="Serve every zone file of --zones over UDP and TCP.",
                           allow_abbrev=False)
    serve.add_argument("--zones", type=Path, default=Path("zones"), metavar="DIR",
                       help="directory of zone files (*.yaml); default: ./zones")
    serve.add_argument("--listen", type=host_port, action="append", metavar="HOST:PORT",
                       help=f"DNS address, UDP and TCP; repeatable; IPv6 as [::1]:5353 "
                       f"(default {DEFAULT_LISTEN})")
    serve.add_argument("--http", type=host_port, metavar="HOST:PORT",
                       help="admin HTTP: /metrics, POST /admin/reload (default: none)")
    add_token_option(serve, TOKEN_ENV, "for the admin API's writes (reload, health overrides)")
    serve.add_argument("--workers", type=at_least(int, 1), default=1, metavar="N",
                       help="worker processes sharing the DNS ports (SO_REUSEPORT); default 1")
    serve.add_argument("--nsid", help="NSID and CHAOS id.server answer (default: none, "
                       "so neither is answered)")
    serve.add_argument("--cookie-secret", type=secret, metavar="HEX",
                       help="DNS cookie secret shared by a server set (default: random)")
    serve.add_argument("--tcp-idle-timeout", type=POSITIVE, default=10.0, metavar="SECONDS",
                       help="close TCP connections idle this long (default 10)")
    serve.add_argument("--tcp-message-timeout", type=POSITIVE, default=5.0, metavar="SECONDS",
                       help="close a TCP connection whose message is not whole this long "
                       "after its first octet (default 5)")
    serve.add_argument("--tcp-max-connections", type=at_least(int, 1), default=256, metavar="N",
                       help="TCP connections served at once; a new one beyond that closes "
                       "the connection idle the longest (default 256)")
    serve.add_argument("--answer-cache", type=POSITIVE, default=64.0, metavar="MIB",
                       help="memory for cached answers per process, in MiB; past it the "
                       "caches start over (default 64)")
    serve.add_argument("--rrl-rate", type=NON_NEGATIVE, default=0.0, metavar="N",
                       help="response rate limit per client network and response, per "
                       "second; 0 = off (default)")
    serve.add_argument("--rrl-nxdomain-rate", type=NON_NEGATIVE, metavar="N",
                       help="limit for NXDOMAIN responses (default: --rrl-rate)")
    serve.add_argument("--rrl-error-rate", type=NON_NEGATIVE, metavar="N",
                       help="limit for error responses such as REFUSED (default: --rrl-rate)")
    serve.add_argument("--rrl-slip", type=at_least(int, 0), default=2, metavar="N",
                       help="send every Nth limited response truncated (TC) instead of "
                       "dropping it; 0 = drop all (default 2)")
    serve.add_argument("--rrl-window", type=POSITIVE, default=15.0, metavar="SECONDS",
                       help="debt a client network may run up, in seconds of rate (default 15)")
    serve.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])
    for plugin in plugins:
        plugin.add_arguments(serve)

    check = sub.add_parser("check", help="validate zone files; print every error",
                           description="Validate every zone file of DIR; exit 1 on any error.")
    check.add_argument("dir", type=Path, metavar="DIR")
    for plugin in plugins:  # e.g. `geodns explain` from geo steering
        plugin.add_commands(sub)
    return parser


def _check(directory: Path) -> int:
    import gc

    from geodns.zonefile import load_zones

    gc.disable()  # a one-shot run: collections would double the time on a big zone
    zones, problems = load_zones(directory)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    names = ", ".join(f"{o} (serial {z.serial})" for o, z in sorted(zones.items()))
    print(f"ok: {len(zones)} zone(s): {names}")
    return 0


def _multiprocess_metrics(argv: list[str]) -> None:
    """With several workers, point prometheus-client at a directory shared by the
    processes; this must happen before anything imports it (plugins do)."""
    workers = "1"
    for i, arg in enumerate(argv):
        if arg == "--workers" and i + 1 < len(argv):
            workers = argv[i + 1]
        elif arg.startswith("--workers="):
            workers = arg.split("=", 1)[1]
    if workers.isdigit() and int(workers) > 1 and argv[:1] == ["serve"]:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="geodns-metrics-")


def _serve(args: argparse.Namespace, plugins: list[Plugin]) -> int:
    from geodns.rrl import RRLConfig
    from geodns.server import ServerConfig
    from geodns.workers import run

    try:
        token = read_token(args.admin_token_file, TOKEN_ENV)
    except TokenError as exc:
        print(f"geodns: {exc}", file=sys.stderr)
        return 2
    config = ServerConfig(
        zones_dir=args.zones,
        admin_token=token,
        listen=args.listen or [host_port(DEFAULT_LISTEN)],
        http=args.http,
        workers=args.workers,
        cookie_secret=args.cookie_secret,
        rrl=RRLConfig(rate=args.rrl_rate, nxdomain_rate=args.rrl_nxdomain_rate,
                      error_rate=args.rrl_error_rate, slip=args.rrl_slip,
                      window=args.rrl_window),
        tcp_idle_timeout=args.tcp_idle_timeout,
        tcp_message_timeout=args.tcp_message_timeout,
        tcp_max_connections=args.tcp_max_connections,
        answer_cache_bytes=int(args.answer_cache * 2**20),
        plugins=plugins,
    )
    if args.nsid:
        config.nsid = args.nsid
    for plugin in plugins:
        plugin.configure(args, config)
    return run(config)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _multiprocess_metrics(argv)
    from geodns.plugins import load_plugins  # after the metrics setup above

    plugins = load_plugins()
    args = build_parser(plugins).parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, getattr(args, "log_level", "info").upper()),
        format="%(asctime)s %(levelname)s geodns[%(process)d]: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "check":
        return _check(args.dir)
    if args.command == "serve":
        return _serve(args, plugins)
    return int(args.func(args) or 0)  # a plugin's command, set with set_defaults(func=...)


if __name__ == "__main__":
    sys.exit(main())
