"""What the benchmarks share: options, worker processes with a time cap, statistics, reports.

Measurements run in worker processes (`python -m <module> ...`) that print one JSON record per
line, so every library runs in a clean interpreter and a run past the cap can be killed.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from mdrun.core.jsonvalue import JSONObject, JSONValue

REPOSITORY = Path(__file__).resolve().parents[2]
RESULTS_DIRECTORY = REPOSITORY / "tests" / "bench" / "results"


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What `python -m tests.bench` asks of every benchmark module."""

    quick: bool
    """A smoke run: small sizes, one repeat."""
    results_directory: Path
    """Where to write `<name>.md` and `<name>.json`."""


# -- worker processes -------------------------------------------------------------------------


@dataclass(slots=True)
class WorkerOutcome:
    """The records a worker printed, and how it ended."""

    records: list[JSONObject] = field(default_factory=list)
    """One JSON object per line of the worker's stdout, in order."""
    status: str = "ok"
    """"ok", "timeout" (a record took longer than the cap: killed) or "failed"."""
    detail: str = ""
    """For timeout and failed: what happened (the end of the worker's stderr)."""


def _read_lines(stream: Iterator[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_worker(module: str, arguments: Sequence[str], cap_seconds: float) -> WorkerOutcome:
    """Run `python -m module arguments`; kill it if the next record takes over `cap_seconds`."""
    environment = dict(os.environ)
    scratch = Path(tempfile.mkdtemp(prefix="mdrun-bench-env-"))
    # Keep both libraries away from the user's default stores, whatever happens.
    environment["MDRUN_STORE"] = str(scratch / "mdrun-default")
    environment["PYLIGHTNIX_ROOT"] = str(scratch / "_pylightnix")
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *arguments],
            cwd=REPOSITORY,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert process.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
        reader.start()
        outcome = WorkerOutcome()
        while True:
            try:
                line = lines.get(timeout=cap_seconds)
            except queue.Empty:
                process.kill()
                process.wait()
                outcome.status = "timeout"
                outcome.detail = f"a single run took more than {cap_seconds:.0f} s: stopped"
                break
            if line is None:
                break
            record = json.loads(line)
            assert isinstance(record, dict)
            outcome.records.append(record)
        returncode = process.wait()
        if outcome.status == "ok" and returncode != 0:
            errors.seek(0)
            outcome.status = "failed"
            outcome.detail = errors.read()[-2000:]
    _remove_scratch(scratch)
    return outcome


def _remove_scratch(path: Path) -> None:
    from mdrun.core.store import remove_tree

    remove_tree(path)


def emit(record: JSONObject) -> None:
    """A worker's output: one JSON record per line, flushed at once."""
    print(json.dumps(record), flush=True)


# -- statistics -------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def growth_exponent(small: tuple[int, float], large: tuple[int, float]) -> float:
    """k in time ~ size^k through two (size, seconds) points: 1 is linear, 2 quadratic."""
    import math

    return math.log(large[1] / small[1]) / math.log(large[0] / small[0])


# -- machine information and reports -----------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*arguments: str) -> str:
    try:
        return subprocess.run(
            ["git", *arguments], cwd=REPOSITORY, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> JSONObject:
    """CPU, Python, platform, library versions and the mdrun commit measured."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "mdrun_commit": _git("rev-parse", "--short", "HEAD"),
        "mdrun_core_modified": bool(_git("status", "--porcelain", "mdrun/core")),
        "pylightnix": _version("pylightnix"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table; columns after the first are right-aligned."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join([":---", *["---:"] * (len(headers) - 1)]) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(directory: Path, stem: str, markdown: str, data: JSONValue) -> list[Path]:
    """Write `<stem>.md` and `<stem>.json` (through a temporary name, then a rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, text in ((".md", markdown), (".json", json.dumps(data, indent=2) + "\n")):
        target = directory / f"{stem}{suffix}"
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(text)
        os.replace(temporary, target)
        written.append(target)
    return written
