"""The edit loop: under `mdrun watch`, the time from saving an edit of one block to the document
rewritten with that block's new output. Issue 10's aims: at most 0.15 s for the small and medium
documents; for the heavy one (10 blocks of 0.5 s), the own time of the blocks that must run again
plus 0.15 s (last block edited) or 0.2 s (middle block: the edit changes that block's output, so
every block after it runs again too). Each heavy block prints its own time, measured in its
kernel, so each edit's aim counts the blocks that ran for it, as long as they took then (on a
loaded machine, a block's time varies more than the allowance).

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
import re
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
    allowance: float = 0.15
    """The aim: at most this many seconds from save to rewritten..."""
    plus_blocks: bool = False
    """...plus the own time of the blocks that must run again (the edited one and those after
    it), when True."""

    def text(self, edit: int) -> str:
        """The document after `edit` edits: the edited block prints `edit-<edit>`."""
        parts = ["# Edit loop\n"]
        for index in range(self.blocks):
            code = self.block_code.format(index=index)
            if index == self.edited:
                code = f"{code}\nprint('edit-{edit}')"
            parts.append(f"```python\n{code}\n```\n")
        return "\n".join(parts)

    def aim(self, before: str, after: str) -> float:
        """The aim for an edit that turned the document `before` into `after`: the allowance,
        plus (`plus_blocks`) the own time of the blocks that ran for it (from the edited one
        on, those whose printed time changed)."""
        if not self.plus_blocks:
            return self.allowance
        old = [float(seconds) for seconds in OWN_TIME.findall(before)]
        new = [float(seconds) for seconds in OWN_TIME.findall(after)]
        ran = [
            seconds
            for index, seconds in enumerate(new)
            if index == self.edited or (index > self.edited and seconds != old[index])
        ]
        return self.allowance + sum(ran)


HEAVY_BLOCK = (
    "import time\n_started = time.perf_counter()\n"
    "x{index} = sum(k * k for k in range(4_000_000)) % 1_000_003\ntime.sleep(0.25)\n"
    "print(f'own time {{time.perf_counter() - _started:.4f}} s')"
)
"""About 0.25 s of CPU work, then a 0.25 s sleep (as the benchmark corpus's heavy blocks); it
prints the time it took."""
OWN_TIME = re.compile(r"^own time (\d+\.\d+) s$", re.MULTILINE)

CASES = (
    EditCase("small (10 trivial blocks), last", 10, "x{index} = {index}", 9),
    EditCase(
        "medium (50 x 20 ms), last", 50, "import time\ntime.sleep(0.02)\nx{index} = {index}", 49
    ),
    EditCase("heavy (10 x 0.5 s), last", 10, HEAVY_BLOCK, 9, plus_blocks=True),
    EditCase("heavy (10 x 0.5 s), middle", 10, HEAVY_BLOCK, 5, 0.2, plus_blocks=True),
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
    return measure_case_aimed(command, case, edits)[0]


def measure_case_aimed(
    command: Sequence[str], case: EditCase, edits: int
) -> tuple[list[float], list[float]]:
    """Seconds from save to rewritten for each edit, and each edit's aim (see `EditCase.aim`)."""
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
            timings, aims = [], []
            for edit in range(1, edits + 1):
                rendered = document.read_text(encoding="utf-8")
                edited = rendered.replace(f"print('edit-{edit - 1}')", f"print('edit-{edit}')")
                _save(document, edited)
                timings.append(_wait_for(document, str(edit), EDIT_SECONDS))
                aims.append(case.aim(rendered, document.read_text(encoding="utf-8")))
                time.sleep(PAUSE_SECONDS)
            return timings, aims
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def measure(
    command: Sequence[str], edits: int, cases: Sequence[EditCase] = CASES
) -> list[tuple[str, list[float]]]:
    """Every case's timings."""
    return measure_aimed(command, edits, cases)[0]


def measure_aimed(
    command: Sequence[str], edits: int, cases: Sequence[EditCase] = CASES
) -> tuple[list[tuple[str, list[float]]], dict[str, list[float]]]:
    """Every case's timings, and each of its edits' aims (for `table`)."""
    results, aimed = [], {}
    for case in cases:
        timings, aims = measure_case_aimed(command, case, edits)
        results.append((case.name, timings))
        aimed[case.name] = aims
    return results, aimed


def table(
    results: list[tuple[str, list[float]]], aimed: dict[str, list[float]] | None = None
) -> str:
    """The results as a Markdown table; with `aimed` (see `measure_aimed`), each case's aim (the
    median of its edits'), the median of each edit's margin (its aim less its time: paired, so
    that a loaded machine's slower blocks count in both) and whether that margin is >= 0."""
    header = ["one block edited", "median s", "min s", "max s"]
    rows = []
    for name, times in results:
        row = [name, f"{statistics.median(times):.3f}", f"{min(times):.3f}", f"{max(times):.3f}"]
        if aimed is not None and name in aimed:
            aims = aimed[name]
            margin = statistics.median(aim - time for aim, time in zip(aims, times, strict=True))
            met = "yes" if margin >= 0 else "no"
            row += [f"{statistics.median(aims):.3f}", f"{margin:+.3f}", met]
        elif aimed is not None:
            row += ["", "", ""]
        rows.append(row)
    if aimed is not None:
        header += ["aim s", "margin s", "met"]
    return markdown_table(header, rows)


def default_command() -> list[str]:
    return [sys.executable, "-c", "from mdrun.cli import console_main; console_main()"]


def run(options: BenchOptions) -> None:
    """For `python -m tests.bench`."""
    results, aimed = measure_aimed(default_command(), 3 if options.quick else 10)
    markdown = f"# {DESCRIPTION}\n\n{table(results, aimed)}\n"
    print(markdown, flush=True)
    cases: JSONObject = {name: list[JSONValue](times) for name, times in results}
    targets: JSONObject = {name: list[JSONValue](seconds) for name, seconds in aimed.items()}
    data: JSONObject = {"machine": machine_info(), "cases": cases, "aims": targets}
    write_results(options.results_directory, NAME, markdown, data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.edit_loop", description=__doc__)
    parser.add_argument("--edits", type=int, default=5, help="edits per document (default 5)")
    parser.add_argument("--command", default=None, help="the mdrun command to measure")
    parser.add_argument(
        "--case", action="append", default=None, help="only the cases whose name starts so"
    )
    arguments = parser.parse_args(argv)
    command = shlex.split(arguments.command) if arguments.command else default_command()
    cases = [
        case
        for case in CASES
        if not arguments.case or any(case.name.startswith(start) for start in arguments.case)
    ]
    results, aimed = measure_aimed(command, arguments.edits, cases)
    print(table(results, aimed), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
