"""The store on disk: version, derivations, publication, read-only realizations, leftovers."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mdrun.core.config import Config
from mdrun.core.default_store import current_storage, default_store, fsinit
from mdrun.core.refs import DRef, RRef
from mdrun.core.store import STORE_VERSION, Store
from mdrun.errors import StoreError
from tests.core.helpers import derivation, publish, tmp_entries


def write_bits(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode) & 0o222


# -- version --------------------------------------------------------------------------------


def test_a_new_store_has_a_version_file(tmp_path: Path) -> None:
    store = Store.initialize(tmp_path / "s")
    assert (store.root / "version").read_text() == f"mdrun-store {STORE_VERSION}\n"
    Store.initialize(tmp_path / "s").check_version()


def test_another_version_is_refused(tmp_path: Path) -> None:
    store = Store.initialize(tmp_path / "s")
    (store.root / "version").write_text("mdrun-store 999\n")
    with pytest.raises(StoreError, match="another version"):
        Store.initialize(tmp_path / "s")
    with pytest.raises(StoreError, match="another version"):
        store.check_version()


def test_a_foreign_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "thesis.md").write_text("my work")
    with pytest.raises(StoreError, match="not an mdrun store"):
        Store.initialize(tmp_path / "project")
    assert sorted(os.listdir(tmp_path / "project")) == ["thesis.md"]
    with pytest.raises(StoreError, match="not an mdrun store"):
        Store(tmp_path / "project").check_version()


def test_an_empty_folder_becomes_a_store(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    store = Store.initialize(tmp_path / "empty")
    assert store.objects.is_dir() and store.tmp.is_dir()
    assert sorted(os.listdir(tmp_path)) == ["empty"]  # nothing left beside it


def test_a_store_named_through_a_symlink_is_made_where_it_points(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    Store.initialize(tmp_path / "link")
    assert (tmp_path / "link").is_symlink()
    assert (tmp_path / "real" / "version").is_file()


def test_a_store_half_made_in_place_is_completed(tmp_path: Path) -> None:
    # What a process creating the store in place (its parent not writable) leaves midway.
    (tmp_path / "s" / "store").mkdir(parents=True)
    (tmp_path / "s" / "tmp").mkdir()
    Store.initialize(tmp_path / "s").check_version()


def test_an_old_store_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "version").write_text("mdrun-store 1\n")
    with pytest.raises(StoreError, match=r"another version.*A store is a cache: remove it"):
        Store.initialize(tmp_path / "old")


def test_the_default_store_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MDRUN_STORE", str(tmp_path / "env-store"))
    assert default_store().root == tmp_path / "env-store"
    with current_storage(tmp_path / "other") as other:
        assert default_store() is other
    assert default_store().root == tmp_path / "env-store"
    chosen = fsinit(tmp_path / "chosen")
    assert default_store() is chosen


# -- derivations ----------------------------------------------------------------------------


def test_a_config_is_stored_once_read_only_and_canonical(store: Store) -> None:
    config = Config({"name": "c", "b": 2, "a": 1})
    dref = store.add_derivation(config)
    assert store.add_derivation(Config({"a": 1, "b": 2, "name": "c"})) == dref
    stored = store.derivation_path(dref) / "config.json"
    assert stored.read_bytes() == b'{"a":1,"b":2,"name":"c"}'
    assert write_bits(stored) == 0
    assert Store(store.root).config_of(dref) == config
    assert store.all_derivations() == [dref]
    assert tmp_entries(store) == []


def test_an_unknown_derivation_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="not in the store"):
        Store(store.root).config_of(DRef("dref:0123456789abcdef0123456789abcdef-gone"))


# -- realizations -------------------------------------------------------------------------------


def test_publication_moves_the_build_folder_into_the_store(store: Store) -> None:
    dref = derivation(store)
    rref = publish(store, dref, {"artifact": "hello", "sub/deep.txt": "x"})
    assert store.realizations_of(dref) == [rref]
    assert (store.realization_path(rref) / "artifact").read_text() == "hello"
    assert json.loads((store.realization_path(rref) / "context.json").read_text()) == {}
    assert tmp_entries(store) == []


def test_equal_content_published_twice_is_one_realization(store: Store) -> None:
    dref = derivation(store)
    first = publish(store, dref, {"artifact": "same"})
    second = publish(store, dref, {"artifact": "same"})
    assert first == second
    assert store.realizations_of(dref) == [first]
    assert tmp_entries(store) == []


def test_different_contexts_give_different_rrefs(store: Store) -> None:
    upstream = derivation(store, "up")
    up_one = publish(store, upstream, {"v": "1"})
    up_two = publish(store, upstream, {"v": "2"})
    dref = derivation(store, "down", dep=upstream)
    rrefs: list[RRef] = []
    for chosen in (up_one, up_two):
        folder = store.new_build_folder(dref)
        (folder / "artifact").write_text("same bytes")
        rrefs.append(store.publish_realization(dref, {upstream: [chosen]}, folder))
    assert rrefs[0] != rrefs[1]
    assert store.context_of(rrefs[0]) == {upstream: [up_one]}
    assert store.realizations_in_context(dref, {upstream: [up_two]}) == [rrefs[1]]
    assert store.realizations_in_context(dref, {}) == []


def test_published_files_and_folders_are_read_only_keeping_exec_bits(store: Store) -> None:
    dref = derivation(store)
    folder = store.new_build_folder(dref)
    (folder / "sub").mkdir()
    (folder / "sub" / "data").write_text("d")
    (folder / "run.sh").write_text("#!/bin/sh\necho ran\n")
    os.chmod(folder / "run.sh", 0o755)
    os.symlink("run.sh", folder / "link")
    rref = store.publish_realization(dref, {}, folder)
    root = store.realization_path(rref)
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            assert write_bits(path) == 0, path
    assert stat.S_IMODE(os.stat(root / "run.sh").st_mode) == 0o555
    assert stat.S_IMODE(os.stat(root / "sub" / "data").st_mode) == 0o444
    ran = subprocess.run([str(root / "run.sh")], capture_output=True, text=True, check=True)
    assert ran.stdout == "ran\n"


def test_context_json_is_a_reserved_name(store: Store) -> None:
    dref = derivation(store)
    folder = store.new_build_folder(dref)
    (folder / "context.json").write_text("{}")
    with pytest.raises(StoreError, match="reserved"):
        store.publish_realization(dref, {}, folder)
    assert store.realizations_of(dref) == []


def test_unfinished_entries_are_not_realizations(store: Store) -> None:
    dref = derivation(store)
    rref = publish(store, dref, {"a": "1"})
    (store.derivation_path(dref) / f"{'0' * 32}.tmp").mkdir()
    (store.derivation_path(dref) / "notes").mkdir()
    assert store.realizations_of(dref) == [rref]
    assert store.all_realizations() == [rref]


def test_removing_a_read_only_realization(store: Store) -> None:
    dref = derivation(store)
    kept = publish(store, dref, {"a": "1"})
    gone = publish(store, dref, {"a": "2"})
    store.remove_realization(gone)
    assert store.realizations_of(dref) == [kept]
    assert not store.realization_path(gone).exists()
    assert tmp_entries(store) == []


def test_build_metadata_is_readable(store: Store) -> None:
    dref = derivation(store)
    rref = publish(store, dref, {"a": "1"}, start=123.5)
    assert store.build_metadata(rref)["start"] == 123.5
    assert store.build_metadata(publish(store, dref, {"a": "2"})) == {}


def _run_as_nobody(store_root: Path) -> str:
    """Publish a realization in a child process running as an ordinary user."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        message = "ok"
        try:
            os.setgid(65534)
            os.setuid(65534)
            child_store = Store.initialize(store_root)
            rref = publish(child_store, derivation(child_store, "mine"), {"a": "1"})
            if not child_store.realization_path(rref).is_dir():
                message = "not published"
        except BaseException as err:
            message = f"{type(err).__name__}: {err}"
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as stream:
        return stream.read()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an ordinary user")
def test_an_ordinary_user_can_publish() -> None:
    """Root may rename a read-only folder into the store; ordinary users may not."""
    parent = Path(tempfile.mkdtemp())
    try:
        os.chmod(parent, 0o777)
        assert _run_as_nobody(parent / "store") == "ok"
    finally:
        shutil.rmtree(parent)


# -- leftovers --------------------------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_clean_leftovers_removes_only_folders_of_dead_processes(store: Store) -> None:
    dead = _dead_pid()
    dref = derivation(store)
    store.tmp.mkdir(exist_ok=True)
    leftover = store.tmp / f"build-{dead}-thing-abc"
    leftover.mkdir()
    (leftover / "half-written").write_text("x")
    os.chmod(leftover / "half-written", 0o444)
    os.chmod(leftover, 0o555)
    trash = store.tmp / f"trash-{dead}-xyz"
    trash.mkdir()
    live = store.new_build_folder(dref)
    unrelated = store.tmp / "keep-me"
    unrelated.mkdir()
    removed = store.clean_leftovers()
    assert sorted(removed) == sorted([leftover, trash])
    assert tmp_entries(store) == sorted([live.name, "keep-me"])
