"""Many-documents benchmark: a generated site run serially, with `-j 2`, on a Dask cluster, and
by jupyter-cache's parallel executor and `quarto render`, side by side.

The site: `SITE_SIZE` pages of mixed sizes (3 to 14 blocks), a fifth of them with a slow block
(`SLOW_SECONDS` of sleep, as a model fit or a download would take). Each tool gets its own copy
of the site and its own cache, and three scenarios in that order: *cold* (nothing cached),
*unchanged* (the same again), *edited* (the last block of one page changed). Every scenario is
one run of each tool's commands, timed from outside (`measure.run_commands`). mdrun's runs are
checked: every page holds its last block's output. The Dask cluster (a `LocalCluster` of 2
worker processes) is started before the runs and not timed: a user's cluster is already up.
Then *CI reuse* (`many_cache`): a fresh store reading a remote cache that another store filled.
Writes `many.md` and `many.json`.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from mdrun.core.jsonvalue import JSONObject, JSONValue

from .harness import BenchOptions, machine_info, markdown_table, write_results
from .many_cache import REPORT_HEADERS, RemoteCache, report_rows, run_ci_reuse, s3_cache
from .measure import Measurement, run_commands
from .peers import JUPYTER_CACHE, Command, Environment

NAME = "many"
DESCRIPTION = "a site of 50 pages: serial, -j 2, Dask (2 workers), jupyter-cache, quarto"
COMMAND = "make bench  (= .venv/bin/python -m tests.bench --only many)"
QUICK_COMMAND = ".venv/bin/python -m tests.bench --quick --only many --results DIR  (4 pages)"

SITE_SIZE = 50
QUICK_SITE_SIZE = 4
SLOW_SECONDS = 2.0
QUICK_SLOW_SECONDS = 0.5
SCENARIOS = ("cold", "unchanged", "edited")
QUARTO_NOTE = (
    ": quarto-cli is a source distribution whose build downloads the Quarto binary from "
    "github.com, so it needs that host as well as PyPI"
)
QUARTO = Environment("quarto", ("quarto-cli", "jupyter", "nbclient", "ipykernel", "pyyaml"))


@dataclass(frozen=True, slots=True)
class Page:
    """One generated page: its blocks' code, in order."""

    number: int
    blocks: tuple[str, ...]

    @property
    def last_line(self) -> str:
        """What its last block prints (every run must show it)."""
        return f"page {self.number} done"

    def markdown(self, fence: str) -> str:
        """The page with each block in a fence opened by `fence` (`python` or `{python}`)."""
        front = "---\njupyter: python3\n---\n" if fence.startswith("{") else ""
        parts = [f"{front}# Page {self.number}\n"]
        for index, code in enumerate(self.blocks):
            parts.append(f"Step {index + 1} of page {self.number}.\n\n```{fence}\n{code}\n```\n")
        return "\n".join(parts)


def generate_site(size: int, slow_seconds: float, seed: int = 13) -> list[Page]:
    """Pages of 3 to 14 blocks; every fifth page sleeps `slow_seconds` in one block."""
    chooser = random.Random(seed)
    pages = []
    for number in range(size):
        count = chooser.choice((3, 3, 5, 8, 14))
        blocks = [f"values = list(range({number * 10}, {number * 10 + 50}))"]
        for step in range(count - 2):
            blocks.append(f"values = [v * {step + 2} % 97 for v in values]\nprint(sum(values))")
        if number % 5 == 0:
            blocks.insert(1, f"import time\ntime.sleep({slow_seconds})\nprint('slow step done')")
        blocks.append(f"print('page {number} done')")
        pages.append(Page(number, tuple(blocks)))
    return pages


def write_site(pages: list[Page], folder: Path, fence: str, suffix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for page in pages:
        (folder / f"page-{page.number:02d}{suffix}").write_text(page.markdown(fence), "utf-8")


def edit_one_page(pages: list[Page]) -> list[Page]:
    """The site with the last block of the middle page changed (its output stays the same)."""
    middle = len(pages) // 2
    changed = pages[middle]
    blocks = (*changed.blocks[:-1], f"# edited\n{changed.blocks[-1]}")
    return [*pages[:middle], Page(changed.number, blocks), *pages[middle + 1 :]]


# -- the tools ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteTool:
    """How one tool runs the whole site."""

    name: str
    fence: str
    suffix: str
    commands: Callable[[Path, bool], list[Command]]
    """(work folder, first run) -> the commands of one run."""
    check: bool = True
    """Whether its output is checked (mdrun's are; the peers' exit codes only)."""


def _mdrun(*options: str) -> Callable[[Path, bool], list[Command]]:
    def commands(work: Path, first: bool) -> list[Command]:
        del first
        mdrun = str(Path(sys.executable).parent / "mdrun")
        return [Command([mdrun, "--store", str(work / ".store"), "run", *options, "site"])]

    return commands


def _jupyter_cache(work: Path, first: bool) -> list[Command]:
    environment = {"JUPYTERCACHE": str(work / ".jupyter_cache")}
    execute = Command(
        [JUPYTER_CACHE.bin("jcache"), "project", "execute", "--executor", "local-parallel"],
        env=environment,
    )
    if not first:
        return [execute]
    pages = sorted(str(path) for path in (work / "site").glob("*.md"))
    add = [JUPYTER_CACHE.bin("jcache"), "notebook", "add", "--reader", "jupytext", *pages]
    return [Command(add, stdin="y\n", env=environment), execute]


def _quarto(work: Path, first: bool) -> list[Command]:
    del first
    environment = {"QUARTO_PYTHON": QUARTO.bin("python"), "PATH": _quarto_path()}
    return [Command([QUARTO.bin("quarto"), "render", str(work / "site"), "--quiet"],
                    env=environment)]  # fmt: skip


def _quarto_path() -> str:
    return os.pathsep.join([str(QUARTO.path / "bin"), os.environ["PATH"]])


QUARTO_PROJECT = "project:\n  type: default\nexecute:\n  freeze: auto\n"


def tools(scheduler: str) -> list[SiteTool]:
    return [
        SiteTool("mdrun serial", "python", ".md", _mdrun()),
        SiteTool("mdrun -j 2", "python", ".md", _mdrun("-j", "2")),
        SiteTool("mdrun dask (2 workers)", "python", ".md",
                 _mdrun("--executor", "dask", "--scheduler", scheduler)),
        SiteTool("jupyter-cache local-parallel", "python", ".md", _jupyter_cache, check=False),
        SiteTool("quarto render (freeze: auto)", "{python}", ".qmd", _quarto, check=False),
    ]  # fmt: skip


def missing_output(site: Path, pages: list[Page], suffix: str) -> str:
    """The first page without its last block's output, said in a phrase ("" when none)."""
    for page in pages:
        if page.last_line not in (site / f"page-{page.number:02d}{suffix}").read_text("utf-8"):
            return f"page {page.number}: {page.last_line!r} missing"
    return ""


def _check(tool: SiteTool, work: Path, pages: list[Page], measured: Measurement) -> None:
    if not measured.ok or not tool.check:
        return
    problem = missing_output(work / "site", pages, tool.suffix)
    if problem:
        measured.ok, measured.detail = False, problem


def run_tool(tool: SiteTool, pages: list[Page]) -> list[JSONObject]:
    """cold, unchanged, edited in a new work folder; one record per scenario."""
    work = Path(tempfile.mkdtemp(prefix="mdrun-bench-many-"))
    records: list[JSONObject] = []
    try:
        write_site(pages, work / "site", tool.fence, tool.suffix)
        if tool.suffix == ".qmd":
            (work / "site" / "_quarto.yml").write_text(QUARTO_PROJECT, "utf-8")
        for scenario in SCENARIOS:
            current = edit_one_page(pages) if scenario == "edited" else pages
            if scenario == "edited":
                write_site(current, work / "site", tool.fence, tool.suffix)
            measured = run_commands(tool.commands(work, scenario == "cold"), work, scenario)
            _check(tool, work, current, measured)
            records.append({"tool": tool.name, "scenario": scenario, **asdict(measured)})
            print(f"  {tool.name} {scenario}: "
                  f"{measured.seconds:.1f} s{'' if measured.ok else ' FAILED ' + measured.detail}",
                  flush=True)  # fmt: skip
            if not measured.ok:
                break
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return records


def _install_peers() -> dict[str, str]:
    """Each peer's environment; a peer that cannot be installed is reported, not fatal."""
    problems: dict[str, str] = {}
    for environment in (JUPYTER_CACHE, QUARTO):
        try:
            environment.ensure()
        except subprocess.CalledProcessError as err:
            problems[environment.name] = (
                f"cannot be installed (pip exited {err.returncode}; its output is above)"
                + QUARTO_NOTE * (environment is QUARTO)
            )
    return problems


def run(options: BenchOptions) -> None:
    from distributed import LocalCluster

    started = time.perf_counter()
    size = QUICK_SITE_SIZE if options.quick else SITE_SIZE
    slow = QUICK_SLOW_SECONDS if options.quick else SLOW_SECONDS
    pages = generate_site(size, slow)
    problems = _install_peers()
    records: list[JSONObject] = []
    cluster_started = time.perf_counter()
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        cluster_seconds = time.perf_counter() - cluster_started
        for tool in tools(str(cluster.scheduler_address)):
            if "jupyter-cache" in tool.name and "jupyter-cache" in problems:
                continue
            if "quarto" in tool.name and "quarto" in problems:
                continue
            records += run_tool(tool, pages)
    reuse = ci_reuse(pages)
    data: JSONObject = {
        "command": QUICK_COMMAND if options.quick else COMMAND,
        "machine": machine_info(),
        "pages": size,
        "blocks": sum(len(page.blocks) for page in pages),
        "slow_seconds": slow,
        "cluster_start_seconds": cluster_seconds,
        "peer_problems": dict(problems),
        "records": list[JSONValue](records),
        "ci_reuse": list[JSONValue](reuse),
        "seconds": time.perf_counter() - started,
    }
    markdown = report(data)
    write_results(options.results_directory, NAME, markdown, data)
    print(markdown)


def ci_reuse(pages: list[Page]) -> list[JSONObject]:
    """The CI reuse scenario through a folder cache and through S3 (moto on 127.0.0.1)."""

    def write(site: Path) -> None:
        write_site(pages, site, "python", ".md")

    def check(site: Path) -> str:
        return missing_output(site, pages, ".md")

    folder = Path(tempfile.mkdtemp(prefix="mdrun-bench-cache-"))
    try:
        with s3_cache() as bucket:
            return run_ci_reuse([RemoteCache("file:// folder", folder.as_uri()), bucket],
                                write, check)  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(data: JSONObject) -> str:
    """The table: seconds per tool and scenario, and each divided by mdrun -j 2's."""
    records = data["records"]
    assert isinstance(records, list)
    seconds: dict[tuple[str, str], float] = {}
    failed: set[tuple[str, str]] = set()
    for record in records:
        assert isinstance(record, dict)
        key = (str(record["tool"]), str(record["scenario"]))
        seconds[key] = float(str(record["seconds"]))
        if not record["ok"]:
            failed.add(key)
    names = list(dict.fromkeys(tool for tool, _ in seconds))
    rows = []
    for name in names:
        row = [name]
        for scenario in SCENARIOS:
            value = seconds.get((name, scenario))
            base = seconds.get(("mdrun -j 2", scenario))
            if value is None:
                row.append("—")
            elif (name, scenario) in failed:
                row.append("failed")
            else:
                ratio = f" ({value / base:.2f}x)" if base else ""
                row.append(f"{value:.1f} s{ratio}")
        rows.append(row)
    lines = [
        f"# Many documents: {data['pages']} pages, {data['blocks']} blocks",
        "",
        f"`{data['command']}`; ratios are each time ÷ mdrun -j 2's in the same scenario. "
        f"Slow blocks sleep {data['slow_seconds']} s; the Dask cluster (2 workers) took "
        f"{float(str(data['cluster_start_seconds'])):.1f} s to start, not counted.",
        "",
        markdown_table(["tool", *SCENARIOS], rows),
    ]
    serial = seconds.get(("mdrun serial", "cold"))
    parallel = seconds.get(("mdrun -j 2", "cold"))
    if serial and parallel:
        lines += ["", f"Cold, -j 2 against serial ÷ 2: {parallel / (serial / 2):.2f}x "
                  "(the aim: within 1.15x)."]  # fmt: skip
    reuse = data.get("ci_reuse")
    if isinstance(reuse, list) and reuse:
        lines += ["", "CI reuse: one store runs the site cold and pushes to the folder (`run site "
                  "--cache URL --push`: the folder's fill), then to S3 (`cache push site --cache "
                  "URL`: S3's fill); a fresh store with a fresh copy of the pages then runs it "
                  "through each cache (`run site --cache URL`, serial). Bytes as mdrun's "
                  "`fetched` line counts them.", "",
                  markdown_table(REPORT_HEADERS, report_rows(reuse))]  # fmt: skip
    problems = data["peer_problems"]
    if isinstance(problems, dict) and problems:
        lines += ["", *[f"- {name}: {why}" for name, why in problems.items()]]
    machine = data["machine"]
    assert isinstance(machine, dict)
    lines += ["", f"Machine: {machine['cpu_count']} cores, {machine['cpu_model']}; "
              f"mdrun {machine['mdrun_commit']}; {machine['date']}.", ""]  # fmt: skip
    return "\n".join(lines)
