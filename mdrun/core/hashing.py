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


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks so large artifacts are not held in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_entries(root: Path, leave_out: Collection[str] = ()) -> list[str]:
    """One line per entry of the tree: kind, relative path, content digest; sorted.

    Names and layout take part (a renamed file changes the digest), and so does the exec bit.
    Symlinks are hashed by their target text, never followed, so a dangling link is fine.
    `leave_out` names top-level files that are not part of the tree (never nested ones).
    """
    entries: list[str] = []
    for folder, subfolders, files in os.walk(root, followlinks=False):
        relative_folder = Path(folder).relative_to(root)
        at_top = folder == str(root)
        for name in subfolders:
            path = Path(folder, name)
            relative = (relative_folder / name).as_posix()
            if path.is_symlink():
                entries.append(f"link {relative} {sha256_hex(os.readlink(path).encode())}")
            else:
                entries.append(f"dir {relative} -")
        for name in files:
            if at_top and name in leave_out:
                continue
            path = Path(folder, name)
            relative = (relative_folder / name).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                entries.append(f"link {relative} {sha256_hex(os.readlink(path).encode())}")
            elif stat.S_ISREG(info.st_mode):
                kind = "exec" if info.st_mode & stat.S_IXUSR else "file"
                entries.append(f"{kind} {relative} {file_sha256(path)}")
            else:
                entries.append(f"other {relative} -")
    entries.sort()
    return entries


def entries_text(entries: list[str]) -> bytes:
    """The bytes that a tree's digest is the SHA-256 of: one entry a line."""
    return "".join(f"{entry}\n" for entry in entries).encode("utf-8", "surrogateescape")


def tree_sha256(root: Path, leave_out: Collection[str] = ()) -> str:
    """The digest of a whole folder, from `tree_entries`."""
    return sha256_hex(entries_text(tree_entries(root, leave_out)))
