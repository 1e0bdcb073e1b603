"""The store on disk: derivation folders, realization folders, publication and locks.

Layout under a store root:

    version                         "mdrun-store 2"
    store/<dhash>-<name>/config.json    one folder per derivation (canonical config, read-only)
    store/<dhash>-<name>/<rhash>/       one folder per realization (read-only):
        context.json                    the realizations of the direct dependencies it used
        __manifest__.txt                every entry with its digest: <rhash> is its SHA-256
        __build__.json                  start, stop, host (checked by type only, see integrity)
        <artifacts>
    tmp/                            build folders (`build-<pid>-<random>`, a new derivation's
                                    staged with its first build inside), trash
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
from mdrun.core.files import make_read_only, make_writable, remove_tree
from mdrun.core.folder_backend import CONFIG_FILE, FolderBackend, disk_usage
from mdrun.core.integrity import (
    BUILD_FILE,
    MANIFEST_FILE,
    BuildRecordValue,
    Manifest,
    check_digest,
    check_manifest,
    load_manifest,
    parse_build_record,
    tree_problems,
)
from mdrun.core.lazy import forget_left_out, left_out
from mdrun.core.locks import BuildLock
from mdrun.core.publication import RESERVED_NAMES, Publication
from mdrun.core.refs import DRef, RRef, make_dref, parse_dref, parse_rref
from mdrun.errors import DamagedRealization, StoreError

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

DamageObserver = Callable[[DamagedRealization], None]
"""Told about each damaged realization found (once per realization and Store object)."""


def warn_about_damage(damage: DamagedRealization) -> None:
    """The default observer: a Python warning (the command line prints its own line)."""
    warnings.warn(str(damage), stacklevel=3)


class Store(Publication):
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
        """Top-level files (fnmatch patterns) a substituted realization is fetched without,
        until needed (a session snapshot's files: see `lazy`)."""
        self.objects = self.local.objects
        self.tmp = self.local.tmp
        self.locks = self.root / "locks"
        self._configs: dict[DRef, Config] = {}
        self._contexts: dict[RRef, bytes] = {}
        self._manifests: dict[RRef, Manifest] = {}
        self._staged: dict[Path, Path] = {}
        self._spare_folders: list[tuple[Path, Path]] = []
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
