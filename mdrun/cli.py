"""The `mdrun` command: a thin layer that parses arguments, calls the pipeline, and reports.

This is the only place that prints to the terminal and the only place that turns errors into
exit codes: 0 all good, 1 a block failed (or `check` found the document out of date), 2 bad usage
or input.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mdrun import __version__
from mdrun.core.store import STORE_ENVIRONMENT_VARIABLE, Store, default_store_root
from mdrun.document.evaluate import BlockOutcome, Evaluation, Reporter
from mdrun.document.export import FORMATS, default_output, export_document, stale_blocks
from mdrun.document.pipeline import STDIO, RunResult, load_document, run, status
from mdrun.document.plan import PlannedBlock
from mdrun.errors import MdrunError, UsageError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so one place reports errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command line's grammar."""
    parser = _ArgumentParser(
        prog="mdrun",
        description="Run the code blocks of a Markdown document and write their outputs into it.",
    )
    parser.add_argument("--version", action="version", version=f"mdrun {__version__}")
    parser.add_argument(
        "--store",
        metavar="DIR",
        help=f"the store to use (default: ${STORE_ENVIRONMENT_VARIABLE}, else "
        "$XDG_CACHE_HOME/mdrun/store, i.e. ~/.cache/mdrun/store)",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_ArgumentParser
    )

    run_parser = commands.add_parser("run", help="run a document and write its outputs")
    run_parser.add_argument("document", help="the Markdown file, or - for standard input")
    run_parser.add_argument(
        "-o", "--output", metavar="OUT", help="write here instead of in place (- for stdout)"
    )
    _add_run_options(run_parser)

    check_parser = commands.add_parser(
        "check", help="exit 1 and print a diff if a run would change the document"
    )
    check_parser.add_argument("document")
    _add_run_options(check_parser)

    status_parser = commands.add_parser("status", help="say which blocks are cached or stale")
    status_parser.add_argument("document")

    gc_parser = commands.add_parser(
        "gc", help="remove from the store what the given documents do not use"
    )
    gc_parser.add_argument("documents", nargs="*", help="documents whose results to keep")
    gc_parser.add_argument(
        "--dry-run", action="store_true", help="say what would be removed, remove nothing"
    )
    gc_parser.add_argument(
        "--all", action="store_true", help="with no document: empty the store"
    )

    export_parser = commands.add_parser(
        "export", help="run what is stale, then write the document as HTML, docx, ipynb or md"
    )
    export_parser.add_argument("document")
    export_parser.add_argument("--to", required=True, choices=FORMATS, help="the format")
    export_parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="where to write (- for stdout; default: the document's name with the format's "
        "extension, NAME.rendered.md for md)",
    )
    export_parser.add_argument(
        "--no-exec",
        action="store_true",
        help="run nothing: exit 1, naming the stale blocks, unless the document is up to date",
    )

    watch_parser = commands.add_parser(
        "watch", help="run the document now and again after every save (Ctrl-C to stop)"
    )
    watch_parser.add_argument("document")
    watch_parser.add_argument(
        "--serve", action="store_true", help="preview the HTML export on 127.0.0.1, live"
    )
    watch_parser.add_argument(
        "--port", type=int, default=0, metavar="N", help="the preview's port (default: any free)"
    )
    watch_parser.add_argument(
        "--keep-going",
        action="store_true",
        help="after a block fails, run the rest of its session anyway",
    )
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force",
        nargs="?",
        const="*",
        action="append",
        metavar="ID",
        help="re-run every block, or the block with this id (repeatable)",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="after a block fails, run the rest of its session anyway",
    )
    parser.add_argument(
        "--report", metavar="FILE", help="write one JSON record per block to FILE"
    )


def open_store(arguments: argparse.Namespace) -> Store:
    """The store named by --store, else the environment's default."""
    root = Path(arguments.store) if arguments.store else default_store_root()
    return Store.initialize(root)


class TerminalReporter(Reporter):
    """Draws progress on a terminal with rich (imported only when something runs)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.total = 0
        self.done = 0
        self._progress: object | None = None
        self._task: object | None = None

    def planned(self, total_to_check: int) -> None:
        self.total = total_to_check

    def _ensure_progress(self) -> None:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import Progress

            progress = Progress(console=Console(file=self.stream), transient=True)
            progress.start()
            self._task = progress.add_task("mdrun", total=self.total, completed=self.done)
            self._progress = progress

    def block_started(self, planned: PlannedBlock) -> None:
        self._ensure_progress()
        self._update(f"running {planned.block_id} (line {planned.line})")

    def block_replayed(self, block_id: str) -> None:
        self._ensure_progress()
        self._update(f"restoring state: {block_id}")

    def block_finished(self, outcome: BlockOutcome) -> None:
        self.done += 1
        if self._progress is not None:
            self._update(f"{outcome.planned.block_id}: {outcome.status}")

    def _update(self, description: str) -> None:
        from rich.progress import Progress, TaskID

        progress = self._progress
        if isinstance(progress, Progress) and self._task is not None:
            task = TaskID(int(str(self._task)))
            progress.update(task, completed=self.done, description=description)

    def close(self) -> None:
        """Remove the progress display."""
        from rich.progress import Progress

        if isinstance(self._progress, Progress):
            self._progress.stop()
        self._progress = None


def summary_line(evaluation: Evaluation) -> str:
    """The one line every run prints on stderr."""
    executable = [o for o in evaluation.outcomes if o.status != "skipped"]
    parts = [
        f"{len(executable)} blocks",
        f"{evaluation.count('executed')} executed",
        f"{evaluation.count('cached')} cached",
        f"{evaluation.count('failed')} failed",
    ]
    not_run = evaluation.count("not-run")
    if not_run:
        parts.append(f"{not_run} not run")
    cutoff = sum(1 for outcome in evaluation.outcomes if outcome.cutoff)
    if cutoff:
        parts.append(f"{cutoff} kept by early cutoff")
    if evaluation.snapshots_restored:
        parts.append(f"{evaluation.snapshots_restored} state restored from snapshots")
    return f"mdrun: {', '.join(parts)} in {evaluation.seconds:.2f} s"


def write_report(path: str, result: RunResult) -> None:
    """The `--report` file: one record per executable block."""
    records = [o.record() for o in result.evaluation.outcomes if o.status != "skipped"]
    Path(path).write_text(json.dumps({"blocks": records}, indent=2) + "\n", encoding="utf-8")


def _forced(values: list[str] | None, source: str) -> tuple[bool, set[str]]:
    if not values:
        return False, set()
    if "*" in values:
        return True, set()
    known = {planned_id for planned_id in _block_ids(source)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"--force: no block with id {', '.join(unknown)} in {source}")
    return False, set(values)


def _block_ids(source: str) -> list[str]:
    from mdrun.document.pipeline import make_plan

    return [planned.block_id for planned in make_plan(source).blocks if planned.executable]


def command_run(arguments: argparse.Namespace, check: bool) -> int:
    """`mdrun run` and `mdrun check`."""
    source: str = arguments.document
    if source != STDIO and not Path(source).is_file():
        raise UsageError(f"{source}: no such file")
    store = open_store(arguments)
    force_all, force_ids = _forced(arguments.force, source)
    reporter: Reporter | None = None
    if sys.stderr.isatty():
        reporter = TerminalReporter(sys.stderr)
    try:
        result = run(
            source,
            store,
            output=None if check else arguments.output,
            write=not check,
            force=lambda planned: force_all or planned.block_id in force_ids,
            keep_going=arguments.keep_going,
            reporter=reporter,
        )
    finally:
        if isinstance(reporter, TerminalReporter):
            reporter.close()
    for warning in result.evaluation.plan.document.warnings:
        print(f"mdrun: warning: {warning}", file=sys.stderr)
    print(summary_line(result.evaluation), file=sys.stderr)
    if arguments.report:
        write_report(arguments.report, result)
    if check and result.changed:
        source_text = result.evaluation.plan.document.source
        diff = difflib.unified_diff(
            source_text.splitlines(keepends=True),
            result.text.splitlines(keepends=True),
            fromfile=f"{source} (now)",
            tofile=f"{source} (after mdrun run)",
        )
        sys.stdout.writelines(diff)
        print(f"mdrun: {source} is not up to date", file=sys.stderr)
        return EXIT_FAILED
    if not check and not result.written:
        print(
            f"mdrun: {source} was edited while its blocks ran; its outputs were not written "
            "(the results are stored: run again to write them)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_FAILED if result.evaluation.failed else EXIT_OK


def command_status(arguments: argparse.Namespace) -> int:
    """`mdrun status`: cached or stale, and why, for each block."""
    source: str = arguments.document
    if source != STDIO and not Path(source).is_file():
        raise UsageError(f"{source}: no such file")
    for line in status(source, open_store(arguments)):
        planned = line.planned
        name = planned.block_id or f"#{planned.block.index + 1}"
        reason = f" ({line.reason})" if line.reason else ""
        print(f"{source}:{planned.line}: {name}: {line.state}{reason}")
    return EXIT_OK


def command_gc(arguments: argparse.Namespace) -> int:
    """`mdrun gc`: keep what the documents use now, remove the rest."""
    from mdrun.core.garbage import gc
    from mdrun.document.pipeline import realizations_in_use

    if not arguments.documents and not arguments.all and not arguments.dry_run:
        raise UsageError(
            "gc: name the documents whose results to keep (or --all to empty the store)"
        )
    for document in arguments.documents:
        if not Path(document).is_file():
            raise UsageError(f"{document}: no such file")
        load_document(document)
    store = open_store(arguments)
    keep = realizations_in_use(arguments.documents, store)
    plan = gc(store, keep_rrefs=keep, delete=not arguments.dry_run)
    verb = "would free" if arguments.dry_run else "freed"
    print(
        f"mdrun: gc {verb} {_human_size(plan.size_bytes)}: {len(plan.rrefs)} realizations, "
        f"{len(plan.drefs)} derivations (kept {len(keep)} realizations in use)",
        file=sys.stderr,
    )
    return EXIT_OK


def command_export(arguments: argparse.Namespace) -> int:
    """`mdrun export`: the source document is left as it is."""
    source: str = arguments.document
    if not Path(source).is_file():
        raise UsageError(f"{source}: no such file")
    store = open_store(arguments)
    if arguments.no_exec:
        stale = stale_blocks(source, store)
        if stale:
            for line in stale:
                planned = line.planned
                print(f"{source}:{planned.line}: {planned.block_id}: stale ({line.reason})")
            names = ", ".join(line.planned.block_id for line in stale)
            print(f"mdrun: {source} is not up to date (stale: {names}); --no-exec runs nothing",
                  file=sys.stderr)  # fmt: skip
            return EXIT_FAILED
    output = arguments.output or default_output(source, arguments.to)
    reporter = TerminalReporter(sys.stderr) if sys.stderr.isatty() else None
    try:
        result = export_document(source, store, arguments.to, output, reporter=reporter)
    finally:
        if reporter is not None:
            reporter.close()
    for warning in result.evaluation.plan.document.warnings:
        print(f"mdrun: warning: {warning}", file=sys.stderr)
    print(summary_line(result.evaluation), file=sys.stderr)
    if output != STDIO:
        print(f"mdrun: wrote {output}", file=sys.stderr)
    return EXIT_FAILED if result.evaluation.failed else EXIT_OK


class WatchPrinter:
    """What `mdrun watch` says on stderr: the preview's address, one summary line per run."""

    def __init__(self, source: str) -> None:
        self.source = source

    def serving(self, url: str) -> None:
        print(f"mdrun: serving {self.source} at {url}", file=sys.stderr, flush=True)

    def run_started(self) -> None:
        pass

    def run_finished(self, result: RunResult, written: bool) -> None:
        for warning in result.evaluation.plan.document.warnings:
            print(f"mdrun: warning: {warning}", file=sys.stderr)
        print(summary_line(result.evaluation), file=sys.stderr, flush=True)
        if not written:
            print(f"mdrun: {self.source} changed during the run; running it again",
                  file=sys.stderr, flush=True)  # fmt: skip

    def run_failed(self, error: MdrunError) -> None:
        print(f"mdrun: error: {error}", file=sys.stderr, flush=True)


def command_watch(arguments: argparse.Namespace) -> int:
    """`mdrun watch`: the loop is `watch_document`'s; Ctrl-C is the normal way out."""
    from mdrun.document.watch import watch_document

    source: str = arguments.document
    if not Path(source).is_file():
        raise UsageError(f"{source}: no such file")
    if not 0 <= arguments.port <= 65535:
        raise UsageError(f"--port {arguments.port}: a port is between 0 and 65535")
    store = open_store(arguments)
    print(f"mdrun: watching {source} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        watch_document(
            source,
            store,
            WatchPrinter(source),
            serve=arguments.serve,
            port=arguments.port,
            keep_going=arguments.keep_going,
        )
    except KeyboardInterrupt:
        print("mdrun: stopped watching", file=sys.stderr)
    return EXIT_OK


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (the console script passes it to sys.exit)."""
    started = time.monotonic()
    try:
        arguments = build_parser().parse_args(argv)
        if arguments.command is None:
            raise UsageError(
                "a command is needed: run, check, status, gc, export or watch (see mdrun --help)"
            )
        if arguments.command in ("run", "check"):
            return command_run(arguments, check=arguments.command == "check")
        if arguments.command == "status":
            return command_status(arguments)
        if arguments.command == "export":
            return command_export(arguments)
        if arguments.command == "watch":
            return command_watch(arguments)
        return command_gc(arguments)
    except MdrunError as err:
        print(f"mdrun: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("mdrun: interrupted", file=sys.stderr)
        return 130
    except Exception:
        log = Path(tempfile.gettempdir()) / f"mdrun-crash-{os.getpid()}.log"
        log.write_text(traceback.format_exc())
        print(
            f"mdrun: internal error after {time.monotonic() - started:.1f} s; "
            f"the traceback is in {log}. Please report it.",
            file=sys.stderr,
        )
        return 3


def console_main() -> None:
    """The `mdrun` console script."""
    sys.exit(main())
