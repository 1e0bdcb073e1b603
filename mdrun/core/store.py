"""The store on disk: derivation folders, realization folders, publication and locks.

Layout under a store root:

    version                         "mdrun-store 2"
    store/<dhash>-<name>/config.json    one folder per derivation (canonical config, read-only)
    store/<dhash>-<name>/<rhash>/       one folder per realization (read-only):
        context.json                    the realizations of the direct dependencies it used
        __manifest__.txt                every entry with its digest: <rhash> is its SHA-256
        __build__.json                  start, stop, host (checked by type only, see integrity)
        <artifacts>
    tmp/                            build folders (`build-<pid>-<random>`), trash
    locks/<dhash>.lock              one lock file per derivation, for builds across processes
    roots/<key>.json                GC roots recorded on use: a document's absolute path and the
                                    rrefs its last run used (`roots.py`); `mdrun gc` keeps them
                                    while the document exists, and deletes the record once not
    documents/<key>.json            the evaluator's record of each document's last run

A realization is built in `tmp/` and published by one `rename`; an equal hash already present
counts as success (unless that one is damaged: then ours replaces it). What is read back is
checked against the manifest first; a damaged realization is reported and never used. The
folders are the store's first storage tier (`folder_backend.FolderBackend`, `Store.local`), and
every read goes through it; other tiers (`Store.substituters`) are asked by `substitute.py`.
This module knows nothing of registries, matchers or realizers.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mdrun.core.backend import StoreBackend
from mdrun.core.config import Config, checked_config
from mdrun.core.context import (
    CONTEXT_FILE,
    Context,
    context_digest,
    context_json,
    parse_context,
)
from mdrun.core.creation import (
    STORE_ENVIRONMENT_VARIABLE,
    STORE_VERSION,
    VERSION_TEXT,
    check_version,
    default_store_root,
    open_store_root,
)
from mdrun.core.files import make_read_only, make_writable, remove_tree, write_new_file
from mdrun.core.folder_backend import CONFIG_FILE, FolderBackend, disk_usage
from mdrun.core.integrity import (
    BUILD_FILE,
    MANIFEST_FILE,
    BuildRecordValue,
    Manifest,
    build_record,
    check_digest,
    check_manifest,
    load_manifest,
    manifest_of_tree,
    parse_build_record,
    tree_problems,
)
from mdrun.core.lazy import forget_left_out, left_out
from mdrun.core.locks import BuildLock
from mdrun.core.refs import DRef, RRef, make_dref, make_rref, parse_dref, parse_rref
from mdrun.errors import DamagedRealization, StoreError, os_error

__all__ = [
    "BUILD_FILE",
    "CONFIG_FILE",
    "CONTEXT_FILE",
    "MANIFEST_FILE",
    "RESERVED_NAMES",
    "STORE_ENVIRONMENT_VARIABLE",
    "STORE_VERSION",
    "VERSION_TEXT",
    "Context",
    "DamageObserver",
    "Store",
    "context_json",
    "default_store_root",
    "make_read_only",
    "make_writable",
    "remove_tree",
    "warn_about_damage",
]

RESERVED_NAMES = frozenset({CONTEXT_FILE, MANIFEST_FILE})
"""Files the store writes into a realization; a realizer may not create them."""

DamageObserver = Callable[[DamagedRealization], None]
"""Told about each damaged realization found (once per realization and Store object)."""


def warn_about_damage(damage: DamagedRealization) -> None:
    """The default observer: a Python warning (the command line prints its own line)."""
    warnings.warn(str(damage), stacklevel=3)


class Store:
    """One store root on disk, with in-memory caches of its immutable files.

    Its own folder is its first tier (`local`); `substituters` are the tiers that
    `realize_derivation` looks in, in order, before it builds (see `substitute.py`)."""

    def __init__(self, root: Path | str, substituters: Sequence[StoreBackend] = ()) -> None:
        self.root = Path(root).absolute()
        self.local = FolderBackend(self.root)
        """The store's own folder: every read below goes through it, and is checked here."""
        self.substituters: list[StoreBackend] = list(substituters)
        """Tiers to fetch verified realizations from before building, in order."""
        self.fetch_on_demand: frozenset[str] = frozenset()
        """Top-level files a substituted realization is fetched without, until needed (a
        session snapshot: see `lazy`)."""
        self.objects = self.local.objects
        self.tmp = self.local.tmp
        self.locks = self.root / "locks"
        self._configs: dict[DRef, Config] = {}
        self._contexts: dict[RRef, bytes] = {}
        self._manifests: dict[RRef, Manifest] = {}
        self._staged: dict[Path, Path] = {}
        """Build folders made inside a staged derivation's folder, and that folder."""
        self._cache_lock = threading.Lock()
        self._locks_ready = False
        self.damaged: dict[str, DamagedRealization] = {}
        """The damaged realizations this object has found (and not removed)."""
        self.on_damage: DamageObserver = warn_about_damage
        """Told about each damaged realization found."""

    # -- set-up -------------------------------------------------------------------------------

    @classmethod
    def initialize(cls, root: Path | str, substituters: Sequence[StoreBackend] = ()) -> Store:
        """Open the store at `root`, creating it first if there is none; check its version."""
        store = cls(root, substituters)
        open_store_root(store.root)
        return store

    def check_version(self) -> None:
        """Refuse a folder that is not a store of this version."""
        check_version(self.root)

    # -- paths (for what needs one: a realizer's output, a snapshot to load, a user's path) ---

    def derivation_path(self, dref: DRef) -> Path:
        """The folder of a derivation."""
        return self.local.derivation_path(dref)

    def realization_path(self, rref: RRef) -> Path:
        """The folder of a realization."""
        return self.local.realization_path(rref)

    # -- derivations --------------------------------------------------------------------------

    def add_derivation(self, config: Config) -> DRef:
        """Write a config into the store (once) and return its dref."""
        dref = make_dref(config.hash_part, config.name)
        if dref in self._configs:
            return dref
        self.local.put_config(dref, config.canonical)
        with self._cache_lock:
            self._configs[dref] = config
        return dref

    def config_of(self, dref: DRef) -> Config:
        """The config of a derivation in this store, checked against its dref."""
        config = self._configs.get(dref)
        if config is None:
            data = self.local.config_bytes(dref)
            if data is None:
                raise StoreError(f"{dref} is not in the store at {self.root}")
            where = f"{self.derivation_path(dref) / CONFIG_FILE}"
            config = checked_config(dref, data, where)
            with self._cache_lock:
                self._configs[dref] = config
        return config

    def forget(self, ref: DRef | RRef) -> None:
        """Drop what this object remembers of a derivation or realization (read it again)."""
        with self._cache_lock:
            self._configs.pop(DRef(ref), None)
            self._contexts.pop(RRef(ref), None)
            self._manifests.pop(RRef(ref), None)

    def has_derivation(self, dref: DRef) -> bool:
        """True when the derivation's folder exists."""
        return dref in self._configs or self.derivation_path(dref).is_dir()

    def all_derivations(self) -> list[DRef]:
        """Every derivation in the store, sorted."""
        return self.local.all_derivations()

    # -- realizations -------------------------------------------------------------------------

    def realizations_of(self, dref: DRef) -> list[RRef]:
        """Every published realization of a derivation, sorted by rref."""
        return self.local.realizations_of(dref)

    def has_realization(self, rref: RRef) -> bool:
        """True when the realization is in the store (sound or not: see `manifest`)."""
        return self.local.has_realization(rref)

    def all_realizations(self) -> list[RRef]:
        """Every realization in the store, sorted."""
        return [rref for dref in self.all_derivations() for rref in self.realizations_of(dref)]

    def manifest(self, rref: RRef) -> Manifest:
        """A realization's manifest, checked against its reference (cached once checked).

        Raises DamagedRealization when it is missing or does not hash to the reference."""
        manifest = self._manifests.get(rref)
        if manifest is None:
            where = str(self.realization_path(rref) / MANIFEST_FILE)
            try:
                data = self.local.manifest_bytes(rref)
                if data is None:
                    if not self.has_realization(rref):
                        raise StoreError(f"{rref} is not in the store at {self.root}")
                    raise DamagedRealization(where, "the manifest is missing")
                manifest = check_manifest(data, parse_rref(rref)[0], where)
            except DamagedRealization as damage:
                damage.rref = rref
                raise
            with self._cache_lock:
                self._manifests[rref] = manifest
        return manifest

    def read_file(self, rref: RRef, name: str) -> bytes:
        """One file of a realization, checked against its manifest (for small records).

        Raises DamagedRealization (never returns bytes the reference does not vouch for)."""
        where = str(self.realization_path(rref) / name)
        try:
            expected = self.manifest(rref).files.get(name)
            if expected is None:
                raise DamagedRealization(where, "the realization's manifest does not list it")
            try:
                data = self.local.read_entry(rref, name)
            except KeyError:
                raise DamagedRealization(where, "it is missing") from None
            return check_digest(data, expected, where)
        except DamagedRealization as damage:
            damage.rref = rref
            raise

    def recorded_digest(self, rref: RRef, name: str) -> str | None:
        """The SHA-256 a realization's manifest records for one of its files (None: no such file).

        Check a large file against it right before using it (as a snapshot is)."""
        return self.manifest(rref).files.get(name)

    def report_damage(self, damage: DamagedRealization) -> None:
        """Remember a damaged realization and tell the observer (once per realization)."""
        key = damage.rref or damage.path
        if key in self.damaged:
            return
        with self._cache_lock:
            self.damaged[key] = damage
        self.on_damage(damage)

    def context_bytes(self, rref: RRef) -> bytes:
        """The canonical context of a realization, checked (cached: realizations never change)."""
        data = self._contexts.get(rref)
        if data is None:
            data = self.read_file(rref, CONTEXT_FILE)
            with self._cache_lock:
                self._contexts[rref] = data
        return data

    def context_of(self, rref: RRef) -> Context:
        """The realizations of the direct dependencies that `rref` was built from."""
        return parse_context(self.context_bytes(rref))

    def realizations_in_context(self, dref: DRef, context: Mapping[DRef, list[RRef]]) -> list[RRef]:
        """The realizations of `dref` that were built from exactly this context.

        Each one's manifest (checked against its rref) records the digest of its context, so
        the context file itself need not be read. A realization whose manifest is damaged is
        reported and left out, so that a build replaces it."""
        wanted = context_digest(context)
        found = []
        for rref in self.realizations_of(dref):
            try:
                if self.manifest(rref).files.get(CONTEXT_FILE) == wanted:
                    found.append(rref)
            except DamagedRealization as damage:
                self.report_damage(damage)
        return found

    def realization_problems(self, rref: RRef) -> list[str]:
        """Everything wrong with a realization, hashing every file ([] when it is sound)."""
        folder = self.realization_path(rref)
        try:
            manifest = load_manifest(folder, parse_rref(rref)[0])
        except DamagedRealization as damage:
            return [f"{MANIFEST_FILE}: {damage.reason}"]
        problems = tree_problems(folder, manifest)
        record = left_out(self, rref) if problems else None
        if record is not None:
            # Files a substitute left on its tier are missing on purpose (see `lazy`).
            expected = {f"{name}: missing" for name in record.entries}
            problems = [problem for problem in problems if problem not in expected]
        return problems

    def discard_damaged(self, dref: DRef) -> list[RRef]:
        """Remove the realizations of `dref` found damaged, if they still are when checked whole.

        Call it holding the derivation's lock, as a build does."""
        removed: list[RRef] = []
        if not self.damaged:
            return removed
        present = self.realizations_of(dref)
        for rref in [rref for rref in present if rref in self.damaged]:
            if self.realization_problems(rref):
                self.remove_realization(rref)
                removed.append(rref)
            with self._cache_lock:
                self.damaged.pop(rref, None)
        return removed

    def build_metadata(self, rref: RRef) -> dict[str, BuildRecordValue]:
        """Start, stop and host of a realization's build ({} when unknown or not a record)."""
        data = self.local.build_record_bytes(rref)
        return (parse_build_record(data) if data is not None else None) or {}

    # -- publication --------------------------------------------------------------------------

    def new_build_folder(self, dref: DRef, config: Config | None = None) -> Path:
        """A fresh folder in `tmp/`, named after this process so leftovers can be cleaned.

        Given the derivation's config, for a derivation not in the store yet, the folder is
        made inside a staging copy of the derivation's folder: `publish_records` then brings
        in both with one rename (`discard_build_folder` drops both)."""
        _, name = parse_dref(dref)
        prefix = f"build-{os.getpid()}-{name}-"
        if config is None or self.has_derivation(dref):
            return self.local.temporary_folder(prefix)
        staging = self.local.stage_derivation(prefix, config.canonical)
        folder = staging / "realization"
        try:
            os.mkdir(folder)
            os.chmod(folder, 0o755)
        except OSError as err:
            remove_tree(staging)
            raise os_error(err, folder, "cannot make a build folder") from err
        with self._cache_lock:
            self._staged[folder] = staging
        return folder

    def discard_build_folder(self, folder: Path) -> None:
        """Delete a build folder that was not published (and its staging folder, if any)."""
        with self._cache_lock:
            staging = self._staged.pop(folder, None)
        remove_tree(folder if staging is None else staging)

    def publish_records(
        self,
        config: Config,
        folder: Path,
        records: Mapping[str, bytes],
        build_record: bytes,
        *,
        doing: str = "cannot write a build's records",
    ) -> RRef:
        """Publish a build folder with `records` added as a realization of `config`'s derivation.

        The records (top-level files) are written read-only from memory and hashed without
        being read back, beside the build record and what the builder left in the folder; the
        realization's context is empty (a block's).

        One pass over the folder hashes what is there; each record is written once, and the
        realization (with its derivation, when `new_build_folder` staged one) is moved into
        the store by one rename. Call it holding the derivation's lock. An OSError is said as
        `doing`, naming the file."""
        dref = make_dref(config.hash_part, config.name)
        context_data = context_json({})
        try:
            manifest = manifest_of_tree(folder, {**records, CONTEXT_FILE: context_data})
            for name, data in records.items():
                write_new_file(folder / name, data)
            write_new_file(folder / CONTEXT_FILE, context_data)
            write_new_file(folder / BUILD_FILE, build_record)
            write_new_file(folder / MANIFEST_FILE, manifest.data)
            make_read_only(folder)
        except OSError as err:
            raise os_error(err, err.filename or folder, doing) from err
        derivation_hash, name = parse_dref(dref)
        rref = make_rref(manifest.realization_hash, derivation_hash, name)
        staging = self._staged.get(folder)
        if staging is None:
            self.add_derivation(config)
            self._put_in_place(rref, folder, manifest)
        elif self.local.publish_staged(dref, staging, folder, manifest.realization_hash):
            with self._cache_lock:
                self._configs[dref] = config
                self._manifests[rref] = manifest
        else:  # the derivation appeared meanwhile: the realization goes into its folder
            self._put_in_place(rref, staging / manifest.realization_hash, manifest)
            remove_tree(staging)
        with self._cache_lock:
            self._staged.pop(folder, None)
            self._contexts[rref] = context_data
        return rref

    def publish_realization(
        self, dref: DRef, context: Mapping[DRef, list[RRef]], folder: Path
    ) -> RRef:
        """Move a finished build folder into the store; equal content is already there."""
        for name in RESERVED_NAMES:
            if os.path.lexists(folder / name):
                raise StoreError(f"{dref}: a realizer may not create {name!r} (reserved name)")
        build = folder / BUILD_FILE
        if os.path.lexists(build) and build_record(build) is None:
            raise StoreError(
                f"{dref}: {BUILD_FILE} must be a build record (a small JSON object of numbers "
                "and strings, see write_build_metadata)"
            )
        context_data = context_json(context)
        try:
            (folder / CONTEXT_FILE).write_bytes(context_data)
            manifest = manifest_of_tree(folder)
        except OSError as err:
            raise os_error(err, folder, "cannot write a build's records") from err
        derivation_hash, name = parse_dref(dref)
        rref = make_rref(manifest.realization_hash, derivation_hash, name)
        self.publish_checked(rref, folder, manifest)
        with self._cache_lock:
            self._contexts[rref] = context_data
        return rref

    def publish_checked(self, rref: RRef, folder: Path, manifest: Manifest) -> None:
        """Publish a folder whose tree `manifest` describes (its context file included) as
        `rref`: the manifest is written, the folder made read-only and renamed into place."""
        try:
            (folder / MANIFEST_FILE).write_bytes(manifest.data)
        except OSError as err:
            raise os_error(err, folder, "cannot write a build's records") from err
        self._put_in_place(rref, folder, manifest)

    def _put_in_place(self, rref: RRef, folder: Path, manifest: Manifest) -> None:
        """Rename a finished realization folder into the store (read-only)."""
        target = self.realization_path(rref)
        if target.is_dir() and self.realization_problems(rref):
            # The store's copy is damaged: ours, freshly built, takes its place.
            self.remove(target)
        self.local.publish_read_only(folder, target)
        with self._cache_lock:
            self._manifests[rref] = manifest
            self._contexts.pop(rref, None)
            self.damaged.pop(rref, None)

    # -- removal ------------------------------------------------------------------------------

    def remove(self, path: Path) -> None:
        """Make a store folder disappear at once (one rename), then delete it."""
        self.local.remove(path)
        with self._cache_lock:
            self._configs.clear()
            self._contexts.clear()
            self._manifests.clear()

    def remove_realization(self, rref: RRef) -> None:
        """Delete one realization."""
        self.remove(self.realization_path(rref))
        forget_left_out(self, rref)

    def remove_derivation(self, dref: DRef) -> None:
        """Delete a derivation and all its realizations."""
        self.remove(self.derivation_path(dref))

    def clean_leftovers(self) -> list[Path]:
        """Delete temporary folders whose process is gone (a killed build, a killed GC)."""
        return self.local.clean_leftovers()

    # -- locks --------------------------------------------------------------------------------

    def lock(self, dref: DRef) -> BuildLock:
        """An inter-process lock for building `dref`; the OS releases it if we die."""
        if not self._locks_ready:
            self.locks.mkdir(parents=True, exist_ok=True)
            self._locks_ready = True
        derivation_hash, _ = parse_dref(dref)
        return BuildLock(str(self.locks / f"{derivation_hash}.lock"))

    def size_of(self, path: Path) -> int:
        """Bytes used by a file or folder (symlinks not followed)."""
        return disk_usage(path)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"
