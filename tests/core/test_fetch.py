"""fetchurl and fetchlocal: file:// and a local http server, unpacking, hashes, safety."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdrun.core.fetch import fetchlocal, fetchurl
from mdrun.core.lens import mklens
from mdrun.core.realization import realize1
from mdrun.core.registry import instantiate
from mdrun.core.store import Store
from mdrun.errors import ConfigError, FetchError


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_tar(path: Path, files: dict[str, bytes], compression: str = "gz") -> Path:
    mode = f"w:{compression}" if compression else "w"
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            archive.addfile(info, io.BytesIO(content))
    return path


FILES = {"pkg-1.0/README": b"readme\n", "pkg-1.0/run.sh": b"#!/bin/sh\necho hi\n"}


@pytest.mark.parametrize(
    ("filename", "compression"),
    [
        ("pkg.tar.gz", "gz"),
        ("pkg.tgz", "gz"),
        ("pkg.tar", ""),
        ("pkg.tar.bz2", "bz2"),
        ("pkg.tar.xz", "xz"),
    ],
)
def test_fetchurl_unpacks_tarballs_and_drops_the_archive(
    store: Store, tmp_path: Path, filename: str, compression: str
) -> None:
    archive = make_tar(tmp_path / filename, FILES, compression)
    rref = realize1(
        instantiate(fetchurl, url=archive.as_uri(), sha256=sha256_of(archive), name="pkg")
    )
    folder = mklens(rref).syspath
    assert (folder / "pkg-1.0" / "README").read_bytes() == b"readme\n"
    assert os.access(folder / "pkg-1.0" / "run.sh", os.X_OK)
    assert not (folder / filename).exists()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("_")) == [
        "context.json",
        "pkg-1.0",
    ]
    assert mklens(rref).url.val == archive.as_uri()


def test_fetchurl_unpacks_zip_keeping_exec_bits(store: Store, tmp_path: Path) -> None:
    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("pkg/data.txt", "data")
        info = zipfile.ZipInfo("pkg/tool.sh")
        info.external_attr = 0o755 << 16
        zipped.writestr(info, "#!/bin/sh\n")
    rref = realize1(instantiate(fetchurl, url=archive.as_uri(), sha256=sha256_of(archive)))
    folder = mklens(rref).syspath
    assert (folder / "pkg" / "data.txt").read_text() == "data"
    assert os.access(folder / "pkg" / "tool.sh", os.X_OK)


def test_fetchurl_as_is_keeps_the_file_and_promises_it(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(b"\x01" * 1000)
    rref = realize1(
        instantiate(fetchurl, url=source.as_uri(), sha256=sha256_of(source), mode="as-is")
    )
    assert mklens(rref).out.syspath.read_bytes() == b"\x01" * 1000
    assert store.config_of(mklens(rref).dref).data["out"] == ["__self__", "weights.bin"]


def test_wrong_sha256_names_url_and_both_hashes_and_stores_nothing(
    store: Store, tmp_path: Path
) -> None:
    archive = make_tar(tmp_path / "pkg.tar.gz", FILES)
    wrong = "0" * 64
    with pytest.raises(FetchError) as caught:
        realize1(instantiate(fetchurl, url=archive.as_uri(), sha256=wrong))
    message = str(caught.value)
    assert archive.as_uri() in message
    assert wrong in message
    assert sha256_of(archive) in message
    assert store.all_realizations() == []
    assert [p.name for p in store.tmp.iterdir() if p.name.startswith("build-")] == []


def test_missing_url_is_a_fetch_error(store: Store, tmp_path: Path) -> None:
    missing = (tmp_path / "nope.tar.gz").as_uri()
    with pytest.raises(FetchError, match="cannot download"):
        realize1(instantiate(fetchurl, url=missing, sha256="0" * 64))
    assert store.all_realizations() == []


@pytest.mark.parametrize("evil", ["../escape.txt", "/abs/escape.txt", "ok/../../escape.txt"])
def test_path_traversal_members_are_refused(store: Store, tmp_path: Path, evil: str) -> None:
    archive = make_tar(tmp_path / "evil.tar.gz", {"fine.txt": b"x", evil: b"bad"})
    with pytest.raises(FetchError, match="outside the realization"):
        realize1(instantiate(fetchurl, url=archive.as_uri(), sha256=sha256_of(archive)))
    assert store.all_realizations() == []
    assert not (store.root / "escape.txt").exists()
    assert not (store.tmp / "escape.txt").exists()


def test_zip_traversal_is_refused(store: Store, tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../escape.txt", "bad")
    with pytest.raises(FetchError, match="outside the realization"):
        realize1(instantiate(fetchurl, url=archive.as_uri(), sha256=sha256_of(archive)))


def test_links_out_of_the_archive_are_refused(store: Store, tmp_path: Path) -> None:
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tarred:
        link = tarfile.TarInfo("pkg/passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tarred.addfile(link)
    with pytest.raises(FetchError, match="cannot unpack"):
        realize1(instantiate(fetchurl, url=archive.as_uri(), sha256=sha256_of(archive)))


@pytest.fixture
def http_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A folder served by http.server on 127.0.0.1, with proxies disabled."""
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(served), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetchurl_over_http(store: Store, http_root: tuple[Path, str]) -> None:
    served, base = http_root
    archive = make_tar(served / "pkg-1.0.tar.gz", FILES)
    rref = realize1(instantiate(fetchurl, url=f"{base}/pkg-1.0.tar.gz", sha256=sha256_of(archive)))
    assert (mklens(rref).syspath / "pkg-1.0" / "README").read_bytes() == b"readme\n"
    with pytest.raises(FetchError, match="404"):
        realize1(instantiate(fetchurl, url=f"{base}/missing.tar.gz", sha256="0" * 64))


def test_fetchlocal_copies_and_checks(store: Store, tmp_path: Path) -> None:
    source = make_tar(tmp_path / "pkg.tar.gz", FILES)
    rref = realize1(instantiate(fetchlocal, path=source, sha256=sha256_of(source)))
    assert (mklens(rref).syspath / "pkg-1.0" / "README").exists()
    assert mklens(rref).path.val == str(source)
    kept = realize1(instantiate(fetchlocal, path=source, sha256=sha256_of(source), mode="unpack"))
    assert (mklens(kept).syspath / "pkg.tar.gz").read_bytes() == source.read_bytes()
    with pytest.raises(FetchError, match="sha256 mismatch"):
        realize1(instantiate(fetchlocal, path=source, sha256="1" * 64, name="other"))


def test_bad_arguments_are_config_errors(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported url"):
        instantiate(fetchurl, url="ftp://example.org/x.tar.gz", sha256="0" * 64)
    with pytest.raises(ConfigError, match="64 hex"):
        instantiate(fetchurl, url="file:///x.tar.gz", sha256="abc")
    with pytest.raises(ConfigError, match="mode"):
        instantiate(fetchurl, url="file:///x.tar.gz", sha256="0" * 64, mode="as-is,unpack")
    with pytest.raises(ConfigError, match="filename"):
        instantiate(fetchurl, url="http://example.org/", sha256="0" * 64)


def test_not_an_archive_is_a_clear_error(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("plain text")
    with pytest.raises(FetchError, match="not a tar or zip archive"):
        realize1(instantiate(fetchlocal, path=source, sha256=sha256_of(source)))
