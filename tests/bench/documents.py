"""Document benchmark: mdrun against the tools a user would use instead, on the same blocks.

For each corpus document (`corpus`) and each tool (`peers`), one *sequence* in a new, empty work
folder: *cold* (the original document, nothing cached), *warm* (the same again, unchanged),
*middle* (the middle block changed), *last* (only the last block changed); every scenario is one
process run (or two: a conversion, then the execution), timed from outside. Sequences repeat,
tools interleaved, and each cell is the median. Every run is checked: its exit code, and the last
block's output in what it wrote. Writes `documents.md`, `documents.json` and `documents.png`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Literal

from mdrun.core.jsonvalue import JSONObject, JSONValue

from .corpus import VERSIONS, Document, Version, corpus, render, script
from .harness import BenchOptions, machine_info
from .measure import Measurement, run_commands
from .peers import ENVIRONMENTS, MDRUN, TOOLS, Command, Tool

NAME = "documents"
DESCRIPTION = "documents cold, warm, after one edit: mdrun vs nbclient, jupyter-cache, papermill..."
COMMAND = "make bench  (= .venv/bin/python -m tests.bench --only documents)"

Scenario = Literal["cold", "warm", "middle", "last"]
SCENARIOS: tuple[Scenario, ...] = ("cold", "warm", "middle", "last")
SCENARIO_VERSION: dict[Scenario, Version] = {
    "cold": "original", "warm": "original", "middle": "middle", "last": "last"
}  # fmt: skip
REPEATS = {"small": 5, "medium": 5, "large": 5, "heavy": 3}
MIN_REPEATS = 3
BUDGET_SECONDS = 150.0
"""After MIN_REPEATS, a document stops repeating once its sequences took this long."""
FLOOR_REPEATS = 10
KERNEL_MODULES = ("jupyter_client", "zmq", "ipykernel", "tornado", "mdrun.document.kernel")


def expected_line(document: Document, version: Version) -> str:
    """The last line the blocks print (every tool must show it)."""
    done = subprocess.run(
        [sys.executable, "-c", script(document, version)], capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def _write_input(tool: Tool, document: Document, version: Version, work: Path) -> None:
    (work / tool.input_name).write_text(render(document, version, tool.dialect), encoding="utf-8")
    (work / "doc.py").write_text(script(document, version), encoding="utf-8")


def _check(tool: Tool, work: Path, measurement: Measurement, expected: str, stem: str) -> None:
    if not measurement.ok:
        return
    if tool.output_name:
        target = work / tool.output_name
        text = target.read_text(errors="replace") if target.exists() else ""
        where = tool.output_name
    else:
        logs = sorted(work.glob(f"{stem}.*.out"))
        text = logs[-1].read_text(errors="replace") if logs else ""
        where = "its output"
        failed = "errored: []" not in text or "excepted: []" not in text
        if tool.name == "jupyter-cache" and failed:
            measurement.ok = False
            measurement.detail = f"jcache reported a failure: {text[-800:]}"
            return
        if tool.name == "jupyter-cache":
            return  # it keeps outputs in its cache; success is what it reports
    if expected not in text:
        measurement.ok = False
        measurement.detail = f"{expected!r} missing from {where}"


def _mdrun_statuses(work: Path) -> dict[str, int]:
    report = json.loads((work / "report.json").read_text())
    counts: dict[str, int] = {}
    for block in report["blocks"]:
        counts[block["status"]] = counts.get(block["status"], 0) + 1
    return counts


def run_sequence(
    tool: Tool, document: Document, expected: dict[Version, str], repeat: int
) -> list[JSONObject]:
    """cold, warm, middle, last in one new work folder; one record per scenario."""
    work = Path(tempfile.mkdtemp(prefix=f"mdrun-bench-{tool.name}-"))
    records: list[JSONObject] = []
    try:
        for scenario in SCENARIOS:
            version = SCENARIO_VERSION[scenario]
            if scenario != "warm":
                _write_input(tool, document, version, work)
            commands = tool.commands(work, scenario == "cold")
            measurement = run_commands(commands, work, scenario)
            _check(tool, work, measurement, expected[version], scenario)
            record: JSONObject = {
                "tool": tool.name, "document": document.name, "scenario": scenario,
                "repeat": repeat, **asdict(measurement),
            }  # fmt: skip
            if tool is MDRUN and measurement.ok:
                record["statuses"] = dict(_mdrun_statuses(work))
            records.append(record)
            if not measurement.ok:
                print(f"    {tool.name} {document.name} {scenario}: FAILED {measurement.detail}")
                break
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return records


def measure_floors(repeats: int) -> dict[str, list[float]]:
    """`python -c pass` and `python -c "import markdown_it"`: the warm-run floor."""
    floors: dict[str, list[float]] = {"python -c pass": [], 'python -c "import markdown_it"': []}
    work = Path(tempfile.mkdtemp(prefix="mdrun-bench-floor-"))
    try:
        for _ in range(repeats):
            pairs = (("python -c pass", "pass"),
                     ('python -c "import markdown_it"', "import markdown_it"))  # fmt: skip
            for label, code in pairs:
                measured = run_commands([Command([sys.executable, "-c", code])], work, "floor")
                floors[label].append(measured.seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return floors


PROFILE_DRIVER = """\
import cProfile, io, json, pstats, sys, time
start = time.perf_counter()
profile = cProfile.Profile()
profile.enable()
from mdrun.cli import main
code = main(sys.argv[1:])
profile.disable()
total = time.perf_counter() - start
kernel = sorted(m for m in sys.modules if m.split(".")[0] in ("jupyter_client", "zmq", "ipykernel",
                "tornado") or m == "mdrun.document.kernel")
stream = io.StringIO()
pstats.Stats(profile, stream=stream).sort_stats("cumulative").print_stats(18)
print(json.dumps({"code": code, "seconds": total, "kernel_modules": kernel,
                  "profile": stream.getvalue()}))
"""


def profile_warm(document: Document) -> JSONObject:
    """A warm, unchanged run of mdrun, looked into: import times, kernel modules, cProfile."""
    work = Path(tempfile.mkdtemp(prefix="mdrun-bench-profile-"))
    try:
        _write_input(MDRUN, document, "original", work)
        run_commands(MDRUN.commands(work, True), work, "cold")
        argv = ["--store", str(work / "store"), "run", "doc.md", "--report", "report.json"]
        importtime = subprocess.run(
            [sys.executable, "-X", "importtime", "-c",
             "import sys; from mdrun.cli import main; sys.exit(main(sys.argv[1:]))", *argv],
            cwd=work, capture_output=True, text=True, check=True,
        )  # fmt: skip
        statuses = _mdrun_statuses(work)
        names, total_us, top_imports = _import_costs(importtime.stderr)
        profiled = subprocess.run(
            [sys.executable, "-c", PROFILE_DRIVER, *argv], cwd=work, capture_output=True,
            text=True, check=True,
        )  # fmt: skip
        data = json.loads(profiled.stdout.strip().splitlines()[-1])
        assert isinstance(data, dict)
        return {
            "document": document.name,
            "statuses": dict(statuses),
            "kernel_modules_imported": [
                name
                for name in names
                if name.split(".")[0] in KERNEL_MODULES[:4] or name == KERNEL_MODULES[4]
            ],
            "import_total_us": total_us,
            "top_imports_us": top_imports,
            "profile_seconds": data["seconds"],
            "profile": data["profile"],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _import_costs(stderr: str) -> tuple[list[str], int, list[JSONValue]]:
    """From `-X importtime`: every module, the total, and the costliest top-level imports."""
    names: list[str] = []
    top: list[tuple[str, int]] = []
    total = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line.split("|", 2)
        cumulative, raw = int(parts[1]), parts[2]
        name = raw.strip()
        names.append(name)
        depth = (len(raw) - len(raw.lstrip(" "))) // 2  # nested imports: 2 spaces per level
        if depth == 0:
            total += cumulative
        if depth <= 1 and name != "mdrun.cli":  # what the run imports, and what mdrun.cli does
            top.append((name, cumulative))
    top.sort(key=lambda item: -item[1])
    return names, total, [[name, us] for name, us in top[:12]]


def documents_for(options: BenchOptions) -> tuple[Document, ...]:
    everything = corpus()
    if options.quick:
        return tuple(d for d in everything if d.name in ("small", "heavy"))
    return everything


def run(options: BenchOptions) -> None:
    from . import report

    started = time.perf_counter()
    load_before = os.getloadavg()
    for environment in ENVIRONMENTS:
        environment.ensure()
    versions = {environment.name: environment.versions() for environment in ENVIRONMENTS}
    documents = documents_for(options)
    expected = {d.name: {v: expected_line(d, v) for v in VERSIONS} for d in documents}
    small = corpus()[0]
    print("  warm-up: one cold run of the small document per tool", flush=True)
    for tool in TOOLS:
        run_sequence(tool, small, expected.get("small") or
                     {v: expected_line(small, v) for v in VERSIONS}, -1)  # fmt: skip
    floors = measure_floors(3 if options.quick else FLOOR_REPEATS)
    records: list[JSONObject] = []
    for document in documents:
        repeats = 1 if options.quick else REPEATS[document.name]
        document_start = time.perf_counter()
        for repeat in range(repeats):
            for tool in TOOLS:
                records += run_sequence(tool, document, expected[document.name], repeat)
            spent = time.perf_counter() - document_start
            print(f"  {document.name}: repeat {repeat + 1}/{repeats} done ({spent:.0f} s)",
                  flush=True)  # fmt: skip
            if repeat + 1 >= MIN_REPEATS and spent > BUDGET_SECONDS:
                print(f"  {document.name}: budget spent, stopping after {repeat + 1} repeats")
                break
    profiles = [profile_warm(document) for document in documents]
    data: JSONObject = {
        "command": COMMAND + (" --quick" if options.quick else ""),
        "machine": {
            **machine_info(),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
        },
        "versions": {k: dict(v) for k, v in versions.items()},
        "documents": {d.name: {"blocks": d.size, "description": d.description} for d in documents},
        "floors": {k: list(v) for k, v in floors.items()},
        "records": list(records),
        "profiles": list(profiles),
        "seconds": time.perf_counter() - started,
    }
    markdown = report.write(options.results_directory, data)
    print(markdown)
