"""Edit benchmark: issue 10's edit loop, mdrun beside the peers in one run, each aim with its ratio.

For each document of `corpus.edit_corpus` and each contender, one *sequence* in a new, empty work
folder: *cold* (nothing cached), then the document's edits (`ROWS`: one block changed, the last or
the middle, each edit from the original). mdrun runs one-shot (`mdrun run`) without its per-user
server, with it when it has one, and as it was before (`edit_variants`); the peers are jupytext +
nbclient, codebraid and markdown-exec (`peers`). Every run is checked: its exit code, and the
edited block's new output and the last block's output in what it wrote. Then `mdrun watch`, save ->
rewritten (`edit_watch`, through `edit_loop`). Sequences repeat with the contenders interleaved;
cells are medians. Writes `edit.md` and `edit.json`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from mdrun.core.jsonvalue import JSONObject, JSONValue

from .corpus import VERSIONS, Document, Version, edit_corpus, render, script
from .edit_report import BEFORE, SERVER, before_figures, render_markdown
from .edit_variants import (
    PAUSE_SECONDS,
    Contender,
    ServerSupport,
    before_contender,
    is_mdrun,
    one_shot_contenders,
    store_size,
)
from .edit_watch import measure_row, watch_rows
from .harness import BenchOptions, machine_info, write_results
from .measure import run_commands
from .peers import CODEBRAID, MARKDOWN_EXEC, NBCLIENT, TOOLS, Environment

NAME = "edit"
DESCRIPTION = "issue 10's edit loop: one block edited, mdrun run / server / watch vs the peers"
COMMAND = "make bench  (= .venv/bin/python -m tests.bench --only edit)"
QUICK_COMMAND = ".venv/bin/python -m tests.bench --quick --only edit"

EditScenario = Version
ROWS: tuple[tuple[str, tuple[EditScenario, ...]], ...] = (
    ("small", ("last",)),
    ("medium", ("last",)),
    ("large", ("middle",)),
    ("thousand", ("middle",)),
    ("heavy", ("middle", "last")),
    ("array", ("last",)),
)
"""Each document's edits, run after its cold run, each from the original."""
QUICK_DOCUMENTS = ("small", "thousand", "heavy", "array")
"""Quick mode leaves out the documents that no aim of a one-shot run is about (the medium one
is measured under watch)."""
QUICK_BEFORE = ("small", "heavy", "array")
"""Quick mode runs mdrun before only on these (the 1,000-block document is compared with issue
10's figure instead)."""
REPEATS = {"small": 5, "medium": 3, "large": 2, "thousand": 3, "heavy": 3, "array": 3}
WATCH_ROWS = (("small", "last"), ("medium", "last"), ("heavy", "last"), ("heavy", "middle"),
              ("large", "middle"), ("thousand", "middle"))  # fmt: skip
QUICK_WATCH_ROWS = WATCH_ROWS[:4]
WATCH_EDITS = {True: 2, False: 5}
"""Edits per watch row, quick and full."""
PEER_NAMES = ("nbclient", "codebraid", "markdown-exec")
PEER_ENVIRONMENTS: tuple[Environment, ...] = (NBCLIENT, CODEBRAID, MARKDOWN_EXEC)


def peer_contenders() -> list[Contender]:
    return [Contender(tool) for tool in TOOLS if tool.name in PEER_NAMES]


def edited_index(document: Document, version: Version) -> int:
    """The block an edit changes (for the original: the last, whose output is checked)."""
    return document.size // 2 if version == "middle" else document.size - 1


def printed_lines(document: Document, version: Version) -> list[str]:
    """What the blocks print, one line per block (every tool must show the ones checked)."""
    done = subprocess.run(
        [sys.executable, "-c", script(document, version)], capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()


def expected_lines(document: Document) -> dict[Version, list[str]]:
    """Per version: the edited block's line and the last block's line."""
    expected: dict[Version, list[str]] = {}
    for version in VERSIONS:
        lines = printed_lines(document, version)
        expected[version] = sorted({lines[edited_index(document, version)], lines[-1]})
    return expected


def written_text(target: Path) -> str:
    """What a run wrote, as text; a notebook's outputs with each cell's streams joined (a
    kernel may send one line of `print` as two stream messages, kept apart in the notebook)."""
    text = target.read_text(errors="replace") if target.exists() else ""
    if target.suffix != ".ipynb" or not text:
        return text
    cells = json.loads(text).get("cells", [])
    parts = []
    for cell in cells:
        for output in cell.get("outputs", []):
            value = output.get("text") if output.get("output_type") == "stream" else None
            parts.append("".join(value) if isinstance(value, list) else str(value or ""))
        parts.append("\n")
    return "".join(parts)


def missing_output(contender: Contender, work: Path, expected: list[str]) -> str:
    """The first expected line absent from what the run wrote, said in a phrase ("" if none)."""
    text = written_text(work / contender.tool.output_name)
    for line in expected:
        if line not in text:
            return f"{line!r} missing from {contender.tool.output_name}"
    return ""


def _mdrun_details(work: Path) -> JSONObject:
    report = json.loads((work / "report.json").read_text())
    statuses: dict[str, int] = {}
    for block in report["blocks"]:
        statuses[block["status"]] = statuses.get(block["status"], 0) + 1
    size = store_size(work / "store")
    return {"statuses": dict(statuses), "store_bytes": size.bytes, "store_files": size.files,
            "store_largest": list[JSONValue](size.largest)}  # fmt: skip


def run_sequence(
    contender: Contender, document: Document, expected: dict[Version, list[str]], repeat: int
) -> list[JSONObject]:
    """cold, then each of the document's edits, in one new work folder; a record per run."""
    edits = dict(ROWS)[document.name]
    work = Path(tempfile.mkdtemp(prefix=f"mdrun-bench-edit-{contender.name.replace(' ', '-')}-"))
    records: list[JSONObject] = []
    base: JSONObject = {"tool": contender.name, "document": document.name, "repeat": repeat}
    try:
        with contender.around(work):
            for version in ("original", *edits):
                scenario = "cold" if version == "original" else version
                tool = contender.tool
                (work / tool.input_name).write_text(
                    render(document, version, tool.dialect), encoding="utf-8"
                )
                (work / "doc.py").write_text(script(document, version), encoding="utf-8")
                time.sleep(PAUSE_SECONDS)
                measured = run_commands(tool.commands(work, scenario == "cold"), work, scenario)
                problem = missing_output(contender, work, expected[version]) or contender.check(
                    work
                )
                if measured.ok and problem:
                    measured.ok, measured.detail = False, problem
                record: JSONObject = {**base, "scenario": scenario, **asdict(measured)}
                if is_mdrun(contender) and measured.ok:
                    record.update(_mdrun_details(work))
                records.append(record)
                if not measured.ok:
                    print(f"    {contender.name} {document.name} {scenario}: FAILED "
                          f"{measured.detail}", flush=True)  # fmt: skip
                    break
    except (subprocess.SubprocessError, OSError) as err:
        detail = f"around the sequence: {type(err).__name__}: {err}"
        print(f"    {contender.name} {document.name}: FAILED {detail}", flush=True)
        records.append({**base, "scenario": "cold", "ok": False, "detail": detail, "seconds": 0.0})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return records


QUARTO_HOST = "github.com"
"""Where quarto-cli's build downloads the Quarto binary from (PyPI has only its sdist)."""


def quarto_problem() -> str:
    """Why Quarto's engine is not measured. Its build is tried only when its download host
    resolves (else pip would spend half a minute to fail the same way)."""
    from .many import QUARTO, QUARTO_NOTE

    try:
        socket.getaddrinfo(QUARTO_HOST, 443)
    except OSError as err:
        return f"not installed{QUARTO_NOTE} ({QUARTO_HOST}: {err})"
    try:
        QUARTO.ensure()
    except subprocess.CalledProcessError as err:
        return f"cannot be installed from PyPI (pip exited {err.returncode}){QUARTO_NOTE}"
    return (
        "installed, but this benchmark has no contender for Quarto's engine with a warm kernel "
        "(`execute: daemon`) yet: not measured"
    )


def install_peers() -> dict[str, str]:
    """Each peer's environment (one that cannot be installed is reported, not fatal), and why
    Quarto's engine is not measured."""
    problems: dict[str, str] = {}
    for environment in PEER_ENVIRONMENTS:
        try:
            environment.ensure()
        except subprocess.CalledProcessError as err:
            why = f"cannot be installed from PyPI (pip exited {err.returncode})"
            problems[environment.name] = why
    problems["quarto"] = quarto_problem()
    return problems


def measure_documents(
    options: BenchOptions, contenders: list[Contender], documents: list[Document]
) -> list[JSONObject]:
    expected = {document.name: expected_lines(document) for document in documents}
    small = next(d for d in edit_corpus() if d.name == "small")
    print("  warm-up: one untimed sequence of the small document per contender", flush=True)
    for contender in contenders:
        run_sequence(contender, small, expected.get("small") or expected_lines(small), -1)
    records: list[JSONObject] = []
    for document in documents:
        repeats = 1 if options.quick else REPEATS[document.name]
        started = time.perf_counter()
        chosen = [c for c in contenders if not (options.quick and c.name == BEFORE
                                                and document.name not in QUICK_BEFORE)]  # fmt: skip
        for repeat in range(repeats):
            for contender in chosen:
                records += run_sequence(contender, document, expected[document.name], repeat)
            print(f"  {document.name}: repeat {repeat + 1}/{repeats} done "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
    return records


def measure_watch(options: BenchOptions) -> list[JSONObject]:
    records: list[JSONObject] = []
    for row in watch_rows(list(QUICK_WATCH_ROWS if options.quick else WATCH_ROWS)):
        started = time.perf_counter()
        record = measure_row(row, WATCH_EDITS[options.quick], 1 if options.quick else 3)
        records.append(record)
        print(f"  watch {row.document} {row.scenario}: {record['seconds']} "
              f"({time.perf_counter() - started:.0f} s){'' if record['ok'] else ' FAILED'}",
              flush=True)  # fmt: skip
    return records


def choose_contenders(problems: dict[str, str]) -> tuple[list[Contender], dict[str, str]]:
    """mdrun without the server, mdrun before, mdrun with the server, the peers installed; and
    why each of the others is not measured."""
    support = ServerSupport.detect()
    skipped = {SERVER: support.unavailable()} if support.unavailable() else {}
    before = before_contender()
    if isinstance(before, str):
        skipped[BEFORE] = before
    peers = [peer for peer in peer_contenders() if peer.name not in problems]
    one_shot = one_shot_contenders(support)
    contenders = [*one_shot[:1], *([] if isinstance(before, str) else [before]), *one_shot[1:],
                  *peers]  # fmt: skip
    return contenders, skipped


def run(options: BenchOptions) -> None:
    started = time.perf_counter()
    load_before = os.getloadavg()
    problems = install_peers()
    contenders, skipped = choose_contenders(problems)
    names = QUICK_DOCUMENTS if options.quick else tuple(name for name, _ in ROWS)
    documents = [d for d in edit_corpus() if d.name in names]
    documents.sort(key=lambda d: names.index(d.name))
    records = measure_documents(options, contenders, documents)
    watch = measure_watch(options)
    versions: JSONObject = {
        e.name: dict(e.versions()) for e in PEER_ENVIRONMENTS if e.name not in problems
    }
    about: JSONObject = {
        d.name: {"blocks": d.size, "description": d.description, "edits": list(dict(ROWS)[d.name])}
        for d in documents
    }
    data: JSONObject = {
        "command": QUICK_COMMAND if options.quick else COMMAND,
        "quick": options.quick,
        "machine": {
            **machine_info(),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
        },
        "versions": versions,
        "documents": about,
        "contenders": {c.name: c.label for c in contenders},
        "skipped": dict(skipped),
        "peer_problems": dict(problems),
        "before": before_figures(),
        "records": list[JSONValue](records),
        "watch": list[JSONValue](watch),
        "seconds": time.perf_counter() - started,
    }
    markdown = render_markdown(data)
    write_results(options.results_directory, NAME, markdown, data)
    print(markdown, flush=True)
