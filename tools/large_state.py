"""Time mdrun on a document whose first block makes a 500 MB array, followed by quick blocks:
a cold run, the last block edited, and the store's size (hard links counted once).

    .venv/bin/python tools/large_state.py [--megabytes 500] [--repeats 3] [--reads]
        [--snapshot-all] [--mdrun PATH]

`--reads`: the quick blocks read the array (each then digests it again); by default they do
not. `--snapshot-all`: every block asks for a snapshot (the store then shows what it keeps).
Prints one line per measure (medians: wall seconds, and CPU seconds of mdrun and its kernel,
which a machine busy with other jobs disturbs less) and the store's size.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MDRUN = str(Path(sys.executable).parent / "mdrun")


def document(megabytes: int, quick: int, reads: bool, edited: bool, fence: str = "python") -> str:
    """The document: the array, then `quick` quick blocks (the last one edited or not)."""
    blocks = [f"import numpy as np\nbig = np.ones({megabytes * 1_000_000 // 8})\nprint(big.nbytes)"]
    for index in range(quick):
        value = index + (100 if edited and index == quick - 1 else 0)
        use = "big[0] + " if reads else ""
        blocks.append(f"v{index} = {use}{value}\nprint('block {index}:', v{index})")
    return "\n".join(f"```{fence}\n{code}\n```\n" for code in blocks)


def timed_run(mdrun: str, folder: Path, store: Path) -> tuple[float, float]:
    """Seconds that `mdrun run doc.md` takes, as a user sees them, and the CPU seconds it and
    its kernel used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [mdrun, "run", "--store", str(store), "--cache", "", "doc.md"],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


def store_bytes(store: Path) -> int:
    """The bytes the store's files take on disk, each hard-linked file counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _folders, files in os.walk(store):
        for name in files:
            status = os.lstat(os.path.join(root, name))
            if (status.st_dev, status.st_ino) not in seen:
                seen.add((status.st_dev, status.st_ino))
                total += status.st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=500)
    parser.add_argument("--quick", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reads", action="store_true")
    parser.add_argument("--mdrun", default=MDRUN, help="the mdrun command to time")
    parser.add_argument(
        "--snapshot-all", action="store_true", help="every block says snapshot=true"
    )
    arguments = parser.parse_args()
    colds: list[tuple[float, float]] = []
    lasts: list[tuple[float, float]] = []
    size = 0
    for _ in range(arguments.repeats):
        with tempfile.TemporaryDirectory(prefix="mdrun-large-") as temporary:
            folder = Path(temporary)
            store = folder / "store"
            fence = "python snapshot=true" if arguments.snapshot_all else "python"
            text = document(arguments.megabytes, arguments.quick, arguments.reads, False, fence)
            (folder / "doc.md").write_text(text)
            colds.append(timed_run(arguments.mdrun, folder, store))
            edited = document(arguments.megabytes, arguments.quick, arguments.reads, True, fence)
            (folder / "doc.md").write_text(edited)
            lasts.append(timed_run(arguments.mdrun, folder, store))
            size = store_bytes(store)
    for label, times in (("cold", colds), ("last block edited", lasts)):
        walls = [wall for wall, _cpu in times]
        cpus = [cpu for _wall, cpu in times]
        runs = ", ".join(f"{wall:.2f}" for wall in walls)
        print(
            f"{label}: {statistics.median(walls):.2f} s, CPU {statistics.median(cpus):.2f} s"
            f"  (runs: {runs})"
        )
    print(f"store after both runs: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
