"""The seeds' examples run on mdrun.core with only their import line changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

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
