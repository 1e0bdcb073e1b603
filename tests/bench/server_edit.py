"""One-shot `mdrun run` after a one-block edit, with the mdrun server warm and without it
(issue 10's aims: the small document's edit at most 0.25 s with the server; without it, no
slower than before).

`mdrun run doc.md` is run as a user types it (the installed console script, a process of its
own) and timed end to end. The server lives in a socket folder of the benchmark's own
(`MDRUN_SERVER_FOLDER`) and is stopped at the end. Between edits the benchmark pauses as an
author does (a spare kernel boots meanwhile).

Alone: `python -m tests.bench.server_edit [--edits N]`; `measure_case(case, server=...)` is
what a benchmark table calls.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mdrun.server import control

from .edit_loop import CASES as WATCH_CASES
from .edit_loop import EditCase

PAUSE_SECONDS = 2.0
"""Between edits: an author reads and types."""
HEAVY = EditCase(
    "heavy (10 x 0.5 s), last", 10, "import time\ntime.sleep(0.5)\nx{index} = {index}", 9
)
CASES = (WATCH_CASES[0], HEAVY)


def mdrun_command() -> list[str]:
    """The installed console script, as a user runs it."""
    return [str(Path(sys.executable).parent / "mdrun")]


def measure_case(case: EditCase, *, server: bool, edits: int = 5) -> list[float]:
    """Seconds of `mdrun run doc.md` after each of `edits` edits of `case`'s edited block,
    with the server on (warmed by a first run and one edit) or off (`--no-server`)."""
    with tempfile.TemporaryDirectory(prefix="mdrun-bench-") as scratch:
        folder = Path(scratch)
        sockets = tempfile.mkdtemp(prefix="mdrun-bench-server-")
        environment = {
            **os.environ,
            "MDRUN_STORE": str(folder / "store"),
            "MDRUN_SERVER": "on" if server else "off",
            "MDRUN_SERVER_FOLDER": sockets,
        }
        document = folder / "doc.md"
        flags = [] if server else ["--no-server"]

        def run() -> float:
            started = time.perf_counter()
            subprocess.run(
                [*mdrun_command(), "run", "doc.md", *flags],
                cwd=folder, env=environment, check=True, capture_output=True,
            )  # fmt: skip
            return time.perf_counter() - started

        try:
            document.write_text(case.text(0), encoding="utf-8")
            run()
            if server:
                control.start_and_wait(environment, 600)
                document.write_text(case.text(1), encoding="utf-8")
                time.sleep(PAUSE_SECONDS)
                run()  # the server's first run starts its kernel
            timings = []
            for edit in range(2, edits + 2):
                time.sleep(PAUSE_SECONDS)
                document.write_text(case.text(edit), encoding="utf-8")
                timings.append(run())
            return timings
        finally:
            control.stop_all(sockets)
            shutil.rmtree(sockets, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.server_edit")
    parser.add_argument("--edits", type=int, default=5)
    arguments = parser.parse_args()
    print("| one block edited | `mdrun run`, server warm | `mdrun run --no-server` |")
    print("|---|---|---|")
    for case in CASES:
        warm = measure_case(case, server=True, edits=arguments.edits)
        alone = measure_case(case, server=False, edits=arguments.edits)
        print(
            f"| {case.name} | {statistics.median(warm):.3f} s | "
            f"{statistics.median(alone):.3f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
