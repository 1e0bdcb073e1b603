"""What every `mdrun` command shares: the options, opening the store, the checks made before
anything runs, and the lines printed after a run.

The command modules (`commands_*`) each hold one group of commands; `mdrun.cli` assembles them.
Heavy modules (the evaluator, kernels, pandoc) are imported inside the functions that need them,
so that a run with nothing to do costs little more than starting Python.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from mdrun.cli.commands_cache import add_cache_option, attach_cache
from mdrun.core.store import STORE_ENVIRONMENT_VARIABLE, Store, default_store_root
from mdrun.document.uptodate import STDIO
from mdrun.errors import DamagedRealization, FileAccessError, Location, UsageError

if TYPE_CHECKING:
    from mdrun.document.evaluate import Evaluation, Reporter
    from mdrun.document.formats.settings import Settings

EXIT_OK = 0
EXIT_FAILED = 1


class CommandParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so one place reports errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


if TYPE_CHECKING:
    Commands: TypeAlias = argparse._SubParsersAction[CommandParser]
    """What `add_subparsers` gives: each command module adds its commands to it."""


def add_global_options(parser: argparse.ArgumentParser, default: object) -> None:
    """Options every command takes, before or after the command's name."""
    parser.add_argument(
        "--store",
        metavar="DIR",
        default=default,
        help=f"the store to use (default: ${STORE_ENVIRONMENT_VARIABLE}, else "
        "$XDG_CACHE_HOME/mdrun/store, i.e. ~/.cache/mdrun/store)",
    )
    add_cache_option(parser, default)


def add_reading_options(parser: argparse.ArgumentParser) -> None:
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


def add_keep_going_option(parser: argparse.ArgumentParser) -> None:
    """`--keep-going`, for the commands that run blocks."""
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="after a block fails, run the rest of its session anyway",
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
    attach_cache(store, arguments)
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


def require_writable(store: Store, why: str) -> None:
    """Refuse a read-only store to a command that must write it (`why` ends the message)."""
    if not is_writable(store):
        raise FileAccessError(f"the store is read-only{why}", Location(str(store.root)))


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


@contextmanager
def terminal_reporter() -> Iterator[Reporter | None]:
    """The live progress display when stderr is a terminal (closed however the run ends)."""
    if not sys.stderr.isatty():
        yield None
        return
    from mdrun.terminal import TerminalReporter

    reporter = TerminalReporter(sys.stderr)
    try:
        yield reporter
    finally:
        reporter.close()


def named(arguments: argparse.Namespace, source: str) -> str:
    """`SOURCE: ` before a summary when the command has several documents, else nothing."""
    return f"{source}: " if getattr(arguments, "several", False) else ""


def print_run_summary(arguments: argparse.Namespace, source: str, evaluation: Evaluation) -> None:
    """After a run: the document's warnings, the summary line, one line per failed block."""
    from mdrun.terminal import summary_line

    for warning in evaluation.plan.warnings:
        print(f"mdrun: warning: {warning}", file=sys.stderr)
    print(summary_line(evaluation, named(arguments, source)), file=sys.stderr)
    print_failures(source, evaluation)


def command_for_documents(arguments: argparse.Namespace) -> int:
    """`run`, `check`, `status` and `export` take several documents: `many_documents` runs
    them (in turn, or in parallel with `-j`), each through its command's function."""
    from mdrun.cli.many_documents import command_for_documents as for_documents

    return for_documents(arguments)


def print_failures(source: str, evaluation: Evaluation) -> None:
    """One line per failed block: where it is and how it failed."""
    for outcome in evaluation.outcomes:
        if outcome.status == "failed":
            planned = outcome.planned
            print(
                f"{source}:{planned.line}: block {planned.block_id} failed: {outcome.note}",
                file=sys.stderr,
            )
