"""One measured run: a few processes in sequence, their wall time and their peak memory.

Wall time: `perf_counter` around each process, summed. Memory, two ways:
- *max RSS*: `os.wait4`'s resource usage of each process, which on Linux covers the process and
  every descendant it waited for (a kernel is one): the largest single process of the tree;
- *tree peak*: the largest sum of the RSS of the process and all its descendants, sampled by
  psutil every 50 ms in a thread of the benchmark (a run shorter than that is sampled once).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .peers import Command

psutil: Any = importlib.import_module("psutil")
"""By name: psutil ships no type information (and mypy runs where types-psutil is not)."""

SAMPLE_SECONDS = 0.05


@dataclass(slots=True)
class Measurement:
    """How one run went."""

    seconds: float = 0.0
    command_seconds: list[float] = field(default_factory=list)
    max_rss_kib: int = 0
    tree_peak_kib: int = 0
    ok: bool = True
    detail: str = ""


class _TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stopped = threading.Event()

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        self.peak = max(self.peak, total)

    def run(self) -> None:
        self.sample()
        while not self.stopped.wait(SAMPLE_SECONDS):
            self.sample()


def run_environment(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a run: the benchmark's, with `extra`. As on a user's machine, compiled
    modules are written once and reused (a session that sets PYTHONDONTWRITEBYTECODE would make
    an editable install recompile every run)."""
    environment = {**os.environ, **extra}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    return environment


def run_commands(commands: list[Command], cwd: Path, log_stem: str) -> Measurement:
    """Run the commands in `cwd` one after the other; stop at the first that fails."""
    measurement = Measurement()
    for index, command in enumerate(commands):
        environment = run_environment(command.env)
        stdout_path = cwd / f"{log_stem}.{index}.out"
        stderr_path = cwd / f"{log_stem}.{index}.err"
        with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
            start = time.perf_counter()
            process = subprocess.Popen(
                command.argv,
                cwd=cwd,
                env=environment,
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=stderr,
            )
            sampler = _TreeSampler(process.pid)
            sampler.start()
            assert process.stdin is not None
            try:
                process.stdin.write(command.stdin.encode())
                process.stdin.close()
            except BrokenPipeError:
                pass
            _, status, usage = os.wait4(process.pid, 0)
            elapsed = time.perf_counter() - start
            sampler.stopped.set()
            sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        measurement.command_seconds.append(elapsed)
        measurement.seconds += elapsed
        measurement.max_rss_kib = max(measurement.max_rss_kib, int(usage.ru_maxrss))
        measurement.tree_peak_kib = max(measurement.tree_peak_kib, sampler.peak // 1024)
        if process.returncode != 0:
            measurement.ok = False
            tail = stderr_path.read_text(errors="replace")[-1500:]
            name = Path(command.argv[0]).name
            measurement.detail = f"`{name}` exited {process.returncode}: {tail}"
            break
    return measurement
