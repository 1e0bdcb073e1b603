"""Files written whole and trees kept read-only: mdrun's one atomic writer, and the store's modes.

Everything mdrun writes outside a realization (a document, an export, an image, a record of
the store, a root link, a downloaded file) appears whole or not at all: it is made under a
temporary name beside its target (same file system) and renamed over it (`replaced_atomically`,
and `write_atomically` for bytes and text). Realizations are published read-only and removed
again (`make_read_only`, `remove_tree`); `dirrw` serves realizers that copy published files and
want to change the copy.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from mdrun.errors import FileAccessError, Location

__all__ = [
    "dirrw",
    "make_read_only",
    "make_writable",
    "remove_tree",
    "replaced_atomically",
    "temporary_beside",
    "write_atomically",
    "write_new_file",
]


@contextlib.contextmanager
def temporary_beside(path: Path) -> Iterator[Path]:
    """A fresh name beside `path` for the caller to create a file or link at; whatever is
    there when the block ends is removed (see `replaced_atomically` to keep it)."""
    temporary = path.with_name(f".{path.name}.mdrun-{os.urandom(4).hex()}.tmp")
    try:
        yield temporary
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


@contextlib.contextmanager
def replaced_atomically(path: Path, *, durable: bool = False) -> Iterator[Path]:
    """A fresh name beside `path` for the caller to create a file or link at; when the block
    ends without error it is renamed over `path` in one step, else removed.

    `durable` flushes the new file and the rename to disk first (for a user's document).
    Errors are the OSErrors of the file system: callers say what they were writing."""
    with temporary_beside(path) as temporary:
        yield temporary
        if durable:
            _sync(temporary)
        os.replace(temporary, path)
    if durable:
        _sync(path.parent)


def write_atomically(path: Path, text: str | bytes) -> None:
    """Replace `path` with `text` (bytes, or a str written as UTF-8) in one rename, durably.

    The new file gets the old file's permissions (a new one: the umask's); a symbolic link is
    followed, so the link stays and its target is replaced. Deciding whether to write at all
    (only when the text changed) is the caller's job. A `FileAccessError` names `path`."""
    target = Path(os.path.realpath(path))
    try:
        with replaced_atomically(target, durable=True) as temporary:
            # 0o666 lets the umask decide, as for any new file; an existing file's mode is kept.
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(temporary, target.stat().st_mode & 0o7777)
                data = memoryview(text.encode("utf-8") if isinstance(text, str) else text)
                written = 0
                while written < len(data):
                    written += os.write(descriptor, data[written:])
            finally:
                os.close(descriptor)
    except OSError as err:
        raise FileAccessError(f"cannot write it: {err.strerror}", Location(str(path))) from err


def _sync(path: Path) -> None:
    """Flush a file's or a folder's entries to disk (best effort: not every platform can)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_new_file(path: Path, data: bytes, mode: int = 0o444) -> None:
    """Create `path` (it must not exist) holding `data`, with `mode` from the start: a store's
    record is written read-only in one go, not written, then made read-only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
    except OSError as err:
        err.filename = err.filename or str(path)  # (os.write does not say which file)
        raise
    finally:
        os.close(descriptor)


def make_read_only(root: Path) -> None:
    """Clear every write bit under `root` (files and folders), keeping read and exec bits
    (an entry made read-only already is left as it is)."""
    for folder, subfolders, files in os.walk(root, topdown=False):
        for name in files + subfolders:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o222:
                os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o222)
    os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) & ~0o222)


def make_writable(root: Path) -> None:
    """Give the owner write access again (needed before deleting a read-only tree)."""
    if not os.path.lexists(root):
        return
    if not root.is_dir() or root.is_symlink():
        info = os.lstat(root)
        if not (stat.S_ISREG(info.st_mode) and info.st_nlink > 1):
            os.chmod(root, stat.S_IMODE(info.st_mode) | 0o200)
        return
    os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) | 0o700)
    for folder, subfolders, files in os.walk(root):
        for name in subfolders + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            # A file with other hard links is shared with another realization (an unchanged
            # snapshot file): it stays read-only there; deleting it needs only its folder.
            shared = stat.S_ISREG(info.st_mode) and info.st_nlink > 1
            if not stat.S_ISLNK(info.st_mode) and not shared:
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



def dirrw(path: str | os.PathLike[str]) -> None:
    """Give the owner write access to a copied tree, so a build can work inside the copy.

    `shutil.copytree` keeps the read-only modes of a published realization; configure scripts
    and `make` then fail to write. Symlinks are left alone (their targets are not ours).
    """
    make_writable(Path(path))
