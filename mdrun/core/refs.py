"""References: the strings that name derivations (dref) and realizations (rref).

A dref is `dref:<hash32>-<name>`, the hash of a canonical config; an rref is
`rref:<hash32>-<dhash32>-<name>`, one built instance of that derivation. This module only
formats, parses and validates them; it knows nothing of the store.
"""

from __future__ import annotations

import re
from typing import NewType, TypeGuard

from mdrun.errors import ReferenceFormatError

HashPart = NewType("HashPart", str)
"""The first 32 hex characters of a SHA-256 digest."""
Name = NewType("Name", str)
"""A stage's human-readable name, the last part of its references."""
DRef = NewType("DRef", str)
"""Derivation reference: names a config, hence a stage definition."""
RRef = NewType("RRef", str)
"""Realization reference: names one built output of a derivation."""

HASH_LENGTH = 32
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_DREF_PATTERN = re.compile(r"dref:([0-9a-f]{32})-([A-Za-z0-9_-]+)")
_RREF_PATTERN = re.compile(r"rref:([0-9a-f]{32})-([0-9a-f]{32})-([A-Za-z0-9_-]+)")
DEFAULT_NAME = Name("unnamed")


def is_dref(value: object) -> TypeGuard[DRef]:
    """True for a well-formed derivation reference (the full pattern, not just a prefix)."""
    return isinstance(value, str) and _DREF_PATTERN.fullmatch(value) is not None


def is_rref(value: object) -> TypeGuard[RRef]:
    """True for a well-formed realization reference."""
    return isinstance(value, str) and _RREF_PATTERN.fullmatch(value) is not None


def make_name(text: str) -> Name:
    """Validate a stage name: letters, digits, `_` and `-` only."""
    if not isinstance(text, str) or NAME_PATTERN.fullmatch(text) is None:
        raise ReferenceFormatError(
            f"invalid stage name {text!r}: use only letters, digits, '_' and '-'"
        )
    return Name(text)


def _check_hash(part: str) -> HashPart:
    if len(part) != HASH_LENGTH or any(c not in "0123456789abcdef" for c in part):
        raise ReferenceFormatError(f"invalid hash part {part!r}: expected 32 lowercase hex digits")
    return HashPart(part)


def make_dref(derivation_hash: str, name: str) -> DRef:
    """Format a derivation reference from its hash part and name."""
    return DRef(f"dref:{_check_hash(derivation_hash)}-{make_name(name)}")


def make_rref(realization_hash: str, derivation_hash: str, name: str) -> RRef:
    """Format a realization reference from its two hash parts and name."""
    return RRef(
        f"rref:{_check_hash(realization_hash)}-{_check_hash(derivation_hash)}-{make_name(name)}"
    )


def parse_dref(dref: str) -> tuple[HashPart, Name]:
    """Split a derivation reference into its hash part and name."""
    match = _DREF_PATTERN.fullmatch(dref) if isinstance(dref, str) else None
    if match is None:
        raise ReferenceFormatError(f"not a derivation reference: {dref!r}")
    return HashPart(match.group(1)), Name(match.group(2))


def parse_rref(rref: str) -> tuple[HashPart, HashPart, Name]:
    """Split a realization reference into its realization hash, derivation hash and name."""
    match = _RREF_PATTERN.fullmatch(rref) if isinstance(rref, str) else None
    if match is None:
        raise ReferenceFormatError(f"not a realization reference: {rref!r}")
    return HashPart(match.group(1)), HashPart(match.group(2)), Name(match.group(3))


def rref_to_dref(rref: str) -> DRef:
    """The derivation a realization belongs to."""
    _, derivation_hash, name = parse_rref(rref)
    return DRef(f"dref:{derivation_hash}-{name}")

