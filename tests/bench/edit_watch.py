"""The edit benchmark's `mdrun watch` column: save -> rewritten, through `edit_loop`'s measuring.

The documents are `edit_loop`'s cases (its own shapes: every block alike, the edit appends a
print to one block); where it has no case for a row of the benchmark, one of the same shape is
made here from its `EditCase`. The aims that allow "the blocks' own time" take that time from
`edit_loop` when it measures it (its heavy blocks print their own time in the kernel), else
from the case's blocks timed here in one plain interpreter.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass

from mdrun.core.jsonvalue import JSONObject, JSONValue

from . import edit_loop
from .edit_loop import EditCase

HEAVY_BLOCK = (
    "import time\nx{index} = sum(k * k for k in range(4_000_000)) % 1_000_003\ntime.sleep(0.25)"
)
"""As the corpus's heavy blocks: about 0.25 s of CPU work, then a 0.25 s sleep."""
FALLBACK_CASES: dict[tuple[str, str], EditCase] = {
    ("heavy", "last"): EditCase("heavy (10 x 0.5 s), last", 10, HEAVY_BLOCK, 9),
    ("heavy", "middle"): EditCase("heavy (10 x 0.5 s), middle", 10, HEAVY_BLOCK, 5),
    ("large", "middle"): EditCase("large (300 trivial blocks), middle", 300, "x{index} = {index}",
                                  150),
    ("thousand", "middle"): EditCase("thousand (1,000 trivial blocks), middle", 1000,
                                     "x{index} = {index}", 500),
}  # fmt: skip
"""Rows of the benchmark for which `edit_loop` has no case (yet): made here, same shape."""

TIMING_SCRIPT = """\
import contextlib, hashlib, io, json, sys, time, types
namespace = {}
timed = []
for code in json.load(sys.stdin):
    printed = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "<block>", "exec"), namespace)
    seconds = time.perf_counter() - start
    state = sorted((name, repr(value)) for name, value in namespace.items()
                   if not name.startswith("_") and not isinstance(value, types.ModuleType))
    result = hashlib.sha256(json.dumps([printed.getvalue(), state]).encode()).hexdigest()
    timed.append([seconds, result])
print(json.dumps(timed))
"""
"""Runs blocks one after the other in one namespace: each block's time, and a digest of what
it printed and the state it left (what mdrun's early cutoff compares)."""


@dataclass(frozen=True, slots=True)
class WatchRow:
    """One row of the watch column: which document and edit, and the case that measures it."""

    document: str
    scenario: str
    case: EditCase
    source: str
    """"edit_loop" (its own case) or "edit" (made here)."""


def _key(case: EditCase) -> tuple[str, str]:
    """("small", "last") from "small (10 trivial blocks), last"."""
    return case.name.split(" ", 1)[0], case.name.rsplit(", ", 1)[-1]


def watch_rows(wanted: list[tuple[str, str]]) -> list[WatchRow]:
    """The cases for the wanted (document, scenario) rows: edit_loop's first, then made here."""
    theirs = {_key(case): case for case in edit_loop.CASES}
    rows = []
    for key in wanted:
        if key in theirs:
            rows.append(WatchRow(*key, theirs[key], "edit_loop"))
        elif key in FALLBACK_CASES:
            rows.append(WatchRow(*key, FALLBACK_CASES[key], "edit"))
    return rows


def block_codes(case: EditCase, edit: int) -> list[str]:
    """The code of each block of the case's document after `edit` edits."""
    return re.findall(r"```python\n(.*?)\n```", case.text(edit), flags=re.DOTALL)


def timed_blocks(codes: list[str]) -> list[tuple[float, str]]:
    """Each block's own time and result digest, run in one plain interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", TIMING_SCRIPT], input=json.dumps(codes), capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    timed = json.loads(done.stdout)
    assert isinstance(timed, list)
    return [(float(seconds), str(result)) for seconds, result in timed]


def rerun_blocks(before: list[str], after: list[str], edited: int) -> range:
    """The blocks that must really re-run after an edit, from each block's result digest
    before and after it: the edited block, and each later block whose upstream block's result
    (output and state) changed, as mdrun's early cutoff decides."""
    last = edited
    while last + 1 < len(after) and after[last] != before[last]:
        last += 1
    return range(edited, last + 1)


def rerun_seconds(row: WatchRow, repeats: int) -> float:
    """The own time of the blocks that must really re-run after the case's edit (timed here);
    the smallest of `repeats` timings."""
    before = [result for _, result in timed_blocks(block_codes(row.case, 0))]
    timings = []
    for _ in range(repeats):
        after = timed_blocks(block_codes(row.case, 1))
        blocks = rerun_blocks(before, [result for _, result in after], row.case.edited)
        timings.append(sum(after[index][0] for index in blocks))
    return min(timings)


def measure_row(row: WatchRow, edits: int, repeats: int) -> JSONObject:
    """One watch row: each edit's save -> rewritten, and the blocks' own time to allow."""
    command = edit_loop.default_command()
    record: JSONObject = {
        "tool": "mdrun watch", "document": row.document, "scenario": row.scenario,
        "case": row.case.name, "source": row.source, "blocks": row.case.blocks,
        "edited": row.case.edited,
    }  # fmt: skip
    aimed = getattr(edit_loop, "measure_case_aimed", None)
    try:
        if aimed is None:
            timings, allowed = edit_loop.measure_case(command, row.case, edits), []
        else:
            timings, allowed = aimed(command, row.case, edits)
    except (TimeoutError, OSError) as err:
        record.update(ok=False, detail=f"{type(err).__name__}: {err}", seconds=[])
        return record
    record.update(ok=True, detail="", seconds=list[JSONValue](timings))
    if allowed and getattr(row.case, "plus_blocks", False):
        # edit_loop's own aim per edit: its allowance plus the own time, measured in the
        # kernel, of the blocks that ran for that edit.
        allowance = float(getattr(row.case, "allowance", 0.0))
        record["rerun_seconds"] = statistics.median(allowed) - allowance
        record["rerun_source"] = "the blocks' own times in the kernel, during the edits"
    else:
        record["rerun_seconds"] = rerun_seconds(row, repeats)
        record["rerun_source"] = "the blocks timed in a plain interpreter, after the edits"
    return record
