"""Entries fetched on demand: a substituted realization may leave some files on its tier.

A session snapshot can be large, and is needed only when a later block must run from it; a
store may name such files (`Store.fetch_on_demand`) and `substitute` then fetches a realization
without them. What it left out is written down first, in `lazy/<rref>.json` under the store
root: the tier's location and each entry's digest (the realization's checked manifest records
it too). `fetch_left_out` brings one in later, checked, into the realization's folder; until
then the realization counts as sound without it (`missing_is_expected`).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun.core.hashing import file_sha256
from mdrun.core.refs import RRef
from mdrun.errors import DamagedRealization

if TYPE_CHECKING:
    from mdrun.core.backend import StoreBackend
    from mdrun.core.store import Store

LAZY_FOLDER = "lazy"


@dataclass(frozen=True, slots=True)
class LeftOut:
    """What a substituted realization was fetched without."""

    tier: str
    """The location of the tier that holds the entries."""
    entries: dict[str, str]
    """Each left-out entry's path → its SHA-256."""


def _record_path(store: Store, rref: RRef) -> Path:
    return store.root / LAZY_FOLDER / f"{rref.removeprefix('rref:')}.json"


def record_left_out(store: Store, rref: RRef, tier: str, entries: dict[str, str]) -> None:
    """Write down what a realization is fetched without (before it is published)."""
    path = _record_path(store, rref)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
    temporary.write_text(json.dumps({"tier": tier, "entries": entries}, sort_keys=True))
    os.replace(temporary, path)


def left_out(store: Store, rref: RRef) -> LeftOut | None:
    """What a realization still lacks locally; None when it was fetched whole (or built)."""
    try:
        data = json.loads(_record_path(store, rref).read_text())
    except (FileNotFoundError, ValueError):
        return None
    entries = data.get("entries") if isinstance(data, dict) else None
    tier = data.get("tier") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not isinstance(tier, str):
        return None
    folder = store.realization_path(rref)
    missing = {
        str(name): str(digest)
        for name, digest in entries.items()
        if not os.path.lexists(folder / str(name))
    }
    return LeftOut(tier, missing) if missing else None


def missing_is_expected(store: Store, rref: RRef, path: str) -> bool:
    """Whether a file of the realization is absent on purpose (left on its tier)."""
    record = left_out(store, rref)
    return record is not None and path in record.entries


def forget_left_out(store: Store, rref: RRef) -> None:
    """Drop the record (the realization is whole again, or gone)."""
    with contextlib.suppress(FileNotFoundError):
        _record_path(store, rref).unlink()


def tier_named(store: Store, location: str) -> StoreBackend | None:
    """The store's substituter at `location`, if it still has one."""
    return next((tier for tier in store.substituters if tier.location == location), None)


def fetch_left_out(store: Store, rref: RRef, path: str) -> bool:
    """Bring a left-out entry into the realization's folder, checked against the manifest.

    True when it is there (now or already); False when it cannot be had (no record, the tier
    is gone from the configuration); DamagedRealization (naming the tier) when what the tier
    holds does not match."""
    folder = store.realization_path(rref)
    if os.path.lexists(folder / path):
        return True
    record = left_out(store, rref)
    expected = store.recorded_digest(rref, path)
    if record is None or path not in record.entries or expected is None:
        return False
    tier = tier_named(store, record.tier)
    if tier is None:
        return False
    where = f"{tier.location}: {rref}/{path}"
    staging = store.local.temporary_folder(f"fetch-{os.getpid()}-")
    try:
        download = staging / "entry"
        try:
            tier.copy_entry(rref, path, download)
        except KeyError:
            raise DamagedRealization(where, "the tier does not hold it", rref) from None
        if file_sha256(download) != expected:
            raise DamagedRealization(where, "its content does not match its recorded digest", rref)
        os.chmod(download, 0o444)
        _move_into(download, folder / path)
    finally:
        with contextlib.suppress(OSError):
            for leftover in staging.iterdir():
                leftover.unlink()
            staging.rmdir()
    if left_out(store, rref) is None:
        forget_left_out(store, rref)
    return True


def _move_into(source: Path, target: Path) -> None:
    """Rename a checked file into a read-only realization folder (opened for the rename)."""
    parent = target.parent
    mode = stat.S_IMODE(os.stat(parent).st_mode)
    os.chmod(parent, mode | 0o200)
    try:
        os.replace(source, target)
    finally:
        os.chmod(parent, mode)
