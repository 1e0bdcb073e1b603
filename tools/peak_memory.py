"""Run a command and report its wall time and the peak resident memory of the process and of
its descendants (a kernel, say), sampled from /proc every 50 ms. Linux only.

    .venv/bin/python tools/peak_memory.py .venv/bin/mdrun --store /tmp/s run doc.md

`/usr/bin/time -v` gives the first figure only: a kernel is not a child that mdrun waits for.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

SAMPLE_SECONDS = 0.05


def process_table() -> dict[int, tuple[int, int]]:
    """pid → (parent pid, resident bytes) for every process we can read."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            status = (entry / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        resident = 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                resident = int(line.split()[1]) * 1024
        table[int(entry.name)] = (parent, resident)
    return table


def descendants(table: dict[int, tuple[int, int]], root: int) -> set[int]:
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, (parent, _) in table.items() if parent in frontier} - found
        found |= frontier
    return found


def main(command: list[str]) -> int:
    started = time.monotonic()
    process = subprocess.Popen(command)
    own_peak = descendants_peak = 0
    while process.poll() is None:
        table = process_table()
        own_peak = max(own_peak, table.get(process.pid, (0, 0))[1])
        for pid in descendants(table, process.pid):
            descendants_peak = max(descendants_peak, table.get(pid, (0, 0))[1])
        time.sleep(SAMPLE_SECONDS)
    print(
        f"exit {process.returncode}, {time.monotonic() - started:.1f} s, peak resident memory:"
        f" {own_peak / 1e6:.0f} MB (the command), {descendants_peak / 1e6:.0f} MB (its largest"
        " descendant)",
        file=sys.stderr,
    )
    return process.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
