"""Write a document so that a crash leaves either the old file or the new one, never a mix.

Deciding whether to write at all (only when the text changed) is the caller's job.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from mdrun.errors import FileAccessError, Location


def write_atomically(path: Path, text: str | bytes) -> None:
    """Replace `path` with `text` (bytes, or a str written as UTF-8) in one rename.

    The new file is written beside the old one (same file system), flushed to disk, given the
    old file's permissions, then renamed over it; on any error the temporary file is removed
    and a `FileAccessError` names `path`. A symbolic link is followed, so the link stays and its
    target is replaced.
    """
    try:
        _replace(Path(os.path.realpath(path)), text)
    except OSError as err:
        raise FileAccessError(f"cannot write it: {err.strerror}", Location(str(path))) from err


def _replace(target: Path, text: str | bytes) -> None:
    temporary = target.with_name(f".{target.name}.mdrun-{os.urandom(4).hex()}.tmp")
    # 0o666 lets the umask decide, as for any new file; an existing file's mode is copied below.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(temporary, target.stat().st_mode & 0o7777)
            data = memoryview(text.encode("utf-8") if isinstance(text, str) else text)
            written = 0
            while written < len(data):
                written += os.write(descriptor, data[written:])
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (not possible on every platform, hence best effort)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
