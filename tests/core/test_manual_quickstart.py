"""The Pylightnix manual's quick start (seed 003), as a user would write it against mdrun.

Only the import lines differ from the manual. GNU Hello is replaced by a tiny autotools-free
`hello-2.10.tar.gz` made here (a `configure` script, a Makefile, a C file), fetched through a
`file://` URL: no network.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from os import chdir, getcwd, system
from os.path import isdir, join
from pathlib import Path
from shutil import copytree
from tempfile import TemporaryDirectory

import pytest

from mdrun.core import (
    Build,
    Config,
    DRef,
    Manager,
    RefPath,
    RRef,
    Store,
    build_setoutpaths,
    build_wrapper,
    dirrw,
    fetchurl,
    instantiate,
    match_only,
    mkconfig,
    mkdrv,
    mklens,
    promise,
    realize,
)
from mdrun.errors import FetchError

hello_version = "2.10"

CONFIGURE = b"""#!/bin/sh
prefix=/usr/local
for arg in "$@"; do
  case "$arg" in
    --prefix=*) prefix="${arg#--prefix=}" ;;
  esac
done
echo "PREFIX = $prefix" > config.mk
echo "configured for $prefix"
"""

MAKEFILE = b"""include config.mk

all: hello

hello: hello.c
\tgcc -o hello hello.c

install: hello
\tmkdir -p $(DESTDIR)$(PREFIX)/bin
\tcp hello $(DESTDIR)$(PREFIX)/bin/hello
"""

HELLO_C = b"""#include <stdio.h>
int main(void) { printf("Hello, world!\\n"); return 0; }
"""


@pytest.fixture
def hello_tarball(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Make hello-2.10.tar.gz and point the module's `hello_url`/`hello_sha256` at it."""
    path = tmp_path / "mirror" / f"hello-{hello_version}.tar.gz"
    path.parent.mkdir()
    with tarfile.open(path, "w:gz") as archive:
        for name, content, mode in [
            ("configure", CONFIGURE, 0o755),
            ("Makefile", MAKEFILE, 0o644),
            ("hello.c", HELLO_C, 0o644),
        ]:
            info = tarfile.TarInfo(f"hello-{hello_version}/{name}")
            info.size, info.mode = len(content), mode
            archive.addfile(info, io.BytesIO(content))
    url, sha256 = path.as_uri(), hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(globals(), "hello_url", url)
    monkeypatch.setitem(globals(), "hello_sha256", sha256)
    return url, sha256


# -- the manual's code (module level, as a user writes it) ---------------------------------------

hello_url = "http://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz"  # replaced by the fixture
hello_sha256 = "31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b"


def stage_fetch(m: Manager) -> DRef:
    return fetchurl(m, name="hello-src", url=hello_url, sha256=hello_sha256)


def stage_build(m: Manager) -> DRef:
    def _config() -> Config:
        name: str = "hello-bin"
        fetch_ref: DRef = stage_fetch(m)
        src: RefPath = [fetch_ref, f"hello-{hello_version}"]
        bin: RefPath = [promise, "usr", "bin", "hello"]
        return mkconfig(locals())

    def _realize(b: Build) -> None:
        build_setoutpaths(b, 1)
        with TemporaryDirectory() as tmp:
            copytree(mklens(b).src.syspath, join(tmp, "src"))
            dirrw(Path(join(tmp, "src")))
            cwd = getcwd()
            try:
                print(f"Building {mklens(b).name.val}")
                chdir(join(tmp, "src"))
                system("./configure --prefix=/usr")
                system("make")
                system(f"make install DESTDIR={mklens(b).syspath}")
            finally:
                chdir(cwd)

    return mkdrv(m, config=_config(), matcher=match_only(), realizer=build_wrapper(_realize))


# -- the checks -----------------------------------------------------------------------------------


def test_quick_start(store: Store, hello_tarball: tuple[str, str]) -> None:
    url, sha256 = hello_tarball

    # 4.2 Accessing the data
    fetch_rref: RRef = realize(instantiate(stage_fetch))
    print(fetch_rref)
    assert mklens(fetch_rref).rref == fetch_rref
    assert mklens(fetch_rref).dref == instantiate(stage_fetch).result
    print(mklens(fetch_rref).syspath)
    assert isdir(join(mklens(fetch_rref).syspath, f"hello-{hello_version}"))
    assert mklens(fetch_rref).name.val == "hello-src"
    assert mklens(fetch_rref).url.val == url
    assert mklens(fetch_rref).sha256.val == sha256

    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc and make are needed to build hello")

    # 4.3 Defining a custom stage
    build_rref: RRef = realize(instantiate(stage_build))
    print(build_rref)
    assert mklens(build_rref).fetch_ref.rref == fetch_rref
    assert mklens(build_rref).fetch_ref.url.val == url

    # 4.4 Execute
    hello = mklens(build_rref).bin.syspath
    completed = subprocess.run([str(hello)], capture_output=True, text=True, check=True)
    assert completed.stdout == "Hello, world!\n"
    assert realize(instantiate(stage_build)) == build_rref  # nothing is built twice


def test_wrong_sha256_stores_nothing(
    store: Store, hello_tarball: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _url, sha256 = hello_tarball
    wrong = sha256[::-1]
    monkeypatch.setitem(globals(), "hello_sha256", wrong)
    with pytest.raises(FetchError, match=f"expected {wrong}, got {sha256}"):
        realize(instantiate(stage_build))
    assert store.all_realizations() == []
