"""The seeds' examples run on mdrun.core with only their import line changed."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from mdrun.core.lens import mklens
from mdrun.core.store import Store

README_EXAMPLE = """\
import numpy as np
from mdrun.core import *

fsinit('_pylightnix',use_as_default=True)

with current_registry(Registry()):

  @autostage(A=100,out=[selfref,'dataset.npy'])
  def stage_dataset(build,A,out):
    np.save(out,np.arange(0,A))

  @autostage(DS=stage_dataset(),out=[selfref,'model.npy'],nouts=10)
  def stage_train(build,rindex,DS,out):
    ds=np.load(DS.out)
    np.save(out,rindex)
    # TODO

  rrefs=realizeMany(instantiate(stage_train))
  assert len(rrefs)>=10
"""
"""seeds/001 (the README), `from pylightnix import *` replaced by `from mdrun.core import *`."""


def run_example(folder: Path) -> None:
    script = folder / "example.py"
    script.write_text(README_EXAMPLE)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_readme_example_runs_and_is_cached_across_processes(tmp_path: Path) -> None:
    run_example(tmp_path)
    store = Store(tmp_path / "_pylightnix")
    (train,) = [dref for dref in store.all_derivations() if dref.endswith("-stage_train")]
    rrefs = store.realizations_of(train)
    assert len(rrefs) == 10
    saved = sorted(int(np.load(mklens(rref, S=store).out.syspath)) for rref in rrefs)
    assert saved == list(range(10))
    dataset = mklens(rrefs[0], S=store).DS
    assert np.load(dataset.out.syspath).tolist() == list(range(100))
    assert dataset.A.val == 100

    run_example(tmp_path)
    assert store.all_derivations() == sorted([train, dataset.dref])
    assert store.realizations_of(train) == rrefs


SEED_002_EXAMPLE = """\
from os import chdir, getcwd, system
from os.path import join
from shutil import copytree
from tempfile import TemporaryDirectory
from typing import Any

from mdrun.core import *

fsinit('_pylightnix', use_as_default=True)
hello_version = '2.10'

def stage_src(m):
  return fetchurl(m, name='hello-src', url=HELLO_URL, sha256=HELLO_SHA256)

def stage_hello(m):
  hello_src = stage_src(m)
  def hello_config()->Config:
    name = 'hello-bin'
    src = [hello_src, f'hello-{hello_version}']
    return mkconfig(locals())

  def hello_realize(b:Build)->None:
    c:Any = build_cattrs(b)
    o:Path = build_outpath(b)
    with TemporaryDirectory() as tmp:
      copytree(build_path(b,c.src),join(tmp,'src'))
      cwd = getcwd()
      chdir(join(tmp,'src'))
      system(f'./configure --prefix=/usr')
      system(f'make')
      system(f'make install DESTDIR={o}')
      chdir(cwd)

  return mkdrv(m, hello_config(), match_only(), build_wrapper(hello_realize))

hello_rref:RRef = realize1(instantiate(stage_hello))

path=rref2path(hello_rref)
system(join(path,'usr/bin/hello'))
system(path + '/usr/bin/hello')
print(open(mklens(hello_rref).syspath + '/usr/bin/hello', 'rb').read()[:4] == b'\\x7fELF')
"""
"""seeds/002's custom stage written in the registry form that 001 and 003 use (the seeds' own
`instantiate_inplace` is an early name), its last lines (`rref2path`, `join`) unchanged, plus
the string concatenation Pylightnix paths allow."""


def test_seed_002_custom_stage_uses_rref2path_as_a_string(tmp_path: Path) -> None:
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc and make are needed to build hello")
    from tests.core.test_manual_quickstart import CONFIGURE, HELLO_C, MAKEFILE

    tarball = tmp_path / "hello-2.10.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, content, mode in [
            ("configure", CONFIGURE, 0o755),
            ("Makefile", MAKEFILE, 0o644),
            ("hello.c", HELLO_C, 0o644),
        ]:
            info = tarfile.TarInfo(f"hello-2.10/{name}")
            info.size, info.mode = len(content), mode
            archive.addfile(info, io.BytesIO(content))
    script = tmp_path / "example.py"
    script.write_text(
        f"HELLO_URL = {tarball.as_uri()!r}\n"
        f"HELLO_SHA256 = {hashlib.sha256(tarball.read_bytes()).hexdigest()!r}\n"
        + SEED_002_EXAMPLE
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Hello, world!\n") == 2
    assert done.stdout.endswith("True\n")


def test_seed_000_path_functions_give_strings(tmp_path: Path) -> None:
    """seeds/000 names `store_rref2path`/`store_dref2path` (early names of `rref2path`)."""
    import mdrun.core as core

    store = core.fsinit(tmp_path / "store", use_as_default=False)

    def stage_note(m: core.Registry) -> core.DRef:
        def write(b: core.Build) -> None:
            Path(core.build_outpath(b) + "/out.txt").write_text("hi")

        config = {"name": "note", "out": [core.selfref, "out.txt"]}
        return core.mkdrv(m, core.mkconfig(config), core.match_only(), core.build_wrapper(write))

    rref = core.realize1(core.instantiate(stage_note, r=core.Registry(store)))
    folder = core.rref2path(rref, S=store)
    assert isinstance(folder, str)
    assert folder == str(store.realization_path(rref))
    assert Path(folder + "/out.txt").read_text() == "hi"
    assert core.store_rref2path(rref, store) == folder
    assert (folder / "out.txt").read_text() == "hi"  # pathlib's way works too
    assert core.store_dref2path(core.rref2dref(rref), store) == str(
        store.derivation_path(core.rref2dref(rref))
    )
    syspath = core.mklens(rref, S=store).out.syspath
    assert isinstance(syspath, str)
    assert syspath.endswith("/out.txt")
    assert Path(syspath.replace("out.txt", "") + "out.txt").read_text() == "hi"
