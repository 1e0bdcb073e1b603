"""The command line with several documents: one line per document, one in all, the worst exit.

Part of the command line's layer (it prints). Without `-j` each document goes through its
command's own function in turn; with `-j N` or `--executor dask`, `run` and `check` plan every
document here, send the stale sessions to workers (`document.parallel`) and render and write
each document when its sessions are back, reported exactly as a serial run reports it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from mdrun.document.batch import Tally, find_documents
from mdrun.errors import MdrunError, UsageError

if TYPE_CHECKING:  # imported when something runs: a document already up to date parses nothing
    from mdrun.cli.batch_progress import BatchProgress
    from mdrun.document.parallel import DocumentDone, PlannedDocument, Progress

SERIAL_COMMANDS = {"status": "command_status", "export": "command_export"}
"""Commands that take many documents but run each in turn (`export -j` is not parallel yet)."""


def command_for_documents(arguments: argparse.Namespace) -> int:
    """`run`, `check`, `status` or `export` of every document the arguments name."""
    started = time.monotonic()
    documents = find_documents(arguments.documents)
    several = len(documents) > 1
    arguments.several = several
    if several:
        for option in ("output", "report"):
            if getattr(arguments, option, None):
                flag = "-o" if option == "output" else "--report"
                raise UsageError(f"{arguments.command}: {flag} takes one document")
        if any(value != "*" for value in getattr(arguments, "force", None) or ()):
            raise UsageError(f"{arguments.command}: --force ID takes one document")
    if _is_parallel(arguments):
        tally = run_in_parallel(arguments, documents)
    else:
        tally = Tally()
        command = _serial_command(arguments.command)
        for source in documents:
            arguments.document = source
            tally.add(source, _guarded(command, arguments, several))
    if several:
        print(tally.summary(time.monotonic() - started), file=sys.stderr)
    return tally.worst


def _is_parallel(arguments: argparse.Namespace) -> bool:
    if arguments.command not in ("run", "check"):
        return False
    jobs = getattr(arguments, "jobs", None)
    if getattr(arguments, "no_exec", False):
        return False  # nothing runs: nothing to share out
    return arguments.executor == "dask" or (jobs is not None and jobs != 1)


def _serial_command(name: str) -> Callable[[argparse.Namespace], int]:
    from mdrun import cli

    if name == "run":
        return lambda arguments: cli.command_run(arguments, check=False)
    if name == "check":
        return cli.command_check
    command: Callable[[argparse.Namespace], int] = getattr(cli, SERIAL_COMMANDS[name])
    return command


def _guarded(
    command: Callable[[argparse.Namespace], int], arguments: argparse.Namespace, several: bool
) -> int:
    """A document's exit code; with several documents, an error in one is reported and the
    others go on (with one, it reaches `main` as before)."""
    if not several:
        return command(arguments)
    try:
        return command(arguments)
    except MdrunError as err:
        print(f"mdrun: error: {err}", file=sys.stderr)
        return err.exit_code


# -- in parallel ----------------------------------------------------------------------------------


def run_in_parallel(arguments: argparse.Namespace, documents: list[str]) -> Tally:
    """Plan every document here, evaluate the stale sessions in workers, report each document."""
    from mdrun import cli
    from mdrun.cli.batch_progress import BatchProgress
    from mdrun.document.parallel import Progress, SessionDispatch
    from mdrun.document.pools import default_jobs, threads_per_kernel
    from mdrun.document.units import Forcing, thread_environment

    check = arguments.command == "check"
    tally = Tally()
    store = cli.open_store(arguments)
    planned = _plan_all(arguments, documents, store, tally)
    if not planned:
        return tally
    forced: list[str] = arguments.force or []
    forcing = Forcing("*" in forced, frozenset(value for value in forced if value != "*"))
    jobs = arguments.jobs or default_jobs()
    local = arguments.executor != "dask"
    threads = thread_environment(threads_per_kernel(jobs), os.environ) if local else None
    progress = BatchProgress(sys.stderr) if sys.stderr.isatty() else Progress()
    with contextlib.ExitStack() as stack:
        events = stack.enter_context(_listening(progress)) if local else None
        executor = stack.enter_context(_executor(arguments, jobs, events))
        dispatch = SessionDispatch(store, executor, forcing, arguments.keep_going, threads,
                                   progress, inline_single=local)  # fmt: skip
        for done in dispatch.evaluate(planned):
            tally.add(done.document.source, _report(arguments, done, store, check))
    return tally


def _plan_all(
    arguments: argparse.Namespace, documents: list[str], store: object, tally: Tally
) -> list[PlannedDocument]:
    """Each document planned; those the fast path answered, or that are bad, are tallied."""
    from mdrun import cli

    settings = cli.reading_settings(arguments)
    planned: list[PlannedDocument] = []
    for source in documents:
        arguments.document = source
        try:
            document = _prepare(arguments, source, store, settings, arguments.command == "check")
        except MdrunError as err:
            print(f"mdrun: error: {err}", file=sys.stderr)
            tally.add(source, err.exit_code)
            continue
        if isinstance(document, int):
            tally.add(source, document)
        else:
            planned.append(document)
    return planned


@contextlib.contextmanager
def _listening(progress: Progress) -> Iterator[Any]:
    """A queue the pool's workers put block events on, read by a thread for `progress` (for
    a progress that draws nothing: no queue); the progress display is removed at the end."""
    from mdrun.cli.batch_progress import BatchProgress
    from mdrun.document.pools import event_queue

    if not isinstance(progress, BatchProgress):
        yield None
        return

    events = event_queue()
    reader = threading.Thread(target=_read_events, args=(events, progress), daemon=True)
    reader.start()
    try:
        yield events
    finally:
        events.put(None)
        reader.join(timeout=5)
        progress.close()


def _read_events(events: Any, progress: BatchProgress) -> None:
    while (event := events.get()) is not None:
        progress.block_event(*event)


def _prepare(
    arguments: argparse.Namespace, source: str, store: object, settings: object, check: bool
) -> PlannedDocument | int:
    """The document planned, or its exit code when the fast path already answered."""
    from mdrun import cli
    from mdrun.cli.commands_run import report_if_up_to_date
    from mdrun.core.store import Store
    from mdrun.document.formats.settings import Settings
    from mdrun.document.parallel import PlannedDocument
    from mdrun.document.pipeline import make_plan
    from mdrun.document.uptodate import STDIO

    assert isinstance(store, Store) and isinstance(settings, Settings)
    if source != STDIO:
        cli.require_document(source)
    if not check:
        cli.check_writable_file(arguments.output, "-o")
    cli.check_writable_file(arguments.report, "--report")
    if not cli.is_writable(store):
        cli.refuse_stale_blocks(source, store, settings)
    if not arguments.force and report_if_up_to_date(arguments, store, settings, check, source):
        return 0
    plan = make_plan(source, settings)
    if arguments.force:
        cli._forced(arguments.force, source, settings)  # refuses an unknown id
    return PlannedDocument(source, plan)


def _report(arguments: argparse.Namespace, done: DocumentDone, store: object, check: bool) -> int:
    """Render, write (for `run`) and report one document whose sessions are done."""
    from mdrun import cli
    from mdrun.core.store import Store
    from mdrun.document.parallel import finish_document

    assert isinstance(store, Store)
    source = done.document.source
    arguments.document = source
    for message in done.damage:
        print(f"mdrun: warning: {message}", file=sys.stderr)
    if done.evaluation is None:
        print(f"mdrun: error: {done.error}", file=sys.stderr)
        return done.exit_code
    try:
        result = finish_document(
            done.evaluation, store, source, output=None if check else arguments.output,
            write=not check,
        )  # fmt: skip
    except MdrunError as err:
        print(f"mdrun: error: {err}", file=sys.stderr)
        return err.exit_code
    return cli.report_run(arguments, source, result, check)


def _executor(
    arguments: argparse.Namespace, jobs: int, events: Any
) -> contextlib.AbstractContextManager[Executor]:
    from mdrun.document.pools import dask_executor, process_pool

    if arguments.executor == "dask":
        return dask_executor(arguments.scheduler)
    return process_pool(jobs, events)
