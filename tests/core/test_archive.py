"""Export and import of closures between stores."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from mdrun.core.archive import export_closure, import_closure, spack, sunpack
from mdrun.core.build import Build, build_outpaths, build_wrapper
from mdrun.core.config import Config
from mdrun.core.lens import mklens
from mdrun.core.matchers import match_all
from mdrun.core.realization import realize1
from mdrun.core.refs import DRef, RRef
from mdrun.core.registry import Registry, instantiate, mkdrv
from mdrun.core.stages import mknode
from mdrun.core.store import Store
from mdrun.errors import StoreError


def nested_outputs(b: Build) -> None:
    for index, folder in enumerate(build_outpaths(b)):
        (folder / "sub").mkdir()
        (folder / "sub" / "value.txt").write_text(f"value {index}")
        tool = folder / "tool.sh"
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
        (folder / "link").symlink_to("sub/value.txt")


def pipeline(r: Registry) -> DRef:
    base = mknode(r, {"v": 1}, {"data.bin": bytes(range(256))}, name="base")
    middle = mkdrv(
        r,
        Config({"name": "middle", "base": base}),
        match_all(),
        build_wrapper(nested_outputs, nouts=2),
    )
    return mknode(r, {"middle": middle}, {"top.txt": b"top"}, name="top")


def realizations(store: Store) -> dict[RRef, list[str]]:
    """Every realization with its files: what a faithful copy must reproduce."""
    return {
        rref: sorted(
            str(path.relative_to(store.realization_path(rref)))
            for path in store.realization_path(rref).rglob("*")
        )
        for rref in store.all_realizations()
    }


def test_round_trip_gives_identical_refs(store: Store, tmp_path: Path) -> None:
    top = realize1(instantiate(pipeline))
    extra = realize1(instantiate(lambda r: mknode(r, {"unrelated": True})))
    archive = export_closure(store, [top], tmp_path / "closure.tar.gz")
    assert archive.is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    target = Store.initialize(tmp_path / "other")
    assert import_closure(target, archive) == [top]
    assert realizations(target) == {
        rref: files for rref, files in realizations(store).items() if rref != extra
    }
    assert set(target.all_derivations()) == set(store.all_derivations()) - {mklens(extra).dref}
    for middle in target.context_of(top)[mklens(top).middle.dref]:
        tool = target.realization_path(middle) / "tool.sh"
        assert tool.stat().st_mode & 0o777 == 0o555  # executable, read-only
    assert (target.realization_path(top) / "top.txt").read_text() == "top"
    assert target.tmp.is_dir() and list(target.tmp.iterdir()) == []


def test_importing_twice_copies_nothing(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    top = realize1(instantiate(pipeline))
    archive = spack([top], tmp_path / "closure.tar", S=store)
    target = Store.initialize(tmp_path / "other")
    assert sunpack(archive, S=target) == [top]
    before = realizations(target)

    def no_copy(*args: object) -> RRef:
        raise AssertionError("a second import published something")

    monkeypatch.setattr(Store, "publish_realization", no_copy)
    assert import_closure(target, archive) == [top]
    assert realizations(target) == before


def test_only_the_requested_realizations_travel(store: Store, tmp_path: Path) -> None:
    def two(r: Registry) -> DRef:
        return mknode(r, {"n": 2})

    first = realize1(instantiate(lambda r: mknode(r, {"n": 1})))
    second = realize1(instantiate(two))
    archive = export_closure(store, [first], tmp_path / "one.tar")
    with tarfile.open(archive) as tarred:
        names = tarred.getnames()
    assert not any(mklens(second).dref[5:] in name for name in names)
    target = Store.initialize(tmp_path / "other")
    import_closure(target, archive)
    assert target.all_realizations() == [first]


def _rewrite(archive: Path, out: Path, change: str, content: bytes) -> Path:
    """Copy a tar, replacing the content of the member whose name ends with `change`."""
    with tarfile.open(archive) as source, tarfile.open(out, "w") as target:
        for member in source.getmembers():
            data = source.extractfile(member) if member.isreg() else None
            if member.isreg() and member.name.endswith(change):
                member.size = len(content)
                target.addfile(member, io.BytesIO(content))
            else:
                target.addfile(member, data)
    return out


@pytest.mark.parametrize(
    ("member", "content", "reason"),
    [
        ("sub/value.txt", b"tampered", "do not hash to its reference"),
        ("config.json", b'{"name":"base","v":2}', "does not hash to its reference"),
        ("MANIFEST.json", b"{}", "not an 'mdrun-archive 1' archive"),
    ],
)
def test_tampered_archive_is_refused_and_imports_nothing(
    store: Store, tmp_path: Path, member: str, content: bytes, reason: str
) -> None:
    top = realize1(instantiate(pipeline))
    archive = export_closure(store, [top], tmp_path / "closure.tar")
    tampered = _rewrite(archive, tmp_path / "tampered.tar", member, content)
    target = Store.initialize(tmp_path / "other")
    with pytest.raises(StoreError, match=reason):
        import_closure(target, tampered)
    assert target.all_realizations() == []
    assert target.all_derivations() == []
    assert list(target.tmp.iterdir()) == []


def test_escaping_members_are_refused(store: Store, tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tarred:
        info = tarfile.TarInfo("store/../../escape.txt")
        info.size = 3
        tarred.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(StoreError, match="escapes the archive"):
        import_closure(store, evil)
    assert not (tmp_path / "escape.txt").exists()


def test_export_of_a_missing_realization_fails_cleanly(store: Store, tmp_path: Path) -> None:
    rref = realize1(instantiate(lambda r: mknode(r, {})))
    store.remove_realization(rref)
    with pytest.raises(StoreError, match="not in the store"):
        export_closure(store, [rref], tmp_path / "x.tar")
    assert list(tmp_path.iterdir()) == [tmp_path / "store"]
    with pytest.raises(StoreError, match="folder does not exist"):
        export_closure(store, [], tmp_path / "missing" / "x.tar")
