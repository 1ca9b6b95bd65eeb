"""Argument parsers shared by filters that take none or a simple value."""

from __future__ import annotations

from typing import Any


def no_args(args: Any) -> None:
    if args is not None:
        raise ValueError("takes no arguments")


def mapping(args: Any, allowed: set[str]) -> dict[str, Any]:
    """`args` as a dict with only `allowed` keys (None = empty)."""
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise ValueError(f"arguments must be a mapping with keys {sorted(allowed)}")
    unknown = set(args) - allowed
    if unknown:
        raise ValueError(f"unknown argument(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return args
