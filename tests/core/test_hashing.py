"""Hashing: canonical JSON and the tree digest behind every realization reference."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mdrun.core.hashing import canonical_json, file_sha256, tree_sha256
from mdrun.core.store import Store
from tests.core.helpers import derivation


def make_tree(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    expected = '{"a":[true,null,"é"],"b":1}'.encode()
    assert canonical_json({"b": 1, "a": [True, None, "é"]}) == expected


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")])
def test_canonical_json_refuses_non_finite_numbers(number: float) -> None:
    with pytest.raises(ValueError):
        canonical_json({"a": number})


def test_file_sha256_reads_large_files_correctly(tmp_path: Path) -> None:
    data = os.urandom((1 << 20) * 2 + 17)
    (tmp_path / "big").write_bytes(data)
    assert file_sha256(tmp_path / "big") == hashlib.sha256(data).hexdigest()


def test_equal_trees_have_equal_digests(tmp_path: Path) -> None:
    files = {"a": "1", "sub/b": "2", "sub/deeper/c": "3"}
    assert tree_sha256(make_tree(tmp_path / "x", files)) == tree_sha256(
        make_tree(tmp_path / "y", dict(reversed(list(files.items()))))
    )


def test_a_rename_changes_the_digest(tmp_path: Path) -> None:
    before = tree_sha256(make_tree(tmp_path / "x", {"a": "same"}))
    after = tree_sha256(make_tree(tmp_path / "y", {"b": "same"}))
    assert before != after


def test_moving_a_file_into_a_folder_changes_the_digest(tmp_path: Path) -> None:
    before = tree_sha256(make_tree(tmp_path / "x", {"a": "same"}))
    after = tree_sha256(make_tree(tmp_path / "y", {"sub/a": "same"}))
    assert before != after


def test_a_content_change_changes_the_digest(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "x", {"sub/a": "one"})
    before = tree_sha256(tree)
    (tree / "sub" / "a").write_text("two")
    assert tree_sha256(tree) != before


def test_swapping_contents_between_files_changes_the_digest(tmp_path: Path) -> None:
    before = tree_sha256(make_tree(tmp_path / "x", {"a": "1", "b": "2"}))
    after = tree_sha256(make_tree(tmp_path / "y", {"a": "2", "b": "1"}))
    assert before != after


def test_every_file_is_hashed_whatever_its_name(tmp_path: Path) -> None:
    # `_` names used to be left out: a replaced `_snapshot.pickle` kept its realization's ref.
    tree = make_tree(tmp_path / "x", {"a": "1", "_snapshot.pickle": "state"})
    before = tree_sha256(tree)
    (tree / "_snapshot.pickle").write_text("payload")
    assert tree_sha256(tree) != before
    (tree / "_notes").write_text("anything")
    assert tree_sha256(tree) != before


def test_only_the_named_top_level_files_are_left_out(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "x", {"a": "1", "sub/__build__.json": "nested"})
    before = tree_sha256(tree, leave_out={"__build__.json"})
    (tree / "__build__.json").write_text('{"start": 1}')
    assert tree_sha256(tree, leave_out={"__build__.json"}) == before
    (tree / "sub" / "__build__.json").write_text("changed")
    assert tree_sha256(tree, leave_out={"__build__.json"}) != before


def test_files_inside_an_underscore_folder_are_hashed(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "x", {"_data/a": "1"})
    before = tree_sha256(tree)
    (tree / "_data" / "a").write_text("2")
    assert tree_sha256(tree) != before


def test_the_exec_bit_changes_the_digest(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "x", {"run.sh": "echo hi"})
    before = tree_sha256(tree)
    os.chmod(tree / "run.sh", 0o755)
    assert tree_sha256(tree) != before


def test_other_mode_bits_do_not_change_the_digest(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "x", {"a": "1"})
    before = tree_sha256(tree)
    os.chmod(tree / "a", 0o444)
    os.chmod(tree, 0o555)
    try:
        assert tree_sha256(tree) == before
    finally:
        os.chmod(tree, 0o755)


def test_an_empty_folder_counts(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "x", {"a": "1"})
    before = tree_sha256(tree)
    (tree / "empty").mkdir()
    assert tree_sha256(tree) != before


def test_symlinks_are_hashed_by_target_even_dangling(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "x", {"a": "1"})
    os.symlink("missing", tree / "link")
    os.symlink("a", tree / "alias")
    first = tree_sha256(tree)
    os.unlink(tree / "link")
    os.symlink("elsewhere", tree / "link")
    assert tree_sha256(tree) != first


def test_a_symlinked_folder_is_not_followed(tmp_path: Path) -> None:
    outside = make_tree(tmp_path / "outside", {"f": "1"})
    tree = make_tree(tmp_path / "x", {"a": "1"})
    os.symlink(outside, tree / "linked")
    before = tree_sha256(tree)
    (outside / "f").write_text("2")
    assert tree_sha256(tree) == before


def _published(store: Store, files: dict[str, str], mode: int | None = None) -> str:
    dref = derivation(store, "hashed")
    folder = store.new_build_folder(dref)
    make_tree(folder, files)
    if mode is not None:
        for name in files:
            os.chmod(folder / name, mode)
    return store.publish_realization(dref, {}, folder)


def test_a_renamed_artifact_gets_another_rref(store: Store) -> None:
    assert _published(store, {"model.npy": "w"}) != _published(store, {"model2.npy": "w"})


def test_an_executable_artifact_gets_another_rref(store: Store) -> None:
    assert _published(store, {"run": "x"}, 0o644) != _published(store, {"run": "x"}, 0o755)


def test_build_metadata_does_not_change_the_rref(store: Store) -> None:
    first = _published(store, {"a": "1", "__build__.json": '{"start": 1}'})
    second = _published(store, {"a": "1", "__build__.json": '{"start": 2}'})
    assert first == second


def _settle(path: Path) -> None:
    """Date a file's last change back a minute, as if written long ago."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns - 60 * 10**9))


def test_a_file_linked_from_one_already_hashed_is_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mdrun.core import hashing

    first = make_tree(tmp_path / "first", {"a.pickle": "values", "new.txt": "fresh"})
    _settle(first / "a.pickle")
    known = hashing.KnownDigests()
    entries = hashing.tree_entries(first, known=known)
    assert entries == hashing.tree_entries(first)  # the same lines as without it
    second = make_tree(tmp_path / "second", {})
    os.link(first / "a.pickle", second / "a.pickle")  # as a snapshot links its unchanged files
    os.link(first / "new.txt", second / "new.txt")
    read: list[str] = []
    original = hashing.file_sha256

    def counting(path: str | os.PathLike[str]) -> str:
        read.append(os.path.basename(path))
        return original(path)

    monkeypatch.setattr(hashing, "file_sha256", counting)
    assert hashing.tree_entries(second, known=known) == hashing.tree_entries(second)
    # Without `known` both are read; with it, only the file changed too recently to be sure of.
    assert read == ["new.txt", "a.pickle", "new.txt"]


def test_a_changed_file_is_hashed_again_and_a_check_never_trusts_remembered_digests(
    tmp_path: Path,
) -> None:
    from mdrun.core import hashing
    from mdrun.core.integrity import manifest_of_tree, tree_problems

    tree = make_tree(tmp_path / "tree", {"a.pickle": "values"})
    _settle(tree / "a.pickle")
    known = hashing.KnownDigests()
    manifest = manifest_of_tree(tree, known=known)
    # A change that keeps the file's identity (same size, its time put back by hand) is not
    # seen through remembered digests, but a check of the realization reads the bytes.
    info = (tree / "a.pickle").stat()
    (tree / "a.pickle").write_text("VALUES")
    os.utime(tree / "a.pickle", ns=(info.st_atime_ns, info.st_mtime_ns))
    assert manifest_of_tree(tree, known=known) == manifest
    assert tree_problems(tree, manifest) == ["a.pickle: changed"]
    # Any ordinary change (a new time, here a new size too) is hashed again.
    (tree / "a.pickle").write_text("values, changed")
    assert manifest_of_tree(tree, known=known) == manifest_of_tree(tree) != manifest
