"""Checking a store against its references, and removing what is damaged.

Reading a realization checks only what is read; this module checks everything: each config
against its dref, and each realization's every file against its manifest and the manifest
against its rref. Removal is a plan first (the findings), then a sweep under the store's GC
lock and each derivation's build lock, re-checking before deleting, as `garbage` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mdrun.core.garbage import GC_LOCK_FILE
from mdrun.core.refs import DRef, RRef, rref_to_dref
from mdrun.core.store import CONFIG_FILE, Store
from mdrun.errors import StoreError

__all__ = ["Finding", "Verification", "remove_damaged", "verify_store"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One damaged derivation or realization."""

    ref: DRef | RRef
    """What is damaged (a damaged derivation takes its realizations with it)."""
    path: Path
    """Its folder in the store."""
    problems: tuple[str, ...]
    """What is wrong, one entry per file."""


@dataclass(slots=True)
class Verification:
    """What a verification checked and found."""

    derivations: int = 0
    """Derivations whose config was checked."""
    realizations: int = 0
    """Realizations whose files were all checked."""
    damaged: list[Finding] = field(default_factory=list)
    """What does not match its reference."""


def _config_problem(store: Store, dref: DRef) -> str | None:
    try:
        store.forget(dref)
        store.config_of(dref)
    except StoreError as err:
        return f"{CONFIG_FILE}: {err.message.rpartition(': ')[2]}"
    return None


def verify_store(store: Store, rrefs: Iterable[RRef] | None = None) -> Verification:
    """Check every realization of the store (or only `rrefs`) and the configs they belong to."""
    if rrefs is None:
        drefs = store.all_derivations()
        chosen = [rref for dref in drefs for rref in store.realizations_of(dref)]
    else:
        chosen = sorted(set(rrefs))
        drefs = sorted({rref_to_dref(rref) for rref in chosen})
    verification = Verification()
    broken: set[DRef] = set()
    for dref in drefs:
        if not store.derivation_path(dref).is_dir():
            continue
        verification.derivations += 1
        problem = _config_problem(store, dref)
        if problem is not None:
            broken.add(dref)
            finding = Finding(dref, store.derivation_path(dref), (problem,))
            verification.damaged.append(finding)
    for rref in chosen:
        if rref_to_dref(rref) in broken or not store.has_realization(rref):
            continue
        verification.realizations += 1
        problems = store.realization_problems(rref)
        if problems:
            finding = Finding(rref, store.realization_path(rref), tuple(problems))
            verification.damaged.append(finding)
    return verification


def remove_damaged(store: Store, findings: Iterable[Finding]) -> list[Finding]:
    """Remove what the findings name, if it is still damaged; return what was removed.

    The next run (or realize) builds what was removed again."""
    from filelock import FileLock

    removed: list[Finding] = []
    store.locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(store.locks / GC_LOCK_FILE)):
        for finding in findings:
            ref = finding.ref
            dref = DRef(ref) if ref.startswith("dref:") else rref_to_dref(RRef(ref))
            with store.lock(dref):
                if ref.startswith("dref:"):
                    still_damaged = _config_problem(store, dref) is not None
                    if still_damaged:
                        store.remove_derivation(dref)
                else:
                    rref = RRef(ref)
                    still_damaged = store.has_realization(rref) and bool(
                        store.realization_problems(rref)
                    )
                    if still_damaged:
                        store.remove_realization(rref)
                if still_damaged:
                    removed.append(finding)
    return removed
