"""What makes a realization trustworthy: the manifest its reference hashes, and checks against it.

A realization's hash is the SHA-256 of its manifest: one line per file, folder and link (kind,
path, content digest), sorted. The manifest is kept in the realization (`__manifest__.txt`), so a
reader checks that one small file against the reference, then any file it reads against the
manifest, without hashing the whole tree again. Every file is in the manifest except two: the
manifest itself and the build record (`__build__.json`: when and where it was built), which is
trusted only for its type (a small flat JSON object of numbers and strings, used to order
realizations, never run nor shown as a result). This module reads paths and bytes; the store
decides what to do with a damaged realization.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mdrun.core.hashing import KnownDigests, entries_text, sha256_hex, tree_entries
from mdrun.errors import DamagedRealization, StoreError

MANIFEST_FILE = "__manifest__.txt"
BUILD_FILE = "__build__.json"
UNHASHED_NAMES = frozenset({MANIFEST_FILE, BUILD_FILE})
"""The only top-level files outside a realization's manifest."""
BUILD_RECORD_MAX_BYTES = 4096
"""A build record is a few numbers and names; anything larger is not one."""
MANIFEST_MAX_BYTES = 64 << 20
"""A manifest larger than this (about 400,000 files) is refused rather than read."""

BuildRecordValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Manifest:
    """The entries of a realization, as its reference hashes them."""

    data: bytes
    """The manifest's bytes (their SHA-256 starts with the realization's hash)."""
    files: Mapping[str, str]
    """Relative path of each regular file → its SHA-256."""

    @property
    def realization_hash(self) -> str:
        """The hash part of the reference this manifest stands for."""
        return sha256_hex(self.data)[:32]


def manifest_of_tree(
    folder: Path, added: Mapping[str, bytes] | None = None, known: KnownDigests | None = None
) -> Manifest:
    """The manifest of a folder as it is on disk now (hashes every file), with the top-level
    files `added` (name: content, hashed from memory) that the caller is about to write.
    `known`: digests of files hashed before that may be used (when publishing, never when
    checking a realization)."""
    entries = tree_entries(folder, UNHASHED_NAMES, known)
    if added:
        present = {entry.partition(" ")[2].rpartition(" ")[0] for entry in entries}
        for name, data in added.items():
            if name in present or name in UNHASHED_NAMES or "/" in name:
                raise StoreError(f"{folder}: the build cannot be given a file {name!r}")
            entries.append(f"file {name} {sha256_hex(data)}")
        entries.sort()
    for entry in entries:
        if "\n" in entry or "\r" in entry:
            raise StoreError(f"{folder}: a file name holds a line break: {entry!r}")
    return parse_manifest(entries_text(entries))


def parse_manifest(data: bytes) -> Manifest:
    """Read a manifest's lines; ValueError when they are not manifest lines."""
    files: dict[str, str] = {}
    for line in manifest_lines(data):
        kind, _, rest = line.partition(" ")
        path, _, digest = rest.rpartition(" ")
        if kind not in ("file", "exec", "link", "dir", "other") or not path:
            raise ValueError(f"not a manifest line: {line[:80]!r}")
        if kind in ("file", "exec"):
            files[path] = digest
    return Manifest(data, files)


def manifest_lines(data: bytes) -> list[str]:
    """The entries of a manifest (ValueError when it does not end with a newline)."""
    text = data.decode("utf-8", "surrogateescape")
    if text and not text.endswith("\n"):
        raise ValueError("the manifest does not end with a newline")
    return text[:-1].split("\n") if text else []


def load_manifest(folder: Path, realization_hash: str) -> Manifest:
    """The manifest kept in a realization folder, checked against the realization's hash."""
    path = folder / MANIFEST_FILE
    try:
        with path.open("rb") as stream:
            # (read(MAX) would allocate MAX bytes first: check the size, then read it all)
            if os.fstat(stream.fileno()).st_size > MANIFEST_MAX_BYTES:
                raise DamagedRealization(str(path), "it is too large to be a manifest")
            data = stream.read()
    except FileNotFoundError:
        raise DamagedRealization(str(path), "the manifest is missing") from None
    except OSError as err:
        raise DamagedRealization(str(path), f"cannot read it ({err.strerror})") from err
    return check_manifest(data, realization_hash, str(path))


def check_manifest(data: bytes, realization_hash: str, where: str) -> Manifest:
    """A manifest's bytes, checked against the realization's hash (`where` names them in errors)."""
    if len(data) > MANIFEST_MAX_BYTES:
        raise DamagedRealization(where, "it is too large to be a manifest")
    if sha256_hex(data)[:32] != realization_hash:
        raise DamagedRealization(where, "it does not hash to the realization's reference")
    try:
        return parse_manifest(data)
    except ValueError as err:
        raise DamagedRealization(where, str(err)) from err


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One line of a manifest: what to create at `path` to rebuild the realization."""

    kind: str
    """"dir", "file", "exec" (a file with its exec bit), "link", or "other" (not rebuildable)."""
    path: str
    """Its path inside the realization, with "/" between folders."""
    digest: str
    """The SHA-256 of a file's content or a link's target text; "-" for a folder."""


def manifest_entries(manifest: Manifest) -> list[ManifestEntry]:
    """The entries a manifest lists, folders before what they hold."""
    entries = []
    for line in manifest_lines(manifest.data):
        kind, _, rest = line.partition(" ")
        path, _, digest = rest.rpartition(" ")
        entries.append(ManifestEntry(kind, path, digest))
    entries.sort(key=lambda entry: (entry.kind != "dir", entry.path))
    return entries


def is_safe_entry_path(path: str) -> bool:
    """True for a relative path that stays inside the realization (no "..", no empty part)."""
    parts = path.split("/")
    return not path.startswith("/") and all(part not in ("", ".", "..") for part in parts)


def check_digest(data: bytes, expected: str | None, where: str) -> bytes:
    """`data`, if its SHA-256 is `expected` (None: the manifest does not list it)."""
    if expected is None:
        raise DamagedRealization(where, "the realization's manifest does not list it")
    if sha256_hex(data) != expected:
        raise DamagedRealization(where, "its content does not match its recorded digest")
    return data


def tree_problems(folder: Path, manifest: Manifest) -> list[str]:
    """How a realization's files differ from its manifest (hashes every file); [] when sound."""
    recorded = set(manifest_lines(manifest.data))
    found = set(tree_entries(folder, UNHASHED_NAMES))
    problems = []
    recorded_paths = {_entry_path(entry): entry for entry in recorded - found}
    found_paths = {_entry_path(entry): entry for entry in found - recorded}
    for path in sorted(recorded_paths.keys() | found_paths.keys()):
        if path not in found_paths:
            problems.append(f"{path}: missing")
        elif path not in recorded_paths:
            problems.append(f"{path}: not in the manifest")
        else:
            problems.append(f"{path}: changed")
    build = folder / BUILD_FILE
    if build.exists() and build_record(build) is None:
        problems.append(f"{BUILD_FILE}: not a build record")
    return problems


def _entry_path(entry: str) -> str:
    return entry.partition(" ")[2].rpartition(" ")[0]


def build_record(path: Path) -> dict[str, BuildRecordValue] | None:
    """A build record file read back, if it is one (see `parse_build_record`); else None."""
    if path.is_symlink():
        return None
    try:
        with path.open("rb") as stream:
            data = stream.read(BUILD_RECORD_MAX_BYTES + 1)
    except OSError:
        return None
    return parse_build_record(data)


def parse_build_record(data: bytes) -> dict[str, BuildRecordValue] | None:
    """A build record's bytes read back, if they are one: a small flat object of scalars."""
    try:
        loaded = json.loads(data) if len(data) <= BUILD_RECORD_MAX_BYTES else None
    except ValueError:
        return None
    if not isinstance(loaded, dict):
        return None
    for value in loaded.values():
        if value is not None and not isinstance(value, str | int | float | bool):
            return None
    return loaded


def published_entries(folder: Path) -> tuple[Manifest, list[ManifestEntry]]:
    """The manifest kept in a realization folder and its entries, for a tier storing them.

    Raises StoreError when an entry cannot be stored (a path leaving the folder, a special file)."""
    try:
        manifest = parse_manifest((folder / MANIFEST_FILE).read_bytes())
    except (OSError, ValueError) as err:
        raise StoreError(f"{folder}: no readable manifest ({err})") from err
    entries = manifest_entries(manifest)
    for entry in entries:
        if not is_safe_entry_path(entry.path):
            raise StoreError(f"{folder}: the manifest names a path outside it: {entry.path!r}")
        if entry.kind not in ("dir", "file", "exec", "link"):
            raise StoreError(f"{folder}: {entry.path}: a {entry.kind} entry cannot be stored")
    return manifest, entries
