"""Operator overrides (gdnsd's admin_state idea): force members UP, DOWN or DRAINING.

The override file is YAML, edited by hand or through the admin API, and survives
restarts; it is reloaded on SIGHUP and whenever it changes on disk. A bad file is
reported and the last good overrides stay in force::

    overrides:
      - {pool: edges, member: tokyo, state: down, reason: "disk swap", for: 30m}
      - {site: london, state: draining, until: "2026-11-23T06:00:00Z"}
      - {pool: edges, state: up}          # ignore probes for the whole pool
      - {zone: cdn.example, pool: edges, member: sydney, state: down}

A selector names a *member* (`pool` + `member`), a whole *pool* (`pool` only) or a
*site* (`site`: a member name, in every pool). `zone` narrows any of them to one zone.
The most specific override wins: member, then site, then pool; zone-qualified first.
`for` counts from the file's modification time (the API stores `until` instead);
`until` is an ISO 8601 time (UTC unless it says otherwise) or a unix time.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from geodns.steering.health import Status
from healthcheck.errors import HealthcheckError

Report = Callable[[str, str], None]
FORCIBLE = {s.value: s for s in (Status.UP, Status.DOWN, Status.DRAINING)}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class OverrideError(HealthcheckError, ValueError):
    """An override (from the file or the API) is malformed; the message says why."""


@dataclass(frozen=True, slots=True)
class Override:
    state: Status
    pool: str | None = None
    member: str | None = None
    site: str | None = None
    zone: str | None = None
    until: float | None = None  # unix time; None = until removed
    reason: str = ""
    set_at: float = 0.0

    @property
    def kind(self) -> str:
        if self.site is not None:
            return "site"
        return "member" if self.member is not None else "pool"

    @property
    def selector(self) -> tuple:
        return (self.kind, self.zone, self.pool, self.member, self.site)

    def rank(self) -> int:
        """Higher is more specific."""
        return {"member": 4, "site": 2, "pool": 0}[self.kind] + (self.zone is not None)

    def matches(self, zone: str, pool: str, member: str) -> bool:
        if self.zone is not None and _zone_name(self.zone) != _zone_name(zone):
            return False
        if self.site is not None:
            return self.site == member
        return self.pool == pool and (self.member is None or self.member == member)

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("zone", "pool", "member", "site"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["state"] = self.state.value
        if self.until is not None:
            out["until"] = iso(self.until)
        if self.reason:
            out["reason"] = self.reason
        if self.set_at:
            out["set_at"] = iso(self.set_at)
        return out


def describe_selector(selector: tuple) -> str:
    """`member edges/tokyo`, `pool edges in cdn.example.`, `site london`: for logs."""
    kind, zone, pool, member, site = selector
    what = site if kind == "site" else f"{pool}/{member}" if kind == "member" else pool
    return f"{kind} {what}" + (f" in {zone}" if zone else "")


def _zone_name(name: str) -> str:
    return name.rstrip(".").lower()


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z"
    )


def parse_time(value: Any) -> float:
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise OverrideError(f"{value!r} is not an ISO 8601 time") from None
    else:
        raise OverrideError(f"{value!r} is not a time")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def parse_duration(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m or float(m.group(1)) <= 0:
        raise OverrideError(f"{value!r} is not a duration such as 90, 30s, 10m, 2h or 1d")
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_override(raw: Any, now: float) -> Override:
    """One override from a mapping (file entry or API body); `for` counts from `now`."""
    if not isinstance(raw, dict):
        raise OverrideError("must be a mapping such as {pool: edges, member: tokyo, state: down}")
    unknown = set(raw) - {"zone", "pool", "member", "site", "state", "until", "for", "reason",
                          "set_at"}
    if unknown:
        raise OverrideError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    for key in ("zone", "pool", "member", "site", "reason"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise OverrideError(f"{key} must be a string")
    state = FORCIBLE.get(str(raw.get("state", "")).lower())
    if state is None:
        raise OverrideError(f"state must be up, down or draining, not {raw.get('state')!r}")
    site, pool, member = raw.get("site"), raw.get("pool"), raw.get("member")
    if site is not None and (pool is not None or member is not None):
        raise OverrideError("a site override names no pool or member (it spans every pool)")
    if site is None and pool is None:
        raise OverrideError("name a pool (with an optional member) or a site")
    if "until" in raw and "for" in raw:
        raise OverrideError("give either until or for, not both")
    until = None
    if raw.get("until") is not None:
        until = parse_time(raw["until"])
    elif raw.get("for") is not None:
        until = now + parse_duration(raw["for"])
    set_at = parse_time(raw["set_at"]) if raw.get("set_at") is not None else now
    return Override(state, pool, member, site, raw.get("zone"), until,
                    raw.get("reason") or "", set_at)


def best_override(
    items: list[Override], zone: str, pool: str, member: str, now: float
) -> Override | None:
    """The most specific override in force for one member, if any."""
    found = [o for o in items if o.active(now) and o.matches(zone, pool, member)]
    return max(found, key=Override.rank) if found else None


class OverrideSet:
    """The overrides in force, with the file they come from (if any)."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path else None
        self.items: list[Override] = []
        self._stamp: tuple | None = None

    def lookup(self, zone: str, pool: str, member: str, now: float) -> Override | None:
        return best_override(self.items, zone, pool, member, now)

    def put(self, override: Override) -> None:
        self.items = [o for o in self.items if o.selector != override.selector] + [override]

    def remove(self, selector: tuple) -> bool:
        kept = [o for o in self.items if o.selector != selector]
        removed = len(kept) != len(self.items)
        self.items = kept
        return removed

    # -- the file --------------------------------------------------------------------

    def _file_stamp(self) -> tuple | None:
        try:
            st = self.path.stat() if self.path else None
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino) if st else None

    def changed_on_disk(self) -> bool:
        return self.path is not None and self._file_stamp() != self._stamp

    def load(self, report: Report) -> bool:
        """(Re)read the file; on any error report it and keep the current overrides.

        Returns True when the overrides in force were replaced.
        """
        if self.path is None:
            return False
        stamp = self._file_stamp()
        self._stamp = stamp
        if stamp is None:  # no file yet: no overrides (the API creates it)
            replaced = bool(self.items)
            self.items = []
            return replaced
        name = str(self.path)
        try:
            doc = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            report(name, f"cannot be read, keeping the previous overrides: {exc}")
            return False
        entries = (doc or {}).get("overrides") if isinstance(doc, dict) or doc is None else None
        if entries is None and doc not in (None, {}):
            report(name, "must be a mapping with an `overrides:` list; keeping the previous ones")
            return False
        if not isinstance(entries or [], list):
            report(f"{name}: overrides", "must be a list; keeping the previous overrides")
            return False
        mtime = stamp[0] / 1e9
        parsed: list[Override] = []
        for i, raw in enumerate(entries or []):
            try:
                parsed.append(parse_override(raw, now=mtime))
            except OverrideError as exc:
                report(f"{name}: overrides[{i}]", f"{exc}; keeping the previous overrides")
                return False
        self.items = parsed
        return True

    def save(self) -> bool:
        """Write the overrides atomically (temp file + rename); False without a file."""
        if self.path is None:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = (
            "# Health overrides: written by the admin API, safe to edit by hand.\n"
            + yaml.safe_dump({"overrides": [o.to_dict() for o in self.items]},
                             sort_keys=False, default_flow_style=None)
        )
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.path)
        self._stamp = self._file_stamp()
        return True
