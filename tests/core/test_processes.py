"""Several processes on one store: one build at a time, crash safety, stable references.

Each test runs small scripts with the test's Python, as separate processes would run mdrun.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mdrun.core.matchers import match_only
from mdrun.core.refs import DRef, RRef
from mdrun.core.registry import Registry, mkdrv
from mdrun.core.store import Store
from tests.core.helpers import artifact, never_realize, tmp_entries

SLOW_STAGE = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from mdrun.core.build import build_outpath, build_wrapper
    from mdrun.core.matchers import match_only
    from mdrun.core.realization import realize1
    from mdrun.core.registry import Registry, instantiate, mkdrv
    from mdrun.core.store import Store

    store_root, log, delay = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])

    def note(event):
        with log.open("a") as stream:
            stream.write(f"{event} {os.getpid()} {time.time()}\\n")

    def realize(b):
        (build_outpath(b) / "partial").write_text("half written")
        note("build")
        time.sleep(delay)
        (build_outpath(b) / "partial").unlink()
        (build_outpath(b) / "artifact").write_text("slow result")
        note("built")

    def stage(r):
        return mkdrv(r, {"name": "slow"}, match_only(), build_wrapper(realize))

    registry = Registry(Store.initialize(store_root))
    note("start")
    print(realize1(instantiate(stage, r=registry)))
    """
)


def slow_dref(store: Store) -> DRef:
    """The dref of the scripts' stage, computed in this process."""
    return mkdrv(Registry(store), {"name": "slow"}, match_only(), never_realize)


def run_slow(tmp_path: Path, store: Store, delay: float) -> subprocess.Popen[str]:
    script = tmp_path / "slow.py"
    script.write_text(SLOW_STAGE)
    return subprocess.Popen(
        [sys.executable, str(script), str(store.root), str(tmp_path / "log"), str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def events(tmp_path: Path, kind: str) -> list[tuple[int, float]]:
    lines = (tmp_path / "log").read_text().splitlines() if (tmp_path / "log").exists() else []
    return [(int(pid), float(at)) for event, pid, at in map(str.split, lines) if event == kind]


def test_two_processes_build_a_slow_stage_once(tmp_path: Path, store: Store) -> None:
    first, second = run_slow(tmp_path, store, 1.0), run_slow(tmp_path, store, 1.0)
    outputs = [process.communicate(timeout=60) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0]
    assert len(events(tmp_path, "build")) == 1
    # both processes were running before the build ended, so the second one really waited
    [(_, built_at)] = events(tmp_path, "built")
    assert all(started < built_at for _, started in events(tmp_path, "start"))
    rref = RRef(outputs[0][0].strip())
    assert store.realizations_of(slow_dref(store)) == [rref]
    assert artifact(store, rref) == "slow result"


def test_a_killed_build_leaves_no_realization_and_a_free_lock(
    tmp_path: Path, store: Store
) -> None:
    dref = slow_dref(store)
    victim = run_slow(tmp_path, store, 60.0)
    deadline = time.monotonic() + 30
    while not events(tmp_path, "build"):
        assert time.monotonic() < deadline, victim.stderr.read() if victim.stderr else ""
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    leftovers = [name for name in tmp_entries(store) if name.startswith(f"build-{victim.pid}-")]
    assert len(leftovers) == 1
    assert store.realizations_of(dref) == []

    lock = store.lock(dref)
    lock.acquire(timeout=2)
    lock.release()

    started = time.monotonic()
    survivor = run_slow(tmp_path, store, 0.0)
    stdout, stderr = survivor.communicate(timeout=30)
    assert survivor.returncode == 0, stderr
    assert time.monotonic() - started < 15
    assert len(events(tmp_path, "built")) == 1
    assert store.realizations_of(dref) == [stdout.strip()]
    assert artifact(store, store.realizations_of(dref)[0]) == "slow result"
    assert not any(name.startswith(f"build-{victim.pid}-") for name in tmp_entries(store))


DREF_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from mdrun.core.matchers import match_only
    from mdrun.core.registry import Registry, mkdrv
    from mdrun.core.store import Store

    def never(*args):
        raise AssertionError("not built here")

    registry = Registry(Store.initialize(sys.argv[1]))
    words = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"}
    fields = {word: len(word) for word in words}  # insertion order follows the hash seed
    base = mkdrv(registry, {"name": "base", **fields}, match_only(), never)
    top = mkdrv(registry, {"name": "top", "deps": {w: base for w in words}, "x": 1.5},
                match_only(), never)
    print(json.dumps({"order": list(fields), "drefs": [base, top]}))
    """
)


def test_drefs_are_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    script = tmp_path / "drefs.py"
    script.write_text(DREF_SCRIPT)
    results = []
    for seed, store in (("1", "one"), ("2", "two")):
        environment = {**os.environ, "PYTHONHASHSEED": seed}
        ran = subprocess.run(
            [sys.executable, str(script), str(tmp_path / store)],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(ran.stdout))
    assert results[0]["order"] != results[1]["order"]  # the seeds really changed dict order
    assert results[0]["drefs"] == results[1]["drefs"]


OPEN_STORES = textwrap.dedent(
    """
    import sys, time
    from mdrun.core.store import Store
    from mdrun.errors import StoreError

    folder, rounds, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    failures = 0
    for number in range(rounds):
        time.sleep(max(0.0, start + 0.05 * number - time.time()))
        try:
            Store.initialize(f"{folder}/store-{number}")
        except StoreError as err:
            failures += 1
            print(err, file=sys.stderr)
    print(failures)
    """
)


def test_processes_opening_a_new_store_at_once_all_get_it(tmp_path: Path) -> None:
    # Six processes open the same new stores at the same instants, round after round: every
    # one of them must find a store (none may see a half-made one and call it "not a store").
    script = tmp_path / "open.py"
    script.write_text(OPEN_STORES)
    rounds = 30
    start = time.time() + 1.5
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(rounds), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [process.communicate(timeout=120) for process in processes]
    assert [(out.strip(), err) for out, err in results] == [("0", "")] * 6
    for number in range(rounds):
        root = tmp_path / f"store-{number}"
        assert sorted(os.listdir(root)) == ["locks", "store", "tmp", "version"]
        Store(root).check_version()
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["open.py", *(f"store-{number}" for number in range(rounds))]
    )
