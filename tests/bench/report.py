"""The document benchmark's report: medians, ratios, memory, the product aims, a plot."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mdrun.core.jsonvalue import JSONObject

from .harness import markdown_table, write_results
from .peers import TOOLS

STEM = "documents"
SCENARIO_LABELS = {
    "cold": "cold",
    "warm": "warm, unchanged",
    "middle": "warm, middle block changed",
    "last": "warm, last block changed",
}
IMPORT_FLOOR = 'python -c "import markdown_it"'
TIMES = "\u00d7"
"""The multiplication sign of ratios."""
NONE = "\u2013"
"""An empty cell."""
PEERS = [tool.name for tool in TOOLS if tool.name not in ("mdrun", "floor")]

METHOD = """\
Each tool runs the same Python blocks, written in its own input form from one corpus
(`tests/bench/corpus.py`): *small* 10 trivial blocks; *medium* 50 blocks of ~20 ms of CPU work,
each using the previous block's variable; *large* 300 trivial blocks; *heavy* 10 blocks of
~0.5 s (~0.25 s of CPU work, then `time.sleep(0.25)`), chained. One *sequence* per tool and
document, in a new, empty folder: *cold* (nothing cached), *warm, unchanged* (the same
document again), *middle block changed* (block n/2's constant changes, so every later block's
output changes: no early cutoff can help), *last block changed*. A run is the tool's process(es),
timed from outside (interpreter start and imports included): mdrun `mdrun --store S run doc.md
--report r.json` (in place); nbclient `jupytext --to ipynb` then `jupyter execute --inplace`;
jupyter-cache `jcache notebook add --reader jupytext` (first run only) then `jcache project
execute`; papermill `jupytext --to ipynb` then `papermill -k python3`; codebraid `codebraid pandoc
--from markdown --to markdown` (pandoc from `pypandoc-binary`); markdown-exec
`markdown.markdown(..., extensions=["pymdownx.superfences"])` with markdown-exec's formatter (as
MkDocs would, `session="doc"` so blocks share variables); floor: all blocks in one `python -c`.
Each peer lives in its own virtual environment under `tests/bench/.envs/`, installed from PyPI by
the benchmark. Runs write and reuse `.pyc` files as on a user's machine
(`PYTHONDONTWRITEBYTECODE` is removed from their environment), and one untimed sequence per tool
comes first. Every run is checked (exit code, the last block's output in what it wrote;
jupyter-cache: its own success report). Sequences repeat with the tools interleaved; cells are
medians over {repeats} sequences; ratios are the peer's median ÷ mdrun's (above 1: mdrun is
faster). Memory: *tree peak* is the largest summed RSS of the run's process tree (psutil,
sampled every 50 ms), *max RSS* the largest single process (`os.wait4`)."""


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


class Results:
    """Medians and failures from the raw records."""

    def __init__(self, data: JSONObject) -> None:
        self.data: dict[str, Any] = dict(data)
        self.records: list[dict[str, Any]] = [
            r for r in self.data["records"] if int(r["repeat"]) >= 0
        ]
        self.documents: list[str] = list(self.data["documents"])
        self.floors: dict[str, list[float]] = self.data["floors"]

    def runs(self, tool: str, document: str, scenario: str) -> list[dict[str, Any]]:
        return [
            r for r in self.records
            if r["tool"] == tool and r["document"] == document and r["scenario"] == scenario
        ]  # fmt: skip

    def failure(self, tool: str, document: str) -> str | None:
        """What failed, in how many of the sequences (a failed run ends its sequence)."""
        sequences = {
            r["repeat"] for r in self.records if r["tool"] == tool and r["document"] == document
        }
        failed = [
            r for r in self.records
            if r["tool"] == tool and r["document"] == document and not r["ok"]
        ]  # fmt: skip
        if not failed:
            return None
        first = failed[0]
        return (
            f"{len(failed)} of {len(sequences)} sequences failed (the failed run is left out of "
            f"the medians, and the rest of its sequence not run); first: {first['scenario']}: "
            f"{first['detail']}"
        )

    def seconds(self, tool: str, document: str, scenario: str) -> float | None:
        return _median([r["seconds"] for r in self.runs(tool, document, scenario) if r["ok"]])

    def command_seconds(self, tool: str, document: str, scenario: str, index: int) -> float | None:
        return _median([
            r["command_seconds"][index] for r in self.runs(tool, document, scenario)
            if r["ok"] and len(r["command_seconds"]) > index
        ])  # fmt: skip

    def memory(self, tool: str, document: str, scenario: str, key: str) -> float | None:
        values = [r[key] / 1024 for r in self.runs(tool, document, scenario) if r["ok"]]
        return _median(values)

    def count(self, document: str) -> int:
        return len(self.runs("mdrun", document, "cold"))

    def floor(self, label: str) -> float:
        value = _median(self.floors[label])
        assert value is not None
        return value


def _cell(results: Results, tool: str, document: str, scenario: str) -> str:
    value = results.seconds(tool, document, scenario)
    if value is None:
        return "failed" if results.failure(tool, document) else NONE
    if tool == "mdrun":
        return f"**{value:.2f}**"
    ours = results.seconds("mdrun", document, scenario)
    ratio = f" ({value / ours:.1f}{TIMES})" if ours else ""
    return f"{value:.2f}{ratio}"


def time_table(results: Results) -> str:
    headers = ["document", "scenario", *[tool.label for tool in TOOLS]]
    rows = [
        [document if index == 0 else "", SCENARIO_LABELS[scenario],
         *[_cell(results, tool.name, document, scenario) for tool in TOOLS]]
        for document in results.documents
        for index, scenario in enumerate(SCENARIO_LABELS)
    ]  # fmt: skip
    return markdown_table(headers, rows)


def memory_table(results: Results) -> str:
    headers = ["document", *[tool.label for tool in TOOLS]]
    rows = []
    for document in results.documents:
        cells = []
        for tool in TOOLS:
            tree = results.memory(tool.name, document, "cold", "tree_peak_kib")
            single = results.memory(tool.name, document, "cold", "max_rss_kib")
            cells.append(NONE if tree is None or single is None else f"{tree:.0f} / {single:.0f}")
        rows.append([document, *cells])
    return markdown_table(headers, rows)


def _verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


def aims(results: Results) -> tuple[list[str], dict[str, bool]]:
    """The product owner's four aims, each with its numbers."""
    lines: list[str] = []
    verdicts: dict[str, bool] = {}
    floor = results.floor(IMPORT_FLOOR)
    profiles = {p["document"]: p for p in results.data["profiles"]}

    parts = []
    met_a = True
    for document in results.documents:
        warm = results.seconds("mdrun", document, "warm")
        statuses = [r.get("statuses", {}) for r in results.runs("mdrun", document, "warm")]
        all_cached = bool(statuses) and all(set(s) == {"cached"} for s in statuses)
        kernel = profiles.get(document, {}).get("kernel_modules_imported", ["?"])
        ok = warm is not None and warm <= 2 * floor and all_cached and not kernel
        met_a = met_a and ok
        warm_text = f"{warm:.3f} s = {warm / floor:.1f}{TIMES} the import" if warm else "failed"
        parts.append(
            f"  - {document}: {warm_text}; report statuses all cached: "
            f"{'yes' if all_cached else 'NO'}; kernel modules imported: "
            f"{', '.join(kernel) if kernel else 'none'}"
        )
    verdicts["a"] = met_a
    lines.append(
        f"- (a) warm and unchanged: no kernel, no kernel machinery imported, within 2{TIMES} of "
        f"`{IMPORT_FLOOR}` ({floor:.3f} s here, so ≤ {2 * floor:.3f} s): {_verdict(met_a)}"
    )
    lines += parts
    for key, scenario, target in (("b", "last", 4.0), ("c", "middle", 1.5)):
        ours = results.seconds("mdrun", "heavy", scenario)
        if ours is None:
            verdicts[key] = False
            lines.append(f"- ({key}) heavy, {scenario} block changed: not measured")
            continue
        ratios = []
        for peer in PEERS:
            theirs = results.seconds(peer, "heavy", scenario)
            if theirs is not None:
                ratios.append((peer, theirs, theirs / ours))
        met = bool(ratios) and all(ratio >= target for _, _, ratio in ratios)
        verdicts[key] = met
        detail = "; ".join(
            f"{peer} {theirs:.2f} s ({ratio:.1f}{TIMES})" for peer, theirs, ratio in ratios
        )
        lines.append(
            f"- ({key}) heavy, {SCENARIO_LABELS[scenario]}: ≥ {target:g}{TIMES} faster than every "
            f"peer: {_verdict(met)}. mdrun {ours:.2f} s; {detail}"
        )
    met_d = True
    parts = []
    for document in results.documents:
        ours = results.seconds("mdrun", document, "cold")
        total = results.seconds("nbclient", document, "cold")
        execute = results.command_seconds("nbclient", document, "cold", 1)
        if ours is None or total is None or execute is None:
            met_d = False
            parts.append(f"  - {document}: not measured")
            continue
        over_execute = ours / execute - 1
        over_total = ours / total - 1
        met_d = met_d and over_execute < 0.2
        parts.append(
            f"  - {document}: mdrun {ours:.2f} s; `jupyter execute` alone {execute:.2f} s "
            f"(overhead {over_execute:+.0%}); with the jupytext conversion {total:.2f} s "
            f"({over_total:+.0%})"
        )
    verdicts["d"] = met_d
    lines.append(
        f"- (d) cold: mdrun's overhead over nbclient executing the same blocks (`jupyter "
        f"execute`, the conversion not counted) under 20%: {_verdict(met_d)}"
    )
    lines += parts
    return lines, verdicts


def profile_section(results: Results) -> list[str]:
    lines = []
    python_floor = results.floor("python -c pass")
    floor = results.floor(IMPORT_FLOOR)
    for profile in results.data["profiles"]:
        top = ", ".join(f"{name} {us / 1000:.0f} ms" for name, us in profile["top_imports_us"][:8])
        lines.append(
            f"- **{profile['document']}** (warm, unchanged): imports "
            f"{profile['import_total_us'] / 1000:.0f} ms in all (`-X importtime`; mdrun.cli's own "
            f"imports and the run's: {top}); the in-process run (imports + work, "
            f"under cProfile) {profile['profile_seconds']:.3f} s; interpreter start "
            f"{python_floor:.3f} s; `import markdown_it` alone {floor - python_floor:.3f} s "
            "over the interpreter."
        )
    lines.append("")
    for profile in results.data["profiles"]:
        if profile["document"] in ("small", "large"):
            lines += [
                f"<details><summary>cProfile of a warm run, {profile['document']}</summary>",
                "",
                "```text",
                *[line.rstrip() for line in str(profile["profile"]).strip().splitlines()[:40]],
                "```",
                "</details>",
                "",
            ]
    return lines


def plot(results: Results, target: Path) -> None:
    import importlib

    # By name: matplotlib is in the bench extra only, and `make lint` runs without it.
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")

    documents = results.documents
    columns = 2
    rows = (len(documents) + 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(13, 4.2 * rows), squeeze=False)
    scenarios = list(SCENARIO_LABELS)
    width = 0.8 / len(TOOLS)
    for index, document in enumerate(documents):
        axis = axes[index // columns][index % columns]
        for position, tool in enumerate(TOOLS):
            values = [results.seconds(tool.name, document, s) or 0.0 for s in scenarios]
            offsets = [i + (position - len(TOOLS) / 2 + 0.5) * width for i in range(len(scenarios))]
            axis.bar(offsets, values, width, label=tool.label)
        axis.axhline(results.floor(IMPORT_FLOOR), color="black", linestyle="--", linewidth=0.8,
                     label=IMPORT_FLOOR)  # fmt: skip
        axis.set_yscale("log")
        axis.set_xticks(range(len(scenarios)))
        axis.set_xticklabels(["cold", "unchanged", "middle edit", "last edit"])
        axis.set_title(f"{document} ({results.data['documents'][document]['blocks']} blocks)")
        axis.set_ylabel("seconds (median, log)")
    for index in range(len(documents), rows * columns):
        axes[index // columns][index % columns].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(target, dpi=110)
    plt.close(figure)


ANALYSIS = Path(__file__).resolve().parent / "results" / f"{STEM}-analysis.md"
"""Hand-written findings about the committed run (profiles), included when present."""


def _analysis() -> list[str]:
    return [ANALYSIS.read_text(encoding="utf-8").rstrip(), ""] if ANALYSIS.is_file() else []


def render_markdown(results: Results) -> str:
    data = results.data
    machine = data["machine"]
    aim_lines, _ = aims(results)
    repeats = "/".join(str(results.count(d)) for d in results.documents)
    failures = [
        f"- {tool.label}, {document}: {failure}"
        for tool in TOOLS
        for document in results.documents
        if (failure := results.failure(tool.name, document))
    ]
    versions = "; ".join(
        f"{env}: " + ", ".join(f"{k} {v}" for k, v in packages.items())
        for env, packages in data["versions"].items()
    )
    floors = ", ".join(f"`{k}` {results.floor(k):.3f} s" for k in results.floors)
    load = machine["load_average_before"], machine["load_average_after"]
    return "\n".join([
        "# Document benchmark: mdrun and the tools a user would use instead",
        "",
        f"Command: `{data['command']}`. Machine: {machine['cpu_count']} {TIMES} "
        f"{machine['cpu_model']}, "
        f"Python {machine['python']}, mdrun {machine['mdrun_commit']}, {machine['date']}; load "
        f"average {load[0][0]:.1f} before, {load[1][0]:.1f} after (the machine is shared: other "
        f"work ran at the same time, so absolute times are noisy; tools are interleaved to share "
        f"the noise). The whole benchmark took {data['seconds'] / 60:.0f} min.",
        "",
        "## Aims",
        "",
        *aim_lines,
        "",
        "## Wall time, seconds (median; peer ÷ mdrun in parentheses)",
        "",
        time_table(results),
        "",
        f"Floors: {floors}.",
        "",
        "![wall times](documents.png)",
        "",
        "## Peak memory of a cold run, MiB (tree peak / max RSS of one process)",
        "",
        memory_table(results),
        "",
        "## Where mdrun's time goes on a warm, unchanged run",
        "",
        *profile_section(results),
        *_analysis(),
        "## What could not run",
        "",
        *(failures or ["Every tool ran every scenario of every document."]),
        "",
        "## Method",
        "",
        METHOD.format(repeats=repeats),
        "",
        f"Versions: {versions}.",
        "",
    ])  # fmt: skip


def write(directory: Path, data: JSONObject) -> str:
    """Write documents.md, documents.json and documents.png; return the Markdown."""
    results = Results(data)
    markdown = render_markdown(results)
    directory.mkdir(parents=True, exist_ok=True)
    write_results(directory, STEM, markdown, data)
    plot(results, directory / f"{STEM}.png")
    return markdown


def rewrite(directory: Path) -> str:
    """Re-render the Markdown and plot from an existing documents.json (no measuring)."""
    data = json.loads((directory / f"{STEM}.json").read_text())
    return write(directory, data)


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"
    print(rewrite(target if target.is_dir() else Path(os.getcwd()) / target))
