"""Time the edit benchmark's 500 MB-array document (`tests.bench.corpus`, "array"): cold and last
block edited, mdrun with and without its server, markdown-exec beside it, in alternating repeats.

    .venv/bin/python tools/array_document.py [--repeats 5] [--before COMMIT]...
        [--markdown-exec PYTHON]

`--before COMMIT` adds mdrun as it was at a commit (its package unpacked from git, run through
PYTHONPATH in this environment). Each sequence runs in a new folder with a store and a servers'
folder of its own: with the server, `mdrun server start` and a warm-up run come first, and an
author's pause of 2 s before each timed run (a spare kernel boots meanwhile). Prints medians and
the load average (the machine may be shared: compare only figures of one run).
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from tests.bench.corpus import edit_corpus, render  # noqa: E402
from tests.bench.peers import MARKDOWN_EXEC, MARKDOWN_EXEC_DRIVER  # noqa: E402

MDRUN = str(Path(sys.executable).parent / "mdrun")
PAUSE_SECONDS = 2.0
Sequence = Callable[[], tuple[float, float]]


def timed(argv: list[str], folder: Path, environment: dict[str, str]) -> float:
    """Seconds that `argv` takes, as a user sees them; it must succeed."""
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=folder, env=environment, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return seconds


def mdrun_sequence(pythonpath: str | None, server: bool) -> tuple[float, float]:
    """Cold, then the last block edited, in a new folder (seconds of each)."""
    document = next(entry for entry in edit_corpus() if entry.name == "array")
    with tempfile.TemporaryDirectory(prefix="mdrun-array-") as scratch:
        folder = Path(scratch)
        sockets = folder / "servers"
        sockets.mkdir(mode=0o700)
        environment = {
            **os.environ,
            "MDRUN_STORE": str(folder / "store"),
            "MDRUN_SERVER": "on" if server else "off",
            "MDRUN_SERVER_FOLDER": str(sockets),
            "MDRUN_SERVER_IDLE_SECONDS": "300",
        }
        if pythonpath is not None:
            environment["PYTHONPATH"] = pythonpath
        pause = PAUSE_SECONDS if server else 0.0
        try:
            if server:
                timed([MDRUN, "server", "start"], folder, environment)
                (folder / "warm.md").write_text("```python\nprint('warm')\n```\n")
                timed([MDRUN, "run", "warm.md"], folder, environment)
            seconds = []
            for version in ("original", "last"):
                (folder / "doc.md").write_text(render(document, version, "plain"))
                time.sleep(pause)
                seconds.append(timed([MDRUN, "run", "doc.md"], folder, environment))
                if "block 5:" not in (folder / "doc.md").read_text().rpartition("value5")[2]:
                    raise SystemExit("mdrun wrote no output for the last block")
            return seconds[0], seconds[1]
        finally:
            if server:
                stop = [MDRUN, "server", "stop"]
                subprocess.run(stop, cwd=folder, env=environment, capture_output=True, check=False)


def markdown_exec_sequence(python: str) -> tuple[float, float]:
    """markdown-exec on the original, then on the last block edited (it caches nothing)."""
    document = next(entry for entry in edit_corpus() if entry.name == "array")
    with tempfile.TemporaryDirectory(prefix="mdrun-array-") as scratch:
        folder = Path(scratch)
        seconds = []
        for version in ("original", "last"):
            (folder / "doc.md").write_text(render(document, version, "markdown_exec"))
            argv = [python, str(MARKDOWN_EXEC_DRIVER), "doc.md", "out.html"]
            seconds.append(timed(argv, folder, dict(os.environ)))
        return seconds[0], seconds[1]


def unpacked(commit: str, into: Path) -> str:
    """mdrun's package at `commit`, unpacked under `into`: the PYTHONPATH that runs it."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "mdrun"],
        cwd=REPOSITORY, capture_output=True, check=True,
    ).stdout  # fmt: skip
    target = into / commit
    with tarfile.open(fileobj=io.BytesIO(archive)) as unpacking:
        unpacking.extractall(target, filter="data")
    return str(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", action="append", default=[], metavar="COMMIT")
    parser.add_argument("--markdown-exec", default=MARKDOWN_EXEC.bin("python"), metavar="PYTHON")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mdrun-array-sources-") as sources:
        contenders: list[tuple[str, Sequence]] = [
            ("markdown-exec", lambda: markdown_exec_sequence(arguments.markdown_exec))
        ]
        variants: list[tuple[str, str | None]] = [("mdrun", None)]
        for commit in arguments.before:
            variants.append((f"mdrun at {commit}", unpacked(commit, Path(sources))))
        for label, path in variants:
            for server in (False, True):
                name = f"{label}, run + server" if server else f"{label}, run"
                contenders.append((name, functools.partial(mdrun_sequence, path, server)))
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in contenders}
        loads: list[float] = []
        for repeat in range(arguments.repeats):
            shift = repeat % len(contenders)
            for name, sequence in contenders[shift:] + contenders[:shift]:
                loads.append(os.getloadavg()[0])
                figures[name].append(sequence())
                cold, last = figures[name][-1]
                print(f"  {name}: cold {cold:.2f} s, last {last:.2f} s", file=sys.stderr)
    print(
        f"Medians of {arguments.repeats} alternating repeats, load average "
        f"{min(loads):.1f}-{max(loads):.1f} (median {statistics.median(loads):.1f})\n"
    )
    print("| contender | cold | last block edited |\n|:---|---:|---:|")
    for name, runs in figures.items():
        cold = statistics.median(run[0] for run in runs)
        last = statistics.median(run[1] for run in runs)
        print(f"| {name} | {cold:.2f} s | {last:.2f} s |")


if __name__ == "__main__":
    main()
