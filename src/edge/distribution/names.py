"""Validation of everything that becomes a path component in a store.

Names and versions come from HTTP requests and command lines; they are accepted only
in a strict form (letters, digits, `.`, `_`, `-`; starting with a letter or digit; no
`..`), so none of them can name a path outside the store.
"""

from __future__ import annotations

import re

from edge.distribution.errors import InvalidName

_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def check_component(value: str, what: str) -> str:
    if not isinstance(value, str) or not _COMPONENT.fullmatch(value) or ".." in value:
        raise InvalidName(
            f"invalid {what} {value!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..'"
        )
    return value


def check_name(name: str) -> str:
    return check_component(name, "model name")


def check_version(version: str) -> str:
    return check_component(version, "version")


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidName(f"invalid digest {digest!r}: expected 'sha256:' and 64 lowercase hex")
    return digest
