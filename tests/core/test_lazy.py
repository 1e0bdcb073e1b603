"""Files fetched on demand: a substituted realization leaves them on its tier until needed,
counts as sound meanwhile, and gets them later checked against its manifest."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mdrun.core.config import Config
from mdrun.core.lazy import fetch_left_out, left_out
from mdrun.core.refs import RRef, rref_to_dref
from mdrun.core.remote import FsspecBackend
from mdrun.core.store import Store
from mdrun.core.substitute import fetch_realization, push_realization
from mdrun.core.verify import verify_store
from mdrun.errors import DamagedRealization, StoreError

BIG = bytes(range(256)) * 400


def pushed(tmp_path: Path) -> tuple[FsspecBackend, RRef]:
    """A realization with a small and a big file, pushed from a store of its own."""
    source = Store.initialize(tmp_path / "source")
    dref = source.add_derivation(Config({"name": "block", "code": "x = 1"}))
    folder = source.new_build_folder(dref)
    (folder / "small").write_text("outputs")
    (folder / "big").write_bytes(BIG)
    rref = source.publish_realization(dref, {}, folder)
    cache = FsspecBackend(f"memory://lazy-{uuid.uuid4().hex}")
    push_realization(source, cache, rref)
    return cache, rref


def reader(tmp_path: Path, cache: FsspecBackend) -> Store:
    store = Store.initialize(tmp_path / "reader", [cache])
    store.fetch_on_demand = frozenset({"big"})
    return store


def test_a_left_out_file_is_not_downloaded_and_the_realization_counts_as_sound(
    tmp_path: Path,
) -> None:
    cache, rref = pushed(tmp_path)
    store = reader(tmp_path, cache)
    fetch_realization(store, cache, rref)
    assert not (store.realization_path(rref) / "big").exists()
    assert store.read_file(rref, "small") == b"outputs"
    assert [path for _, path, _ in cache.downloads] == ["context.json", "small"]
    assert store.realization_problems(rref) == []
    assert verify_store(store).damaged == []
    record = left_out(store, rref)
    assert record is not None and record.tier == cache.location
    assert set(record.entries) == {"big"}


def test_a_left_out_file_is_fetched_checked_when_needed(tmp_path: Path) -> None:
    cache, rref = pushed(tmp_path)
    store = reader(tmp_path, cache)
    fetch_realization(store, cache, rref)
    assert fetch_left_out(store, rref, "big")
    assert (store.realization_path(rref) / "big").read_bytes() == BIG
    assert left_out(store, rref) is None
    assert store.realization_problems(rref) == []
    assert cache.downloads[-1][1:] == ("big", len(BIG))


def test_a_left_out_file_that_does_not_match_is_refused_naming_the_cache(tmp_path: Path) -> None:
    cache, rref = pushed(tmp_path)
    store = reader(tmp_path, cache)
    fetch_realization(store, cache, rref)
    digest = store.recorded_digest(rref, "big")
    blob = f"{cache.root}/blobs/{digest}"
    cache.fs.pipe_file(blob, BIG[:-1] + b"\x00")
    with pytest.raises(DamagedRealization, match=f"{cache.location}: .*big: its content"):
        fetch_left_out(store, rref, "big")
    assert not (store.realization_path(rref) / "big").exists()


def test_without_its_cache_a_left_out_file_cannot_be_had(tmp_path: Path) -> None:
    cache, rref = pushed(tmp_path)
    store = reader(tmp_path, cache)
    fetch_realization(store, cache, rref)
    store.substituters.clear()
    assert not fetch_left_out(store, rref, "big")


def test_pushing_a_realization_that_lacks_a_left_out_file_needs_a_cache_that_holds_it(
    tmp_path: Path,
) -> None:
    cache, rref = pushed(tmp_path)
    store = reader(tmp_path, cache)
    fetch_realization(store, cache, rref)
    push_realization(store, cache, rref)  # the cache it came from holds it: nothing to do
    other = FsspecBackend(f"memory://lazy-other-{uuid.uuid4().hex}")
    with pytest.raises(StoreError, match="big is not in the local store"):
        push_realization(store, other, rref)
    assert other.realizations_of(rref_to_dref(rref)) == []
