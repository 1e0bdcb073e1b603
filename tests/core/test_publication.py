"""Publishing a build whose records come from memory (`Store.publish_records`), and build locks.

A block's realization is published this way: its records are hashed from memory, written once
read-only, and a new derivation comes into the store with its first realization in one rename.
What a reader finds must be exactly what the slower, general path gives: a sound realization,
its config, nothing left in `tmp/`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mdrun.core.config import Config
from mdrun.core.integrity import manifest_of_tree
from mdrun.core.locks import BuildLock
from mdrun.core.refs import make_dref
from mdrun.core.store import Store
from mdrun.errors import StoreError
from tests.core.helpers import tmp_entries

CONFIG = Config({"name": "b1", "mdrun": "block", "code": "x = 1", "upstream": None})
BUILD_RECORD = b'{"start": 1.0, "stop": 2.0, "host": "here", "pid": 1}'


def staged_build(store: Store, config: Config = CONFIG) -> Path:
    """A build folder for a derivation the store does not hold, with what a kernel writes."""
    folder = store.new_build_folder(make_dref(config.hash_part, config.name), config)
    (folder / "_state.json").write_text('{"digest": "d"}')
    return folder


def test_a_new_derivation_arrives_with_its_first_realization(store: Store) -> None:
    folder = staged_build(store)
    assert not store.derivation_path(make_dref(CONFIG.hash_part, CONFIG.name)).exists()
    rref = store.publish_records(CONFIG, folder, {"outputs.json": b"[1]"}, BUILD_RECORD)
    fresh = Store(store.root)  # nothing remembered: everything is read back from disk
    dref = make_dref(CONFIG.hash_part, CONFIG.name)
    assert fresh.config_of(dref) == CONFIG
    assert fresh.realizations_in_context(dref, {}) == [rref]
    assert fresh.realization_problems(rref) == []
    assert fresh.read_file(rref, "outputs.json") == b"[1]"
    assert fresh.read_file(rref, "_state.json") == b'{"digest": "d"}'
    assert fresh.build_metadata(rref)["host"] == "here"
    # The manifest hashed from memory is the one the published tree has.
    assert manifest_of_tree(fresh.realization_path(rref)).data == fresh.manifest(rref).data
    assert tmp_entries(store) == []


def test_a_build_folder_made_ahead_of_time_publishes_as_one_made_when_asked(
    store: Store,
) -> None:
    store.prepare_build_folder()  # as the publication thread does for the next block
    made_ahead = staged_build(store)
    rref = store.publish_records(CONFIG, made_ahead, {"outputs.json": b"[1]"}, BUILD_RECORD)
    fresh = Store(store.root)
    dref = make_dref(CONFIG.hash_part, CONFIG.name)
    assert fresh.config_of(dref) == CONFIG  # its config, written when it was published
    assert fresh.realization_problems(rref) == []
    other = Config({**CONFIG.data, "code": "x = 2"})
    store.prepare_build_folder()
    store.prepare_build_folder()
    discarded = staged_build(store, other)  # a block that failed: nothing published
    store.discard_build_folder(discarded)
    assert len(tmp_entries(store)) == 1  # the one not used
    store.discard_spare_build_folders()
    assert tmp_entries(store) == []
    assert fresh.realizations_in_context(make_dref(other.hash_part, other.name), {}) == []


def test_a_derivation_that_appeared_meanwhile_receives_the_realization(store: Store) -> None:
    folder = staged_build(store)
    other = Store(store.root)  # another process adds the derivation, and one realization
    earlier = other.new_build_folder(make_dref(CONFIG.hash_part, CONFIG.name), CONFIG)
    first = other.publish_records(CONFIG, earlier, {"outputs.json": b"[0]"}, BUILD_RECORD)
    second = store.publish_records(CONFIG, folder, {"outputs.json": b"[1]"}, BUILD_RECORD)
    fresh = Store(store.root)
    dref = make_dref(CONFIG.hash_part, CONFIG.name)
    assert sorted(fresh.realizations_of(dref)) == sorted([first, second])
    assert all(fresh.realization_problems(rref) == [] for rref in (first, second))
    assert tmp_entries(store) == []


def test_a_build_folder_of_a_known_derivation_is_published_into_its_folder(
    store: Store,
) -> None:
    store.add_derivation(CONFIG)
    folder = store.new_build_folder(make_dref(CONFIG.hash_part, CONFIG.name), CONFIG)
    rref = store.publish_records(CONFIG, folder, {"outputs.json": b"[2]"}, BUILD_RECORD)
    assert Store(store.root).realization_problems(rref) == []
    assert tmp_entries(store) == []


def test_a_record_the_build_wrote_already_is_refused_and_nothing_is_published(
    store: Store,
) -> None:
    folder = staged_build(store)
    with pytest.raises(StoreError, match=r"_state\.json"):
        store.publish_records(CONFIG, folder, {"_state.json": b"{}"}, BUILD_RECORD)
    store.discard_build_folder(folder)
    assert store.all_derivations() == [] and tmp_entries(store) == []


def test_a_record_that_does_not_fit_names_its_file(store: Store) -> None:
    """As on a full disk: the error names the record being written and what mdrun was doing,
    and the build can still be discarded whole."""
    script = textwrap.dedent(
        """
        import resource, signal, sys
        from mdrun.core.config import Config
        from mdrun.core.refs import make_dref
        from mdrun.core.store import Store
        from mdrun.errors import MdrunError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))
        store = Store(sys.argv[1])
        config = Config({"name": "b2", "mdrun": "block", "code": "y = 2", "upstream": None})
        folder = store.new_build_folder(make_dref(config.hash_part, config.name), config)
        records = {"outputs.json": b"x" * 200_000}
        try:
            store.publish_records(config, folder, records, b"{}", doing="cannot store it")
        except MdrunError as err:
            print(err.message)
        store.discard_build_folder(folder)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(store.root)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.startswith(f"cannot store it: {store.tmp}/build-"), done.stderr
    assert "/outputs.json: File too large" in done.stdout
    assert store.all_derivations() == [] and tmp_entries(store) == []


# -- build locks --------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from {module} import {name} as Lock
    lock = Lock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    time.sleep(60)
    """
)


def hold_lock(
    path: Path, module: str = "mdrun.core.locks", name: str = "BuildLock"
) -> subprocess.Popen[str]:
    """Another process that takes the lock and keeps it until killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(module=module, name=name), str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_a_lock_held_by_another_process_waits_and_is_freed_when_it_dies(tmp_path: Path) -> None:
    path = tmp_path / "d.lock"
    holder = hold_lock(path)
    try:
        lock = BuildLock(str(path))
        with pytest.raises(TimeoutError):
            lock.acquire(timeout=0.3)
        assert not lock.is_locked
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    started = time.monotonic()
    with BuildLock(str(path)) as lock:
        assert lock.is_locked
    assert time.monotonic() - started < 5


def test_a_lock_excludes_a_filelock_of_an_older_mdrun_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "d.lock"
    holder = hold_lock(path, "filelock", "FileLock")
    try:
        with pytest.raises(TimeoutError):
            BuildLock(str(path)).acquire(timeout=0.3)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()


def test_a_lock_is_reentrant_for_its_holder_and_released_by_the_last_release(
    tmp_path: Path,
) -> None:
    path = tmp_path / "d.lock"
    lock = BuildLock(str(path))
    with lock, lock:
        inside = lock.is_locked
    assert inside and not lock.is_locked
    with BuildLock(str(path)):  # free again: another object takes it at once
        pass
