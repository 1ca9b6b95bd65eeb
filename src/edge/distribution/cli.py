"""Operator commands: publish, list, activate, stage, roll back, purge, rollout state.

Each command acts on a running origin over HTTP (`--origin URL`, token from
`--admin-token-file FILE` or `$EDGE_ADMIN_TOKEN`) or directly on a store folder (`--store DIR`,
announcing on `--redis URL` when given). `register(subparsers)` adds them to any
argparse command (the `edge` command uses it); `main()` runs them standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from edge.distribution.client import OriginClient
from edge.distribution.errors import DistributionError
from edge.distribution.events import EventStream, connect_stream
from edge.distribution.oci import Registry
from edge.distribution.service import Distribution
from edge.distribution.store import ModelStore, read_config
from geocdn.auth import TokenError, add_token_option, read_token

TOKEN_ENV = "EDGE_ADMIN_TOKEN"


def _target(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where")
    g.add_argument("--origin", metavar="URL", help="origin base URL, e.g. http://127.0.0.1:8000")
    add_token_option(g, TOKEN_ENV, "of the origin")
    g.add_argument("--store", metavar="DIR", type=Path, help="act on this store folder directly")
    g.add_argument("--redis", metavar="URL", help="with --store: announce on this Redis")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("publish", help="publish a model version to the origin's store")
    p.add_argument("model_file", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--int8", action="store_true", help="also make an INT8 variant")
    p.add_argument("--oci", metavar="URL", help="also push the version to this OCI registry, "
                   "http(s)://[USER:PASSWORD@]HOST:PORT/REPOSITORY, ${NAME} in it an environment "
                   "variable (layers it already has are not sent)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--activate", action="store_true", help="make it current on every edge")
    when.add_argument("--stage", action="store_true", help="pre-load it on every edge")
    _target(p)
    p.set_defaults(dist_cmd=_publish)

    models = subparsers.add_parser("models", help="list, activate, stage or roll back versions")
    sub = models.add_subparsers(dest="models_cmd", required=True)
    p = sub.add_parser("list", help="models, versions and the current one")
    _target(p)
    p.set_defaults(dist_cmd=_list)
    for cmd, helptext in (("activate", "make VERSION current on every edge"),
                          ("stage", "pre-load VERSION on every edge (activate it later)")):
        p = sub.add_parser(cmd, help=helptext)
        p.add_argument("name")
        p.add_argument("version")
        _target(p)
        p.set_defaults(dist_cmd=_simple(cmd))
    p = sub.add_parser("rollback", help="return to the previously current version")
    p.add_argument("name")
    _target(p)
    p.set_defaults(dist_cmd=_simple("rollback"))

    p = subparsers.add_parser("purge", help="invalidate cached entries on every edge")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--key")
    what.add_argument("--prefix")
    what.add_argument("--tag")
    _target(p)
    p.set_defaults(dist_cmd=_purge)

    p = subparsers.add_parser("rollout", help="rollout state of every edge: one line each")
    p.add_argument("--json", action="store_true", help="the origin's full report as JSON")
    _target(p)
    p.set_defaults(dist_cmd=_rollout)


class _Direct:
    """The store (and stream) in this process, with the same calls as OriginClient."""

    def __init__(self, store: Path, redis_url: str | None) -> None:
        self.redis = connect_stream(redis_url) if redis_url else None
        self.dist = Distribution(ModelStore(store),
                                 EventStream(self.redis) if self.redis else None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dist, name)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def _backend(args: argparse.Namespace) -> OriginClient | _Direct:
    if args.store and args.origin:
        raise SystemExit("error: give either --origin or --store, not both")
    if args.store:
        return _Direct(args.store, args.redis)
    if args.origin:
        try:
            token = read_token(args.admin_token_file, TOKEN_ENV)
        except TokenError as exc:
            raise SystemExit(f"error: {exc}") from None
        return OriginClient(args.origin, token)
    raise SystemExit("error: say where: --origin URL (a running origin) or --store DIR")


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def _describe(manifest: dict[str, Any]) -> list[str]:
    lines = [f"{manifest['name']} {manifest['version']}"]
    for role, f in manifest["files"].items():
        lines.append(f"  {role}: {_kib(f['size'])} {f['digest']}")
        if f.get("zstd"):
            z = f["zstd"]
            lines.append(f"    zstd: {_kib(z['size'])} ({z['size'] / f['size']:.1%})")
        for d in f.get("deltas", []):
            lines.append(f"    delta from {d['base_version']} ({d['method']}): "
                         f"{_kib(d['size'])} ({d['size'] / f['size']:.1%})")
    q = manifest.get("quantization")
    if q:
        a = q["agreement"]
        extra = ", ".join(f"{k} {v:.4g}" for k, v in a.items() if k != "samples")
        lines.append(f"  int8: {q['ratio']:.1%} of FP32 size; on {a['samples']} samples: {extra}")
    return lines


async def _publish(b: Any, args: argparse.Namespace) -> None:
    if not args.model_file.is_file():
        raise DistributionError(f"{args.model_file}: no such file")
    out = await b.publish(args.model_file, args.name, args.version, int8=args.int8,
                          activate=args.activate, stage=args.stage,
                          config=read_config(args.model_file))
    print("\n".join(_describe(out["manifest"])))
    print("published" if out["created"] else "already published (identical bytes)")
    if args.oci:
        config = args.model_file.parent / "config.json"
        tag = await asyncio.to_thread(Registry.parse(args.oci).push, args.name, args.version,
                                      args.model_file, config if config.is_file() else None)
        print(f"pushed to {tag}")
    for step in ("activate", "stage"):
        if step in out:
            print(f"{step}d; announced: {out[step].get('announced')}")


async def _list(b: Any, args: argparse.Namespace) -> None:
    for name, info in (await b.summary()).items():
        print(f"{name}: current {info['current']}, staged {info['staged']}, "
              f"rollback to {info['history'][-1] if info['history'] else '-'}")
        for v, d in info["versions"].items():
            mark = "*" if v == info["current"] else " "
            print(f"  {mark} {v}  {_kib(d['size'])}  {d['digest']}  {d['created']}"
                  + ("  +int8" if d["int8"] else ""))


def _simple(cmd: str) -> Callable[[Any, argparse.Namespace], Awaitable[None]]:
    async def run(b: Any, args: argparse.Namespace) -> None:
        params = [getattr(args, a) for a in ("name", "version") if hasattr(args, a)]
        _print(await getattr(b, cmd)(*params))

    return run


async def _purge(b: Any, args: argparse.Namespace) -> None:
    kind = next(k for k in ("key", "prefix", "tag") if getattr(args, k) is not None)
    _print(await b.purge(kind, getattr(args, kind)))


async def _rollout(b: Any, args: argparse.Namespace) -> None:
    doc = await b.rollout()
    if args.json:
        _print(doc)
    else:
        print(rollout_table(doc))


def _version_cell(state: dict[str, Any]) -> str:
    """`2`; `1 -> 2` while moving to the desired version; `-` when not loaded here (it
    loads on demand); `+3 staged` when a staged version waits."""
    active, desired, staged = state.get("active"), state.get("desired"), state.get("staged")
    cell = str(active) if active else "-"
    if active and desired and desired != active:
        cell += f" -> {desired}"
    if staged:
        cell += f" +{staged} staged"
    return cell


def rollout_table(doc: dict[str, Any]) -> str:
    """One line per edge: how it follows the origin and which version of each model it
    serves; errors last. The JSON (`--json`) has everything else."""
    edges: dict[str, dict[str, Any]] = doc.get("edges", {})
    models = sorted({m for e in edges.values() for m in e.get("models", {})})
    head = ["edge", "mode", "ready", "lag", *models, "error"]
    rows = [head]
    for name, e in sorted(edges.items()):
        states = e.get("models", {})
        errors = [f"{m}: {st['error']}" for m, st in sorted(states.items()) if st.get("error")]
        if not e.get("connected", True):
            errors.append(f"not connected: {e.get('last_error') or '?'}")
        rows.append([name, str(e.get("mode", "?")), "yes" if e.get("ready") else "no",
                     str(e.get("lag", "?")),
                     *(_version_cell(states[m]) if m in states else "-" for m in models),
                     "; ".join(errors) or "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]
             for r in rows]
    if not edges:
        lines.append("(no edge has reported yet)")
    stream = doc.get("stream")
    if stream:
        lines.append(f"stream head: seq {stream['head_seq']} ({stream['head_id']})")
    if doc.get("warning"):
        lines.append(f"warning: {doc['warning']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run a parsed distribution command; errors are printed, not raised."""

    async def go() -> None:
        backend = _backend(args)
        try:
            await args.dist_cmd(backend, args)
        finally:
            await backend.close()

    try:
        asyncio.run(go())
    except (DistributionError, aiohttp.ClientError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-dist", description=__doc__.splitlines()[0])
    register(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
