"""`mdrun export` and `mdrun watch`: the document's outputs elsewhere than in the document (a
file of another format, a live preview); the source document is left as it is."""

from __future__ import annotations

import argparse
import sys
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
    open_store,
    print_run_summary,
    reading_settings,
    refuse_stale_blocks,
    require_document,
    require_writable,
    terminal_reporter,
)
from mdrun.document.export_formats import EXPORT_FORMATS, formats_in_words
from mdrun.document.uptodate import STDIO
from mdrun.errors import UsageError

if TYPE_CHECKING:
    from mdrun.cli.common import Commands
    from mdrun.core.store import Store
    from mdrun.document.formats.settings import Settings


def add_export_command(commands: Commands) -> None:
    """`mdrun export DOCUMENT --to FORMAT [-o OUT]`."""
    parser = commands.add_parser(
        "export", help=f"run what is stale, then write the document as {formats_in_words()}"
    )
    parser.add_argument("documents", nargs="+", metavar="document")
    parser.add_argument("--to", required=True, choices=list(EXPORT_FORMATS), help="the format")
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="where to write (- for stdout; default: the document's name with the format's "
        "extension, NAME.rendered.md for md)",
    )
    parser.add_argument(
        "--no-exec",
        action="store_true",
        help="run nothing: export what the store holds (failures included); exit 1, naming "
        "the stale blocks, if a block's result is not in the store",
    )
    add_keep_going_option(parser)
    add_push_options(parser)
    add_reading_options(parser)
    parser.set_defaults(handler=command_for_documents)


def add_watch_command(commands: Commands) -> None:
    """`mdrun watch DOCUMENT [--serve]`."""
    parser = commands.add_parser(
        "watch", help="run the document now and again after every save (Ctrl-C to stop)"
    )
    parser.add_argument("document")
    parser.add_argument(
        "--serve", action="store_true", help="preview the HTML export on 127.0.0.1, live"
    )
    parser.add_argument(
        "--port", type=int, default=0, metavar="N", help="the preview's port (default: any free)"
    )
    add_keep_going_option(parser)
    add_reading_options(parser)
    parser.set_defaults(handler=command_watch)


def command_export(arguments: argparse.Namespace) -> int:
    """`mdrun export`: the source document is left as it is."""
    from mdrun.document.export import default_output, export_document

    source: str = arguments.document
    require_document(source)
    output = arguments.output or default_output(source, arguments.to)
    check_writable_file(output, "-o")
    store = open_store(arguments)
    settings = reading_settings(arguments)
    if not is_writable(store):
        refuse_stale_blocks(source, store, settings)
    if arguments.no_exec and _refuse_stale(source, store, settings):
        return EXIT_FAILED
    with terminal_reporter() as reporter:
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
    print_run_summary(arguments, source, result.evaluation)
    if output != STDIO:
        print(f"mdrun: wrote {output}", file=sys.stderr)
    return EXIT_FAILED if result.evaluation.failed else EXIT_OK


def _refuse_stale(source: str, store: Store, settings: Settings) -> bool:
    """`--no-exec`: name the blocks the store holds no result for (True if there are any)."""
    from mdrun.document.export import stale_blocks

    stale = stale_blocks(source, store, settings)
    for line in stale:
        planned = line.planned
        print(f"{source}:{planned.line}: {planned.block_id}: stale ({line.reason})")
    if stale:
        names = ", ".join(line.planned.block_id for line in stale)
        print(f"mdrun: {source} is not up to date (stale: {names}); --no-exec runs nothing",
              file=sys.stderr)  # fmt: skip
    return bool(stale)


def command_watch(arguments: argparse.Namespace) -> int:
    """`mdrun watch`: the loop is `watch_document`'s; Ctrl-C is the normal way out."""
    from mdrun.document.watch import watch_document
    from mdrun.terminal import WatchPrinter

    source: str = arguments.document
    require_document(source)
    if not 0 <= arguments.port <= 65535:
        raise UsageError(f"--port {arguments.port}: a port is between 0 and 65535")
    store = open_store(arguments)
    require_writable(
        store, "; watch runs blocks as the document changes, and needs a store it can write"
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
