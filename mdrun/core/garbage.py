"""Garbage collection: a pure plan of what no root needs, then a locked sweep that deletes it.

Roots are drefs, rrefs, and symlinks in a roots folder (like Nix's result links). The sweep
takes each affected derivation's build lock and re-reads the store, so a realization published
after the plan is kept, and never deletes something a concurrent build is writing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mdrun.core.default_store import as_store
from mdrun.core.files import replaced_atomically
from mdrun.core.graph import dependencies_first, reachable
from mdrun.core.refs import DRef, RRef, is_dref, is_rref, rref_to_dref
from mdrun.core.store import Store
from mdrun.errors import StoreError

__all__ = ["GCPlan", "gc", "gc_plan", "link_root", "roots_in", "store_gc"]

GC_LOCK_FILE = "gc.lock"


@dataclass(frozen=True, slots=True)
class GCPlan:
    """What a collection removes (or removed), computed before anything is deleted."""

    drefs: tuple[DRef, ...]
    """Derivations to remove, each with all its realizations; dependents come first."""
    rrefs: tuple[RRef, ...]
    """Realizations to remove, those of removed derivations included; dependents first."""
    size_bytes: int
    """Bytes of file content that the removal frees."""


# -- roots --------------------------------------------------------------------------------------


def _ref_of_path(store: Store, target: Path) -> DRef | RRef | None:
    """The store object a path lies in: a derivation folder, or a realization (or inside one)."""
    objects = Path(os.path.realpath(store.objects))
    try:
        parts = Path(os.path.realpath(target)).relative_to(objects).parts
    except ValueError:
        return None
    if not parts:
        return None
    dref = f"dref:{parts[0]}"
    if not is_dref(dref):
        return None
    if len(parts) == 1:
        return DRef(dref)
    rref = f"rref:{parts[1]}-{parts[0]}"
    return RRef(rref) if is_rref(rref) else None


def roots_in(store: Store, roots_dir: Path | str) -> tuple[list[DRef], list[RRef]]:
    """The refs named by the symlinks in `roots_dir` (and by `roots_dir`, if it is a link)."""
    folder = Path(roots_dir)
    links: list[Path] = []
    if folder.is_symlink():
        links.append(folder)
    elif folder.is_dir():
        links.extend(entry for entry in sorted(folder.iterdir()) if entry.is_symlink())
    drefs: list[DRef] = []
    rrefs: list[RRef] = []
    for link in links:
        ref = _ref_of_path(store, link)
        if ref is not None and is_rref(ref):
            rrefs.append(ref)
        elif ref is not None and is_dref(ref):
            drefs.append(ref)
    return drefs, rrefs


def link_root(store: Store, ref: DRef | RRef, roots_dir: Path | str, name: str) -> Path:
    """Make `roots_dir/name` a relative symlink to `ref`, replacing an older link atomically."""
    if not name or "/" in name or name in (".", ".."):
        raise StoreError(f"invalid root link name {name!r}")
    if is_rref(ref):
        target = store.realization_path(ref)
    elif is_dref(ref):
        target = store.derivation_path(ref)
    else:
        raise StoreError(f"not a reference: {ref!r}")
    if not target.is_dir():
        raise StoreError(f"{ref} is not in the store at {store.root}")
    folder = Path(roots_dir).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / name
    if link.is_dir() and not link.is_symlink():
        raise StoreError(f"{link} is a folder, not a root link; refusing to replace it")
    relative = os.path.relpath(os.path.realpath(target), os.path.realpath(folder))
    try:
        with replaced_atomically(link) as temporary:
            os.symlink(relative, temporary)
    except OSError as err:
        raise StoreError(f"cannot create the root link {link}: {err.strerror}") from err
    return link


# -- the plan ---------------------------------------------------------------------------------


def _dependency_closure(store: Store, drefs: Iterable[DRef]) -> set[DRef]:
    """The drefs and everything their configs depend on (missing derivations are skipped)."""

    def dependencies(dref: DRef) -> list[DRef]:
        return store.config_of(dref).dependencies() if store.has_derivation(dref) else []

    return {dref for dref in reachable(drefs, dependencies) if store.has_derivation(dref)}


def _context_closure(store: Store, rrefs: Iterable[RRef]) -> set[RRef]:
    """The rrefs and every realization in their contexts, transitively (missing ones skipped)."""

    def used(rref: RRef) -> list[RRef]:
        if not store.has_realization(rref):
            return []
        return [item for items in store.context_of(rref).values() for item in items]

    return {rref for rref in reachable(rrefs, used) if store.has_realization(rref)}


def _dependents_first(store: Store, drefs: Iterable[DRef]) -> list[DRef]:
    """`drefs` ordered so that each comes before the derivations it depends on."""
    wanted = set(drefs)

    def dependencies(dref: DRef) -> list[DRef]:
        return store.config_of(dref).dependencies() if store.has_derivation(dref) else []

    order = dependencies_first(sorted(wanted), dependencies)
    return [dref for dref in reversed(order) if dref in wanted]


def gc_plan(
    store: Store,
    keep_drefs: Iterable[DRef] = (),
    keep_rrefs: Iterable[RRef] = (),
    roots_dir: Path | str | None = None,
) -> GCPlan:
    """What a collection would remove, keeping the roots and everything they need.

    Kept derivations: `keep_drefs` with their dependencies, and the derivation of every kept
    realization. Kept realizations: `keep_rrefs`, every realization of the kept-by-dref
    derivations, and everything in their contexts, transitively.
    """
    root_drefs = list(keep_drefs)
    root_rrefs = list(keep_rrefs)
    if roots_dir is not None:
        linked_drefs, linked_rrefs = roots_in(store, roots_dir)
        root_drefs.extend(linked_drefs)
        root_rrefs.extend(linked_rrefs)
    needed_drefs = _dependency_closure(store, root_drefs)
    kept_rrefs = _context_closure(
        store,
        root_rrefs + [rref for dref in needed_drefs for rref in store.realizations_of(dref)],
    )
    kept_drefs = needed_drefs | {rref_to_dref(rref) for rref in kept_rrefs}
    removed_drefs = [dref for dref in store.all_derivations() if dref not in kept_drefs]
    order = _dependents_first(store, store.all_derivations())
    removed_rrefs = [
        rref for dref in order for rref in store.realizations_of(dref) if rref not in kept_rrefs
    ]
    removed_set = set(removed_drefs)
    size = sum(store.size_of(store.derivation_path(dref)) for dref in removed_drefs) + sum(
        store.size_of(store.realization_path(rref))
        for rref in removed_rrefs
        if rref_to_dref(rref) not in removed_set
    )
    return GCPlan(
        drefs=tuple(dref for dref in order if dref in removed_set),
        rrefs=tuple(removed_rrefs),
        size_bytes=size,
    )


# -- the sweep --------------------------------------------------------------------------------


def _sweep(store: Store, plan: GCPlan) -> GCPlan:
    """Delete what the plan names, one derivation at a time under its build lock.

    Dependents go first, so a crash leaves a store where everything present has its
    dependencies. A realization that appeared since the plan is kept, with its context.
    """
    planned_drefs = set(plan.drefs)
    planned_rrefs = set(plan.rrefs)
    by_dref: dict[DRef, list[RRef]] = {}
    for rref in plan.rrefs:
        by_dref.setdefault(rref_to_dref(rref), []).append(rref)
    affected = list(dict.fromkeys([*plan.drefs, *by_dref]))
    protected: set[RRef] = set()
    removed_drefs: list[DRef] = []
    removed_rrefs: list[RRef] = []
    freed = 0
    for dref in _dependents_first(store, affected):
        with store.lock(dref):
            appeared = [rref for rref in store.realizations_of(dref) if rref not in planned_rrefs]
            protected |= _context_closure(store, appeared)
            for rref in by_dref.get(dref, []):
                if rref not in protected and store.has_realization(rref):
                    freed += store.size_of(store.realization_path(rref))
                    store.remove_realization(rref)
                    removed_rrefs.append(rref)
            path = store.derivation_path(dref)
            if dref in planned_drefs and not store.realizations_of(dref) and path.is_dir():
                freed += store.size_of(path)
                store.remove_derivation(dref)
                removed_drefs.append(dref)
    return GCPlan(tuple(removed_drefs), tuple(removed_rrefs), freed)


def gc(
    store: Store | Path | str | None = None,
    keep_drefs: Iterable[DRef] = (),
    keep_rrefs: Iterable[RRef] = (),
    roots_dir: Path | str | None = None,
    delete: bool = False,
) -> GCPlan:
    """Plan a collection; with `delete=True` also sweep, and return what was really removed.

    One collection runs at a time per store (a store-wide lock); builds are protected by their
    per-derivation locks, which the sweep takes.
    """
    from filelock import FileLock

    resolved = as_store(store)
    keep_drefs, keep_rrefs = list(keep_drefs), list(keep_rrefs)
    if not delete:
        return gc_plan(resolved, keep_drefs, keep_rrefs, roots_dir)
    resolved.locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(resolved.locks / GC_LOCK_FILE)):
        plan = gc_plan(resolved, keep_drefs, keep_rrefs, roots_dir)
        return _sweep(resolved, plan)


def store_gc(
    keep_drefs: Iterable[DRef], keep_rrefs: Iterable[RRef], S: Store | Path | str | None = None
) -> tuple[list[DRef], list[RRef]]:
    """The seeds' query: (drefs, rrefs) that a collection keeping these roots would remove."""
    plan = gc_plan(as_store(S), keep_drefs, keep_rrefs)
    return list(plan.drefs), list(plan.rrefs)
