"""Content hashing: canonical JSON for configs, a canonical tree digest for realizations.

Both are written down here once, because every reference in the store depends on them:
changing either changes every hash (bump `STORE_VERSION` in `store.py` if you do). Every file
of a tree takes part, whatever its name; only the caller may leave out named top-level files
(the store leaves out its own records of a realization, see `integrity`).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Collection
from pathlib import Path

from mdrun.core.jsonvalue import JSONValue

_CHUNK = 1 << 20


def canonical_json(value: JSONValue) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: key order never changes a hash."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """The SHA-256 hex digest of some bytes."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, read in chunks so large artifacts are not held in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


FileIdentity = tuple[int, int, int, int]
"""What identifies a file's content without reading it: device, inode, size, modification
time (nanoseconds)."""
SETTLED_NANOSECONDS = 2_500_000_000
"""A file modified this recently may be modified again within the same tick of the file
system's clock (which would not change its identity): its digest is not remembered."""


class KnownDigests:
    """The digests of files this process hashed, by identity (`FileIdentity`), so that a file
    linked into a new build from a realization already hashed (a snapshot's unchanged
    variables, linked by the next snapshot) is not read again. For publishing only: a check of
    a realization reads every byte."""

    def __init__(self, limit: int = 1_000_000) -> None:
        self.limit = limit
        self._digests: dict[FileIdentity, str] = {}

    def file_sha256(self, path: str, info: os.stat_result) -> str:
        """The file's SHA-256, remembered if the file has settled."""
        identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        digest = self._digests.get(identity)
        if digest is None:
            digest = file_sha256(path)
            if time.time_ns() - info.st_mtime_ns > SETTLED_NANOSECONDS:
                if len(self._digests) >= self.limit:
                    self._digests.clear()
                self._digests[identity] = digest
        return digest


def tree_entries(
    root: Path, leave_out: Collection[str] = (), known: KnownDigests | None = None
) -> list[str]:
    """One line per entry of the tree: kind, relative path, content digest; sorted.

    Names and layout take part (a renamed file changes the digest), and so does the exec bit.
    Symlinks are hashed by their target text, never followed, so a dangling link is fine.
    `leave_out` names top-level files that are not part of the tree (never nested ones).
    `known`: digests of files already hashed that may be used (see `KnownDigests`).
    """
    entries: list[str] = []
    top = str(Path(root))
    for folder, subfolders, files in os.walk(top, followlinks=False):
        at_top = folder == top
        prefix = "" if at_top else os.path.relpath(folder, top).replace(os.sep, "/") + "/"
        for name in subfolders:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                entries.append(f"link {prefix}{name} {sha256_hex(os.readlink(path).encode())}")
            else:
                entries.append(f"dir {prefix}{name} -")
        for name in files:
            if at_top and name in leave_out:
                continue
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                entries.append(f"link {prefix}{name} {sha256_hex(os.readlink(path).encode())}")
            elif stat.S_ISREG(info.st_mode):
                kind = "exec" if info.st_mode & stat.S_IXUSR else "file"
                digest = file_sha256(path) if known is None else known.file_sha256(path, info)
                entries.append(f"{kind} {prefix}{name} {digest}")
            else:
                entries.append(f"other {prefix}{name} -")
    entries.sort()
    return entries


def entries_text(entries: list[str]) -> bytes:
    """The bytes that a tree's digest is the SHA-256 of: one entry a line."""
    return "".join(f"{entry}\n" for entry in entries).encode("utf-8", "surrogateescape")


def tree_sha256(root: Path, leave_out: Collection[str] = ()) -> str:
    """The digest of a whole folder, from `tree_entries`."""
    return sha256_hex(entries_text(tree_entries(root, leave_out)))
