"""GC roots recorded on use: which realizations each document used at its last run.

A run writes one record per document, `<store>/roots/<key>.json` (the key is the first 32 hex
digits of the SHA-256 of the document's absolute path), holding that path and the rrefs the
run used: `{"document": "/abs/doc.md", "rrefs": ["rref:...", ...]}`, replaced whole at each
run. `mdrun gc` keeps the rrefs of every record whose document still exists, and deletes
(releases) the records of documents that are gone, as pre-commit's `mark_config_used` does for
configs. This module knows paths and rrefs; what a document is, and which blocks it runs, is
the evaluator's business.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mdrun.core.files import replaced_atomically
from mdrun.core.hashing import canonical_json
from mdrun.core.jsonvalue import JSONObject, JSONValue
from mdrun.core.refs import RRef, is_rref
from mdrun.core.store import Store

__all__ = [
    "ROOTS_FOLDER",
    "RootRecord",
    "gc_roots",
    "read_root_records",
    "record_roots",
    "recorded_roots",
    "release_all_roots",
    "roots_record_path",
]

ROOTS_FOLDER = "roots"


@dataclass(frozen=True, slots=True)
class RootRecord:
    """What one document used at its last run."""

    path: Path
    """The record's file in the store."""
    document: Path
    """The document's absolute path."""
    rrefs: tuple[RRef, ...]
    """The realizations its last run used."""


def _absolute(document: Path | str) -> Path:
    return Path(os.path.abspath(document))


def roots_record_path(store: Store, document: Path | str) -> Path:
    """Where the store keeps the roots of a document."""
    key = hashlib.sha256(str(_absolute(document)).encode()).hexdigest()[:32]
    return store.root / ROOTS_FOLDER / f"{key}.json"


def record_roots(store: Store, document: Path | str, rrefs: Iterable[RRef]) -> Path:
    """Record (replacing the last record) the realizations a run of `document` used.

    Raises OSError when the store cannot be written (a read-only cache: the caller decides)."""
    path = roots_record_path(store, document)
    used: list[JSONValue] = [str(rref) for rref in sorted(set(rrefs))]
    data: JSONObject = {"document": str(_absolute(document)), "rrefs": used}
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(path) as temporary:
        temporary.write_bytes(canonical_json(data))
    return path


def read_root_records(store: Store) -> list[RootRecord]:
    """Every readable record, sorted by document; one that is not a record is left out."""
    folder = store.root / ROOTS_FOLDER
    try:
        names = sorted(name for name in os.listdir(folder) if name.endswith(".json"))
    except FileNotFoundError:
        return []
    records = []
    for name in names:
        record = _read_record(folder / name)
        if record is not None:
            records.append(record)
    return sorted(records, key=lambda record: record.document)


def _read_record(path: Path) -> RootRecord | None:
    try:
        loaded = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(loaded, dict):
        return None
    document, rrefs = loaded.get("document"), loaded.get("rrefs")
    if not isinstance(document, str) or not os.path.isabs(document):
        return None
    if not isinstance(rrefs, list) or not all(is_rref(rref) for rref in rrefs):
        return None
    return RootRecord(path, Path(document), tuple(RRef(rref) for rref in rrefs))


def recorded_roots(store: Store, *, release: bool = False) -> list[RRef]:
    """The realizations that recorded documents which still exist used at their last run.

    With `release`, the records of documents that no longer exist are deleted."""
    kept: set[RRef] = set()
    for record in read_root_records(store):
        if record.document.exists():
            kept.update(record.rrefs)
        elif release:
            with contextlib.suppress(FileNotFoundError):
                record.path.unlink()
    return sorted(kept)


def release_all_roots(store: Store) -> int:
    """Delete every record (when the store is emptied); how many there were."""
    records = read_root_records(store)
    for record in records:
        with contextlib.suppress(FileNotFoundError):
            record.path.unlink()
    return len(records)


def gc_roots(store: Store, *, keep_recorded: bool = True, release: bool = False) -> list[RRef]:
    """The recorded roots a collection keeps: those of documents that still exist (`release`
    deletes the records of the others). `keep_recorded=False` keeps none: the store is being
    emptied, and `release` deletes every record."""
    if keep_recorded:
        return recorded_roots(store, release=release)
    if release:
        release_all_roots(store)
    return []
