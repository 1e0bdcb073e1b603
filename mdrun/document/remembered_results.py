"""Block results this process found or stored, remembered while their derivation is unchanged.

A long-lived process (the per-user server, `watch`) looks the same blocks up run after run, and
each lookup lists the derivation's folder and reads and checks two records: for a document of a
thousand blocks, most of an edit's time. A published realization never changes, so what was
read and checked once can be used again as long as the derivation's folder is the same: its
inode, link count and modification time change when a realization is published into it or
removed from it (by `mdrun gc`, by a damaged one being discarded), in any process.

Only a process that asks for it remembers (`keeping_results`, around the server's and `watch`'s
loops): a one-shot run looks each block up once, and a file damaged since it was read is then
noticed at the next run.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mdrun.core.refs import DRef, RRef
from mdrun.core.store import Store
from mdrun.document.record_files import STATE_FILE

if TYPE_CHECKING:
    from mdrun.document.results import StoredResult

MAX_RESULTS = 20_000
"""At most this many results are remembered (the least recently used go first)."""
MAX_OUTPUT_ITEMS = 64
"""A result with more outputs than this is not remembered (it is read again when needed)."""

_Signature = tuple[int, int, int]
_lock = threading.Lock()
_results: OrderedDict[tuple[str, DRef], tuple[_Signature, StoredResult]] = OrderedDict()
_records: OrderedDict[tuple[str, RRef, str], dict[str, Any]] = OrderedDict()
_keepers = [0]
"""How many `keeping_results` scopes are open (nothing is remembered while none is)."""


@contextlib.contextmanager
def keeping_results() -> Iterator[None]:
    """Remember results while this scope is open (what was remembered goes when the last
    scope closes)."""
    with _lock:
        _keepers[0] += 1
    try:
        yield
    finally:
        with _lock:
            _keepers[0] -= 1
            if not _keepers[0]:
                _results.clear()
                _records.clear()


def _signature(store: Store, dref: DRef) -> _Signature | None:
    """What says that the derivation's folder is as it was (None: it is gone)."""
    try:
        status = os.stat(store.derivation_path(dref))
    except OSError:
        return None
    return (status.st_ino, status.st_nlink, status.st_mtime_ns)


def recall(store: Store, dref: DRef) -> StoredResult | None:
    """The result remembered for `dref`, if its derivation's folder has not changed since."""
    key = (str(store.root), dref)
    with _lock:
        entry = _results.get(key) if _keepers[0] else None
    if entry is None:
        return None
    recorded, stored = entry
    if _signature(store, dref) != recorded:
        with _lock:
            _results.pop(key, None)
        return None
    with _lock:
        _results.move_to_end(key)
    return stored if stored.store is store else replace(stored, store=store)


def signature(store: Store, dref: DRef) -> _Signature | None:
    """What says that the derivation's folder is as it is now: take it before looking in it,
    and hand it to `remember` (a realization published or removed meanwhile then makes the
    memory stale at once). None: the folder is gone, or nothing is remembered now."""
    return _signature(store, dref) if _keepers[0] else None


def remember(
    store: Store,
    dref: DRef,
    stored: StoredResult,
    state: Mapping[str, Any] | None = None,
    seen: _Signature | None = None,
) -> None:
    """Remember the result that a lookup found (`seen`: the folder's `signature` before it
    looked) or a build published (with its state record, when the caller has it read)."""
    if not _keepers[0] or len(stored.outputs) > MAX_OUTPUT_ITEMS:
        return
    taken = _signature(store, dref) if seen is None else seen
    if taken is None:
        return
    with _lock:
        _results[(str(store.root), dref)] = (taken, stored)
        _results.move_to_end((str(store.root), dref))
        while len(_results) > MAX_RESULTS:
            _results.popitem(last=False)
    if state is not None:
        remember_record(store, stored.rref, STATE_FILE, dict(state))


def recall_record(store: Store, rref: RRef, name: str) -> dict[str, Any] | None:
    """A small record of a realization read and checked before (realizations never change)."""
    with _lock:
        return _records.get((str(store.root), rref, name)) if _keepers[0] else None


def remember_record(store: Store, rref: RRef, name: str, record: dict[str, Any]) -> None:
    """Remember a record once read and checked."""
    with _lock:
        if not _keepers[0]:
            return
        _records[(str(store.root), rref, name)] = record
        while len(_records) > MAX_RESULTS:
            _records.popitem(last=False)
