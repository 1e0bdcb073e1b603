"""The `mdrun` command: a thin layer that parses arguments, calls the pipeline, and reports.

This is the only place that prints to the terminal and the only place that turns errors into
exit codes: 0 all good, 1 a block failed (or `check` found the document out of date), 2 bad usage
or input, 3 a bug. Each group of commands is a module (`commands_run`: run, check;
`commands_store`: status, gc, store; `commands_export`: export, watch; `commands_server`: server)
that adds its commands to the parser, each with the function that carries it out; `COMMANDS`
lists them in help order. The `mdrun` console script is `mdrun.server.client`, which sends `run`
and `check` to the user's mdrun server, where `main` runs them, or calls `main` here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun import __version__
from mdrun.cli.commands_cache import add_cache_parser, after_command
from mdrun.cli.commands_export import add_export_command, add_watch_command, command_export
from mdrun.cli.commands_run import (
    _forced,
    add_check_command,
    add_run_command,
    command_check,
    command_run,
    report_run,
    write_report,
)
from mdrun.cli.commands_server import add_server_command
from mdrun.cli.commands_store import (
    add_gc_command,
    add_status_command,
    add_store_command,
    command_status,
)
from mdrun.cli.common import (
    CommandParser,
    add_global_options,
    check_writable_file,
    is_writable,
    named,
    open_store,
    reading_settings,
    refuse_stale_blocks,
    require_document,
)
from mdrun.errors import NO_SPACE_ERRNOS, MdrunError, NoSpaceError, UsageError, os_error

if TYPE_CHECKING:
    from mdrun.cli.common import Commands
    from mdrun.document.executor import ExecutorFactory

__all__ = [
    "COMMANDS",
    "_forced",
    "build_parser",
    "check_writable_file",
    "command_check",
    "command_export",
    "command_run",
    "command_status",
    "console_main",
    "is_writable",
    "main",
    "named",
    "open_store",
    "reading_settings",
    "refuse_stale_blocks",
    "report_run",
    "require_document",
    "write_report",
]
"""The parser and entry points, and what `many_documents` calls for each document."""

COMMANDS: tuple[Callable[[Commands], None], ...] = (
    add_run_command,
    add_check_command,
    add_status_command,
    add_gc_command,
    add_export_command,
    add_store_command,
    add_watch_command,
    add_cache_parser,
    add_server_command,
)
"""Each adds one command (with its `handler`) to the parser, in the order `--help` lists them."""

EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The command line's grammar."""
    parser = CommandParser(
        prog="mdrun",
        description="Run the code blocks of a Markdown document and write their outputs into it.",
    )
    parser.add_argument("--version", action="version", version=f"mdrun {__version__}")
    add_global_options(parser, default=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for add_command in COMMANDS:
        add_command(commands)
    _accept_global_options_after_commands(parser)
    return parser


def _accept_global_options_after_commands(parser: argparse.ArgumentParser) -> None:
    """Let every command, and command of a command, take the global options after its name
    (`mdrun run doc.md --store DIR`). There they default to "not given", so that they never
    undo one given before the command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                add_global_options(command, default=argparse.SUPPRESS)
                _accept_global_options_after_commands(command)


def _command_names(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


def main(
    argv: Sequence[str] | None = None, *, executor_factory: ExecutorFactory | None = None
) -> int:
    """Entry point; returns the exit code (the console script passes it to sys.exit).
    `executor_factory` gives the sessions' executors of `run` and `check` (the server passes
    its warm ones; by default each session starts a kernel)."""
    started = time.monotonic()
    try:
        parser = build_parser()
        arguments = parser.parse_args(argv)
        arguments.executor_factory = executor_factory
        handler: Callable[[argparse.Namespace], int] | None = getattr(arguments, "handler", None)
        if handler is None:
            names = _command_names(parser)
            raise UsageError(
                f"a command is needed: {', '.join(names[:-1])} or {names[-1]} (see mdrun --help)"
            )
        return after_command(arguments, handler(arguments))
    except MdrunError as err:
        print(f"mdrun: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("mdrun: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        return _unexpected(err, started)


def _unexpected(err: Exception, started: float) -> int:
    """A full disk is said as such; anything else is a bug: its traceback goes to a log."""
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
    return EXIT_INTERNAL_ERROR


def console_main() -> None:
    """`mdrun` without its server (the console script is `mdrun.server.client.console_main`,
    which calls `main` when the command runs in process)."""
    sys.exit(main())
