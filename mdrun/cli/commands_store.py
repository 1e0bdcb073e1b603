"""`mdrun status`, `mdrun gc` and `mdrun store verify`: what the store holds for documents,
looked up without running anything."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from mdrun.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CommandParser,
    add_reading_options,
    command_for_documents,
    open_store,
    reading_settings,
    require_document,
    require_writable,
)
from mdrun.core.refs import RRef
from mdrun.document.uptodate import STDIO
from mdrun.errors import DamagedRealization, UsageError

if TYPE_CHECKING:
    from mdrun.cli.common import Commands
    from mdrun.core.store import Store


def add_status_command(commands: Commands) -> None:
    """`mdrun status DOCUMENT`."""
    parser = commands.add_parser("status", help="say which blocks are cached or stale")
    parser.add_argument("documents", nargs="+", metavar="document")
    add_reading_options(parser)
    parser.set_defaults(handler=command_for_documents)


def add_gc_command(commands: Commands) -> None:
    """`mdrun gc [DOCUMENT...]`."""
    parser = commands.add_parser(
        "gc", help="remove from the store what no document uses (see the store's roots/)"
    )
    parser.add_argument("documents", nargs="*", help="documents whose results to keep")
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would be removed, remove nothing"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="keep no recorded roots: with no document, empty the store",
    )
    add_reading_options(parser)
    parser.set_defaults(handler=command_gc)


def add_store_command(commands: Commands) -> None:
    """`mdrun store verify [DOCUMENT...]`."""
    parser = commands.add_parser("store", help="look after the store: verify")
    parser.set_defaults(handler=command_store)
    store_commands = parser.add_subparsers(
        dest="store_command", metavar="STORE_COMMAND", parser_class=CommandParser
    )
    verify = store_commands.add_parser(
        "verify",
        help="check every file of the store against its reference (exit 1 if any is damaged)",
    )
    verify.add_argument(
        "documents", nargs="*", help="check only what these documents use (default: everything)"
    )
    verify.add_argument(
        "--repair",
        action="store_true",
        help="remove what is damaged, so that the next run builds it again",
    )
    add_reading_options(verify)


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
    if not arguments.dry_run:
        require_writable(store, ": gc cannot remove anything from it")
    keep = set(realizations_in_use(arguments.documents, store, reading_settings(arguments)))
    keep.update(gc_roots(store, keep_recorded=not arguments.all, release=not arguments.dry_run))
    plan = gc(store, keep_rrefs=keep, delete=not arguments.dry_run)
    verb = "would free" if arguments.dry_run else "freed"
    print(
        f"mdrun: gc {verb} {human_size(plan.size_bytes)}: {len(plan.rrefs)} realizations, "
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
    if arguments.repair:
        require_writable(store, ": --repair cannot remove anything from it")
    rrefs = _documents_realizations(arguments, store) if arguments.documents else None
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


def _documents_realizations(arguments: argparse.Namespace, store: Store) -> list[RRef]:
    """What `store verify DOCUMENT...` checks: the realizations the documents use, and those
    found damaged while looking them up (each is reported with the others, not as a warning)."""
    from mdrun.document.pipeline import load_document, realizations_in_use

    for document in arguments.documents:
        load_document(document)
    seen: list[DamagedRealization] = []
    store.on_damage = seen.append
    rrefs = realizations_in_use(arguments.documents, store, reading_settings(arguments))
    return rrefs + [RRef(damage.rref) for damage in seen if damage.rref]


def human_size(size: int) -> str:
    """`1.5 MiB`, for messages."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
