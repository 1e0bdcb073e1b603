"""The fsspec remote cache as a storage tier: what is pushed reads back byte for byte, a
half-pushed realization is invisible, and an HTTP cache can only be read.

The same tests run on `memory://`, a folder (`file://`) and a real S3 server on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdrun.core.config import Config
from mdrun.core.integrity import MANIFEST_FILE
from mdrun.core.refs import DRef, RRef, make_dref, rref_to_dref
from mdrun.core.remote import FsspecBackend
from mdrun.core.store import Store
from mdrun.errors import StoreError
from tests.core.remote_servers import S3Server, http_server, s3_server


@pytest.fixture(scope="module")
def s3_bucket_maker() -> Iterator[S3Server]:
    with pytest.MonkeyPatch.context() as monkeypatch, s3_server(monkeypatch) as server:
        yield server


@pytest.fixture(params=["memory", "file", "s3"])
def cache_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty cache of each kind."""
    if request.param == "memory":
        url = f"memory://mdrun-test-{uuid.uuid4().hex}"
        yield url
        import fsspec

        fsspec.filesystem("memory").rm(url.removeprefix("memory://"), recursive=True)
    elif request.param == "file":
        yield (tmp_path / "cache").as_uri()
    else:
        server: S3Server = request.getfixturevalue("s3_bucket_maker")
        with pytest.MonkeyPatch.context() as monkeypatch:
            for name, value in server.environment().items():
                monkeypatch.setenv(name, value)
            bucket = server.make_bucket(f"cache-{uuid.uuid4().hex[:12]}")
            yield f"{bucket}/mdrun"


def realization(store: Store, name: str = "block") -> tuple[DRef, RRef]:
    """A realization with a file, an executable, a nested file and a link."""
    dref = store.add_derivation(Config({"name": name, "code": "print(1)"}))
    folder = store.new_build_folder(dref)
    (folder / "outputs.json").write_text('{"outputs": []}')
    (folder / "tool.sh").write_text("#!/bin/sh\n")
    os.chmod(folder / "tool.sh", 0o755)
    (folder / "nested").mkdir()
    (folder / "nested" / "data.bin").write_bytes(bytes(range(256)) * 100)
    os.symlink("nested/data.bin", folder / "data")
    (folder / "__build__.json").write_text('{"start": 1.0, "stop": 2.0}')
    return dref, store.publish_realization(dref, {}, folder)


def push(store: Store, backend: FsspecBackend, rref: RRef) -> None:
    dref = rref_to_dref(rref)
    backend.put_realization(
        dref, store.config_of(dref).canonical, rref, store.realization_path(rref)
    )


def test_a_pushed_realization_reads_back_byte_for_byte(
    store: Store, cache_url: str, tmp_path: Path
) -> None:
    dref, rref = realization(store)
    backend = FsspecBackend(cache_url)
    assert backend.realizations_of(dref) == []
    push(store, backend, rref)
    fresh = FsspecBackend(cache_url)  # another reader: nothing remembered
    folder = store.realization_path(rref)
    assert fresh.writable
    assert fresh.config_bytes(dref) == store.config_of(dref).canonical
    assert fresh.realizations_of(dref) == [rref]
    assert fresh.manifest_bytes(rref) == (folder / MANIFEST_FILE).read_bytes()
    assert fresh.build_record_bytes(rref) == (folder / "__build__.json").read_bytes()
    assert fresh.read_entry(rref, "outputs.json") == b'{"outputs": []}'
    assert fresh.read_entry(rref, "data") == b"nested/data.bin"
    fresh.copy_entry(rref, "nested/data.bin", tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == (folder / "nested" / "data.bin").read_bytes()
    assert fresh.bytes_downloaded == len(b'{"outputs": []}') + len(b"nested/data.bin") + 25600
    with pytest.raises(KeyError):
        fresh.read_entry(rref, "absent")


def test_a_realization_whose_manifest_was_not_written_is_invisible(
    store: Store, cache_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dref, rref = realization(store)
    backend = FsspecBackend(cache_url)
    real_write = backend._write

    def interrupted(path: str, data: bytes) -> None:
        if path.endswith(".manifest"):
            raise StoreError("the pusher died")
        real_write(path, data)

    monkeypatch.setattr(backend, "_write", interrupted)
    with pytest.raises(StoreError, match="died"):
        push(store, backend, rref)
    reader = FsspecBackend(cache_url)
    assert reader.realizations_of(dref) == []
    assert reader.manifest_bytes(rref) is None
    monkeypatch.undo()
    push(store, FsspecBackend(cache_url), rref)  # pushing again completes it
    assert FsspecBackend(cache_url).realizations_of(dref) == [rref]


def test_pushing_what_is_there_writes_nothing(
    store: Store, cache_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, rref = realization(store)
    push(store, FsspecBackend(cache_url), rref)
    again = FsspecBackend(cache_url)
    writes: list[str] = []
    monkeypatch.setattr(again, "_write", lambda path, _data: writes.append(path))
    monkeypatch.setattr(again, "_write_file", lambda path, _local: writes.append(path))
    push(store, again, rref)
    assert writes == []


def test_blobs_are_shared_between_realizations(store: Store, cache_url: str) -> None:
    _, first = realization(store, "first")
    _, second = realization(store, "second")
    backend = FsspecBackend(cache_url)
    push(store, backend, first)
    blobs = set(backend.fs.ls(f"{backend.root}/blobs", detail=False))
    push(store, backend, second)
    assert set(backend.fs.ls(f"{backend.root}/blobs", detail=False)) == blobs


def test_a_removed_realization_is_no_longer_listed(store: Store, cache_url: str) -> None:
    dref, rref = realization(store)
    backend = FsspecBackend(cache_url)
    push(store, backend, rref)
    backend.remove_realization(rref)
    assert FsspecBackend(cache_url).realizations_of(dref) == []
    assert FsspecBackend(cache_url).manifest_bytes(rref) is None


def test_signatures_are_stored_beside_the_manifest_once(store: Store, cache_url: str) -> None:
    _, rref = realization(store)
    backend = FsspecBackend(cache_url)
    assert backend.signatures_bytes(rref) is None
    backend.add_signature(rref, "key1 c2ln")
    backend.add_signature(rref, "key1 c2ln")
    backend.add_signature(rref, "key2 c2lnMg==")
    assert FsspecBackend(cache_url).signatures_bytes(rref) == b"key1 c2ln\nkey2 c2lnMg==\n"


def test_a_folder_cache_leaves_no_temporary_file(store: Store, tmp_path: Path) -> None:
    _, rref = realization(store)
    push(store, FsspecBackend(str(tmp_path / "cache")), rref)
    names = [path.name for path in (tmp_path / "cache").rglob("*")]
    assert names and not [name for name in names if name.endswith(".tmp")]


def test_an_http_cache_is_read_only_and_reads_what_was_pushed(
    store: Store, tmp_path: Path
) -> None:
    dref, rref = realization(store)
    push(store, FsspecBackend(str(tmp_path / "cache")), rref)
    with http_server(tmp_path / "cache") as url:
        backend = FsspecBackend(url)
        assert not backend.writable
        assert backend.realizations_of(dref) == [rref]
        assert backend.read_entry(rref, "outputs.json") == b'{"outputs": []}'
        assert backend.config_bytes(make_dref("0" * 32, "block")) is None
        with pytest.raises(StoreError, match="read-only"):
            push(store, backend, rref)
    shutil.rmtree(tmp_path / "cache")
