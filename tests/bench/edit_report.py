"""The edit benchmark's report: issue 10's aims, each with its measure, ratio and verdict, and the
table of medians (mdrun's ways and the peers side by side)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mdrun.core.jsonvalue import JSONObject

from .corpus import ARRAY_BYTES
from .harness import RESULTS_DIRECTORY, markdown_table

NONE = "\u2013"
TIMES = "\u00d7"
WATCH = "mdrun watch"
NO_SERVER = "mdrun run"
BEFORE = "mdrun before"
SERVER = "mdrun run+server"
ONE_SHOT = (NO_SERVER, SERVER)
PEERS = ("nbclient", "codebraid", "markdown-exec")
SLOWER_ALLOWED = 1.10
"""'No slower than before' allows this ratio for the noise of a shared machine."""
ISSUE_BEFORE = {("thousand", "cold"): 14.5, ("thousand", "middle"): 7.7,
                ("array", "cold"): 6.7, ("array", "last"): 2.2}  # fmt: skip
"""`mdrun run` in issue 10's table (the upper end of a range), for the documents that
documents.json does not have."""
SCENARIO_LABELS = {"cold": "cold", "last": "last block edited", "middle": "middle block edited"}

METHOD = """\
Documents (`tests/bench/corpus.py`, `edit_corpus`): *small* 10 trivial blocks; *medium* 50 blocks
of ~20 ms, chained; *large* 300 trivial blocks; *thousand* 1,000 trivial blocks; *heavy* 10
blocks of ~0.5 s (~0.25 s of CPU work, then a 0.25 s sleep), chained; *array* a 500 MB array of
random float64 in block 0, then 5 quick blocks each reading one element and the previous block's
value. An edit changes a constant that flows downstream, so no early cutoff helps. One sequence
per contender and document, in a new folder: cold, then each edit (from the original). A run is
the tool's process(es), timed from outside: `mdrun --store S run doc.md` (with `--no-server`
when this mdrun has a server); *before*: the same with mdrun's package as it was at the commit
named (unpacked from git, same interpreter and libraries), so "no slower than before" is judged
under the same load; with the server: the same, after `mdrun server start` and a warm-up run
(untimed, in a servers' folder of the sequence's own; `mdrun server stop` after). Every
contender's runs each start after an author's 2 s pause (memory freed is given back to the host
within about a second, and allocating it again is slow: a tool run without the pause would be
measured on warmer memory);
jupytext + nbclient `jupytext --to ipynb` then `jupyter execute --inplace`; codebraid `codebraid
pandoc --from markdown --to markdown`; markdown-exec through Python-Markdown as MkDocs would
(`session="doc"`). Every run is checked: exit code 0, and the edited block's and the last block's
lines in what it wrote. *watch*: a real `mdrun watch`; each edit saved as an editor saves, the
time until the document shows the edited block's new output (`tests/bench/edit_loop.py`; its
documents have every block alike and the edit appends a print, so they are of the same shape,
not the same code); the blocks "that must re-run" are timed right after in a plain interpreter:
the edited block, and each later one whose upstream block's output or state changed (mdrun's
early cutoff). Cells are medians over {repeats}; the watch cells over its edits. A
store's bytes count a hard-linked file once."""


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def seconds_text(value: float | None) -> str:
    if value is None:
        return NONE
    return f"{value:.3f} s" if value < 1 else f"{value:.2f} s"


def before_figures() -> JSONObject:
    """`mdrun run` before this work: documents.json's medians, then issue 10's table."""
    before: dict[str, float] = {}
    path = RESULTS_DIRECTORY / "documents.json"
    if path.is_file():
        records = json.loads(path.read_text())["records"]
        keys = {(r["document"], r["scenario"]) for r in records if r["tool"] == "mdrun"}
        for document, scenario in sorted(keys):
            values = [r["seconds"] for r in records if r["tool"] == "mdrun" and r["ok"]
                      and r["document"] == document and r["scenario"] == scenario
                      and r["repeat"] >= 0]  # fmt: skip
            if values:
                before[f"{document} {scenario}"] = statistics.median(values)
    for (document, scenario), value in ISSUE_BEFORE.items():
        before.setdefault(f"{document} {scenario}", value)
    return dict(before)


class EditResults:
    """Medians, failures and the store's sizes from the raw records."""

    def __init__(self, data: JSONObject) -> None:
        self.data: dict[str, Any] = dict(data)
        self.records: list[dict[str, Any]] = [r for r in self.data["records"] if r["repeat"] >= 0]
        self.watch: list[dict[str, Any]] = list(self.data["watch"])

    def runs(self, tool: str, document: str, scenario: str) -> list[dict[str, Any]]:
        return [r for r in self.records if (r["tool"], r["document"], r["scenario"]) ==
                (tool, document, scenario)]  # fmt: skip

    def seconds(self, tool: str, document: str, scenario: str) -> float | None:
        if tool == WATCH:
            found = self.watch_record(document, scenario)
            return _median(found["seconds"]) if found and found["ok"] else None
        return _median([r["seconds"] for r in self.runs(tool, document, scenario) if r["ok"]])

    def command_seconds(self, tool: str, document: str, scenario: str, index: int) -> float | None:
        return _median([r["command_seconds"][index] for r in self.runs(tool, document, scenario)
                        if r["ok"] and len(r["command_seconds"]) > index])  # fmt: skip

    def watch_record(self, document: str, scenario: str) -> dict[str, Any] | None:
        return next((w for w in self.watch
                     if (w["document"], w["scenario"]) == (document, scenario)), None)  # fmt: skip

    def is_measured(self, tool: str) -> bool:
        return tool == WATCH or tool in self.data["contenders"]

    def failed(self, tool: str, document: str, scenario: str) -> bool:
        if tool == WATCH:
            found = self.watch_record(document, scenario)
            return found is not None and not found["ok"]
        return any(not r["ok"] for r in self.runs(tool, document, scenario))

    def store_bytes(self, tool: str, document: str) -> int | None:
        """The largest store at the end of a sequence (after its last edit)."""
        edits = self.data["documents"].get(document, {}).get("edits", [])
        values = [r["store_bytes"] for r in self.runs(tool, document, edits[-1] if edits else "")
                  if r["ok"] and "store_bytes" in r]  # fmt: skip
        return max(values) if values else None


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "not measured"}[met]


def _row(aim: str, tool: str, measured: str, ratio: str, met: bool | None) -> list[str]:
    return [aim, tool, measured, ratio, _verdict(met)]


def _not_measured(results: EditResults, aim: str, tool: str, document: str) -> list[str]:
    why = results.data["skipped"].get(tool)
    if why is None:
        ran = tool == WATCH and any(w["document"] == document for w in results.watch)
        ran = ran or any(r["tool"] == tool and r["document"] == document for r in results.records)
        why = "failed (see below)" if ran else "not run (not in this mode)"
    return _row(aim, tool, why, NONE, None)


def limit_row(
    results: EditResults, aim: str, tool: str, key: tuple[str, str], limit: float, note: str = ""
) -> list[str]:
    """An aim 'at most `limit` seconds'; the ratio is measured ÷ limit."""
    value = results.seconds(tool, *key)
    if value is None:
        return _not_measured(results, aim, tool, key[0])
    measured = seconds_text(value) + (f"; {note}" if note else "")
    return _row(aim, tool, measured, f"{value / limit:.2f}{TIMES} the limit", value <= limit)


def peer_ratio_row(
    results: EditResults, aim: str, tool: str, key: tuple[str, str], at_least: float
) -> list[str]:
    """An aim 'at least `at_least` times faster than every peer'; the ratio is the smallest."""
    value = results.seconds(tool, *key)
    peers = [(p, t) for p in PEERS if (t := results.seconds(p, *key)) is not None]
    if value is None or not peers:
        return _not_measured(results, aim, tool, key[0])
    ratios = [(peer, theirs / value) for peer, theirs in peers]
    smallest = min(ratio for _, ratio in ratios)
    measured = seconds_text(value) + "; " + ", ".join(
        f"{peer} {seconds_text(t)}" for peer, t in peers
    )
    return _row(aim, tool, measured, f"fastest peer ÷ mdrun {smallest:.2f}{TIMES}",
                smallest >= at_least if at_least > 1 else smallest > 1)  # fmt: skip


def relative_row(
    results: EditResults, aim: str, tool: str, key: tuple[str, str], peer: str, at_most: float
) -> list[str]:
    """An aim 'at most `at_most` times a peer's time'; the ratio is mdrun ÷ the peer."""
    value, theirs = results.seconds(tool, *key), results.seconds(peer, *key)
    if value is None or theirs is None:
        return _not_measured(results, aim, tool, key[0])
    measured = f"{seconds_text(value)}; {peer} {seconds_text(theirs)}"
    ratio = value / theirs
    return _row(aim, tool, measured, f"{ratio:.2f}{TIMES} {peer}", ratio <= at_most)


def watch_aims(results: EditResults) -> list[list[str]]:
    rows = []
    for document in ("small", "medium"):
        theirs = results.seconds("markdown-exec", document, "last")
        peer = "not run in this mode" if theirs is None else seconds_text(theirs)
        rows.append(limit_row(results, f"{document}, last block edited ≤ 0.15 s", WATCH,
                              (document, "last"), 0.15, f"markdown-exec's whole run {peer}"))
    for scenario, allowance in (("last", 0.15), ("middle", 0.2)):
        found = results.watch_record("heavy", scenario)
        aim = (f"heavy, {scenario} block edited ≤ the blocks that must re-run "
               f"+ {allowance} s")  # fmt: skip
        if not found or "rerun_seconds" not in found:
            rows.append(_row(aim, WATCH, "failed or not run", NONE, None))
            continue
        rerun = float(found["rerun_seconds"])
        rows.append(limit_row(results, aim, WATCH, ("heavy", scenario), rerun + allowance,
                              f"the re-run blocks alone {seconds_text(rerun)}"))
    return rows


def server_aims(results: EditResults) -> list[list[str]]:
    codebraid = results.seconds("codebraid", "small", "last")
    row = limit_row(results, "small, last block edited ≤ 0.25 s and faster than codebraid",
                    SERVER, ("small", "last"), 0.25, f"codebraid {seconds_text(codebraid)}")
    value = results.seconds(SERVER, "small", "last")
    if value is not None and codebraid is not None and value >= codebraid:
        row[-1] = _verdict(False)
    heavy = f"heavy, last block edited ≥ 6{TIMES} faster than every peer"
    return [row, peer_ratio_row(results, heavy, SERVER, ("heavy", "last"), 6.0)]


def large_document_aims(results: EditResults) -> list[list[str]]:
    rows = []
    cold = f"1,000 trivial blocks, cold ≤ 1.2{TIMES} jupytext + nbclient"
    for tool in ONE_SHOT:
        rows.append(relative_row(results, cold, tool, ("thousand", "cold"), "nbclient", 1.2))
    for tool in (*ONE_SHOT, WATCH):
        rows.append(limit_row(results, "1,000 trivial blocks, middle block edited ≤ 1.0 s",
                              tool, ("thousand", "middle"), 1.0))
    for tool in ONE_SHOT:
        rows.append(relative_row(results, f"500 MB array, cold ≤ 1.3{TIMES} markdown-exec", tool,
                                 ("array", "cold"), "markdown-exec", 1.3))
    for tool in ONE_SHOT:
        rows.append(peer_ratio_row(results, "500 MB array, last block edited faster than every "
                                   "peer", tool, ("array", "last"), 1.0))
    for tool in ONE_SHOT:
        rows.append(store_row(results, tool))
    return rows


def store_row(results: EditResults, tool: str) -> list[str]:
    aim = "500 MB array: the store holds each unchanged variable once (after cold + last edit)"
    size = results.store_bytes(tool, "array")
    if size is None:
        return _not_measured(results, aim, tool, "array")
    copies = size / ARRAY_BYTES
    measured = f"{size / 1e6:,.0f} MB on disk (hard links counted once)"
    return _row(aim, tool, measured, f"{copies:.2f}{TIMES} the array", copies < 1.5)


def before_rows(results: EditResults) -> tuple[list[list[str]], bool | None]:
    """`mdrun run` without the server against mdrun before, in this run (and, for reference,
    the figures of another day: documents.json, issue 10's table); whether every one is within
    `SLOWER_ALLOWED` of this run's before (of the figure where before did not run)."""
    figures: dict[str, float] = results.data.get("before", {})
    same_run = BEFORE in results.data["contenders"]
    rows, verdicts = [], []
    for document, about in results.data["documents"].items():
        for scenario in ("cold", *about["edits"]):
            now = results.seconds(NO_SERVER, document, scenario)
            then = results.seconds(BEFORE, document, scenario) if same_run else None
            figure = figures.get(f"{document} {scenario}")
            base = figure if then is None else then
            if now is None or base is None:
                continue
            verdicts.append(now / base <= SLOWER_ALLOWED)
            rows.append([document, SCENARIO_LABELS[scenario], seconds_text(then),
                         seconds_text(now), f"{now / base:.2f}{TIMES}", _verdict(verdicts[-1]),
                         seconds_text(figure), NONE if figure is None else
                         f"{now / figure:.2f}{TIMES}"])  # fmt: skip
    return rows, (all(verdicts) if verdicts else None)


BEFORE_HEADERS = ["document", "scenario", "before (this run)", "now", "now ÷ before", "verdict",
                  "figure of another day", "now ÷ that"]  # fmt: skip


def aims_table(results: EditResults) -> str:
    rows = [*watch_aims(results), *server_aims(results), *large_document_aims(results)]
    before, met = before_rows(results)
    within = sum(row[BEFORE_HEADERS.index("verdict")] == "met" for row in before)
    base = "mdrun before, this run" if BEFORE in results.data["contenders"] else (
        "documents.json's figures")
    rows.append(_row("without the server: no slower than before (≤ "
                     f"{SLOWER_ALLOWED:.2f}{TIMES} {base}, table below)", NO_SERVER,
                     f"{within} of {len(before)} within", NONE, met))  # fmt: skip
    return markdown_table(["aim", "mdrun", "measured (median)", "ratio", "verdict"], rows)


def columns(results: EditResults) -> list[tuple[str, str]]:
    named = dict(results.data["contenders"])
    ordered = [(NO_SERVER, named.get(NO_SERVER, "mdrun `run` (no server)")),
               (BEFORE, named.get(BEFORE, "mdrun `run` before")),
               (SERVER, named.get(SERVER, "mdrun `run` (server)")), (WATCH, "mdrun `watch`")]
    mine = {name for name, _ in ordered}
    return [*ordered, *[(n, label) for n, label in named.items() if n not in mine],
            ("quarto", "Quarto's engine, warm kernel")]  # fmt: skip


def _cell(results: EditResults, tool: str, document: str, scenario: str) -> str:
    if tool in results.data["skipped"] or tool in results.data["peer_problems"]:
        return "not run"
    value = results.seconds(tool, document, scenario)
    if value is None:
        return "failed" if results.failed(tool, document, scenario) else NONE
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def time_table(results: EditResults) -> str:
    chosen = columns(results)
    rows = []
    for document, about in results.data["documents"].items():
        for scenario in ("cold", *about["edits"]):
            label = f"{document} ({about['description']}), {SCENARIO_LABELS[scenario]}"
            rows.append([label, *[_cell(results, tool, document, scenario) for tool, _ in chosen]])
    return markdown_table(["document, scenario", *[label for _, label in chosen]], rows)


def executed_lines(results: EditResults) -> list[str]:
    """What mdrun's own report says it executed on each edit (minimal work, checked by eye)."""
    lines = []
    for document, about in results.data["documents"].items():
        for scenario in about["edits"]:
            for tool in (NO_SERVER, BEFORE, SERVER):
                statuses = [r.get("statuses", {}) for r in results.runs(tool, document, scenario)
                            if r["ok"]]  # fmt: skip
                if statuses:
                    counts = ", ".join(f"{n} {s}" for s, n in sorted(statuses[0].items()))
                    lines.append(f"- {tool}, {document}, {SCENARIO_LABELS[scenario]}: {counts}")
    return lines


def problems(results: EditResults) -> list[str]:
    lines = [f"- {tool}: not run: {why}" for tool, why in results.data["skipped"].items()]
    lines += [f"- {name}: {why}" for name, why in results.data["peer_problems"].items()]
    seen = set()
    for record in results.records + [dict(w, repeat=0) for w in results.watch]:
        key = (record["tool"], record["document"], record["scenario"])
        if not record["ok"] and key not in seen:
            seen.add(key)
            lines.append(f"- {' '.join(key)}: failed: {str(record['detail'])[-600:]}")
    return lines or ["Every contender ran every scenario."]


def render_markdown(data: JSONObject) -> str:
    results = EditResults(data)
    machine = results.data["machine"]
    load = machine["load_average_before"][0], machine["load_average_after"][0]
    before, _ = before_rows(results)
    repeats = "one sequence" if results.data["quick"] else "3 sequences (small 5, large 2)"
    return "\n".join([
        "# Edit benchmark: one block edited, mdrun and the peers side by side",
        "",
        f"Command: `{results.data['command']}`. Machine: {machine['cpu_count']} {TIMES} "
        f"{machine['cpu_model']}, Python {machine['python']}, mdrun {machine['mdrun_commit']}, "
        f"{machine['date']}; load average {load[0]:.1f} before, {load[1]:.1f} after (a shared "
        f"machine: absolute times are noisy). The benchmark took "
        f"{results.data['seconds'] / 60:.0f} min.",
        "",
        "## Issue 10's aims",
        "",
        aims_table(results),
        "",
        "## Seconds (median)",
        "",
        time_table(results),
        "",
        "## Without the server, against before (mdrun before, run in this run beside the others; "
        "for reference, the figures of another day: documents.json's medians, and issue 10's "
        "table for the 1,000-block and array documents)",
        "",
        markdown_table(BEFORE_HEADERS, before) if before else "Nothing to compare.",
        "",
        "## What mdrun executed on each edit (its report)",
        "",
        *executed_lines(results),
        "",
        "## What could not run",
        "",
        *problems(results),
        "",
        "## Method",
        "",
        METHOD.format(repeats=repeats),
        "",
    ])  # fmt: skip


def rewrite(directory: Path) -> str:
    """Re-render edit.md from an existing edit.json (no measuring)."""
    data = json.loads((directory / "edit.json").read_text())
    markdown = render_markdown(data)
    (directory / "edit.md").write_text(markdown, encoding="utf-8")
    return markdown
