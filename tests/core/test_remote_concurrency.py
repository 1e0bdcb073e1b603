"""Pushers and readers of one cache at once: a reader lists only whole realizations, and
fetches each one it lists, verified, however the pushes interleave."""

from __future__ import annotations

import threading
from pathlib import Path

from mdrun.core.config import Config
from mdrun.core.refs import RRef, rref_to_dref
from mdrun.core.remote import FsspecBackend
from mdrun.core.store import Store
from mdrun.core.substitute import fetch_realization, push_realization

PUSHERS = 4
REALIZATIONS = 6


def realizations(root: Path, pusher: int) -> tuple[Store, list[RRef]]:
    """A store with realizations of shared derivations (the pushers collide on them), each
    with a large file so that its upload takes a while."""
    store = Store.initialize(root)
    rrefs = []
    for index in range(REALIZATIONS):
        dref = store.add_derivation(Config({"name": f"block{index}", "code": str(index)}))
        folder = store.new_build_folder(dref)
        (folder / "outputs.json").write_text(f"{pusher}-{index}")
        (folder / "data.bin").write_bytes(bytes([pusher, index]) * 200_000)
        rrefs.append(store.publish_realization(dref, {}, folder))
    return store, rrefs


def test_concurrent_pushers_and_a_reader_never_see_a_half_pushed_realization(
    tmp_path: Path,
) -> None:
    url = (tmp_path / "cache").as_uri()
    sources = [realizations(tmp_path / f"source{pusher}", pusher) for pusher in range(PUSHERS)]
    drefs = sorted({rref_to_dref(rref) for _, rrefs in sources for rref in rrefs})
    done = threading.Event()
    errors: list[BaseException] = []
    fetched: set[RRef] = set()

    def push(store: Store, rrefs: list[RRef]) -> None:
        try:
            backend = FsspecBackend(url)
            for rref in rrefs:
                push_realization(store, backend, rref)
        except BaseException as err:  # reported by the test below
            errors.append(err)

    def read() -> None:
        reader = Store.initialize(tmp_path / "reader")
        try:
            while True:
                finished = done.is_set()
                backend = FsspecBackend(url)
                for dref in drefs:
                    for rref in backend.realizations_of(dref):
                        fetch_realization(reader, backend, rref)
                        fetched.add(rref)
                if finished:
                    return
        except BaseException as err:
            errors.append(err)

    reader = threading.Thread(target=read)
    reader.start()
    pushers = [threading.Thread(target=push, args=source) for source in sources]
    for thread in pushers:
        thread.start()
    for thread in pushers:
        thread.join()
    done.set()
    reader.join()
    assert errors == []
    assert fetched == {rref for _, rrefs in sources for rref in rrefs}
    assert not [path for path in (tmp_path / "cache").rglob("*") if path.name.endswith(".tmp")]
