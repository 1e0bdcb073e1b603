"""Time mdrun on a document whose first block makes a 500 MB array, followed by quick blocks:
a cold run, the last block edited, and the store's size (hard links counted once).

    .venv/bin/python tools/large_state.py [--megabytes 500] [--repeats 3] [--reads] [--mdrun PATH]

`--reads`: the quick blocks read the array (each then digests it again); by default they do
not, as the issue's document. Prints one line per measure (medians) and the store's size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MDRUN = str(Path(sys.executable).parent / "mdrun")


def document(megabytes: int, quick: int, reads: bool, edited: bool) -> str:
    """The document: the array, then `quick` quick blocks (the last one edited or not)."""
    blocks = [f"import numpy as np\nbig = np.ones({megabytes * 1_000_000 // 8})\nprint(big.nbytes)"]
    for index in range(quick):
        value = index + (100 if edited and index == quick - 1 else 0)
        use = "big[0] + " if reads else ""
        blocks.append(f"v{index} = {use}{value}\nprint('block {index}:', v{index})")
    return "\n".join(f"```python\n{code}\n```\n" for code in blocks)


def timed_run(mdrun: str, folder: Path, store: Path) -> float:
    """Seconds that `mdrun run doc.md` takes, as a user sees them."""
    started = time.perf_counter()
    subprocess.run(
        [mdrun, "run", "--store", str(store), "--cache", "", "doc.md"],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


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
    arguments = parser.parse_args()
    colds: list[float] = []
    lasts: list[float] = []
    size = 0
    for _ in range(arguments.repeats):
        with tempfile.TemporaryDirectory(prefix="mdrun-large-") as temporary:
            folder = Path(temporary)
            store = folder / "store"
            text = document(arguments.megabytes, arguments.quick, arguments.reads, False)
            (folder / "doc.md").write_text(text)
            colds.append(timed_run(arguments.mdrun, folder, store))
            edited = document(arguments.megabytes, arguments.quick, arguments.reads, True)
            (folder / "doc.md").write_text(edited)
            lasts.append(timed_run(arguments.mdrun, folder, store))
            size = store_bytes(store)
    for label, times in (("cold", colds), ("last block edited", lasts)):
        runs = ", ".join(f"{seconds:.2f}" for seconds in times)
        print(f"{label}: {statistics.median(times):.2f} s  (runs: {runs})")
    print(f"store after both runs: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
