"""The store's own folder as a storage tier: its layout, publication by rename, and removal.

Under `objects` (a store's `store/` folder) each derivation is a folder `<dhash>-<name>` holding
`config.json`, and each realization a folder `<rhash>` inside it holding its entries, its
manifest and its build record. Anything appears by one `rename` from `tmp/`, so a half-made
folder is never seen; anything disappears the same way, into `tmp/` first. This module knows
the layout and the file system; checking what it reads is the store's job (`store.py`), and
`substitute.py`'s for a folder used as another store's substituter.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from pathlib import Path

from mdrun.core.files import make_read_only, remove_tree, write_new_file
from mdrun.core.integrity import (
    BUILD_FILE,
    BUILD_RECORD_MAX_BYTES,
    MANIFEST_FILE,
    MANIFEST_MAX_BYTES,
    is_safe_entry_path,
    published_entries,
)
from mdrun.core.refs import DRef, RRef, is_dref, make_rref, parse_dref, parse_rref
from mdrun.errors import DamagedRealization, os_error

__all__ = ["CONFIG_FILE", "FolderBackend"]

CONFIG_FILE = "config.json"


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


def _read_at_most(path: Path, limit: int) -> bytes | None:
    """A file's bytes, or None when it is missing or is a link; refuses one past `limit`."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            return None
        raise DamagedRealization(str(path), f"cannot read it ({err.strerror})") from err
    with os.fdopen(descriptor, "rb") as stream:
        if os.fstat(stream.fileno()).st_size > limit:
            raise DamagedRealization(str(path), "it is too large to be read whole")
        return stream.read()


class FolderBackend:
    """A store folder (`<root>/store`, with `<root>/tmp` for staging): the first tier."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self.objects = self.root / "store"
        """One folder per derivation, holding one folder per realization."""
        self.tmp = self.root / "tmp"
        """Build, staging and trash folders (`<kind>-<pid>-...`), on the same file system."""
        self._paths: dict[RRef, Path] = {}
        self._paths_lock = threading.Lock()

    # -- the layout ---------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """The store folder."""
        return str(self.objects)

    @property
    def writable(self) -> bool:
        """A folder can be written (its permissions decide, when it is tried)."""
        return True

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
            with self._paths_lock:
                self._paths[rref] = path
        return path

    def has_realization(self, rref: RRef) -> bool:
        """True when the realization's folder is there (published, maybe damaged)."""
        return self.realization_path(rref).is_dir()

    def all_derivations(self) -> list[DRef]:
        """Every derivation folder, sorted by dref."""
        try:
            entries = sorted(os.listdir(self.objects))
        except FileNotFoundError:
            return []
        return [DRef(f"dref:{entry}") for entry in entries if is_dref(f"dref:{entry}")]

    # -- reading (StoreBackend) ---------------------------------------------------------------

    def config_bytes(self, dref: DRef) -> bytes | None:
        """The stored config's bytes, unchecked; None when absent."""
        path = self.derivation_path(dref) / CONFIG_FILE
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            raise os_error(err, path, "cannot read a config") from err

    def realizations_of(self, dref: DRef) -> list[RRef]:
        """Every published realization of a derivation, sorted by rref."""
        derivation_hash, name = parse_dref(dref)
        try:
            entries = os.listdir(self.derivation_path(dref))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(
            make_rref(entry, derivation_hash, name) for entry in entries if _is_hash_name(entry)
        )

    def manifest_bytes(self, rref: RRef) -> bytes | None:
        """A realization's manifest, unchecked; None when absent (DamagedRealization when it
        is too large to be one)."""
        return _read_at_most(self.realization_path(rref) / MANIFEST_FILE, MANIFEST_MAX_BYTES)

    def build_record_bytes(self, rref: RRef) -> bytes | None:
        """A realization's build record, unchecked; None when absent or not a file. One too
        large to be a record is returned cut short (so it fails to parse)."""
        path = self.realization_path(rref) / BUILD_FILE
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(descriptor, "rb") as stream:
            return stream.read(BUILD_RECORD_MAX_BYTES + 1)

    def entry_path(self, rref: RRef, path: str) -> Path:
        """Where an entry is on disk; KeyError for a path that would leave the realization."""
        if not is_safe_entry_path(path):
            raise KeyError(path)
        return self.realization_path(rref) / path

    def read_entry(self, rref: RRef, path: str) -> bytes:
        """A file's bytes or a link's target text, unchecked; KeyError when absent."""
        where = self.entry_path(rref, path)
        try:
            descriptor = os.open(where, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            raise KeyError(path) from None
        except OSError as err:
            if err.errno != errno.ELOOP:
                raise DamagedRealization(str(where), f"cannot read it ({err.strerror})") from err
            return os.readlink(where).encode("utf-8", "surrogateescape")
        with os.fdopen(descriptor, "rb") as stream:
            return stream.read()

    def copy_entry(self, rref: RRef, path: str, destination: Path) -> None:
        """Copy one file entry to `destination` (a link is copied as a link, never followed)."""
        where = self.entry_path(rref, path)
        import shutil

        try:
            shutil.copyfile(where, destination, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            raise KeyError(path) from None

    # -- writing (StoreBackend) ---------------------------------------------------------------

    def put_config(self, dref: DRef, config: bytes) -> None:
        """Write a derivation's folder with its config, once (read-only)."""
        folder = self.derivation_path(dref)
        if folder.is_dir():
            return
        staging = self.temporary_folder(f"drv-{os.getpid()}-")
        try:
            self.objects.mkdir(parents=True, exist_ok=True)
            (staging / CONFIG_FILE).write_bytes(config)
            os.chmod(staging / CONFIG_FILE, 0o444)
            self.publish_folder(staging, folder)
        except OSError as err:
            raise os_error(err, folder / CONFIG_FILE, "cannot store a config") from err
        finally:
            remove_tree(staging)

    def stage_derivation(self, prefix: str, config: bytes) -> Path:
        """A new derivation's folder made in `tmp/`, holding its config, for a build to be
        made inside: `publish_staged` then brings the derivation and its first realization
        into the store with one rename, instead of one for each."""
        staging = self.temporary_folder(prefix)
        try:
            write_new_file(staging / CONFIG_FILE, config)
        except OSError as err:
            remove_tree(staging)
            raise os_error(err, staging / CONFIG_FILE, "cannot store a config") from err
        return staging

    def publish_staged(self, dref: DRef, staging: Path, build: Path, name: str) -> bool:
        """Publish a finished, read-only build folder made inside `staging` (`stage_derivation`)
        as the realization `name` of `dref`: renamed to `name` there, and the staging folder to
        the derivation's folder. When that folder appeared meanwhile (another process added the
        derivation), False: the realization is left in the staging folder, as `name`, for the
        caller to publish into the derivation's folder."""
        try:
            os.rename(build, staging / name)  # in the same folder: its own mode does not matter
            try:
                os.rename(staging, self.derivation_path(dref))
            except FileNotFoundError:
                self.objects.mkdir(parents=True, exist_ok=True)  # a new store's first build
                os.rename(staging, self.derivation_path(dref))
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise os_error(err, self.derivation_path(dref), "cannot publish") from err
            return False
        return True

    def put_realization(self, dref: DRef, config: bytes, rref: RRef, folder: Path) -> None:
        """Copy a verified realization folder in, entry by entry as its manifest lists them,
        and publish the copy by one rename. One already present is left as it is."""
        import shutil

        self.put_config(dref, config)
        target = self.realization_path(rref)
        if target.is_dir():
            return
        staging = self.temporary_folder(f"put-{os.getpid()}-")
        try:
            copy = staging / target.name
            copy.mkdir()
            manifest, entries = published_entries(folder)
            for entry in entries:
                _copy_one(folder, copy, entry.kind, entry.path)
            if os.path.isfile(folder / BUILD_FILE) and not os.path.islink(folder / BUILD_FILE):
                shutil.copyfile(folder / BUILD_FILE, copy / BUILD_FILE)
            (copy / MANIFEST_FILE).write_bytes(manifest.data)
            self.publish_read_only(copy, target)
        except OSError as err:
            raise os_error(err, folder, f"cannot store {rref}") from err
        finally:
            remove_tree(staging)

    def remove_realization(self, rref: RRef) -> None:
        """Delete one realization (it disappears at once, by one rename)."""
        self.remove(self.realization_path(rref))

    # -- publication and removal --------------------------------------------------------------

    def temporary_folder(self, prefix: str) -> Path:
        """A new folder in `tmp/` (re-created if someone removed it), readable by all."""
        import tempfile  # here: a run whose blocks are all cached never needs it

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

    def publish_folder(self, source: Path, target: Path) -> bool:
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

    def publish_read_only(self, source: Path, target: Path) -> bool:
        """Make a finished folder read-only and rename it to `target` (see `publish_folder`)."""
        make_read_only(source)
        # rename(2) moves a folder to another parent only if the folder itself is writable
        # (its `..` entry changes), so its own write bit is cleared after the rename.
        mode = stat.S_IMODE(os.lstat(source).st_mode)
        os.chmod(source, mode | 0o200)
        if self.publish_folder(source, target):
            os.chmod(target, mode)
            return True
        return False

    def remove(self, path: Path) -> None:
        """Make a store folder disappear at once (one rename into `tmp/`), then delete it."""
        if not path.exists():
            return
        trash = self.temporary_folder(f"trash-{os.getpid()}-")
        if path.is_dir():
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) | 0o700)
        os.rename(path, trash / path.name)
        remove_tree(trash)

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

    def __repr__(self) -> str:
        return f"FolderBackend({str(self.root)!r})"


def disk_usage(path: Path) -> int:
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


def _copy_one(source: Path, target: Path, kind: str, path: str) -> None:
    """Copy one manifest entry from one realization folder to another (links as links)."""
    import shutil

    if kind == "dir":
        (target / path).mkdir()
    elif kind == "link":
        os.symlink(os.readlink(source / path), target / path)
    elif kind in ("file", "exec"):
        shutil.copyfile(source / path, target / path, follow_symlinks=False)
        os.chmod(target / path, 0o755 if kind == "exec" else 0o644)
