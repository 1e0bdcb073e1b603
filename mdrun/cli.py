"""The `mdrun` command: a thin layer that parses arguments, calls the pipeline, and reports.

This is the only place that prints to the terminal and the only place that turns errors into
exit codes: 0 all good, 1 a block failed (or `check` found the document out of date), 2 bad usage
or input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun import __version__
from mdrun.core.refs import RRef
from mdrun.core.store import STORE_ENVIRONMENT_VARIABLE, Store, default_store_root
from mdrun.document.export_formats import EXPORT_FORMATS, formats_in_words
from mdrun.document.uptodate import STDIO, up_to_date
from mdrun.errors import (
    NO_SPACE_ERRNOS,
    DamagedRealization,
    FileAccessError,
    Location,
    MdrunError,
    NoSpaceError,
    UsageError,
    os_error,
)

if TYPE_CHECKING:
    from mdrun.document.evaluate import Evaluation, Reporter
    from mdrun.document.formats.settings import Settings
    from mdrun.document.pipeline import RunResult


EXIT_OK = 0
EXIT_FAILED = 1


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
    _add_global_options(parser, default=None)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_ArgumentParser
    )

    run_parser = commands.add_parser("run", help="run documents and write their outputs")
    run_parser.add_argument(
        "documents",
        nargs="+",
        metavar="document",
        help="a document, a folder (searched for documents), or - for standard input",
    )
    run_parser.add_argument(
        "-o", "--output", metavar="OUT", help="write here instead of in place (- for stdout)"
    )
    _add_run_options(run_parser)
    _add_parallel_options(run_parser)

    check_parser = commands.add_parser(
        "check", help="exit 1 and print a diff if a run would change the documents"
    )
    check_parser.add_argument("documents", nargs="+", metavar="document")
    _add_run_options(check_parser)
    _add_parallel_options(check_parser)
    check_parser.add_argument(
        "--no-exec",
        action="store_true",
        help="run nothing, start no kernel: compare with what the store holds (a block it does "
        "not hold is reported and fails the check)",
    )

    status_parser = commands.add_parser("status", help="say which blocks are cached or stale")
    status_parser.add_argument("documents", nargs="+", metavar="document")
    _add_reading_options(status_parser)

    gc_parser = commands.add_parser(
        "gc", help="remove from the store what no document uses (see the store's roots/)"
    )
    gc_parser.add_argument("documents", nargs="*", help="documents whose results to keep")
    gc_parser.add_argument(
        "--dry-run", action="store_true", help="say what would be removed, remove nothing"
    )
    gc_parser.add_argument(
        "--all", action="store_true", help="keep no recorded roots: with no document, empty "
        "the store"
    )
    _add_reading_options(gc_parser)

    export_parser = commands.add_parser(
        "export", help=f"run what is stale, then write the document as {formats_in_words()}"
    )
    export_parser.add_argument("documents", nargs="+", metavar="document")
    export_parser.add_argument(
        "--to", required=True, choices=list(EXPORT_FORMATS), help="the format"
    )
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
        help="run nothing: export what the store holds (failures included); exit 1, naming "
        "the stale blocks, if a block's result is not in the store",
    )
    export_parser.add_argument(
        "--keep-going",
        action="store_true",
        help="after a block fails, run the rest of its session anyway",
    )
    _add_reading_options(export_parser)

    store_parser = commands.add_parser("store", help="look after the store: verify")
    store_commands = store_parser.add_subparsers(
        dest="store_command", metavar="STORE_COMMAND", parser_class=_ArgumentParser
    )
    verify_parser = store_commands.add_parser(
        "verify",
        help="check every file of the store against its reference (exit 1 if any is damaged)",
    )
    verify_parser.add_argument(
        "documents", nargs="*", help="check only what these documents use (default: everything)"
    )
    verify_parser.add_argument(
        "--repair",
        action="store_true",
        help="remove what is damaged, so that the next run builds it again",
    )
    _add_reading_options(verify_parser)

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
    _add_reading_options(watch_parser)
    _accept_global_options_after_commands(parser)
    return parser


def _accept_global_options_after_commands(parser: argparse.ArgumentParser) -> None:
    """Let every command, and command of a command, take the global options after its name
    (`mdrun run doc.md --store DIR`). There they default to "not given", so that they never
    undo one given before the command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                _add_global_options(command, default=argparse.SUPPRESS)
                _accept_global_options_after_commands(command)


def _add_global_options(parser: argparse.ArgumentParser, default: object) -> None:
    """Options every command takes, before or after the command's name."""
    parser.add_argument(
        "--store",
        metavar="DIR",
        default=default,
        help=f"the store to use (default: ${STORE_ENVIRONMENT_VARIABLE}, else "
        "$XDG_CACHE_HOME/mdrun/store, i.e. ~/.cache/mdrun/store)",
    )


def _add_reading_options(parser: argparse.ArgumentParser) -> None:
    """Which blocks run, beyond what the document itself says."""
    parser.add_argument(
        "--languages",
        metavar="LANGS",
        help="also run blocks in these languages, comma-separated (bash,r); Python blocks "
        "always run",
    )
    parser.add_argument(
        "--doctest",
        action="store_true",
        help="run interactive-session blocks (>>> prompts) and rewrite their expected outputs",
    )


def reading_settings(arguments: argparse.Namespace) -> Settings:
    """The `--languages` and `--doctest` flags as run settings."""
    from mdrun.document.formats.settings import Settings, parse_languages

    languages: frozenset[str] = frozenset()
    if arguments.languages is not None:
        try:
            languages = parse_languages(arguments.languages)
        except ValueError as err:
            raise UsageError(f"--languages {arguments.languages!r}: expected {err}") from None
    return Settings(languages=languages, doctest=arguments.doctest)


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
    """Several documents' sessions at once (see `mdrun.many_documents`)."""
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
    _add_reading_options(parser)


def open_store(arguments: argparse.Namespace) -> Store:
    """The store named by --store, else the environment's default."""
    root = Path(arguments.store) if arguments.store else default_store_root()
    if root.exists() and not root.is_dir():
        raise FileAccessError("the store must be a folder, and this is a file", Location(str(root)))
    try:
        store = Store.initialize(root)
    except OSError as err:
        raise FileAccessError(
            f"cannot open or create the store: {err.strerror}", Location(str(root))
        ) from err
    store.on_damage = warn_about_damage
    return store


def warn_about_damage(damage: DamagedRealization) -> None:
    """One warning line for each damaged realization a command comes across."""
    print(f"mdrun: warning: {damage}; {damage.consequence}", file=sys.stderr)


def is_writable(store: Store) -> bool:
    """Whether a build could be stored (a shared cache may be read-only, or on a read-only
    file system): tried, not guessed from permission bits."""
    probe = store.tmp / f".writable-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        return False
    probe.unlink()
    return True


def refuse_stale_blocks(source: str, store: Store, settings: Settings) -> None:
    """With a read-only store, refuse before running anything a document with blocks to build."""
    from mdrun.document.status_report import status

    lines = status(source, store, settings)
    stale = [line.planned.block_id for line in lines if line.state == "stale"]
    if stale:
        raise FileAccessError(
            f"the store is read-only, and blocks of {source} must run ({', '.join(stale)}); "
            "name a store you can write with --store DIR",
            Location(str(store.root)),
        )


def require_document(source: str) -> None:
    """Refuse a document that is not there, or is a folder."""
    if Path(source).is_dir():
        raise UsageError(f"{source}: a folder, not a document")
    if not Path(source).is_file():
        raise UsageError(f"{source}: no such file")


def check_writable_file(path: str | None, option: str) -> None:
    """Refuse, before anything runs, a file that cannot be written for want of its folder."""
    if path is None or path == STDIO:
        return
    target = Path(path)
    if target.is_dir():
        raise FileAccessError(f"{option} names a folder; it needs a file", Location(path))
    if not target.absolute().parent.is_dir():
        raise FileAccessError(f"{option}: its folder does not exist", Location(path))


def write_report(path: str, records: Sequence[object]) -> None:
    """The `--report` file: `{"blocks": [one record per executable block]}`."""
    text = json.dumps({"blocks": list(records)}, indent=2) + "\n"
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as err:
        raise FileAccessError(f"cannot write the report: {err.strerror}", Location(path)) from err


def _forced(
    values: list[str] | None, source: str, settings: Settings
) -> tuple[bool, set[str]]:
    if not values:
        return False, set()
    if "*" in values:
        return True, set()
    known = {planned_id for planned_id in _block_ids(source, settings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"--force: no block with id {', '.join(unknown)} in {source}")
    return False, set(values)


def _block_ids(source: str, settings: Settings) -> list[str]:
    from mdrun.document.pipeline import make_plan

    plan = make_plan(source, settings)
    return [planned.block_id for planned in plan.blocks if planned.executable]


def command_check(arguments: argparse.Namespace) -> int:
    """`mdrun check` of one document."""
    if arguments.no_exec and arguments.force:
        raise UsageError("check: --no-exec runs nothing, so it cannot --force a block")
    return command_run(arguments, check=True)


def named(arguments: argparse.Namespace, source: str) -> str:
    """`SOURCE: ` before a summary when the command has several documents, else nothing."""
    return f"{source}: " if getattr(arguments, "several", False) else ""


def command_run(arguments: argparse.Namespace, check: bool) -> int:
    """`mdrun run` and `mdrun check` of one document."""
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
    if not arguments.force:
        # The document is exactly what the last clean run wrote: report, parse nothing.
        started = time.monotonic()
        output = None if check else arguments.output
        records = up_to_date(store, source, output, settings.key())
        if records is not None:
            count = len(records)
            print(
                f"mdrun: {named(arguments, source)}{count} blocks, 0 executed, {count} cached, "
                f"0 failed in {time.monotonic() - started:.2f} s",
                file=sys.stderr,
            )
            if arguments.report:
                write_report(arguments.report, records)
            return EXIT_OK
    if check and arguments.no_exec:
        return command_check_stored(source, store, settings)
    from mdrun.document.pipeline import run
    from mdrun.terminal import TerminalReporter

    force_all, force_ids = _forced(arguments.force, source, settings)
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
            settings=settings,
        )
    finally:
        if isinstance(reporter, TerminalReporter):
            reporter.close()
    return report_run(arguments, source, result, check)


def report_run(arguments: argparse.Namespace, source: str, result: RunResult, check: bool) -> int:
    """What `run` and `check` print about a finished document, and its exit code."""
    from mdrun.terminal import report_records, summary_line

    for warning in result.evaluation.plan.warnings:
        print(f"mdrun: warning: {warning}", file=sys.stderr)
    print(summary_line(result.evaluation, named(arguments, source)), file=sys.stderr)
    _print_failures(source, result.evaluation)
    if arguments.report:
        write_report(arguments.report, report_records(result))
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


def command_check_stored(source: str, store: Store, settings: Settings) -> int:
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
        _print_failures(source, result.evaluation)
        print(f"mdrun: {source} is up to date, but a block in it fails (exit 1)", file=sys.stderr)
        return EXIT_FAILED
    count = sum(1 for outcome in result.evaluation.outcomes if outcome.status == "cached")
    print(f"mdrun: {source}: {count} blocks, all as the store holds them", file=sys.stderr)
    return EXIT_OK


def _print_failures(source: str, evaluation: Evaluation) -> None:
    """One line per failed block: where it is and how it failed."""
    for outcome in evaluation.outcomes:
        if outcome.status == "failed":
            planned = outcome.planned
            print(
                f"{source}:{planned.line}: block {planned.block_id} failed: {outcome.note}",
                file=sys.stderr,
            )


def command_status(arguments: argparse.Namespace) -> int:
    """`mdrun status`: cached or stale, and why, for each block."""
    from mdrun.document.status_report import status

    source: str = arguments.document
    if source != STDIO:
        require_document(source)
    states: dict[str, int] = {}
    for line in status(source, open_store(arguments), reading_settings(arguments)):
        planned = line.planned
        name = f" {planned.block_id}:" if planned.block_id else ""
        reason = f" ({line.reason})" if line.reason else ""
        print(f"{source}:{planned.line}:{name} {line.state}{reason}")
        states[line.state] = states.get(line.state, 0) + 1
    if getattr(arguments, "several", False):
        counts = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
        print(f"mdrun: {source}: {counts or 'no blocks'}", file=sys.stderr)
    return EXIT_OK


def command_gc(arguments: argparse.Namespace) -> int:
    """`mdrun gc`: keep what recorded documents used and named ones use now, remove the rest."""
    from mdrun.core.garbage import gc
    from mdrun.core.roots import gc_roots
    from mdrun.document.pipeline import load_document, realizations_in_use

    for document in arguments.documents:
        require_document(document)
        load_document(document)
    store = open_store(arguments)
    if not arguments.dry_run and not is_writable(store):
        raise FileAccessError("the store is read-only: gc cannot remove anything from it",
                              Location(str(store.root)))  # fmt: skip
    keep = set(realizations_in_use(arguments.documents, store, reading_settings(arguments)))
    keep.update(gc_roots(store, keep_recorded=not arguments.all, release=not arguments.dry_run))
    plan = gc(store, keep_rrefs=keep, delete=not arguments.dry_run)
    verb = "would free" if arguments.dry_run else "freed"
    print(
        f"mdrun: gc {verb} {_human_size(plan.size_bytes)}: {len(plan.rrefs)} realizations, "
        f"{len(plan.drefs)} derivations (kept {len(keep)} realizations in use)",
        file=sys.stderr,
    )
    return EXIT_OK


def command_store(arguments: argparse.Namespace) -> int:
    """`mdrun store verify`: every realization (or those the documents use), every file."""
    from mdrun.core.verify import remove_damaged, verify_store

    if arguments.store_command != "verify":
        raise UsageError("store: a command is needed: verify (see mdrun store --help)")
    for document in arguments.documents:
        require_document(document)
    store = open_store(arguments)
    if arguments.repair and not is_writable(store):
        raise FileAccessError("the store is read-only: --repair cannot remove anything from it",
                              Location(str(store.root)))  # fmt: skip
    rrefs: list[RRef] | None = None
    if arguments.documents:
        from mdrun.document.pipeline import load_document, realizations_in_use

        for document in arguments.documents:
            load_document(document)
        seen: list[DamagedRealization] = []
        store.on_damage = seen.append  # each is reported below, with the others
        rrefs = realizations_in_use(arguments.documents, store, reading_settings(arguments))
        rrefs += [RRef(damage.rref) for damage in seen if damage.rref]
    verification = verify_store(store, rrefs)
    for finding in verification.damaged:
        print(f"{finding.path}: damaged: {'; '.join(finding.problems)}")
    summary = (
        f"mdrun: store verify: {verification.realizations} realizations and "
        f"{verification.derivations} derivations checked, {len(verification.damaged)} damaged"
    )
    if arguments.repair and verification.damaged:
        removed = remove_damaged(store, verification.damaged)
        summary += f", {len(removed)} removed (the next run builds them again)"
    elif verification.damaged:
        summary += " (--repair removes them)"
    print(summary, file=sys.stderr)
    return EXIT_FAILED if verification.damaged else EXIT_OK


def command_export(arguments: argparse.Namespace) -> int:
    """`mdrun export`: the source document is left as it is."""
    from mdrun.document.export import default_output, export_document, stale_blocks
    from mdrun.terminal import TerminalReporter, summary_line

    source: str = arguments.document
    require_document(source)
    output = arguments.output or default_output(source, arguments.to)
    check_writable_file(output, "-o")
    store = open_store(arguments)
    settings = reading_settings(arguments)
    if not is_writable(store):
        refuse_stale_blocks(source, store, settings)
    if arguments.no_exec:
        stale = stale_blocks(source, store, settings)
        if stale:
            for line in stale:
                planned = line.planned
                print(f"{source}:{planned.line}: {planned.block_id}: stale ({line.reason})")
            names = ", ".join(line.planned.block_id for line in stale)
            print(f"mdrun: {source} is not up to date (stale: {names}); --no-exec runs nothing",
                  file=sys.stderr)  # fmt: skip
            return EXIT_FAILED
    reporter = TerminalReporter(sys.stderr) if sys.stderr.isatty() else None
    try:
        result = export_document(
            source,
            store,
            arguments.to,
            output,
            reporter=reporter,
            settings=settings,
            keep_going=arguments.keep_going,
            no_exec=arguments.no_exec,
        )
    finally:
        if reporter is not None:
            reporter.close()
    for warning in result.evaluation.plan.warnings:
        print(f"mdrun: warning: {warning}", file=sys.stderr)
    print(summary_line(result.evaluation, named(arguments, source)), file=sys.stderr)
    _print_failures(source, result.evaluation)
    if output != STDIO:
        print(f"mdrun: wrote {output}", file=sys.stderr)
    return EXIT_FAILED if result.evaluation.failed else EXIT_OK


def command_watch(arguments: argparse.Namespace) -> int:
    """`mdrun watch`: the loop is `watch_document`'s; Ctrl-C is the normal way out."""
    from mdrun.document.watch import watch_document
    from mdrun.terminal import WatchPrinter

    source: str = arguments.document
    require_document(source)
    if not 0 <= arguments.port <= 65535:
        raise UsageError(f"--port {arguments.port}: a port is between 0 and 65535")
    store = open_store(arguments)
    if not is_writable(store):
        raise FileAccessError(
            "the store is read-only; watch runs blocks as the document changes, and needs a "
            "store it can write",
            Location(str(store.root)),
        )
    print(f"mdrun: watching {source} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        watch_document(
            source,
            store,
            WatchPrinter(source),
            serve=arguments.serve,
            port=arguments.port,
            keep_going=arguments.keep_going,
            settings=reading_settings(arguments),
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
                "a command is needed: run, check, status, gc, export, watch or store "
                "(see mdrun --help)"
            )
        if arguments.command in ("run", "check", "status", "export"):
            from mdrun.many_documents import command_for_documents

            return command_for_documents(arguments)
        if arguments.command == "watch":
            return command_watch(arguments)
        if arguments.command == "store":
            return command_store(arguments)
        return command_gc(arguments)
    except MdrunError as err:
        print(f"mdrun: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("mdrun: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if isinstance(err, OSError) and err.errno in NO_SPACE_ERRNOS:
            # A write mdrun has no more precise message for: not a bug, a full disk.
            print(f"mdrun: error: {os_error(err, err.filename or '?', 'cannot write')}",
                  file=sys.stderr)  # fmt: skip
            return NoSpaceError.exit_code
        import tempfile
        import traceback

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
