"""`mdrun run` and `mdrun check`: bring one document up to date, or say whether it is.

`check` is a run that writes nothing and compares; `check --no-exec` compares with what the
store holds and runs nothing. A document exactly as its last clean run wrote it is reported
from the run's record, without parsing it (`uptodate`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun.cli.commands_cache import add_push_options
from mdrun.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_keep_going_option,
    add_reading_options,
    check_writable_file,
    command_for_documents,
    is_writable,
    named,
    open_store,
    print_failures,
    print_run_summary,
    reading_settings,
    refuse_stale_blocks,
    require_document,
    terminal_reporter,
)
from mdrun.document.uptodate import STDIO, up_to_date
from mdrun.errors import FileAccessError, Location, UsageError

if TYPE_CHECKING:
    from mdrun.cli.common import Commands
    from mdrun.core.store import Store
    from mdrun.document.formats.settings import Settings
    from mdrun.document.pipeline import RunResult
    from mdrun.document.plan import Plan, PlannedBlock


def add_run_command(commands: Commands) -> None:
    """`mdrun run DOCUMENT [-o OUT]`."""
    parser = commands.add_parser("run", help="run documents and write their outputs")
    parser.add_argument(
        "documents",
        nargs="+",
        metavar="document",
        help="a document, a folder (searched for documents), or - for standard input",
    )
    parser.add_argument(
        "-o", "--output", metavar="OUT", help="write here instead of in place (- for stdout)"
    )
    _add_run_options(parser)
    _add_parallel_options(parser)
    parser.set_defaults(handler=command_for_documents)


def add_check_command(commands: Commands) -> None:
    """`mdrun check DOCUMENT...`."""
    parser = commands.add_parser(
        "check", help="exit 1 and print a diff if a run would change the documents"
    )
    parser.add_argument("documents", nargs="+", metavar="document")
    _add_run_options(parser)
    _add_parallel_options(parser)
    parser.add_argument(
        "--no-exec",
        action="store_true",
        help="run nothing, start no kernel: compare with what the store holds (a block it does "
        "not hold is reported and fails the check)",
    )
    parser.set_defaults(handler=command_for_documents)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force",
        nargs="?",
        const="*",
        action="append",
        metavar="ID",
        help="re-run every block, or the block with this id (repeatable)",
    )
    add_keep_going_option(parser)
    parser.add_argument("--report", metavar="FILE", help="write one JSON record per block to FILE")
    add_push_options(parser)
    add_reading_options(parser)
    parser.add_argument(
        "--no-server",
        action="store_true",
        help="run in this process, not in the mdrun server (see mdrun server --help)",
    )


def _jobs(text: str) -> int:
    """`-j N` (at least 1), or `-j auto`: 0, for one per core."""
    if text == "auto":
        return 0
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of jobs (1 or more) or auto")
    return jobs


def _add_parallel_options(parser: argparse.ArgumentParser) -> None:
    """Several documents' sessions at once (see `mdrun.cli.many_documents`)."""
    parser.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        default=None,
        metavar="N",
        help="run up to N sessions at once, in worker processes (auto: one per core)",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="where sessions run with -j: local processes, or a Dask cluster (needs mdrun[dask] "
        "and a store on a file system the workers share)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="the Dask scheduler (default: $MDRUN_DASK_SCHEDULER)",
    )


def command_run(arguments: argparse.Namespace, check: bool = False) -> int:
    """`mdrun run` of one document, written in place or to `-o` (`check`: as `mdrun check`)."""
    return run_document(arguments, check=check)


def command_check(arguments: argparse.Namespace) -> int:
    """`mdrun check` of one document."""
    if arguments.no_exec and arguments.force:
        raise UsageError("check: --no-exec runs nothing, so it cannot --force a block")
    return run_document(arguments, check=True)


def run_document(arguments: argparse.Namespace, check: bool) -> int:
    """`mdrun run` and `mdrun check` of one document: refuse what cannot work before anything
    runs, answer from the last clean run's record when it still holds, else run."""
    source: str = arguments.document
    if source != STDIO:
        require_document(source)
    if not check:
        check_writable_file(arguments.output, "-o")
    check_writable_file(arguments.report, "--report")
    store = open_store(arguments)
    settings = reading_settings(arguments)
    if not is_writable(store):
        refuse_stale_blocks(source, store, settings)
    if not arguments.force and report_if_up_to_date(arguments, store, settings, check):
        return EXIT_OK
    if check and arguments.no_exec:
        return check_stored(source, store, settings)
    return report_run(arguments, source, _run(arguments, store, settings, check), check)


def report_run(arguments: argparse.Namespace, source: str, result: RunResult, check: bool) -> int:
    """What `run` and `check` print about a finished document, and its exit code."""
    print_run_summary(arguments, source, result.evaluation)
    if arguments.report:
        from mdrun.terminal import report_records

        write_report(arguments.report, report_records(result))
    return _exit_code(source, result, check)


def report_if_up_to_date(
    arguments: argparse.Namespace,
    store: Store,
    settings: Settings,
    check: bool,
    source: str | None = None,
) -> bool:
    """The document (`source`, else the command's one) is exactly what the last clean run
    wrote: report it, parse nothing."""
    source = arguments.document if source is None else source
    started = time.monotonic()
    output = None if check else arguments.output
    records = up_to_date(store, source, output, settings.key())
    if records is None:
        return False
    count = len(records)
    print(
        f"mdrun: {named(arguments, source)}{count} blocks, 0 executed, {count} "
        f"cached, 0 failed in {time.monotonic() - started:.2f} s",
        file=sys.stderr,
    )
    if arguments.report:
        write_report(arguments.report, records)
    return True


def _run(arguments: argparse.Namespace, store: Store, settings: Settings, check: bool) -> RunResult:
    """The run itself; `check` writes nothing. Without executors from elsewhere (the server's),
    the kernel of the first block that will run is launched before the evaluation's modules
    are imported (`kernel_head_start`)."""
    from mdrun.document.kernel_head_start import HeadStart

    source: str = arguments.document
    force = _forced(arguments.force, source, settings)
    factory = getattr(arguments, "executor_factory", None)
    plan, head_start = None, HeadStart()
    if factory is None and source != STDIO:
        plan = plan_file(source, settings)
        head_start = HeadStart.for_plan(plan, store, force, source)
        factory = head_start.factory
    from mdrun.document.pipeline import run

    try:
        with terminal_reporter() as reporter:
            return run(
                source,
                store,
                output=None if check else arguments.output,
                write=not check,
                force=force,
                keep_going=arguments.keep_going,
                reporter=reporter,
                settings=settings,
                executor_factory=factory,
                plan=plan,
            )
    finally:
        head_start.close()


def plan_file(source: str, settings: Settings) -> Plan:
    """A document file's plan, as `pipeline.make_plan` makes it, without importing what
    evaluates it."""
    from mdrun.document.parse import read_document
    from mdrun.document.plan import plan_document

    return plan_document(read_document(Path(source)), Path(source).absolute().parent, settings)


def _exit_code(source: str, result: RunResult, check: bool) -> int:
    """1 when a block failed, `check` found a difference or the document was not written."""
    if check and result.changed:
        _print_diff(source, result)
        return EXIT_FAILED
    if check and result.evaluation.failed:
        print(
            f"mdrun: {source} is up to date, but a block in it fails (exit 1): a failed block "
            "is never cached, so it runs again every time",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if not check and not result.written:
        print(
            f"mdrun: {source} was edited while its blocks ran; its outputs were not written "
            "(the results are stored: run again to write them)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_FAILED if result.evaluation.failed else EXIT_OK


def _forced(
    values: list[str] | None, source: str, settings: Settings
) -> Callable[[PlannedBlock], bool]:
    """Which blocks `--force` names: every one (`--force` alone) or those with these ids."""
    if not values:
        return lambda _planned: False
    if "*" in values:
        return lambda _planned: True
    from mdrun.document.pipeline import make_plan

    plan = make_plan(source, settings)
    known = {planned.block_id for planned in plan.blocks if planned.executable}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"--force: no block with id {', '.join(unknown)} in {source}")
    named = set(values)
    return lambda planned: planned.block_id in named


def write_report(path: str, records: Sequence[object]) -> None:
    """The `--report` file: `{"blocks": [one record per executable block]}`."""
    text = json.dumps({"blocks": list(records)}, indent=2) + "\n"
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as err:
        raise FileAccessError(f"cannot write the report: {err.strerror}", Location(path)) from err


def _print_diff(source: str, result: RunResult) -> None:
    """What `check` prints for a document a run would change."""
    import difflib

    diff = difflib.unified_diff(
        result.evaluation.plan.document.source.splitlines(keepends=True),
        result.text.splitlines(keepends=True),
        fromfile=f"{source} (now)",
        tofile=f"{source} (after mdrun run)",
    )
    sys.stdout.writelines(diff)
    print(f"mdrun: {source} is not up to date", file=sys.stderr)


def check_stored(source: str, store: Store, settings: Settings) -> int:
    """`mdrun check --no-exec`: the document against what the store holds, nothing run."""
    from mdrun.document.stored import run_from_store

    result, lacking = run_from_store(source, store, settings)
    missing = [result.evaluation.outcomes[index] for index in lacking]
    for outcome in missing:
        planned = outcome.planned
        print(f"{source}:{planned.line}: block {planned.block_id}: {outcome.note}")
    if missing:
        print(
            f"mdrun: {source}: {len(missing)} blocks not in the store; --no-exec runs nothing",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if result.changed:
        _print_diff(source, result)
        return EXIT_FAILED
    if result.evaluation.failed:
        print_failures(source, result.evaluation)
        print(f"mdrun: {source} is up to date, but a block in it fails (exit 1)", file=sys.stderr)
        return EXIT_FAILED
    count = sum(1 for outcome in result.evaluation.outcomes if outcome.status == "cached")
    print(f"mdrun: {source}: {count} blocks, all as the store holds them", file=sys.stderr)
    return EXIT_OK
