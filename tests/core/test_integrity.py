"""Realizations are trusted only as far as their references vouch for them: every file is in
the hash (through the manifest each keeps), reads check what they read, import refuses what is
not covered, and a damaged realization is reported, never used, and rebuilt."""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
import warnings
from pathlib import Path

import pytest

from mdrun.core.archive import export_closure, import_closure
from mdrun.core.build import Build, build_outpath, build_wrapper
from mdrun.core.default_store import current_storage
from mdrun.core.matchers import match_only
from mdrun.core.realization import realize1
from mdrun.core.refs import DRef, RRef
from mdrun.core.registry import Registry, instantiate, mkdrv
from mdrun.core.store import CONTEXT_FILE, MANIFEST_FILE, Store, make_writable
from mdrun.core.verify import remove_damaged, verify_store
from mdrun.errors import DamagedRealization, StoreError
from tests.core.helpers import derivation, file_stage, publish


class Payload:
    """A pickle that runs code when loaded: what a replaced snapshot would smuggle in."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("payload ran",))


def with_snapshot(b: Build) -> None:
    folder = build_outpath(b)
    (folder / "outputs.json").write_text('{"outputs": [], "key": "k"}')
    (folder / "_snapshot.pickle").write_bytes(pickle.dumps({"x": 41}))


def snapshot_stage(r: Registry) -> DRef:
    return mkdrv(r, {"name": "block"}, match_only(), build_wrapper(with_snapshot))


def edit(path: Path, data: bytes) -> None:
    """Change a file of a published (read-only) realization, as an intruder would."""
    make_writable(path.parent)
    path.write_bytes(data)


def rewrite_archive(source: Path, target: Path, replace: dict[str, bytes]) -> None:
    """A copy of a tar archive with some members' contents replaced or added."""
    with tarfile.open(source) as old, tarfile.open(target, "w:gz") as new:
        names = set()
        for member in old.getmembers():
            names.add(member.name)
            suffix = next((key for key in replace if member.name.endswith(key)), None)
            if suffix is None:
                new.addfile(member, old.extractfile(member) if member.isfile() else None)
            else:
                member.size = len(replace[suffix])
                new.addfile(member, io.BytesIO(replace[suffix]))
        realization = next(name for name in names if name.endswith("/outputs.json"))
        for suffix, data in replace.items():
            if not any(name.endswith(suffix) for name in names):
                info = tarfile.TarInfo(realization.rpartition("/")[0] + "/" + suffix)
                info.size = len(data)
                new.addfile(info, io.BytesIO(data))


@pytest.fixture
def exported(store: Store, tmp_path: Path) -> tuple[RRef, Path]:
    rref = realize1(instantiate(snapshot_stage))
    return rref, export_closure(store, [rref], tmp_path / "closure.tar.gz")


# -- the hash covers every file ------------------------------------------------------------------


def test_the_manifest_is_what_the_reference_hashes(store: Store) -> None:
    rref = realize1(instantiate(snapshot_stage))
    manifest = store.manifest(rref)
    assert set(manifest.files) == {"outputs.json", "_snapshot.pickle", CONTEXT_FILE}
    assert manifest.realization_hash == rref.split(":")[1].split("-")[0]
    assert store.recorded_digest(rref, "_snapshot.pickle") is not None
    assert store.recorded_digest(rref, "absent") is None


@pytest.mark.parametrize(
    "replace",
    [
        {"_snapshot.pickle": pickle.dumps(Payload())},
        {"_extra.pickle": pickle.dumps(Payload())},
        {"__build__.json": b'{"start": [1, 2]}'},
        {MANIFEST_FILE: b"file outputs.json 00\n"},
    ],
    ids=["replaced-snapshot", "added-file", "not-a-build-record", "forged-manifest"],
)
def test_an_archive_with_a_file_its_hash_does_not_cover_is_refused(
    exported: tuple[RRef, Path], tmp_path: Path, replace: dict[str, bytes]
) -> None:
    _, archive = exported
    tampered = tmp_path / "tampered.tar.gz"
    rewrite_archive(archive, tampered, replace)
    other = Store.initialize(tmp_path / "other")
    with pytest.raises(StoreError, match="refusing to import"):
        import_closure(other, tampered)
    assert other.all_realizations() == []


def test_import_replaces_a_damaged_copy_with_the_archives(
    exported: tuple[RRef, Path], tmp_path: Path
) -> None:
    rref, archive = exported
    other = Store.initialize(tmp_path / "other")
    import_closure(other, archive)
    edit(other.realization_path(rref) / "_snapshot.pickle", pickle.dumps(Payload()))
    import_closure(Store.initialize(tmp_path / "other"), archive)
    assert Store.initialize(tmp_path / "other").realization_problems(rref) == []


# -- reads check what they read --------------------------------------------------------------


def test_a_record_edited_in_the_store_is_not_returned(store: Store) -> None:
    rref = realize1(instantiate(snapshot_stage))
    edit(store.realization_path(rref) / "outputs.json", b'{"outputs": [666], "key": "k"}')
    with pytest.raises(DamagedRealization, match=r"outputs\.json: its content does not match"):
        Store.initialize(store.root).read_file(rref, "outputs.json")


@pytest.mark.parametrize("damage", ["edited", "deleted"])
def test_a_damaged_manifest_damages_every_read(store: Store, damage: str) -> None:
    rref = realize1(instantiate(snapshot_stage))
    manifest = store.realization_path(rref) / MANIFEST_FILE
    make_writable(manifest.parent)
    if damage == "deleted":
        manifest.unlink()
    else:
        manifest.write_bytes(manifest.read_bytes() + b"file extra 00\n")
    fresh = Store.initialize(store.root)
    with pytest.raises(DamagedRealization, match=MANIFEST_FILE):
        fresh.read_file(rref, "outputs.json")
    assert fresh.realization_problems(rref) == [f"{MANIFEST_FILE}: " + (
        "the manifest is missing"
        if damage == "deleted"
        else "it does not hash to the realization's reference"
    )]


def test_a_garbage_context_is_not_read_and_changes_nothing(store: Store) -> None:
    # The manifest records the context's digest: matching needs no context file, so a garbage
    # one neither fools a lookup nor makes the stage build again on every run.
    log: list[str] = []
    stage = lambda r: file_stage(r, "a", log=log)  # noqa: E731
    rref = realize1(instantiate(stage))
    edit(store.realization_path(rref) / CONTEXT_FILE, b"garbage")
    fresh = Store.initialize(store.root)
    with current_storage(fresh):
        assert realize1(instantiate(stage)) == rref
    assert log == ["a"]
    with pytest.raises(DamagedRealization, match=r"context\.json: its content does not match"):
        fresh.context_of(rref)
    assert fresh.realization_problems(rref) == ["context.json: changed"]


def test_a_damaged_manifest_is_reported_and_rebuilt_once(store: Store) -> None:
    log: list[str] = []
    stage = lambda r: file_stage(r, "a", log=log)  # noqa: E731
    rref = realize1(instantiate(stage))
    manifest = store.realization_path(rref) / MANIFEST_FILE
    edit(manifest, b"garbage\n")
    fresh = Store.initialize(store.root)
    seen: list[DamagedRealization] = []
    fresh.on_damage = seen.append
    with current_storage(fresh):
        assert realize1(instantiate(stage)) == rref
        assert realize1(instantiate(stage)) == rref
    assert log == ["a", "a"]  # built once more, not on every run
    assert [damage.path for damage in seen] == [str(manifest)]
    assert Store.initialize(store.root).realization_problems(rref) == []


def test_the_default_report_of_damage_is_a_warning(store: Store) -> None:
    rref = realize1(instantiate(snapshot_stage))
    edit(store.realization_path(rref) / MANIFEST_FILE, b"")
    fresh = Store.initialize(store.root)
    with pytest.warns(UserWarning, match="damaged realization: .*__manifest__.txt"):
        assert fresh.realizations_in_context(DRef(store.all_derivations()[0]), {}) == []


def test_match_best_reads_only_a_sound_number(store: Store) -> None:
    from mdrun.core.matchers import match_best

    dref = derivation(store, "scored")
    low = publish(store, dref, {"score": "1"})
    high = publish(store, dref, {"score": "9"})
    assert match_best("score")(store, [low, high]) == [high]
    edit(store.realization_path(low) / "score", b"100")
    fresh = Store.initialize(store.root)
    fresh.on_damage = lambda damage: None
    assert match_best("score")(fresh, [low, high]) == [high]
    assert list(fresh.damaged) == [low]


def test_a_rebuild_replaces_a_damaged_copy_of_equal_content(store: Store) -> None:
    stage = lambda r: file_stage(r, "a", text="same")  # noqa: E731
    rref = realize1(instantiate(stage))
    edit(store.realization_path(rref) / "artifact", b"changed")
    assert realize1(instantiate(stage), force_rebuild=True) == rref
    assert (store.realization_path(rref) / "artifact").read_text() == "same"


def test_a_build_record_that_is_not_one_is_ignored_and_refused(store: Store) -> None:
    dref = derivation(store, "x")
    with pytest.raises(StoreError, match="must be a build record"):
        publish(store, dref, {"a": "1", "__build__.json": "[1, 2, 3]"})
    rref = publish(store, dref, {"a": "1"}, start=5.0)
    assert store.build_metadata(rref)["start"] == 5.0
    edit(store.realization_path(rref) / "__build__.json", json.dumps({"start": {}}).encode())
    assert store.build_metadata(rref) == {}


# -- verify and repair -------------------------------------------------------------------------


def test_verify_finds_each_damaged_realization_and_repair_removes_it(store: Store) -> None:
    good = realize1(instantiate(lambda r: file_stage(r, "good")))
    bad = realize1(instantiate(lambda r: file_stage(r, "bad")))
    added = realize1(instantiate(snapshot_stage))
    edit(store.realization_path(bad) / "artifact", b"tampered")
    edit(store.realization_path(added) / "_other.pickle", b"smuggled")
    verification = verify_store(store)
    assert verification.realizations == 3
    assert {finding.ref: finding.problems for finding in verification.damaged} == {
        bad: ("artifact: changed",),
        added: ("_other.pickle: not in the manifest",),
    }
    assert verify_store(store, [good]).damaged == []
    removed = remove_damaged(store, verification.damaged)
    assert {finding.ref for finding in removed} == {bad, added}
    assert store.all_realizations() == [good]
    assert verify_store(store).damaged == []


def test_verify_finds_a_damaged_config(store: Store) -> None:
    rref = realize1(instantiate(lambda r: file_stage(r, "a")))
    config = store.realization_path(rref).parent / "config.json"
    edit(config, config.read_bytes().replace(b'"a"', b'"b"'))
    verification = verify_store(Store.initialize(store.root))
    assert [finding.problems for finding in verification.damaged] == [
        ("config.json: it does not hash to " + store.all_derivations()[0],)
    ]
    remove_damaged(store, verification.damaged)
    assert store.all_derivations() == []


def test_no_warning_for_a_sound_store(store: Store) -> None:
    realize1(instantiate(snapshot_stage))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert realize1(instantiate(snapshot_stage))
    assert os.listdir(store.tmp) == []
