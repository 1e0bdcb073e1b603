"""The edit loop: under `mdrun watch`, the time from saving an edit of one block to the document
rewritten with that block's new output (issue 10's aim: at most 0.15 s for the small and medium
documents).

`mdrun watch` runs as a user runs it (a process of its own); each edit is saved as an editor
saves (a new file renamed over the old one), and the document is read every 2 ms until its
region shows the edited block's new output. What is measured therefore includes the watcher's
wait for the files to be quiet (`watch.STEP_MILLISECONDS`).

Alone: `python -m tests.bench.edit_loop [--edits N] [--command ...]`; `--command` measures
another mdrun (e.g. one checked out at another commit: `--command 'env PYTHONPATH=/tmp/before
.venv/bin/python -c "from mdrun.cli import console_main; console_main()"'`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mdrun.core.jsonvalue import JSONObject, JSONValue

from .harness import BenchOptions, machine_info, markdown_table, write_results

NAME = "edit_loop"
DESCRIPTION = "mdrun watch: one block edited, save → document rewritten"

POLL_SECONDS = 0.002
PAUSE_SECONDS = 2.0
"""Between the first run and the first edit, and between edits: an author reads and types (and
a spare kernel boots meanwhile, which on a loaded machine takes a few seconds)."""
FIRST_RUN_SECONDS = 300.0
EDIT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class EditCase:
    """A document and which of its blocks is edited."""

    name: str
    blocks: int
    block_code: str
    """Code of every block but the edited one (`{index}` is the block's position)."""
    edited: int
    """The index of the edited block."""

    def text(self, edit: int) -> str:
        """The document after `edit` edits: the edited block prints `edit-<edit>`."""
        parts = ["# Edit loop\n"]
        for index in range(self.blocks):
            code = self.block_code.format(index=index)
            if index == self.edited:
                code = f"{code}\nprint('edit-{edit}')"
            parts.append(f"```python\n{code}\n```\n")
        return "\n".join(parts)


CASES = (
    EditCase("small (10 trivial blocks), last", 10, "x{index} = {index}", 9),
    EditCase(
        "medium (50 x 20 ms), last", 50, "import time\ntime.sleep(0.02)\nx{index} = {index}", 49
    ),
)


def _save(path: Path, text: str) -> None:
    temporary = path.with_name(".edit-loop-saving.md")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _wait_for(path: Path, marker: str, seconds: float) -> float:
    """Poll until the document holds `marker` in an output region; the time it took."""
    started = time.perf_counter()
    deadline = started + seconds
    needle = f"\nedit-{marker}\n"
    while time.perf_counter() < deadline:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            text = ""
        if needle in text.split("<!-- mdrun:output", 1)[-1]:
            return time.perf_counter() - started
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"the document never showed edit {marker}")


def measure_case(command: Sequence[str], case: EditCase, edits: int) -> list[float]:
    """Seconds from save to rewritten, for each of `edits` edits under one `mdrun watch`."""
    with tempfile.TemporaryDirectory(prefix="mdrun-edit-loop-") as folder:
        work = Path(folder)
        document = work / "doc.md"
        document.write_text(case.text(0), encoding="utf-8")
        process = subprocess.Popen(
            [*command, "--store", str(work / "store"), "watch", "doc.md"],
            cwd=work,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_for(document, "0", FIRST_RUN_SECONDS)
            time.sleep(PAUSE_SECONDS)
            timings = []
            for edit in range(1, edits + 1):
                rendered = document.read_text(encoding="utf-8")
                edited = rendered.replace(f"print('edit-{edit - 1}')", f"print('edit-{edit}')")
                _save(document, edited)
                timings.append(_wait_for(document, str(edit), EDIT_SECONDS))
                time.sleep(PAUSE_SECONDS)
            return timings
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def measure(command: Sequence[str], edits: int) -> list[tuple[str, list[float]]]:
    """Every case's timings."""
    return [(case.name, measure_case(command, case, edits)) for case in CASES]


def table(results: list[tuple[str, list[float]]]) -> str:
    rows = [
        [name, f"{statistics.median(times):.3f}", f"{min(times):.3f}", f"{max(times):.3f}"]
        for name, times in results
    ]
    return markdown_table(["one block edited", "median s", "min s", "max s"], rows)


def default_command() -> list[str]:
    return [sys.executable, "-c", "from mdrun.cli import console_main; console_main()"]


def run(options: BenchOptions) -> None:
    """For `python -m tests.bench`."""
    results = measure(default_command(), 3 if options.quick else 10)
    markdown = f"# {DESCRIPTION}\n\n{table(results)}\n"
    print(markdown, flush=True)
    cases: JSONObject = {name: list[JSONValue](times) for name, times in results}
    data: JSONObject = {"machine": machine_info(), "cases": cases}
    write_results(options.results_directory, NAME, markdown, data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.edit_loop", description=__doc__)
    parser.add_argument("--edits", type=int, default=5, help="edits per document (default 5)")
    parser.add_argument("--command", default=None, help="the mdrun command to measure")
    arguments = parser.parse_args(argv)
    command = shlex.split(arguments.command) if arguments.command else default_command()
    print(table(measure(command, arguments.edits)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
