"""Each block's config, from what is known of the blocks before it in its session.

A pure block (`pure_blocks`) is keyed by the digests of the names it mentions, in the state the
blocks before it leave (`SessionState.read_key`). Any other block is keyed by the result key of
the block before it (`plan.block_config`); after a pure block, by what that block produced and
the digest of the whole state it left, as followed (`produced_key`), since a pure block's stored
result key names the state of the run that stored it. The evaluator and `results.cached_results`
(what `status` and `check --no-exec` report) walk a session with the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from mdrun.core.config import Config
from mdrun.core.hashing import canonical_json, sha256_hex
from mdrun.core.jsonvalue import JSONValue
from mdrun.document.outputs import Output
from mdrun.document.plan import PlannedBlock, block_config
from mdrun.document.pure_blocks import PureBlock, pure_block
from mdrun.document.session_state import SessionState


@dataclass(frozen=True, slots=True)
class Upstream:
    """What a block's config needs of the block before it in its session."""

    identity: str
    """Its derivation."""
    key: str | None
    """Its result key (a pure block found in the store: `stored_pure_key`); None when it has
    none."""
    pure: bool
    """It was keyed by what it reads."""
    status: str = "ok"
    """The status it ran with (a pure block's, for the key of a block after it)."""
    outputs: tuple[Output, ...] = ()
    """Its outputs (a pure block's, for the key of a block after it)."""


def produced_key(status: str, outputs: Sequence[Output], state: str) -> str:
    """A block's result key: its status, its outputs and the digest of the state it left
    (see `results.result_key`). Two runs with equal keys are interchangeable for every block
    after them."""
    listed = cast(list[JSONValue], list(outputs))
    return sha256_hex(canonical_json({"status": status, "outputs": listed, "state": state}))


@dataclass(frozen=True, slots=True)
class KeyedConfig:
    """A block's config, and the pure block it is keyed as (None: keyed by its upstream)."""

    config: Config
    pure: PureBlock | None


def pure_part(planned: PlannedBlock) -> PureBlock | None:
    """What a Python block names, if it is pure; None for other blocks (doctest sessions run
    as several requests, other languages' state is not digested)."""
    kernel, base = planned.kernel, planned.base_config
    if kernel is None or base is None or kernel.language.lower() != "python":
        return None
    if base.get("doctest") or planned.options.allow_error:
        return None  # (an allowed error's traceback is formatted as IPython's settings say)
    return pure_block(planned.code)


def keyed_config(
    planned: PlannedBlock, state: SessionState | None, upstream: Upstream | None
) -> KeyedConfig | None:
    """The block's config; None when it cannot be known (the block before it has no result,
    or its result's state is not known)."""
    pure = None if state is None else pure_part(planned)
    if pure is not None and state is not None:
        key = state.read_key(pure)
        if key is not None:
            return KeyedConfig(block_config(planned, key), pure)
    if planned.upstream is None:
        return KeyedConfig(block_config(planned, None), None)
    if upstream is None:
        return None
    if upstream.pure and state is not None and state.digestible():
        # What the pure block produced, in this run's state: a comment added to it keeps the
        # block after it cached (early cutoff), as a block keyed by its upstream would be.
        # (A state holding a value that cannot be digested has no stable digest: the pure
        # block's own key, made from the keys before it, stands in.)
        key = produced_key(upstream.status, upstream.outputs, state.state_digest())
        return KeyedConfig(block_config(planned, key), None)
    if upstream.key is None:
        return None
    return KeyedConfig(block_config(planned, upstream.key), None)


def stored_pure_key(
    identity: str, planned: PlannedBlock, upstream: Upstream | None, stored_key: str
) -> str | None:
    """The key a pure block passes on, for when the state it left has no digest here (its
    record cannot be followed, or the state holds a value that cannot be digested). Its result
    key names the state left in the run that stored it, whose other variables may have
    differed, unless it is its session's first block (a fresh kernel's state is always the
    same). Otherwise: its derivation and the key the block before it passed on, which fix the
    state before it; the same whether it ran or was found, so that runs agree."""
    if planned.upstream is None:
        return stored_key
    if upstream is None or upstream.key is None:
        return None
    return sha256_hex(canonical_json({"pure": identity, "before": upstream.key}))


def followed(
    state: SessionState | None, record: Mapping[str, Any] | None, pure: PureBlock | None
) -> SessionState | None:
    """The state after a block whose state record is `record` (None when it has none), keyed
    as `pure`: only the names a pure block mentions are taken from its record."""
    if state is None or record is None:
        return None
    return state if state.apply(record, None if pure is None else pure.names) else None
