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

A realization is built in `tmp/` and published by one `rename`; an equal hash already present
counts as success (unless that one is damaged: then ours replaces it). What is read back is
checked against the manifest first; a damaged realization is reported and never used. This
module knows nothing of registries, matchers or realizers.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import stat
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun.core.config import Config
from mdrun.core.creation import (
    STORE_VERSION,
    VERSION_TEXT,
    check_version,
    open_store_root,
)
from mdrun.core.files import make_read_only, make_writable, remove_tree
from mdrun.core.hashing import canonical_json, sha256_hex
from mdrun.core.integrity import (
    BUILD_FILE,
    MANIFEST_FILE,
    BuildRecordValue,
    Manifest,
    build_record,
    load_manifest,
    manifest_of_tree,
    read_checked,
    tree_problems,
)
from mdrun.core.refs import (
    DRef,
    RRef,
    is_dref,
    make_dref,
    make_rref,
    parse_dref,
    parse_rref,
)
from mdrun.errors import ConfigError, DamagedRealization, StoreError, os_error

if TYPE_CHECKING:
    from filelock import BaseFileLock

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
    "as_store",
    "context_json",
    "current_storage",
    "default_store",
    "default_store_root",
    "fsinit",
    "make_read_only",
    "make_writable",
    "remove_tree",
    "set_default_store",
    "warn_about_damage",
]

CONTEXT_FILE = "context.json"
CONFIG_FILE = "config.json"
RESERVED_NAMES = frozenset({CONTEXT_FILE, MANIFEST_FILE})
"""Files the store writes into a realization; a realizer may not create them."""

DamageObserver = Callable[[DamagedRealization], None]
"""Told about each damaged realization found (once per realization and Store object)."""


def warn_about_damage(damage: DamagedRealization) -> None:
    """The default observer: a Python warning (the command line prints its own line)."""
    warnings.warn(str(damage), stacklevel=3)


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


@functools.lru_cache(maxsize=256)
def _context_digest(data: bytes) -> str:
    """The digest a manifest records for a context (most lookups ask for the same few)."""
    return sha256_hex(data)


def _is_hash_name(name: str) -> bool:
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


def _pid_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """One store root on disk, with in-memory caches of its immutable files."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self.objects = self.root / "store"
        self.tmp = self.root / "tmp"
        self.locks = self.root / "locks"
        self._configs: dict[DRef, Config] = {}
        self._contexts: dict[RRef, bytes] = {}
        self._manifests: dict[RRef, Manifest] = {}
        self._paths: dict[RRef, Path] = {}
        self._cache_lock = threading.Lock()
        self._locks_ready = False
        self.damaged: dict[str, DamagedRealization] = {}
        """The damaged realizations this object has found (and not removed)."""
        self.on_damage: DamageObserver = warn_about_damage
        """Told about each damaged realization found."""

    # -- set-up -------------------------------------------------------------------------------

    @classmethod
    def initialize(cls, root: Path | str) -> Store:
        """Open the store at `root`, creating it first if there is none; check its version."""
        store = cls(root)
        open_store_root(store.root)
        return store

    def check_version(self) -> None:
        """Refuse a folder that is not a store of this version."""
        check_version(self.root)

    # -- paths --------------------------------------------------------------------------------

    def derivation_path(self, dref: DRef) -> Path:
        """The folder of a derivation."""
        derivation_hash, name = parse_dref(dref)
        return self.objects / f"{derivation_hash}-{name}"

    def realization_path(self, rref: RRef) -> Path:
        """The folder of a realization."""
        path = self._paths.get(rref)
        if path is None:
            realization_hash, derivation_hash, name = parse_rref(rref)
            path = self.objects / f"{derivation_hash}-{name}" / realization_hash
            with self._cache_lock:
                self._paths[rref] = path
        return path

    # -- derivations --------------------------------------------------------------------------

    def add_derivation(self, config: Config) -> DRef:
        """Write a config into the store (once) and return its dref."""
        dref = make_dref(config.hash_part, config.name)
        if dref in self._configs:
            return dref
        folder = self.derivation_path(dref)
        if not folder.is_dir():
            staging = self._temporary_folder(f"drv-{os.getpid()}-")
            try:
                (staging / CONFIG_FILE).write_bytes(config.canonical)
                os.chmod(staging / CONFIG_FILE, 0o444)
                self._publish_folder(staging, folder)
            except OSError as err:
                raise os_error(err, folder / CONFIG_FILE, "cannot store a config") from err
            finally:
                remove_tree(staging)
        with self._cache_lock:
            self._configs[dref] = config
        return dref

    def config_of(self, dref: DRef) -> Config:
        """The config of a derivation in this store."""
        config = self._configs.get(dref)
        if config is None:
            try:
                data = (self.derivation_path(dref) / CONFIG_FILE).read_bytes()
            except FileNotFoundError:
                raise StoreError(f"{dref} is not in the store at {self.root}") from None
            path = self.derivation_path(dref) / CONFIG_FILE
            try:
                config = Config.from_canonical(data)
            except (ValueError, ConfigError):
                raise StoreError(f"damaged derivation: {path}: not a config") from None
            if make_dref(config.hash_part, config.name) != dref:
                raise StoreError(f"damaged derivation: {path}: it does not hash to {dref}")
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
        if not self.objects.is_dir():
            return []
        result = []
        for entry in sorted(os.listdir(self.objects)):
            dref = f"dref:{entry}"
            if is_dref(dref):
                result.append(DRef(dref))
        return result

    # -- realizations -------------------------------------------------------------------------

    def realizations_of(self, dref: DRef) -> list[RRef]:
        """Every published realization of a derivation, sorted by rref."""
        derivation_hash, name = parse_dref(dref)
        try:
            entries = os.listdir(self.derivation_path(dref))
        except FileNotFoundError:
            return []
        return sorted(
            make_rref(entry, derivation_hash, name) for entry in entries if _is_hash_name(entry)
        )

    def all_realizations(self) -> list[RRef]:
        """Every realization in the store, sorted."""
        return [rref for dref in self.all_derivations() for rref in self.realizations_of(dref)]

    def manifest(self, rref: RRef) -> Manifest:
        """A realization's manifest, checked against its reference (cached once checked).

        Raises DamagedRealization when it is missing or does not hash to the reference."""
        manifest = self._manifests.get(rref)
        if manifest is None:
            folder = self.realization_path(rref)
            try:
                manifest = load_manifest(folder, folder.name)
            except DamagedRealization as damage:
                if not folder.is_dir():
                    raise StoreError(f"{rref} is not in the store at {self.root}") from None
                damage.rref = rref
                raise
            with self._cache_lock:
                self._manifests[rref] = manifest
        return manifest

    def read_file(self, rref: RRef, name: str) -> bytes:
        """One file of a realization, checked against its manifest (for small records).

        Raises DamagedRealization (never returns bytes the reference does not vouch for)."""
        try:
            return read_checked(self.realization_path(rref), self.manifest(rref), name)
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
        loaded = json.loads(self.context_bytes(rref))
        return {DRef(dref): [RRef(item) for item in rrefs] for dref, rrefs in loaded.items()}

    def realizations_in_context(self, dref: DRef, context: Mapping[DRef, list[RRef]]) -> list[RRef]:
        """The realizations of `dref` that were built from exactly this context.

        Each one's manifest (checked against its rref) records the digest of its context, so
        the context file itself need not be read. A realization whose manifest is damaged is
        reported and left out, so that a build replaces it."""
        wanted = _context_digest(context_json(context))
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
        return tree_problems(folder, manifest)

    def discard_damaged(self, dref: DRef) -> list[RRef]:
        """Remove the realizations of `dref` found damaged, if they still are when checked whole.

        Call it holding the derivation's lock, as a build does."""
        removed = []
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
        return build_record(self.realization_path(rref) / BUILD_FILE) or {}

    def new_build_folder(self, dref: DRef) -> Path:
        """A fresh folder in `tmp/`, named after this process so leftovers can be cleaned."""
        _, name = parse_dref(dref)
        return self._temporary_folder(f"build-{os.getpid()}-{name}-")

    def _temporary_folder(self, prefix: str) -> Path:
        """A new folder in `tmp/` (re-created if someone removed it), readable by all."""
        import tempfile

        try:
            try:
                folder = tempfile.mkdtemp(dir=self.tmp, prefix=prefix)
            except FileNotFoundError:
                self.tmp.mkdir(parents=True, exist_ok=True)
                folder = tempfile.mkdtemp(dir=self.tmp, prefix=prefix)
        except OSError as err:
            raise os_error(err, self.tmp, "cannot make a build folder") from err
        os.chmod(folder, 0o755)
        return Path(folder)

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
            (folder / MANIFEST_FILE).write_bytes(manifest.data)
        except OSError as err:
            raise os_error(err, folder, "cannot write a build's records") from err
        derivation_hash, name = parse_dref(dref)
        rref = make_rref(manifest.realization_hash, derivation_hash, name)
        make_read_only(folder)
        # rename(2) moves a folder to another parent only if the folder itself is writable
        # (its `..` entry changes), so its own write bit is cleared after the rename.
        mode = stat.S_IMODE(os.lstat(folder).st_mode)
        os.chmod(folder, mode | 0o200)
        target = self.realization_path(rref)
        if target.is_dir() and self.realization_problems(rref):
            # The store's copy is damaged: ours, freshly built, takes its place.
            self.remove(target)
        if self._publish_folder(folder, target):
            os.chmod(target, mode)
        with self._cache_lock:
            self._contexts[rref] = context_data
            self._manifests[rref] = manifest
            self.damaged.pop(rref, None)
        return rref

    def _publish_folder(self, source: Path, target: Path) -> bool:
        """Rename `source` to `target`; an existing target means equal content: drop ours.

        True when `source` became `target`, False when `target` was already there.
        """
        try:
            os.rename(source, target)
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise os_error(err, target, "cannot publish") from err
            remove_tree(source)
            return False
        return True

    # -- removal ------------------------------------------------------------------------------

    def remove(self, path: Path) -> None:
        """Make a store folder disappear at once (one rename), then delete it."""
        if not path.exists():
            return
        trash = self._temporary_folder(f"trash-{os.getpid()}-")
        if path.is_dir():
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) | 0o700)
        os.rename(path, trash / path.name)
        with self._cache_lock:
            self._configs.clear()
            self._contexts.clear()
            self._manifests.clear()
        remove_tree(trash)

    def remove_realization(self, rref: RRef) -> None:
        """Delete one realization."""
        self.remove(self.realization_path(rref))

    def remove_derivation(self, dref: DRef) -> None:
        """Delete a derivation and all its realizations."""
        self.remove(self.derivation_path(dref))

    def clean_leftovers(self) -> list[Path]:
        """Delete temporary folders whose process is gone (a killed build, a killed GC)."""
        removed: list[Path] = []
        try:
            entries = os.listdir(self.tmp)
        except FileNotFoundError:
            return removed
        for entry in entries:
            parts = entry.split("-", 2)
            if len(parts) < 3 or not parts[1].isdigit():
                continue
            if _pid_is_alive(int(parts[1])):
                continue
            path = self.tmp / entry
            with contextlib.suppress(OSError):
                remove_tree(path)
                removed.append(path)
        return removed

    # -- locks --------------------------------------------------------------------------------

    def lock(self, dref: DRef) -> BaseFileLock:
        """An inter-process lock for building `dref`; the OS releases it if we die."""
        from filelock import FileLock

        if not self._locks_ready:
            self.locks.mkdir(parents=True, exist_ok=True)
            self._locks_ready = True
        derivation_hash, _ = parse_dref(dref)
        return FileLock(str(self.locks / f"{derivation_hash}.lock"))

    def size_of(self, path: Path) -> int:
        """Bytes used by a file or folder (symlinks not followed)."""
        if not path.exists():
            return 0
        if path.is_file():
            return path.stat().st_size
        total = 0
        for folder, _subfolders, files in os.walk(path):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(folder, name)).st_size
        return total

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"


# -- the default store ----------------------------------------------------------------------------

_default: Store | None = None
_local = threading.local()
STORE_ENVIRONMENT_VARIABLE = "MDRUN_STORE"


def default_store_root() -> Path:
    """`$MDRUN_STORE`, else `$XDG_CACHE_HOME/mdrun/store` (`~/.cache/mdrun/store`)."""
    configured = os.environ.get(STORE_ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "mdrun" / "store"


def default_store() -> Store:
    """The store in use: the innermost `current_storage`, else `fsinit`'s, else the default."""
    stack: list[Store] = getattr(_local, "stack", [])
    if stack:
        return stack[-1]
    global _default
    if _default is None:
        _default = Store.initialize(default_store_root())
    return _default


def set_default_store(store: Store | None) -> None:
    """Make `store` the process-wide default (None: back to the environment's default)."""
    global _default
    _default = store


def as_store(store: Store | Path | str | None) -> Store:
    """Accept a Store, a root folder, or None for the default store."""
    if store is None:
        return default_store()
    if isinstance(store, Store):
        return store
    return Store.initialize(store)


@contextlib.contextmanager
def current_storage(store: Store | Path | str) -> Iterator[Store]:
    """Use another store within a `with` block (per thread)."""
    resolved = as_store(store)
    stack: list[Store] = getattr(_local, "stack", [])
    _local.stack = [*stack, resolved]
    try:
        yield resolved
    finally:
        _local.stack = stack


def fsinit(root: Path | str, use_as_default: bool = True, remove_existing: bool = False) -> Store:
    """Create (or open) a store at `root`; by default make it the default store."""
    if remove_existing:
        remove_tree(Path(root))
    store = Store.initialize(root)
    if use_as_default:
        set_default_store(store)
    return store
