"""The document pipeline, step by step: read → plan → evaluate → render → write.

Each command of the CLI is a short composition of these steps: `run` writes, `check` renders
without writing, `status` plans and looks up without running, `gc` plans to find what to keep.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mdrun.core.files import replaced_atomically, write_atomically
from mdrun.core.jsonvalue import JSONObject
from mdrun.core.refs import RRef
from mdrun.core.roots import record_roots
from mdrun.core.store import Store
from mdrun.document.evaluate import BlockOutcome, Evaluation, Evaluator, Reporter
from mdrun.document.formats.doctest import rewritten_lines
from mdrun.document.formats.settings import Settings
from mdrun.document.kernels import DEFAULT_PYTHON_KERNEL
from mdrun.document.parse import Document, parse_document, read_document
from mdrun.document.plan import Plan, PlannedBlock, plan_document
from mdrun.document.render import RegionBody, render_region, splice
from mdrun.document.results import StoredResult, cached_results
from mdrun.document.uptodate import (
    CleanRun,
    forget_clean_run,
    record_path,
    remember_clean_run,
    write_record,
)
from mdrun.errors import FileAccessError, Location, ParseError

STDIO = "-"
IMAGE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}
_IMAGE_NAME = re.compile(r"[0-9a-f]{16}\.(png|jpg|svg)")


def load_document(source: str) -> Document:
    """Read a document from a path, or standard input for `-`."""
    if source == STDIO:
        data = sys.stdin.buffer.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data[: err.start].count(b"\n") + 1
            raise ParseError("not UTF-8 text", Location("<stdin>", line)) from None
        return parse_document(text, "<stdin>")
    return read_document(Path(source))


def base_dir_of(source: str) -> Path:
    """Where relative inputs are read and kernels run: the document's folder (or cwd)."""
    return Path.cwd() if source == STDIO else Path(source).absolute().parent


def make_plan(source: str, settings: Settings | None = None) -> Plan:
    """Read and plan a document (validates every option; starts nothing)."""
    return plan_document(load_document(source), base_dir_of(source), settings)


class ImageFiles:
    """The images a rendered document links, named by content, kept until `save` writes them
    beside the output document (and removes the ones it no longer links)."""

    def __init__(self, output: str) -> None:
        target = Path.cwd() / "stdout.md" if output == STDIO else Path(output).absolute()
        self.folder = target.parent / f"{target.stem}_files"
        self.link_base = target.parent
        self.images: dict[str, bytes] = {}

    def __call__(self, mime: str, data: bytes) -> str:
        name = f"{hashlib.sha256(data).hexdigest()[:16]}.{IMAGE_EXTENSIONS.get(mime, 'bin')}"
        self.images[name] = data
        return (self.folder / name).relative_to(self.link_base).as_posix()

    def paths(self) -> tuple[str, ...]:
        """The image files the rendered document links."""
        return tuple(str(self.folder / name) for name in sorted(self.images))

    def save(self) -> None:
        """Write the linked images that are missing (before the document that links them)."""
        for name, data in self.images.items():
            path = self.folder / name
            if not path.exists():
                try:
                    self.folder.mkdir(exist_ok=True)
                    with replaced_atomically(path) as temporary:
                        temporary.write_bytes(data)
                except OSError as err:
                    message = f"cannot write an image: {err.strerror}"
                    raise FileAccessError(message, Location(str(self.folder))) from err

    def remove_unlinked(self) -> None:
        """Delete the images of earlier runs that the document no longer links: only once the
        new document is in place, so that a failed write leaves the old one with its images."""
        if not self.folder.is_dir():
            return
        with contextlib.suppress(OSError):  # one left behind is harmless: nothing links it
            for entry in self.folder.iterdir():
                if _IMAGE_NAME.fullmatch(entry.name) and entry.name not in self.images:
                    entry.unlink()
            if not any(self.folder.iterdir()):
                self.folder.rmdir()


def region_body(outcome: BlockOutcome) -> RegionBody | None:
    """What a block's region shows; None for no region."""
    planned = outcome.planned
    if outcome.status == "skipped" or not planned.options.output:
        return None
    if outcome.status == "not-run":
        return RegionBody((), "not-run", f"{outcome.note}; this block did not run")
    outputs = outcome.outputs
    if not planned.options.warning:
        outputs = tuple(
            output
            for output in outputs
            if not (output["output_type"] == "stream" and output["name"] == "stderr")
        )
    if outcome.status == "failed":
        return RegionBody(outputs, "failed", outcome.note)
    if planned.cell is not None and planned.cell.is_doctest:
        return None  # its outputs are written inside the block
    return RegionBody(outputs, outcome.status)


def doctest_rewrites(evaluation: Evaluation) -> dict[int, tuple[int, list[str]]]:
    """The new expected-output lines of the doctest sessions that ran."""
    rewrites: dict[int, tuple[int, list[str]]] = {}
    document = evaluation.plan.document
    for outcome in evaluation.outcomes:
        cell = outcome.planned.cell
        if cell is None or not cell.is_doctest or outcome.status not in ("executed", "cached"):
            continue
        block = outcome.planned.block
        if block.closed and outcome.planned.options.output:
            rewrites.update(rewritten_lines(cell, block, document.newline, outcome.outputs))
    return rewrites


def render(evaluation: Evaluation, images: ImageFiles, *, scripts: bool = False) -> str:
    """The document with every block's region replaced by its current outputs (`scripts`:
    for an HTML page, where outputs that need JavaScript can be shown)."""
    regions: dict[int, list[str] | None] = {}
    for outcome in evaluation.outcomes:
        block = outcome.planned.block
        if not block.closed or outcome.planned.cell is None:
            # A block that is text keeps what follows it, even a region from a run in which
            # it ran (`--languages bash` once, then without): no run throws outputs away.
            continue
        body = region_body(outcome)
        lines = (
            None
            if body is None
            else render_region(outcome.planned.block_id, body, write_image=images, scripts=scripts)
        )
        regions[block.index] = lines or None
    return splice(evaluation.plan.document, regions, doctest_rewrites(evaluation))


@dataclass(slots=True)
class RunResult:
    """A finished run: what happened, and the document it produced."""

    evaluation: Evaluation
    """Every block's outcome."""
    text: str
    """The rendered document."""
    changed: bool
    """Whether the rendered document differs from its source."""
    images: ImageFiles
    """The images the rendered document links, not yet written."""
    written: bool = False
    """Whether the result was written (not when the source was edited during the run)."""


def run(
    source: str,
    store: Store,
    *,
    output: str | None = None,
    write: bool = True,
    force: Callable[[PlannedBlock], bool] = lambda _planned: False,
    keep_going: bool = False,
    reporter: Reporter | None = None,
    settings: Settings | None = None,
) -> RunResult:
    """Run a document; with `write`, write the result as `write_result` does."""
    plan = make_plan(source, settings)
    evaluation = Evaluator(
        plan, store, force=force, keep_going=keep_going, reporter=reporter
    ).evaluate()
    images = ImageFiles(output or source)
    text = render(evaluation, images)
    result = RunResult(evaluation, text, text != plan.document.source, images)
    if write:
        result.written = write_result(result, store, source, output)
    return result


def write_result(result: RunResult, store: Store, source: str, output: str | None = None) -> bool:
    """Write a run's document (atomically, only if its bytes change) and its images.

    In place, only if the file is still what the run read: a save made while blocks ran is
    never overwritten with the outputs of the text before it (returns False then).
    """
    target = output or source
    if target == source and source != STDIO:
        try:
            on_disk = Path(source).read_bytes()
        except FileNotFoundError:
            return False
        if on_disk != result.evaluation.plan.document.source.encode("utf-8"):
            return False
    result.images.save()
    if target == STDIO:
        sys.stdout.write(result.text)
        sys.stdout.flush()
    elif result.changed or output is not None:
        write_if_changed(Path(target), result.text)
    result.images.remove_unlinked()
    try:
        remember_run(store, source, result.evaluation)
        if source != STDIO:
            record_roots(store, source, [o.rref for o in result.evaluation.outcomes if o.rref])
        clean = clean_run(result.evaluation, source, output, result.images)
        if clean is None:
            forget_clean_run(store, source)
        else:
            remember_clean_run(store, clean)
    except OSError as err:
        # A read-only store (a shared cache) is read, not written: these records only make the
        # next run faster and `status` more precise, so a run that needed no build still succeeds.
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
    return True


def clean_run(
    evaluation: Evaluation, source: str, output: str | None, images: ImageFiles
) -> CleanRun | None:
    """What the next run may compare against, if this one leaves nothing to redo."""
    if STDIO in (source, output):
        return None
    inputs: list[str] = list(evaluation.plan.sources)
    for outcome in evaluation.outcomes:
        planned = outcome.planned
        if outcome.status not in ("executed", "cached", "skipped") or not planned.options.cache:
            return None
        if planned.kernel is not None and planned.kernel.name != DEFAULT_PYTHON_KERNEL:
            return None  # another kernel may be reinstalled without mdrun noticing
        inputs.extend(str(evaluation.plan.base_dir / name) for name in planned.options.inputs)
    report = tuple(
        {**outcome.record(), "status": "cached", "seconds": 0.0, "cutoff": False}
        for outcome in evaluation.outcomes
        if outcome.status != "skipped"
    )
    rrefs = tuple(str(outcome.rref) for outcome in evaluation.outcomes if outcome.rref)
    settings = evaluation.plan.settings.key()
    return CleanRun(source, output, tuple(inputs), images.paths(), rrefs, report, settings)


def write_if_changed(path: Path, text: str) -> None:
    """Write atomically, and only when the bytes differ (keeps mtimes and watchers quiet)."""
    try:
        if path.read_bytes() == text.encode("utf-8"):
            return
    except FileNotFoundError:
        pass
    write_atomically(path, text)


# -- the record of the last run, for `status` ---------------------------------------------------


def remember_run(store: Store, source: str, evaluation: Evaluation) -> None:
    """Record each block's base config, upstream key and outcome, so `status` can say why."""
    keys = {id(outcome.planned): outcome.key for outcome in evaluation.outcomes}
    blocks: JSONObject = {}
    for outcome in evaluation.outcomes:
        planned = outcome.planned
        if planned.base_config is None:
            continue
        upstream = None
        if planned.upstream is not None:
            upstream = keys.get(id(evaluation.plan.blocks[planned.upstream]))
        blocks[planned.block_id] = {
            "base": planned.base_config,
            "upstream": upstream,
            "status": outcome.status,
            "cutoff": outcome.cutoff,
        }
    write_record(record_path(store, source), {"source": source, "blocks": blocks})


def last_run(store: Store, source: str) -> dict[str, JSONObject]:
    """What each block was at the last run ({} when there was none)."""
    try:
        data = json.loads(record_path(store, source).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    blocks = data.get("blocks", {})
    return blocks if isinstance(blocks, dict) else {}


# -- status -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockStatusLine:
    """One line of `mdrun status`."""

    planned: PlannedBlock
    """The block."""
    state: str
    """cached, stale, failed (it runs again: the store holds what its last run produced) or
    skipped."""
    reason: str
    """Why it is stale (or why it is skipped)."""


def _why_stale(
    old: JSONObject | None, new: JSONObject, stale_upstream: str | None, upstream_key: str | None
) -> str:
    """Why a block is stale, from what the last run recorded about it."""
    if old is None:
        return "never run"
    base = old.get("base")
    base = base if isinstance(base, dict) else {}
    reasons = []
    if base.get("code") != new.get("code"):
        reasons.append("its code changed")
    if base.get("allow_error") != new.get("allow_error") or base.get("id") != new.get("id"):
        reasons.append("its options changed")
    if base.get("inputs") != new.get("inputs"):
        reasons.append("an input file changed")
    if base.get("kernel") != new.get("kernel") or base.get("language") != new.get("language"):
        reasons.append("the kernel changed")
    if reasons:
        return ", ".join(reasons)
    if old.get("status") == "failed":
        return "it failed in the last run"
    if old.get("status") == "not-run":
        return "it did not run in the last run (a block before it failed)"
    if stale_upstream is not None:
        return f"an upstream block changed: {stale_upstream}"
    if old.get("upstream") != upstream_key:
        return "an upstream block's result changed"
    return "not in the store (it was collected)"


def _cached_note(result: StoredResult, previous: JSONObject | None) -> str:
    notes = []
    if previous is not None and previous.get("cutoff"):
        notes.append("kept by early cutoff in the last run")
    snapshot = result.snapshot
    if snapshot is not None:
        notes.append(f"snapshot {snapshot.stat().st_size / 1e6:.1f} MB")
    opaque = result.state().get("opaque")
    if isinstance(opaque, dict) and opaque:
        names = ", ".join(f"{name} ({kind})" for name, kind in sorted(opaque.items()))
        notes.append(f"no snapshot: cannot save {names}; later blocks replay from earlier")
    return "; ".join(notes)


def _failed_note(plan: Plan, found: dict[int, StoredResult], index: int) -> str:
    """Why a failed block shows as failed, and, when the state it runs in holds values mdrun
    cannot digest, why the blocks after it will run again: its failure's state has no stable
    key, so an identical failure cannot keep them cached."""
    note = "it failed in the last run"
    if not any(block.upstream == index for block in plan.blocks):
        return note
    cursor = plan.blocks[index].upstream
    while cursor is not None and (found.get(cursor) is None or found[cursor].failed):
        cursor = plan.blocks[cursor].upstream  # no state recorded here: look further up
    opaque = found[cursor].state().get("opaque") if cursor is not None else None
    if isinstance(opaque, dict) and opaque:
        names = ", ".join(
            f"{name} ({kind.split(' (')[0]})" for name, kind in sorted(opaque.items())
        )
        note += (
            f"; the blocks after it run again: its state holds values mdrun cannot digest: {names}"
        )
    return note


def status(source: str, store: Store, settings: Settings | None = None) -> list[BlockStatusLine]:
    """For each block: cached or stale and why, computed without running anything."""
    plan = make_plan(source, settings)
    previous = last_run(store, source)
    found = cached_results(plan, store)
    stale: set[int] = set()
    lines: list[BlockStatusLine] = []
    for index, planned in enumerate(plan.blocks):
        if planned.base_config is None:
            reason = "eval=false" if planned.block_id else "text: not a block that runs"
            lines.append(BlockStatusLine(planned, "skipped", reason))
            continue
        old = previous.get(planned.block_id)
        result = found.get(index)
        if result is not None and result.failed:
            stale.add(index)
            lines.append(BlockStatusLine(planned, "failed", _failed_note(plan, found, index)))
            continue
        if result is not None and planned.options.cache:
            lines.append(BlockStatusLine(planned, "cached", _cached_note(result, old)))
            continue
        stale.add(index)
        if result is not None:
            reason = "cache=false: it runs every time"
        else:
            upstream = planned.upstream if planned.upstream is not None else -1
            upstream_result = found.get(upstream)
            reason = _why_stale(
                old,
                planned.base_config,
                plan.blocks[upstream].block_id if upstream in stale else None,
                None if upstream_result is None else upstream_result.key,
            )
        lines.append(BlockStatusLine(planned, "stale", reason))
    return lines


def realizations_in_use(
    sources: Iterable[str], store: Store, settings: Settings | None = None
) -> list[RRef]:
    """The realizations the given documents use now (the roots `gc` keeps)."""
    return [
        result.rref
        for source in sources
        for result in cached_results(make_plan(source, settings), store).values()
    ]
