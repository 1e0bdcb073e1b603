"""Substitution: take a realization from another storage tier instead of building it, verified.

Nothing a tier holds is trusted. A realization is fetched only when its derivation's config
hashes to the dref and its manifest to the rref; its tree is rebuilt in the store's `tmp/` from
the manifest alone (folders, files with their exec bit, links whose target is the entry's
bytes), every entry is checked against the manifest, and only then is it published the way a
build is (one rename); the files the store fetches on demand (`Store.fetch_on_demand`, see
`lazy`) are left on the tier. `realize_derivation` calls `substitute` under the derivation's lock,
after the local lookup missed and before it builds, as Nix substituters are asked. Pushing is
the other direction: `push_realization` and `push_closure`.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

from mdrun.core.backend import StoreBackend
from mdrun.core.config import Config, checked_config
from mdrun.core.context import CONTEXT_FILE, Context, context_digest, parse_context
from mdrun.core.files import remove_tree
from mdrun.core.graph import dependencies_first
from mdrun.core.hashing import entries_text
from mdrun.core.integrity import (
    BUILD_FILE,
    Manifest,
    ManifestEntry,
    check_manifest,
    is_safe_entry_path,
    manifest_entries,
    manifest_lines,
    manifest_of_tree,
    parse_build_record,
    tree_problems,
)
from mdrun.core.lazy import record_left_out
from mdrun.core.refs import DRef, RRef, parse_rref, rref_to_dref
from mdrun.core.registry import Matcher
from mdrun.core.store import Store
from mdrun.errors import DamagedRealization, StoreError

__all__ = ["fetch_realization", "push_closure", "push_realization", "substitute"]


def _where(backend: StoreBackend, rref: RRef, path: str = "") -> str:
    """How a message names an entry of a tier: the tier's location, the rref, the path."""
    return f"{backend.location}: {rref}" + (f"/{path}" if path else "")


def fetch_config(backend: StoreBackend, dref: DRef) -> Config:
    """A derivation's config from a tier, checked against its dref (StoreError if it is not)."""
    data = backend.config_bytes(dref)
    if data is None:
        raise StoreError(f"{backend.location} holds no config for {dref}")
    return checked_config(dref, data, f"{backend.location}: {dref}")


def fetch_manifest(backend: StoreBackend, rref: RRef) -> Manifest:
    """A realization's manifest from a tier, checked against its rref."""
    data = backend.manifest_bytes(rref)
    if data is None:
        raise StoreError(f"{backend.location} does not hold {rref}")
    return check_manifest(data, parse_rref(rref)[0], _where(backend, rref, "__manifest__.txt"))


def fetch_realization(store: Store, backend: StoreBackend, rref: RRef) -> RRef:
    """Copy a realization from a tier into the store, verified, with whatever its context
    needs that the store lacks; return it. One the store already holds is not fetched.

    Raises DamagedRealization (naming the tier) when anything fails to verify: nothing of it
    is published then."""
    if store.has_realization(rref) and not store.realization_problems(rref):
        return rref
    dref = rref_to_dref(rref)
    config = fetch_config(backend, dref)
    store.add_derivation(config)
    _fetch_verified(store, backend, rref, config, fetch_manifest(backend, rref))
    return rref


def _fetch_verified(
    store: Store, backend: StoreBackend, rref: RRef, config: Config, manifest: Manifest
) -> None:
    """Rebuild a realization in `tmp/` from its manifest, check it whole, then publish it."""
    folder = store.local.temporary_folder(f"fetch-{os.getpid()}-")
    lazy = store.fetch_on_demand
    left = {
        name: digest
        for name, digest in manifest.files.items()
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in lazy)
    }
    try:
        for entry in _checked_entries(backend, rref, manifest):
            if entry.path not in left:
                _rebuild(backend, rref, entry, folder)
        build = backend.build_record_bytes(rref)
        if build is not None:
            if parse_build_record(build) is None:
                raise DamagedRealization(_where(backend, rref, BUILD_FILE), "not a build record")
            (folder / BUILD_FILE).write_bytes(build)
        if manifest_of_tree(folder).data != _without(manifest, left):
            left_there = {f"{name}: missing" for name in left}
            found = [item for item in tree_problems(folder, manifest) if item not in left_there]
            problems = "; ".join(found[:3])
            raise DamagedRealization(_where(backend, rref), f"its entries do not match: {problems}")
        context = _checked_context(backend, rref, config, folder)
        for used in sorted({item for items in context.values() for item in items}):
            fetch_realization(store, backend, used)
        if left:
            record_left_out(store, rref, backend.location, left)
        store.publish_checked(rref, folder, manifest)
    except OSError as err:
        reason = f"cannot rebuild it ({err.strerror or err})"
        raise DamagedRealization(_where(backend, rref), reason, rref) from err
    except DamagedRealization as damage:
        damage.rref = damage.rref or rref
        raise
    finally:
        remove_tree(folder)


def _without(manifest: Manifest, left: Mapping[str, str]) -> bytes:
    """The manifest's bytes without the lines of the entries left on the tier (see `lazy`)."""
    if not left:
        return manifest.data
    lines = manifest_lines(manifest.data)
    return entries_text([line for line in lines if line.partition(" ")[2].rpartition(" ")[0]
                         not in left])  # fmt: skip


def _checked_entries(backend: StoreBackend, rref: RRef, manifest: Manifest) -> list[ManifestEntry]:
    """The manifest's entries, if each can be rebuilt inside the realization's folder."""
    entries = manifest_entries(manifest)
    folders = {entry.path for entry in entries if entry.kind == "dir"}
    for entry in entries:
        where = _where(backend, rref, entry.path)
        if not is_safe_entry_path(entry.path):
            raise DamagedRealization(where, "the manifest names a path outside the realization")
        if entry.kind not in ("dir", "file", "exec", "link"):
            raise DamagedRealization(where, f"a {entry.kind} entry cannot be fetched")
        parent = entry.path.rpartition("/")[0]
        if parent and parent not in folders:
            raise DamagedRealization(where, "its folder is not in the manifest")
    return entries


def _rebuild(backend: StoreBackend, rref: RRef, entry: ManifestEntry, folder: Path) -> None:
    """Create one entry under `folder` from the tier's bytes (checked later, whole)."""
    target = folder / entry.path
    try:
        if entry.kind == "dir":
            target.mkdir()
        elif entry.kind == "link":
            text = backend.read_entry(rref, entry.path).decode("utf-8", "surrogateescape")
            os.symlink(text, target)
        else:
            backend.copy_entry(rref, entry.path, target)
            if not stat.S_ISREG(os.lstat(target).st_mode):
                raise DamagedRealization(_where(backend, rref, entry.path), "not a file")
            os.chmod(target, 0o755 if entry.kind == "exec" else 0o644)
    except KeyError:
        where = _where(backend, rref, entry.path)
        raise DamagedRealization(where, "the tier does not hold it") from None


def _checked_context(backend: StoreBackend, rref: RRef, config: Config, folder: Path) -> Context:
    """The rebuilt realization's context: it must name exactly the config's dependencies."""
    where = _where(backend, rref, CONTEXT_FILE)
    try:
        context = parse_context((folder / CONTEXT_FILE).read_bytes())
    except (OSError, ValueError) as err:
        raise DamagedRealization(where, f"not a context ({err})") from None
    if sorted(context) != sorted(config.dependencies()):
        raise DamagedRealization(where, "it does not name the config's dependencies")
    return context


def substitute(store: Store, dref: DRef, context: Context, matcher: Matcher) -> list[RRef] | None:
    """Fetch the realizations of `dref` built in `context` from the store's substituters, tier
    by tier, until the matcher is satisfied; what it chose, or None (then build).

    A realization that fails to verify is reported as damage and skipped; a tier that cannot be
    read is warned about and skipped. Call it holding the derivation's lock."""
    wanted = context_digest(context)
    for tier in store.substituters:
        try:
            fetched = _fetch_in_context(store, tier, dref, wanted)
        except (StoreError, OSError) as err:
            warnings.warn(f"substituter {tier.location}: {err}", stacklevel=2)
            continue
        if fetched:
            chosen = matcher(store, store.realizations_in_context(dref, context))
            if chosen is not None:
                return chosen
    return None


def _fetch_in_context(store: Store, tier: StoreBackend, dref: DRef, wanted: str) -> list[RRef]:
    """Fetch from one tier the realizations of `dref` whose context digest is `wanted`."""
    candidates = [rref for rref in tier.realizations_of(dref) if not store.has_realization(rref)]
    if not candidates:
        return []
    config = fetch_config(tier, dref)
    fetched = []
    for rref in candidates:
        try:
            manifest = fetch_manifest(tier, rref)
            if manifest.files.get(CONTEXT_FILE) != wanted:
                continue
            _fetch_verified(store, tier, rref, config, manifest)
            fetched.append(rref)
        except DamagedRealization as damage:
            damage.rref = rref
            store.report_damage(damage)
    return fetched


def push_realization(store: Store, backend: StoreBackend, rref: RRef) -> None:
    """Store one sound realization of the store in a writable tier (config, entries and build
    record first, the manifest last). Its context's realizations are not pushed: see
    `push_closure`."""
    if not backend.writable:
        raise StoreError(f"{backend.location} is a read-only storage tier")
    problems = store.realization_problems(rref)
    if problems:
        where = str(store.realization_path(rref))
        raise DamagedRealization(where, "; ".join(problems[:3]), rref)
    dref = rref_to_dref(rref)
    config = store.config_of(dref)
    backend.put_realization(dref, config.canonical, rref, store.realization_path(rref))


def push_closure(store: Store, backend: StoreBackend, rrefs: Iterable[RRef]) -> list[RRef]:
    """Push `rrefs` and everything in their contexts, dependencies first, skipping what the
    tier already holds; return what was pushed."""

    def context_of(rref: RRef) -> list[RRef]:
        return [used for items in store.context_of(rref).values() for used in items]

    pushed = []
    for rref in dependencies_first(sorted(set(rrefs)), context_of):
        if backend.manifest_bytes(rref) == store.manifest(rref).data:
            continue
        push_realization(store, backend, rref)
        pushed.append(rref)
    return pushed
