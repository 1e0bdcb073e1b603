"""`--executor dask` against a real `distributed.LocalCluster` (two worker processes).

A worker killed while it runs a block: Dask runs the unit again on a worker that lives, the
store holds one sound realization per block (none half-published, none twice) and the document
equals a serial run's. `make test` runs one kill; `make cluster` runs `MDRUN_CLUSTER_KILLS`.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdrun.core.store import Store
from mdrun.core.verify import verify_store

from .conftest import Mdrun

distributed = pytest.importorskip("distributed")

KILLS = int(os.environ.get("MDRUN_CLUSTER_KILLS", "1"))

SLOW_PAGE = """\
# A page whose second block is slow the first time it runs anywhere

```python
import os, pathlib, time
values = [n * n for n in range(5)]
print(values)
```

```python
ready = pathlib.Path("{marker}")
if not ready.exists():
    # Tell the test which worker runs this block (the kernel's parent), then take a while.
    ready.write_text(str(os.getppid()))
    time.sleep(60)
print(sum(values))
```

```python session=other
print("another session of {name}")
```
"""


def page(name: str, marker: str) -> str:
    return SLOW_PAGE.format(name=name, marker=marker)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """Two worker processes, one task each at a time; its scheduler's address."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield str(local.scheduler_address)


def _kill_when_ready(marker: Path, killed: list[int]) -> None:
    """SIGKILL the worker process that wrote its pid into `marker`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text().strip():
            pid = int(marker.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


def _realizations_per_block(store: Path) -> dict[str, int]:
    opened = Store.initialize(store)
    return {dref: len(opened.realizations_of(dref)) for dref in opened.all_derivations()}


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(KILLS))
def test_a_worker_killed_mid_block_the_documents_still_come_out_right(
    tmp_path: Path, cluster: str, attempt: int
) -> None:
    del attempt
    on_cluster = Mdrun(tmp_path / "cluster", tmp_path / "cluster-store")
    serial = Mdrun(tmp_path / "serial", tmp_path / "serial-store")
    names = ["one.md", "two.md", "three.md"]
    for name in names:
        # Only one.md's slow block waits to be killed; the others find their marker there.
        marker = "ready-one" if name == "one.md" else f"ready-{name[:-3]}"
        for runner in (on_cluster, serial):
            runner.write(name, page(name, marker))
            if name != "one.md":
                runner.write(marker, "0")
    serial.write("ready-one", "0")
    killed: list[int] = []
    killer = threading.Thread(
        target=_kill_when_ready, args=(on_cluster.path("ready-one"), killed), daemon=True
    )
    killer.start()
    completed = on_cluster("run", "--executor", "dask", "--scheduler", cluster, ".")
    killer.join(timeout=5)
    assert killed, "the slow block never started"
    assert completed.code == 0, completed.err
    assert serial("run", ".").code == 0
    for name in names:
        assert on_cluster.path(name).read_bytes() == serial.path(name).read_bytes(), name
    verification = verify_store(Store.initialize(tmp_path / "cluster-store"))
    assert verification.damaged == []
    counts = _realizations_per_block(tmp_path / "cluster-store")
    assert counts and set(counts.values()) == {1}, counts
    assert "mdrun: 3 documents: 3 ok" in completed.err


@pytest.mark.kernel
@pytest.mark.slow
def test_the_scheduler_can_come_from_the_environment(
    mdrun: Mdrun, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MDRUN_DASK_SCHEDULER", cluster)
    mdrun.write("a.md", page("a.md", "marker"))
    mdrun.write("marker", "0")
    completed = mdrun("run", "--executor", "dask", "a.md")
    assert completed.code == 0, completed.err
    assert "another session of a.md" in mdrun.read("a.md")
    again = mdrun("run", "--executor", "dask", "a.md", "--force")
    assert again.code == 0
    assert "3 executed" in again.err


def test_dask_without_a_scheduler_is_bad_usage(
    mdrun: Mdrun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MDRUN_DASK_SCHEDULER", raising=False)
    mdrun.write("a.md", "```python\nprint(1)\n```\n")
    completed = mdrun("run", "--executor", "dask", "a.md")
    assert completed.code == 2
    assert "--scheduler" in completed.err
    assert mdrun.read("a.md") == "```python\nprint(1)\n```\n"
