"""Load and validate YAML zone files (the format is documented in the README).

Every problem is collected as a `Problem` naming the file, the line, the owner name
where there is one, and what is wrong; a file with any problem yields no zone. The
server swaps in a new set of zones only when `load_zones()` reports no problem, so a
bad edit never replaces a zone that is being served.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml
from dnslib import QTYPE, RD, SOA, DNSLabel
from dnslib.label import DNSBuffer

from geodns import records
from geodns.names import NameError_, absolute, check, is_subdomain, wire_labels
from geodns.steering import ZoneSteering, load_steering
from geodns.zone import Node, RRset, Zone, pack_one

MAX_TTL = 2**31 - 1
TOP_KEYS = {"zone", "ttl", "soa", "records", "pools", "nets"}
SOA_TIMES = {"serial": None, "refresh": 7200, "retry": 900, "expire": 1209600, "minimum": 300}
SOA_KEYS = {"mname", "rname", "ttl", *SOA_TIMES}
GLUE_TYPES = {"A", "AAAA"}
MAX_FILE_SIZE = 32 << 20  # octets
MAX_DEPTH = 64  # nesting levels of the YAML tree
MAX_ALIAS_NODES = 100_000  # nodes that aliases may add to the tree once expanded
MAX_MESSAGE = 300  # characters of a problem's message (values in it can be huge)
MAX_PROBLEMS = 100  # problems reported per file

_Nodes = dict[str, "dict[int, RRset] | bytes"]  # owner -> RRsets by type, or `packed`


@dataclass(frozen=True)
class Problem:
    path: str
    line: int | None
    owner: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        who = f" {self.owner}:" if self.owner else ""
        return f"{where}:{who} {self.message}"


class _File:
    """One zone file being read: its node tree and the problems found so far."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.problems: list[Problem] = []
        self.written: dict[str, str] = {}  # absolute owner -> as written in the file

    def report(self, node: yaml.Node | None, message: str, owner: str | None = None) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        owner = self.written.get(owner, owner) if owner else None
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 3] + "..."
        if len(self.problems) == MAX_PROBLEMS:
            message = "too many problems: the rest of this file is not reported"
        elif len(self.problems) > MAX_PROBLEMS:
            return
        self.problems.append(Problem(self.path, line, owner, message))

    def mapping(self, node: yaml.Node, what: str, owner: str | None = None) -> dict[str, Any]:
        """The mapping's items as {key: (key_node, value_node)}; reports duplicates."""
        if not isinstance(node, yaml.MappingNode):
            self.report(node, f"{what} must be a mapping", owner)
            return {}
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                self.report(key_node, f"duplicate key {key!r} in {what}", owner)
                continue
            out[key] = (key_node, value_node)
        return out

    def scalar(self, node: yaml.Node, what: str, owner: str | None = None) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.value == "":
            self.report(node, f"{what} must be a single value", owner)
            return None
        return str(node.value)

    def integer(self, node: yaml.Node, what: str, low: int, high: int,
                owner: str | None = None) -> int | None:
        text = self.scalar(node, what, owner)
        if text is None:
            return None
        if not re.fullmatch(r"[0-9]+", text) or not low <= int(text) <= high:
            self.report(node, f"{what} must be an integer from {low} to {high}, got {text!r}",
                        owner)
            return None
        return int(text)

    def name(self, node: yaml.Node, text: str, origin: str, what: str,
             owner: str | None = None) -> str | None:
        try:
            return check(absolute(text, origin))
        except NameError_ as e:
            self.report(node, f"{what}: {e}", owner)
            return None


_IMPLICIT_TAGS: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {
    first: tuple(resolvers + yaml.CSafeLoader.yaml_implicit_resolvers.get(None, []))
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items() if first is not None
}  # the safe loader's YAML 1.1 types (bool, int, float, null, timestamp...) by first character


class _Loader(yaml.CSafeLoader):
    """yaml.CSafeLoader with its tag resolver cut to what the safe loader uses, as it
    runs for each of a big zone's hundreds of thousands of nodes: the same implicit
    types tried in the same order, without the path resolvers the safe loader has none of."""

    def descend_resolver(self, current_node: yaml.Node | None, current_index: object) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, pattern in _IMPLICIT_TAGS.get(value[:1], ()):
                    if pattern.match(value):
                        return tag
            return self.DEFAULT_SCALAR_TAG
        return self.DEFAULT_SEQUENCE_TAG if kind is yaml.SequenceNode else self.DEFAULT_MAPPING_TAG


assert not yaml.CSafeLoader.yaml_path_resolvers, "_Loader.resolve assumes none"


def _node_at(root: yaml.Node, where: str) -> yaml.Node | None:
    """Follow a path like 'pools.edges.members[2].lat' or 'nets.10.0.0.0/8.lat' through
    the node tree (keys may hold dots: the longest key that fits wins); the deepest
    node reached."""
    node, rest = root, where
    while rest:
        if isinstance(node, yaml.SequenceNode) and (m := re.match(r"\[(\d+)\]", rest)):
            if int(m.group(1)) >= len(node.value):
                break
            node, rest = node.value[int(m.group(1))], rest[m.end():]
        elif isinstance(node, yaml.MappingNode):
            fits = [(str(k.value), v) for k, v in node.value
                    if rest == str(k.value) or rest.startswith((f"{k.value}.", f"{k.value}["))]
            if not fits:
                break
            key, node = max(fits, key=lambda kv: len(kv[0]))
            rest = rest[len(key):]
        else:
            break
        rest = rest.removeprefix(".")
    return node


def _read_text(f: _File, path: Path) -> str | None:
    """The file as text: at most MAX_FILE_SIZE octets of UTF-8."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_SIZE + 1)
    except OSError as e:
        f.report(None, f"cannot read: {e.strerror}")
        return None
    if len(data) > MAX_FILE_SIZE:
        f.report(None, f"the file is larger than {MAX_FILE_SIZE >> 20} MiB")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        f.problems.append(Problem(f.path, line, None, f"not UTF-8: octet 0x{data[e.start]:02x} "
                                  f"at offset {e.start} ({e.reason})"))
        return None


def _measure(f: _File, root: yaml.Node) -> bool:
    """Check the node tree's shape before anything walks it: nesting at most MAX_DEPTH
    levels, no alias inside itself, and aliases adding at most MAX_ALIAS_NODES nodes
    once expanded (a "billion laughs" file is a few KB of aliases of aliases)."""
    size: dict[int, int] = {}  # id(node) -> nodes in its expanded subtree
    unique = 0
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        children = _children(node)
        if done:
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            continue
        if id(node) in size:
            if size[id(node)] < 0:
                f.report(node, "an alias refers to a node that contains it")
                return False
            continue
        if depth > MAX_DEPTH:
            f.report(node, f"nested deeper than {MAX_DEPTH} levels")
            return False
        unique += 1
        size[id(node)] = -1  # being visited
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children)
    if size[id(root)] - unique > MAX_ALIAS_NODES:
        f.report(None, f"aliases expand the file to {size[id(root)]:,} nodes from {unique:,} "
                 f"(at most {MAX_ALIAS_NODES:,} more are allowed)")
        return False
    return True


def _depth_ok(f: _File, root: yaml.Node) -> bool:
    """`_measure` for a file without anchors (no `&` at all), so without aliases: a
    tree, of which only the depth needs checking, on its collections alone."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    scalar, sequence = yaml.ScalarNode, yaml.SequenceNode
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            f.report(node, f"nested deeper than {MAX_DEPTH} levels")
            return False
        depth += 1
        if isinstance(node, sequence):
            stack.extend((c, depth) for c in node.value if not isinstance(c, scalar))
            continue
        for key, value in node.value if isinstance(node, yaml.MappingNode) else ():
            if not isinstance(key, scalar):
                stack.append((key, depth))
            if not isinstance(value, scalar):
                stack.append((value, depth))
    return True


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_file(path: Path) -> tuple[Zone | None, list[Problem]]:
    f = _File(path)
    text = _read_text(f, path)
    if text is None:
        return None, f.problems
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        f.problems.append(Problem(f.path, line, None, f"not valid YAML: {e}".replace("\n", " ")))
        return None, f.problems
    if root is None:
        f.report(None, "the file is empty")
        return None, f.problems
    if not (_measure(f, root) if "&" in text else _depth_ok(f, root)):
        return None, f.problems
    top = f.mapping(root, "the file")
    for key, (key_node, _) in top.items():
        if key not in TOP_KEYS:
            f.report(key_node, f"unknown key {key!r} (expected one of {sorted(TOP_KEYS)})")
    zone = _read_zone(f, root, top, loader)
    f.problems.sort(key=lambda p: p.line or 0)
    return (zone if not f.problems else None), f.problems


def _read_zone(f: _File, root: yaml.Node, top: dict, loader: yaml.CSafeLoader) -> Zone | None:
    if "zone" not in top:
        f.report(root, "missing 'zone:' (the zone's name, e.g. cdn.example)")
        return None
    zone_text = f.scalar(top["zone"][1], "zone")
    origin = f.name(top["zone"][1], zone_text, ".", "zone") if zone_text else None
    if origin is None or zone_text is None:
        return None
    if not zone_text.endswith("."):
        origin = check(zone_text.lower().rstrip(".") + ".")
    ttl = 3600
    if "ttl" in top:
        ttl = f.integer(top["ttl"][1], "ttl", 0, MAX_TTL) or 0
    soa = _read_soa(f, root, top, origin, ttl)
    nodes: _Nodes = {}
    pools: dict[str, tuple[str, yaml.Node]] = {}
    owner_nodes: dict[str, yaml.Node] = {}
    if "records" not in top:
        f.report(root, "missing 'records:' (the apex needs at least its NS records)")
    else:
        for key, (key_node, value_node) in f.mapping(top["records"][1], "records").items():
            owner = _read_owner(f, key_node, key, origin)
            if owner is None:
                continue
            if owner in owner_nodes:
                f.report(key_node, f"the same name is also written at line "
                         f"{owner_nodes[owner].start_mark.line + 1}", owner)
                continue
            owner_nodes[owner] = key_node
            f.written[owner] = key
            _read_node(f, value_node, owner, origin, ttl, nodes, pools)
    steering = _read_steering(f, root, top, origin, loader)
    for owner, (pool, node) in pools.items():
        if steering is not None and pool not in steering.pool_names:
            f.report(node, f"pool {pool!r} is not defined under 'pools:'", owner)
    _check_structure(f, origin, nodes, pools, owner_nodes, root)
    if soa is None or f.problems:
        return None
    # each owner's dict is a Node (RRsets by type); no copy of a big zone's names
    return Zone(origin=origin, path=f.path, soa=soa, nodes=cast(dict[str, Node | bytes], nodes),
                pools={o: p for o, (p, _) in pools.items()}, steering=steering)


def _read_soa(f: _File, root: yaml.Node, top: dict, origin: str, ttl: int) -> RRset | None:
    if "soa" not in top:
        f.report(root, "missing 'soa:' (mname, rname, serial, refresh, retry, expire, minimum)")
        return None
    items = f.mapping(top["soa"][1], "soa")
    values: dict[str, Any] = {}
    for key, (key_node, value_node) in items.items():
        if key not in SOA_KEYS:
            f.report(key_node, f"unknown key {key!r} in soa (expected one of {sorted(SOA_KEYS)})")
        elif key in ("mname", "rname"):
            text = f.scalar(value_node, f"soa {key}")
            values[key] = f.name(value_node, text, origin, f"soa {key}") if text else None
        else:
            values[key] = f.integer(value_node, f"soa {key}", 0, 2**32 - 1 if key != "ttl"
                                    else MAX_TTL)
    for key in ("mname", "rname", "serial"):
        if key not in items:
            f.report(top["soa"][1], f"soa has no {key!r}")
    if any(values.get(k) is None for k in ("mname", "rname", "serial")):
        return None
    times = [values.get(k) if values.get(k) is not None else SOA_TIMES[k] for k in SOA_TIMES]
    soa_ttl: int = values["ttl"] if values.get("ttl") is not None else ttl
    return RRset(origin, QTYPE.SOA, soa_ttl, [SOA(values["mname"], values["rname"], times)])


def _read_owner(f: _File, node: yaml.Node, key: str, origin: str) -> str | None:
    owner = f.name(node, key, origin, "owner name", key)
    if owner is None:
        return None
    if not is_subdomain(owner, origin):
        f.report(node, f"{owner} is outside the zone {origin}", key)
        return None
    if "*" in owner and not (owner.startswith("*.") and "*" not in owner[2:]):
        f.report(node, "'*' is allowed only as the whole leftmost label (RFC 4592)", key)
        return None
    return owner


def _read_node(f: _File, node: yaml.Node, owner: str, origin: str, default_ttl: int,
               nodes: _Nodes, pools: dict) -> None:
    if _read_address(f, node, owner, origin, default_ttl, nodes):
        return
    sets: dict[int, RRset] = {}
    for rtype, (key_node, value_node) in f.mapping(node, "a name's records", owner).items():
        rtype = rtype.upper()
        if rtype == "POOL":
            pool = f.scalar(value_node, "pool", owner)
            if pool is not None:
                pools[owner] = (pool, key_node)
            continue
        if rtype == "SOA":
            f.report(key_node, "SOA belongs in the top-level 'soa:' section", owner)
            continue
        if rtype not in records.PARSERS:
            f.report(key_node, f"unknown record type {rtype!r} (supported: "
                     f"{', '.join(records.PARSERS)}, or 'pool')", owner)
            continue
        ttl, values = default_ttl, value_node
        if isinstance(value_node, yaml.MappingNode):
            items = f.mapping(value_node, f"{rtype} RRset", owner)
            for k, (kn, _) in items.items():
                if k not in ("ttl", "data"):
                    f.report(kn, f"unknown key {k!r} in {rtype} (expected 'ttl' and 'data')",
                             owner)
            if "ttl" in items:
                given = f.integer(items["ttl"][1], f"{rtype} ttl", 0, MAX_TTL, owner)
                ttl = default_ttl if given is None else given
            if "data" not in items:
                f.report(value_node, f"{rtype} has 'ttl' but no 'data'", owner)
                continue
            values = items["data"][1]
        value_nodes = values.value if isinstance(values, yaml.SequenceNode) else [values]
        rdata = []
        seen: set[str] = set()
        for vn in value_nodes:
            text = f.scalar(vn, f"{rtype} value", owner)
            if text is None:
                continue
            try:
                rd = records.parse(rtype, text, origin)
            except records.RecordError as e:
                f.report(vn, f"{rtype}: {e}", owner)
                continue
            if repr(rd) in seen:
                f.report(vn, f"{rtype} {text!r} is written twice", owner)
                continue
            seen.add(repr(rd))
            rdata.append(rd)
        if not value_nodes:
            f.report(value_node, f"{rtype} has no data", owner)
        if rtype == "CNAME" and len(rdata) > 1:
            f.report(value_node, "a name can have only one CNAME", owner)
        if rdata and ttl is not None:
            code = records.TYPE_CODES[rtype]
            rrset = RRset(owner, code, ttl, rdata)
            if _size_bound(rrset) > records.MAX_MESSAGE and (
                    size := _answer_size(rrset)) > records.MAX_MESSAGE:
                f.report(value_node, f"{rtype} RRset makes a {size:,}-octet answer: more "
                         f"than a DNS message can hold ({records.MAX_MESSAGE:,}), even "
                         "over TCP", owner)
                continue
            sets[code] = rrset
    if sets:
        nodes[owner] = sets


def _read_address(f: _File, node: yaml.Node, owner: str, origin: str, ttl: int,
                  nodes: _Nodes) -> bool:
    """The common name, `{A: address}` (or AAAA), read at once and stored `packed`, as
    the server keeps it; False for any other shape, which `_read_node` then reads in
    full. One address needs none of the checks on several values (duplicates, the
    answer's size)."""
    if not (isinstance(node, yaml.MappingNode) and len(node.value) == 1):
        return False
    key_node, value_node = node.value[0]
    if not (isinstance(value_node, yaml.ScalarNode) and value_node.value):
        return False
    rtype = str(key_node.value).upper()
    if rtype not in GLUE_TYPES:
        return False
    try:
        rd = records.parse(rtype, value_node.value, origin)
    except records.RecordError as e:
        f.report(value_node, f"{rtype}: {e}", owner)
        return True
    nodes[owner] = pack_one(records.TYPE_CODES[rtype], ttl, cast(bytes, rd))
    return True


def _read_steering(f: _File, root: yaml.Node, top: dict, origin: str,
                   loader: yaml.CSafeLoader) -> ZoneSteering | None:
    values = {}
    for key in ("pools", "nets"):
        if key in top:
            try:
                values[key] = loader.construct_object(top[key][1], deep=True)
            except yaml.YAMLError as e:
                f.report(top[key][1], f"{key}: {e}")
                return None

    def report(where: str, message: str) -> None:
        f.report(_node_at(root, where), f"{where}: {message}")

    try:
        return load_steering(origin, values.get("pools"), values.get("nets"), report)
    except Exception as e:  # a shape the steering parser did not expect
        f.report(top.get("pools", (root,))[0], f"pools: cannot be read ({e!r})")
        return None


def _check_structure(f: _File, origin: str, nodes: _Nodes, pools: dict,
                     owner_nodes: dict[str, yaml.Node], root: yaml.Node) -> None:
    """The rules between names. A packed name (`_read_address`) holds one address: glue,
    neither a CNAME nor bound to a pool (that would be a second key), so none concern it."""
    apex = nodes.get(origin)
    if not isinstance(apex, dict) or QTYPE.NS not in apex:
        f.report(owner_nodes.get(origin, root), "the apex '@' has no NS records", "@")
    cuts = [n for n, node in nodes.items()
            if isinstance(node, dict) and QTYPE.NS in node and n != origin]
    names: dict[tuple[int, ...], set[str]] = {}  # type codes -> their names, once each
    for owner, node in nodes.items():
        if isinstance(node, bytes):
            continue
        at = owner_nodes[owner]
        codes = tuple(node)
        types = names.get(codes) or names.setdefault(codes, {QTYPE.get(t) for t in codes})
        if "CNAME" in types:
            if owner == origin:
                f.report(at, "CNAME is not allowed at the zone apex", owner)
            elif len(types) > 1 or owner in pools:
                others = sorted(types - {"CNAME"}) + (["pool"] if owner in pools else [])
                f.report(at, f"CNAME beside other data ({', '.join(others)})", owner)
        if owner in pools and types & {"A", "AAAA"}:
            f.report(at, "a pool-bound name cannot also hold A or AAAA records", owner)
        for cut in cuts:
            if owner != cut and is_subdomain(owner, cut) and not types <= GLUE_TYPES:
                f.report(at, f"below the delegation at {cut}: only glue (A, AAAA) may be "
                         "written here", owner)
    for loop in _cname_loops(nodes):
        f.report(owner_nodes[loop[0]], "CNAME loop: " + " -> ".join(loop), loop[0])
    for owner, (_, node) in pools.items():
        for cut in cuts:
            if is_subdomain(owner, cut):
                f.report(node, f"below the delegation at {cut}: a pool cannot be here", owner)


def _size_bound(rrset: RRset) -> int:
    """At least `_answer_size(rrset)`, quickly: no name compressed (a name takes at most
    its text's length plus 2 octets in wire form, a name in record data at most 255)."""
    name = len(rrset.owner) + 2
    return 16 + name + sum(name + 10 + (len(rd) if isinstance(rd, bytes) else 6 + 255)
                           for rd in rrset.rdata)


def _answer_size(rrset: RRset) -> int:
    """Octets of the smallest response holding this RRset: header, the question for
    its owner, then its records (names compressed as the server does)."""
    buf = DNSBuffer()
    buf.pack("!HHHHHH", 0, 0, 1, 0, 0, 0)
    buf.encode_name(DNSLabel(wire_labels(rrset.owner)))
    buf.pack("!HH", 0, 0)
    rrset.pack(buf)
    return len(buf.data)


def _cname_loops(nodes: _Nodes) -> list[list[str]]:
    """Each CNAME loop in the zone, as its names from one back to the same one."""
    state: dict[str, bool] = {}  # name -> on the chain being followed (else done)
    loops = []
    for name in [n for n, node in nodes.items() if isinstance(node, dict) and QTYPE.CNAME in node]:
        chain = []
        while name not in state and isinstance(node := nodes.get(name), dict) and (
                cname := node.get(QTYPE.CNAME)):
            state[name] = True
            chain.append(name)
            name = str(cast(RD, cname.rdata[0]).label).lower()
        if state.get(name):  # came back to a name of this chain
            loops.append([*chain[chain.index(name):], name])
        state.update(dict.fromkeys(chain, False))
    return loops


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cycle collector off for a while. Loading a big zone makes hundreds of
    thousands of objects (YAML nodes, records) and no cycles worth collecting, and the
    collections that allocation triggers walk the growing heap again and again: with
    the collector on, most of a big zone's load time was the collector's."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_zones(directory: Path) -> tuple[dict[str, Zone], list[Problem]]:
    """Load every *.yaml / *.yml file of `directory`; zones are keyed by origin."""
    with _gc_paused():
        return _load_zones(directory)


def _load_zones(directory: Path) -> tuple[dict[str, Zone], list[Problem]]:
    zones: dict[str, Zone] = {}
    problems: list[Problem] = []
    directory = Path(directory)
    if not directory.is_dir():
        return {}, [Problem(str(directory), None, None, "is not a directory")]
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        problems.append(Problem(str(directory), None, None, "holds no zone files (*.yaml)"))
    for path in files:
        zone, found = load_file(path)
        problems.extend(found)
        if zone is None:
            continue
        if zone.origin in zones:
            problems.append(Problem(str(path), None, zone.origin,
                                    f"zone already defined in {zones[zone.origin].path}"))
            continue
        zones[zone.origin] = zone
    return zones, problems
