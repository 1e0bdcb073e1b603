"""Store benchmark: instantiate + realize chains and a wide DAG, mdrun against pylightnix 0.3.0.

For every workload and library: cold (new store), warm in the same process (everything built,
new registry, same store object) and warm in a new process (a user re-running a script).
Writes `store.md` and `store.json`; `store_workloads` holds the workloads and the worker.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mdrun.core.jsonvalue import JSONObject, JSONValue

from .harness import (
    BenchOptions,
    WorkerOutcome,
    growth_exponent,
    machine_info,
    markdown_table,
    median,
    run_worker,
    write_results,
)
from .store_workloads import LIBRARIES, LibraryName, Workload

NAME = "store"
DESCRIPTION = "instantiate + realize of chains and a wide DAG, mdrun vs pylightnix 0.3.0"
WORKER = "tests.bench.store_workloads"
CAP_SECONDS = 120.0
"""No single run of either library may take longer: the worker is killed."""
COMMAND = "make bench  (= .venv/bin/python -m tests.bench)"

METHOD = """\
Times are medians of the runs counted in the last column (mdrun/pylightnix); a run is one
`instantiate` + `realize1` of the target. *cold*: a new, empty store each run. *warm, same
process*: again in the store of the last cold run, everything built, a new registry each run
(mdrun keeps its `Store` object, as a script's default store would). *warm, new process*: the
same in a fresh interpreter per run (interpreter start and library import not counted; import:
{imports}). Runs repeat up to {repeats} times (3 above 2,000 stages), or until a mode's runs add
up to {budget:.0f} s; a single run is stopped after {cap:.0f} s. Every run is checked: one target
rref for all runs, cold runs build every stage, warm runs build none.

Workloads: *chain n*: stage i's config holds stage i-1's dref and i. *dag n>10>1*: n leaves,
10 groups each holding every tenth leaf's dref, one root holding the 10 groups. All stages are
defined by one loop of `mkdrv` calls inside one stage function; every realizer (`build_wrapper`)
writes one small file; the matcher is `match_only()`.

pylightnix is not run above {limit:,} stages (a 10,000-chain would take about an hour). Those
cells, marked `~ (est.)`, scale the largest measured size of the same shape: quadratically for
chains (the law pylightnix's source implies: every stage re-reads all its ancestors' configs),
and for the DAG by the exponent measured between its two sizes, at least linearly. A rough
guide, not a measurement."""

NOTES = """\
- pylightnix 0.3.0 imports and runs on Python 3.11 as it is for these workloads (no
  `PYTHONHASHSEED` or other workaround needed). Its import logs that `atool` is missing (only
  its archive stages need it). The adapters differ only where the APIs do: pylightnix's
  `mkdrv(config, matcher, realizer, r)` takes the registry last and calls a stage as
  `stage(r=...)`; mdrun's `mkdrv(r, config, matcher, realizer)` takes it first.
- Why pylightnix is quadratic (its source, `core.py`): for every stage, `realizeSeq` calls
  `drefdeps`, which re-reads and re-parses the `config.json` of every ancestor; `context_add`
  re-sorts the whole accumulated context; and the context it compares and stores is transitive,
  so the n-th `context.json` of a chain holds n-1 entries. mdrun's context holds the direct
  dependencies only and configs are cached, so a stage costs in proportion to its own config."""

Mode = Literal["cold", "warm", "warm_new_process"]
MODES: tuple[Mode, ...] = ("cold", "warm", "warm_new_process")
MODE_LABELS: dict[Mode, str] = {
    "cold": "cold",
    "warm": "warm, same process",
    "warm_new_process": "warm, new process",
}


@dataclass(frozen=True, slots=True)
class Plan:
    """What to measure and how often."""

    workloads: tuple[Workload, ...]
    """In this order; each is run with both libraries."""
    pylightnix_max_stages: int
    """Bigger workloads skip pylightnix (quadratic): its time there is estimated."""
    budget_seconds: float
    """Stop repeating a mode once its runs add up to this (at least one run each)."""

    def repeats(self, workload: Workload) -> int:
        """Up to how many runs per mode: fewer for big workloads."""
        return 5 if workload.stages <= 2_000 else 3


FULL = Plan(
    workloads=(
        Workload("chain", 200),
        Workload("chain", 1_000),
        Workload("chain", 10_000),
        Workload("dag", 200),
        Workload("dag", 1_000),
        Workload("dag", 10_000),
    ),
    pylightnix_max_stages=2_000,
    budget_seconds=45.0,
)
QUICK = Plan(
    workloads=(Workload("chain", 50), Workload("chain", 200), Workload("dag", 200)),
    pylightnix_max_stages=2_000,
    budget_seconds=1.0,
)


@dataclass(slots=True)
class Measurement:
    """One library on one workload."""

    library: LibraryName
    workload: Workload
    seconds: dict[Mode, list[float]] = field(default_factory=dict)
    """The timings of each mode, in run order."""
    import_seconds: float | None = None
    """Importing the library, in a fresh process (not part of any timing)."""
    status: str = "ok"
    """ok, skipped, timeout or failed."""
    detail: str = ""
    """Why it was skipped, or what went wrong."""
    estimated: dict[Mode, float] = field(default_factory=dict)
    """For skipped workloads: seconds extrapolated from the smaller sizes."""
    estimate_exponents: dict[Mode, float] = field(default_factory=dict)
    """The k of time ~ stages^k used for each estimate."""

    def median(self, mode: Mode) -> float | None:
        return median(self.seconds.get(mode, []))

    def value(self, mode: Mode) -> tuple[float | None, bool]:
        """(seconds, estimated?): the measured median, else the estimate."""
        measured = self.median(mode)
        if measured is not None:
            return measured, False
        return self.estimated.get(mode), mode in self.estimated


def check_records(outcome: WorkerOutcome, workload: Workload) -> str:
    """Every run chose the same realization; cold runs built everything, warm runs nothing."""
    problems = []
    rrefs = {record["rref"] for record in outcome.records if "rref" in record}
    if len(rrefs) > 1:
        problems.append(f"runs disagree on the target: {sorted(map(str, rrefs))}")
    for record in outcome.records:
        kind, built = record["kind"], record.get("built")
        if kind == "cold" and built != workload.stages:
            problems.append(f"a cold run built {built} of {workload.stages} stages")
        if kind in ("warm", "warm_new_process") and built != 0:
            problems.append(f"a {kind} run built {built} stages")
    return "; ".join(problems)


def seconds_of(outcome: WorkerOutcome, kind: str) -> list[float]:
    values: list[float] = []
    for record in outcome.records:
        seconds = record.get("seconds")
        if record["kind"] == kind and isinstance(seconds, float):
            values.append(seconds)
    return values


def measure(library: LibraryName, workload: Workload, plan: Plan) -> Measurement:
    """Run one library on one workload: a session worker, then warm runs in new processes."""
    from mdrun.core.store import remove_tree

    result = Measurement(library, workload)
    repeats = plan.repeats(workload)
    workdir = Path(tempfile.mkdtemp(prefix=f"mdrun-bench-{library}-"))
    try:
        session = run_worker(
            WORKER,
            [
                "session",
                "--library",
                library,
                *workload.arguments(),
                "--workdir",
                str(workdir),
                "--repeats",
                str(repeats),
                "--budget",
                str(plan.budget_seconds),
            ],
            CAP_SECONDS,
        )
        result.seconds["cold"] = seconds_of(session, "cold")
        result.seconds["warm"] = seconds_of(session, "warm")
        imports = seconds_of(session, "import")
        result.import_seconds = imports[0] if imports else None
        stores = [str(r["path"]) for r in session.records if r["kind"] == "store"]
        outcomes = [session]
        if session.status == "ok" and stores:
            spent = 0.0
            for _ in range(repeats):
                fresh = run_worker(
                    WORKER,
                    ["warm", "--library", library, *workload.arguments(), "--store", stores[0]],
                    CAP_SECONDS,
                )
                outcomes.append(fresh)
                new_runs = seconds_of(fresh, "warm_new_process")
                result.seconds.setdefault("warm_new_process", []).extend(new_runs)
                spent += sum(new_runs)
                if fresh.status != "ok" or spent > plan.budget_seconds:
                    break
        for outcome in outcomes:
            if outcome.status != "ok":
                result.status, result.detail = outcome.status, outcome.detail
                break
        merged = WorkerOutcome([record for outcome in outcomes for record in outcome.records])
        problem = check_records(merged, workload)
        if problem:
            result.status, result.detail = "failed", problem
    finally:
        remove_tree(workdir)
    return result


def estimate(skipped: Measurement, measured: list[Measurement]) -> None:
    """Extrapolate a skipped workload from the largest measured size of its shape.

    Chains grow quadratically (pylightnix re-reads every ancestor's config for every stage, so
    that is the law its source implies; the measured exponent between two sizes is too noisy
    on a shared machine to extrapolate 10x). A DAG's cost per stage does not grow with the
    depth, so it uses the measured exponent, but never less than linear.
    """
    for mode in MODES:
        points = [
            (m.workload.stages, value)
            for m in measured
            if (value := m.median(mode)) is not None and m.workload.shape == skipped.workload.shape
        ]
        points.sort()
        if not points:
            continue
        if skipped.workload.shape == "chain":
            exponent = 2.0
        elif len(points) >= 2:
            exponent = max(1.0, growth_exponent(points[-2], points[-1]))
        else:
            continue
        largest = points[-1]
        skipped.estimated[mode] = largest[1] * (skipped.workload.stages / largest[0]) ** exponent
        skipped.estimate_exponents[mode] = exponent


# -- reports ----------------------------------------------------------------------------------


def _loads(values: list[float]) -> str:
    return "/".join(f"{value:.1f}" for value in values)


def _seconds(value: float | None, estimated: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value:.4f}" if value < 1 else f"{value:.2f}"
    return f"~{text} (est.)" if estimated else text


def _per_stage(value: float | None, stages: int, estimated: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value / stages * 1e6:,.0f}"
    return f"~{text}" if estimated else text


def _ratio(numerator: float | None, denominator: float | None, estimated: bool) -> str:
    if numerator is None or denominator is None or denominator == 0:
        return "-"
    text = (
        f"{numerator / denominator:,.0f}x"
        if numerator / denominator >= 10
        else (f"{numerator / denominator:.1f}x")
    )
    return f"~{text}" if estimated else text


def results_table(pairs: list[tuple[Measurement, Measurement]]) -> str:
    rows = []
    for mdrun, original in pairs:
        stages = mdrun.workload.stages
        for mode in MODES:
            ours, _ = mdrun.value(mode)
            theirs, estimated = original.value(mode)
            runs = f"{len(mdrun.seconds.get(mode, []))}/{len(original.seconds.get(mode, []))}"
            rows.append(
                [
                    mdrun.workload.label,
                    f"{stages:,}",
                    MODE_LABELS[mode],
                    _seconds(ours),
                    _per_stage(ours, stages),
                    _seconds(theirs, estimated),
                    _per_stage(theirs, stages, estimated),
                    _ratio(theirs, ours, estimated),
                    runs,
                ]
            )
    return markdown_table(
        [
            "workload",
            "stages",
            "run",
            "mdrun s",
            "mdrun µs/stage",
            "pylightnix s",
            "pylightnix µs/stage",
            "pylightnix ÷ mdrun",
            "runs (m/p)",
        ],
        rows,
    )


def growth(measurements: list[Measurement]) -> dict[str, dict[Mode, float]]:
    """Per shape and mode: the growth exponent between the smallest and largest size."""
    exponents: dict[str, dict[Mode, float]] = {}
    for shape in ("chain", "dag"):
        of_shape = sorted(
            (m for m in measurements if m.workload.shape == shape), key=lambda m: m.workload.stages
        )
        for mode in MODES:
            points = [
                (m.workload.stages, value)
                for m in of_shape
                if (value := m.median(mode)) is not None
            ]
            if len(points) >= 2:
                exponents.setdefault(shape, {})[mode] = growth_exponent(points[0], points[-1])
    return exponents


def growth_table(ours: dict[str, dict[Mode, float]], theirs: dict[str, dict[Mode, float]]) -> str:
    rows = []
    for shape, modes in ours.items():
        for mode, exponent in modes.items():
            other = theirs.get(shape, {}).get(mode)
            theirs_text = "-" if other is None else f"{other:.2f}"
            rows.append([shape, MODE_LABELS[mode], f"{exponent:.2f}", theirs_text])
    return markdown_table(
        ["shape", "run", "mdrun exponent k", "pylightnix exponent k (measured sizes)"], rows
    )


def goal_lines(
    pairs: list[tuple[Measurement, Measurement]],
    exponents: dict[str, dict[Mode, float]],
    quick: bool,
) -> list[str]:
    """The product owner's aim: warm 1,000-chain >= 100x faster, cost growing linearly."""
    lines = []
    for mdrun, original in pairs:
        if mdrun.workload == Workload("chain", 1_000):
            ours, theirs = mdrun.median("warm"), original.median("warm")
            if ours and theirs:
                verdict = "met" if theirs / ours >= 100 else "MISSED"
                lines.append(
                    f"- Warm 1,000-stage chain: pylightnix {theirs:.2f} s, mdrun {ours:.4f} s: "
                    f"**{theirs / ours:,.0f}x** (aim >= 100x: {verdict})."
                )
            new_ours, new_theirs = (
                mdrun.median("warm_new_process"),
                original.median("warm_new_process"),
            )
            if new_ours and new_theirs:
                lines.append(
                    f"- Same in a new process: pylightnix {new_theirs:.2f} s, mdrun "
                    f"{new_ours:.4f} s: **{new_theirs / new_ours:,.0f}x**."
                )
    chain = exponents.get("chain", {})
    if chain:
        worst = max(chain.values())
        verdict = "linear" if worst <= 1.15 else "NOT linear"
        lines.append(
            "- mdrun growth on chains, k in time ~ stages^k: "
            + ", ".join(f"{MODE_LABELS[m]} {k:.2f}" for m, k in chain.items())
            + f" ({verdict}; 1 is linear, 2 quadratic)."
        )
    if quick:
        lines.append("- Quick run: the sizes are too small (milliseconds) to judge either aim.")
    return lines


def exponents_json(exponents: dict[str, dict[Mode, float]]) -> JSONObject:
    return {shape: {mode: k for mode, k in modes.items()} for shape, modes in exponents.items()}


def ratios_json(mdrun: Measurement, original: Measurement) -> JSONObject:
    ratios: JSONObject = {}
    for mode in MODES:
        ours, (theirs, _) = mdrun.median(mode), original.value(mode)
        ratios[mode] = theirs / ours if ours and theirs is not None else None
    return ratios


def to_json(measurement: Measurement) -> JSONObject:
    seconds: JSONObject = {mode: list(values) for mode, values in measurement.seconds.items()}
    medians: JSONObject = {mode: measurement.median(mode) for mode in MODES}
    per_stage: JSONObject = {
        mode: (value / measurement.workload.stages * 1e6 if value is not None else None)
        for mode in MODES
        for value in [measurement.median(mode)]
    }
    estimated: JSONObject = {mode: value for mode, value in measurement.estimated.items()}
    exponents: JSONObject = {mode: k for mode, k in measurement.estimate_exponents.items()}
    return {
        "status": measurement.status,
        "detail": measurement.detail,
        "import_seconds": measurement.import_seconds,
        "seconds": seconds,
        "median_seconds": medians,
        "per_stage_microseconds": per_stage,
        "estimated_seconds": estimated,
        "estimate_exponents": exponents,
    }


def report(
    plan: Plan,
    options: BenchOptions,
    pairs: list[tuple[Measurement, Measurement]],
    start_load: list[float],
) -> tuple[str, JSONValue]:
    """The Markdown report and the JSON data of a finished run."""
    machine = machine_info()
    end_load = [float(value) for value in os.getloadavg()]
    machine["load_average_at_start"] = list(start_load)
    machine["load_average_at_end"] = list(end_load)
    ours = growth([m for m, _ in pairs])
    theirs = growth([p for _, p in pairs if p.status == "ok"])
    notes = []
    for _, original in pairs:
        if original.status != "ok":
            label = original.workload.label
            notes.append(f"- pylightnix, {label}: {original.status}: {original.detail}")
    cpus = os.cpu_count() or 1
    if max(start_load[0], end_load[0]) > 0.75 * cpus:
        notes.append(
            f"- The machine ({cpus} CPUs) was shared with other jobs during this run (load "
            "averages above): absolute times, cold ones most (they are file-system bound), are "
            "slower and noisier than on an idle machine."
        )
    for mdrun, _ in pairs:
        if mdrun.status != "ok":
            notes.append(f"- mdrun, {mdrun.workload.label}: {mdrun.status}: {mdrun.detail}")
    imports = [
        f"{m.library} {m.import_seconds:.2f} s"
        for m in (pairs[0][0], pairs[0][1])
        if m.import_seconds is not None
    ]
    markdown = "\n".join(
        [
            "# Store benchmark: mdrun.core vs pylightnix 0.3.0",
            "",
            f"Command: `{COMMAND}`{' --quick' if options.quick else ''}. "
            f"Machine: {machine['cpu_count']} CPUs ({machine['cpu_model']}), "
            f"Python {machine['python']}, {machine['platform']}; mdrun {machine['mdrun_commit']}"
            f"{' (mdrun/core modified)' if machine['mdrun_core_modified'] else ''}, "
            f"pylightnix {machine['pylightnix']}; {machine['date']}. Load average (1, 5, 15 min) "
            f"at the start {_loads(start_load)}, at the end {_loads(end_load)}.",
            "",
            results_table(pairs),
            "",
            METHOD.format(
                imports=", ".join(imports) or "not measured",
                repeats=plan.repeats(Workload("chain", 1)),
                budget=plan.budget_seconds,
                cap=CAP_SECONDS,
                limit=plan.pylightnix_max_stages,
            ),
            "",
            "## Growth",
            "",
            growth_table(ours, theirs),
            "",
            "k is the exponent in time ~ stages^k between the smallest and largest measured size",
            "(1: linear, 2: quadratic).",
            "",
            "## The aim",
            "",
            *goal_lines(pairs, ours, options.quick),
            "",
            "## Notes",
            "",
            NOTES,
            *notes,
            "",
        ]
    )
    data: JSONObject = {
        "benchmark": NAME,
        "command": COMMAND + (" --quick" if options.quick else ""),
        "machine": machine,
        "cap_seconds": CAP_SECONDS,
        "budget_seconds": plan.budget_seconds,
        "pylightnix_max_stages": plan.pylightnix_max_stages,
        "growth_exponents": {"mdrun": exponents_json(ours), "pylightnix": exponents_json(theirs)},
        "workloads": [
            {
                "label": mdrun.workload.label,
                "shape": mdrun.workload.shape,
                "size": mdrun.workload.size,
                "stages": mdrun.workload.stages,
                "mdrun": to_json(mdrun),
                "pylightnix": to_json(original),
                "ratio_pylightnix_over_mdrun": ratios_json(mdrun, original),
                "ratio_estimated": bool(original.estimated),
            }
            for mdrun, original in pairs
        ],
    }
    return markdown, data


def run(options: BenchOptions) -> None:
    """Measure every workload of the plan with both libraries; print and write the report."""
    plan = QUICK if options.quick else FULL
    start_load = [float(value) for value in os.getloadavg()]
    pairs: list[tuple[Measurement, Measurement]] = []
    measured_originals: list[Measurement] = []
    for workload in plan.workloads:
        results: dict[LibraryName, Measurement] = {}
        for library in LIBRARIES:
            if library == "pylightnix" and workload.stages > plan.pylightnix_max_stages:
                skipped = Measurement(library, workload, status="skipped")
                skipped.detail = (
                    f"not run above {plan.pylightnix_max_stages:,} stages (quadratic); estimated"
                )
                estimate(skipped, measured_originals)
                results[library] = skipped
                continue
            print(f"  {workload.label:>18}  {library:<10}", end=" ", flush=True)
            results[library] = measure(library, workload, plan)
            found = results[library]
            medians = [(mode, found.median(mode)) for mode in MODES]
            summary = ", ".join(f"{m} {v:.4f} s" for m, v in medians if v is not None)
            print(f"{found.status}: {summary}", flush=True)
            if library == "pylightnix" and found.status == "ok":
                measured_originals.append(found)
        pairs.append((results["mdrun"], results["pylightnix"]))
    markdown, data = report(plan, options, pairs, start_load)
    print()
    print(markdown)
    for path in write_results(options.results_directory, NAME, markdown, data):
        print(f"wrote {path}")
