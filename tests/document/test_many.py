"""Several documents per command, and `-j N`: one line per document, the worst exit code, and
a parallel run that writes what a serial run writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdrun.document.pools import default_jobs

from .conftest import Mdrun

OK = """\
# Fine

```python
print("fine")
```
"""

FAILS = """\
# Fails

```python
raise ValueError("on purpose")
```
"""

BAD = """\
# Bad

```python timeout=soon
print("never")
```
"""


def two_sessions(name: str) -> str:
    """A document with two sessions of three blocks each, interleaved."""
    return f"""\
# {name}

```python
total = 0
print("{name} main start")
```

```python session=other
items = ["{name}"]
print(items)
```

```python
total += 21
print(total)
```

```python session=other
items.append("two")
print(len(items), items)
```

```python
print(total * 2)
```

```python session=other
print("-".join(items))
```
"""


@pytest.mark.kernel
def test_several_documents_one_line_each_one_in_all_and_the_worst_exit(mdrun: Mdrun) -> None:
    folder = mdrun.path("pages")
    folder.mkdir()
    (folder / "ok.md").write_text(OK, encoding="utf-8")
    (folder / "fails.md").write_text(FAILS, encoding="utf-8")
    (folder / "bad.md").write_text(BAD, encoding="utf-8")
    completed = mdrun("run", "pages")
    assert completed.code == 2, completed.err
    lines = completed.err.splitlines()
    assert any(line.startswith("mdrun: error: pages/bad.md:3:") for line in lines), lines
    assert any(line.startswith("mdrun: pages/ok.md: 1 blocks, 1 executed") for line in lines)
    assert any(line.startswith("mdrun: pages/fails.md: 1 blocks, 0 executed, 0 cached, 1 failed")
               for line in lines), lines  # fmt: skip
    assert lines[-1].startswith("mdrun: 3 documents: 1 ok, 1 failed, 1 bad input in ")
    # The bad document stopped nothing: the others were run and written.
    assert "fine" in (folder / "ok.md").read_text(encoding="utf-8")
    assert "on purpose" in (folder / "fails.md").read_text(encoding="utf-8")
    assert (folder / "bad.md").read_text(encoding="utf-8") == BAD

    checked = mdrun("check", "pages/ok.md", "pages/fails.md")
    assert checked.code == 1
    assert checked.err.splitlines()[-1].startswith("mdrun: 2 documents: 1 ok, 1 failed")
    status = mdrun("status", "pages")
    assert status.code == 2
    assert "pages/ok.md:3: b1: cached" in status.out
    assert "mdrun: pages/ok.md: 1 cached" in status.err


@pytest.mark.kernel
def test_one_document_reports_as_before(mdrun: Mdrun) -> None:
    mdrun.write("ok.md", OK)
    completed = mdrun("run", "ok.md")
    assert completed.code == 0
    assert completed.err.splitlines() == [completed.err.splitlines()[0]]
    assert completed.err.startswith("mdrun: 1 blocks, 1 executed, 0 cached, 0 failed in ")


@pytest.mark.kernel
@pytest.mark.slow
def test_parallel_run_writes_what_a_serial_run_writes(tmp_path: Path) -> None:
    serial = Mdrun(tmp_path / "serial", tmp_path / "serial-store")
    parallel = Mdrun(tmp_path / "parallel", tmp_path / "parallel-store")
    names = ["alpha.md", "beta.md", "gamma.md"]
    for name in names:
        for runner in (serial, parallel):
            runner.write(name, two_sessions(name))
    for runner in (serial, parallel):
        runner.write("fails.md", FAILS)
        runner.write("bad.md", BAD)
    expected = serial("run", ".")
    assert expected.code == 2, expected.err
    completed = parallel("run", "-j", "2", ".")
    assert completed.code == 2, completed.err
    for name in [*names, "fails.md", "bad.md"]:
        assert parallel.path(name).read_bytes() == serial.path(name).read_bytes(), name
    assert "mdrun: alpha.md: 6 blocks, 6 executed, 0 cached, 0 failed" in completed.err
    assert "mdrun: error: bad.md:3:" in completed.err
    assert completed.err.splitlines()[-1].startswith(
        "mdrun: 5 documents: 3 ok, 1 failed, 1 bad input"
    )

    # Edit one session of one document: only that session runs again, in a worker.
    for runner in (serial, parallel):
        runner.path("beta.md").write_text(
            runner.read("beta.md").replace('items.append("two")', 'items.append("three")'),
            encoding="utf-8",
        )
    before = parallel.read("beta.md")
    checked = parallel("check", "-j", "2", "alpha.md", "beta.md")
    assert checked.code == 1, checked.err
    assert "+++ beta.md (after mdrun run)" in checked.out
    assert "mdrun: beta.md: 6 blocks, 2 executed, 4 cached" in checked.err
    assert "mdrun: beta.md is not up to date" in checked.err
    assert parallel.read("beta.md") == before  # check writes nothing
    again = parallel("run", "-j", "2", "alpha.md", "beta.md")
    assert again.code == 0, again.err
    assert "mdrun: alpha.md: 6 blocks, 0 executed, 6 cached" in again.err
    assert "mdrun: beta.md: 6 blocks, 0 executed, 6 cached" in again.err  # stored by check
    assert serial("run", "beta.md").code == 0
    assert parallel.path("beta.md").read_bytes() == serial.path("beta.md").read_bytes()


THREADS = """\
```python
import os
for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    print(name, os.environ.get(name))
```
"""


@pytest.mark.kernel
def test_kernels_of_a_parallel_run_share_the_cores(
    mdrun: Mdrun, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the user's choice is kept
    mdrun.write("threads.md", THREADS)
    completed = mdrun("run", "-j", "2", "threads.md", "--force")
    assert completed.code == 0, completed.err
    text = mdrun.read("threads.md")
    share = max(1, default_jobs() // 2)
    assert "OMP_NUM_THREADS 7" in text
    assert f"OPENBLAS_NUM_THREADS {share}" in text
    assert f"MKL_NUM_THREADS {share}" in text


def test_several_documents_refuse_options_for_one(mdrun: Mdrun) -> None:
    mdrun.write("a.md", OK)
    mdrun.write("b.md", OK)
    completed = mdrun("run", "a.md", "b.md", "-o", "out.md")
    assert completed.code == 2
    assert "-o takes one document" in completed.err
    assert mdrun("run", "-j", "0", "a.md").code == 2
    assert mdrun("run", "-j", "many", "a.md").code == 2
    assert not mdrun.path("out.md").exists()


WAITS_TO_BE_KILLED = """\
```python
values = [n * n for n in range(5)]
```

```python
import os, pathlib, time
ready = pathlib.Path("ready")
if not ready.exists():
    # Tell the test which worker runs this block (the kernel's parent), then take a while.
    ready.write_text(str(os.getppid()))
    time.sleep(60)
print(sum(values))
```

```python session=other
print("beside it")
```
"""


@pytest.mark.kernel
@pytest.mark.slow
def test_a_worker_process_killed_mid_block_its_session_runs_again(tmp_path: Path) -> None:
    import os
    import signal
    import threading
    import time

    from mdrun.core.store import Store
    from mdrun.core.verify import verify_store

    parallel = Mdrun(tmp_path / "parallel", tmp_path / "parallel-store")
    serial = Mdrun(tmp_path / "serial", tmp_path / "serial-store")
    for runner in (parallel, serial):
        runner.write("slow.md", WAITS_TO_BE_KILLED)
        runner.write("other.md", two_sessions("other.md"))
    serial.write("ready", "0")
    killed: list[int] = []

    def kill_when_ready() -> None:
        marker = parallel.path("ready")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if marker.exists() and marker.read_text().strip():
                killed.append(int(marker.read_text()))
                os.kill(killed[0], signal.SIGKILL)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_ready, daemon=True)
    killer.start()
    completed = parallel("run", "-j", "2", ".")
    killer.join(timeout=5)
    assert killed, "the slow block never started"
    assert completed.code == 0, completed.err
    assert serial("run", ".").code == 0
    for name in ("slow.md", "other.md"):
        assert parallel.path(name).read_bytes() == serial.path(name).read_bytes(), name
    store = Store.initialize(tmp_path / "parallel-store")
    assert verify_store(store).damaged == []
    assert {len(store.realizations_of(dref)) for dref in store.all_derivations()} == {1}
