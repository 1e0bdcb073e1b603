"""The store on disk: derivation folders, realization folders, publication and locks.

Layout under a store root:

    version                         "mdrun-store 1"
    store/<dhash>-<name>/config.json    one folder per derivation (canonical config, read-only)
    store/<dhash>-<name>/<rhash>/       one folder per realization (read-only):
        context.json                    the realizations of the direct dependencies it used
        __build__.json                  start, stop, host (metadata: `_` names are not hashed)
        <artifacts>
    tmp/                            build folders (`build-<pid>-<random>`), trash
    locks/<dhash>.lock              one lock file per derivation, for builds across processes

A realization is built in `tmp/` and published by one `rename`; an equal hash already present
counts as success. This module knows nothing of registries, matchers or realizers.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun.core.config import Config
from mdrun.core.hashing import canonical_json, tree_sha256
from mdrun.core.refs import (
    DRef,
    RRef,
    is_dref,
    make_dref,
    make_rref,
    parse_dref,
    parse_rref,
)
from mdrun.errors import StoreError

if TYPE_CHECKING:
    from filelock import BaseFileLock

STORE_VERSION = 1
VERSION_TEXT = f"mdrun-store {STORE_VERSION}\n"
CONTEXT_FILE = "context.json"
CONFIG_FILE = "config.json"
BUILD_FILE = "__build__.json"
RESERVED_NAMES = frozenset({CONTEXT_FILE})

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


def _is_hash_name(name: str) -> bool:
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


def make_read_only(root: Path) -> None:
    """Clear every write bit under `root` (files and folders), keeping read and exec bits."""
    for folder, subfolders, files in os.walk(root, topdown=False):
        for name in files + subfolders:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if not stat.S_ISLNK(info.st_mode):
                os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o222)
    os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) & ~0o222)


def make_writable(root: Path) -> None:
    """Give the owner write access again (needed before deleting a read-only tree)."""
    if not os.path.lexists(root):
        return
    if not root.is_dir() or root.is_symlink():
        os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) | 0o200)
        return
    os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) | 0o700)
    for folder, subfolders, files in os.walk(root):
        for name in subfolders + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if not stat.S_ISLNK(info.st_mode):
                extra = 0o700 if stat.S_ISDIR(info.st_mode) else 0o200
                os.chmod(path, stat.S_IMODE(info.st_mode) | extra)


def remove_tree(path: Path) -> None:
    """Delete a (possibly read-only) file or folder; a missing path is fine."""
    if not os.path.lexists(path):
        return
    make_writable(path)
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink()


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
        self._cache_lock = threading.Lock()
        self._locks_ready = False

    # -- set-up -------------------------------------------------------------------------------

    @classmethod
    def initialize(cls, root: Path | str) -> Store:
        """Create the store's folders (if needed) and check its version."""
        store = cls(root)
        version_file = store.root / "version"
        if version_file.exists():
            store.check_version()
        else:
            own = {store.objects.name, store.tmp.name, store.locks.name}
            foreign = [
                entry
                for entry in (os.listdir(store.root) if store.root.is_dir() else [])
                if entry not in own and not entry.startswith(".version-")
            ]
            if foreign:
                raise StoreError(
                    f"{store.root} is not an mdrun store (no version file) and is not empty "
                    f"(it holds {sorted(foreign)[0]!r}...); choose an empty or new folder"
                )
            for folder in (store.objects, store.tmp, store.locks):
                folder.mkdir(parents=True, exist_ok=True)
            import tempfile

            fd, temporary = tempfile.mkstemp(dir=store.root, prefix=".version-")
            with os.fdopen(fd, "w") as stream:
                stream.write(VERSION_TEXT)
            os.replace(temporary, version_file)
        return store

    def check_version(self) -> None:
        """Refuse a folder that is not a store of this version."""
        version_file = self.root / "version"
        try:
            text = version_file.read_text()
        except FileNotFoundError:
            raise StoreError(
                f"{self.root} is not an mdrun store (no version file); create it with fsinit"
            ) from None
        if text != VERSION_TEXT:
            raise StoreError(
                f"{self.root} holds a store of another version ({text.strip()!r}); "
                f"this mdrun reads {VERSION_TEXT.strip()!r}"
            )

    # -- paths --------------------------------------------------------------------------------

    def derivation_path(self, dref: DRef) -> Path:
        """The folder of a derivation."""
        derivation_hash, name = parse_dref(dref)
        return self.objects / f"{derivation_hash}-{name}"

    def realization_path(self, rref: RRef) -> Path:
        """The folder of a realization."""
        realization_hash, derivation_hash, name = parse_rref(rref)
        return self.objects / f"{derivation_hash}-{name}" / realization_hash

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
            config = Config.from_canonical(data)
            with self._cache_lock:
                self._configs[dref] = config
        return config

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

    def context_bytes(self, rref: RRef) -> bytes:
        """The canonical context of a realization (cached: realizations never change)."""
        data = self._contexts.get(rref)
        if data is None:
            try:
                data = (self.realization_path(rref) / CONTEXT_FILE).read_bytes()
            except FileNotFoundError:
                raise StoreError(f"{rref} is not in the store at {self.root}") from None
            with self._cache_lock:
                self._contexts[rref] = data
        return data

    def context_of(self, rref: RRef) -> Context:
        """The realizations of the direct dependencies that `rref` was built from."""
        loaded = json.loads(self.context_bytes(rref))
        return {DRef(dref): [RRef(item) for item in rrefs] for dref, rrefs in loaded.items()}

    def realizations_in_context(self, dref: DRef, context: Mapping[DRef, list[RRef]]) -> list[RRef]:
        """The realizations of `dref` that were built from exactly this context."""
        wanted = context_json(context)
        return [rref for rref in self.realizations_of(dref) if self.context_bytes(rref) == wanted]

    def build_metadata(self, rref: RRef) -> dict[str, object]:
        """Start, stop and host of a realization's build ({} when unknown)."""
        try:
            loaded = json.loads((self.realization_path(rref) / BUILD_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def new_build_folder(self, dref: DRef) -> Path:
        """A fresh folder in `tmp/`, named after this process so leftovers can be cleaned."""
        _, name = parse_dref(dref)
        return self._temporary_folder(f"build-{os.getpid()}-{name}-")

    def _temporary_folder(self, prefix: str) -> Path:
        """A new folder in `tmp/` (re-created if someone removed it), readable by all."""
        import tempfile

        try:
            folder = tempfile.mkdtemp(dir=self.tmp, prefix=prefix)
        except FileNotFoundError:
            self.tmp.mkdir(parents=True, exist_ok=True)
            folder = tempfile.mkdtemp(dir=self.tmp, prefix=prefix)
        os.chmod(folder, 0o755)
        return Path(folder)

    def publish_realization(
        self, dref: DRef, context: Mapping[DRef, list[RRef]], folder: Path
    ) -> RRef:
        """Move a finished build folder into the store; equal content is already there."""
        for name in RESERVED_NAMES:
            if (folder / name).exists():
                raise StoreError(f"{dref}: a realizer may not create {name!r} (reserved name)")
        context_data = context_json(context)
        (folder / CONTEXT_FILE).write_bytes(context_data)
        realization_hash = tree_sha256(folder)[:32]
        derivation_hash, name = parse_dref(dref)
        rref = make_rref(realization_hash, derivation_hash, name)
        with self._cache_lock:
            self._contexts[rref] = context_data
        make_read_only(folder)
        # rename(2) moves a folder to another parent only if the folder itself is writable
        # (its `..` entry changes), so its own write bit is cleared after the rename.
        mode = stat.S_IMODE(os.lstat(folder).st_mode)
        os.chmod(folder, mode | 0o200)
        target = self.realization_path(rref)
        if self._publish_folder(folder, target):
            os.chmod(target, mode)
        return rref

    def _publish_folder(self, source: Path, target: Path) -> bool:
        """Rename `source` to `target`; an existing target means equal content: drop ours.

        True when `source` became `target`, False when `target` was already there.
        """
        try:
            os.rename(source, target)
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise StoreError(f"cannot publish {target}: {err.strerror}") from err
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
