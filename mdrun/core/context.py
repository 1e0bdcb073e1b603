"""A realization's context: which realizations of its direct dependencies it was built from.

Written into every realization (`context.json`, canonical JSON) and covered by its manifest, whose
digest of it is how a lookup finds the realizations built in a given context without reading
them. The store writes and reads it; a substituter's copy is checked the same way.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping

from mdrun.core.hashing import canonical_json, sha256_hex
from mdrun.core.refs import DRef, RRef, is_dref, is_rref

__all__ = ["CONTEXT_FILE", "Context", "context_digest", "context_json", "parse_context"]

CONTEXT_FILE = "context.json"

Context = dict[DRef, list[RRef]]
"""For one realization: the realizations of each direct dependency that it was built from.

Direct dependencies are enough: a realization's hash covers its own context, so the rrefs of
the direct dependencies pin the whole history, and the context stays small (linear cost).
"""


def context_json(context: Mapping[DRef, list[RRef]]) -> bytes:
    """Canonical bytes of a context: sorted drefs, each with its sorted rrefs."""
    return canonical_json(
        {dref: [str(rref) for rref in sorted(rrefs)] for dref, rrefs in context.items()}
    )


def context_digest(context: Mapping[DRef, list[RRef]]) -> str:
    """The digest a manifest records for a context's file."""
    return _digest(context_json(context))


@functools.lru_cache(maxsize=256)
def _digest(data: bytes) -> str:
    # (most lookups ask for the same few contexts)
    return sha256_hex(data)


def parse_context(data: bytes) -> Context:
    """A context read back; ValueError when the bytes are not one (drefs to lists of rrefs)."""
    loaded = json.loads(data)
    if not isinstance(loaded, dict):
        raise ValueError("a context is a JSON object")
    context: Context = {}
    for dref, rrefs in loaded.items():
        if not is_dref(dref) or not isinstance(rrefs, list):
            raise ValueError(f"not a dependency and its realizations: {dref!r}")
        if not all(is_rref(rref) for rref in rrefs):
            raise ValueError(f"not realization references: {rrefs!r}")
        context[DRef(dref)] = [RRef(rref) for rref in rrefs]
    return context
