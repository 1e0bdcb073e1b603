"""What a run leaves in the store about its document, for the next command to read.

Two records, both written after the document: each block's base config, upstream key and
outcome (`status` reads it to say why a block is stale), and, after a clean run, the record
that `uptodate` compares with the disk to skip a run that has nothing to do. The clean-run
record's format and its check stay in `uptodate`, which the fast path imports alone: this
module is what a full run writes, from its evaluation.
"""

from __future__ import annotations

import errno
import json
from typing import TYPE_CHECKING

from mdrun.core.jsonvalue import JSONObject
from mdrun.core.roots import record_roots
from mdrun.core.store import Store
from mdrun.document.kernels import DEFAULT_PYTHON_KERNEL
from mdrun.document.uptodate import (
    STDIO,
    CleanRun,
    forget_clean_run,
    record_path,
    remember_clean_run,
    write_record,
)

if TYPE_CHECKING:
    from mdrun.document.evaluate import Evaluation
    from mdrun.document.images import ImageFiles

_READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def record_run(
    store: Store, source: str, output: str | None, evaluation: Evaluation, images: ImageFiles
) -> None:
    """Record a run whose document was written: the blocks for `status`, the realizations it
    uses as the store's roots (`gc` keeps them), and the clean run (or forget the previous one)
    for the fast path."""
    try:
        remember_run(store, source, evaluation)
        if source != STDIO:
            record_roots(store, source, [o.rref for o in evaluation.outcomes if o.rref])
        clean = clean_run(evaluation, source, output, images)
        if clean is None:
            forget_clean_run(store, source)
        else:
            remember_clean_run(store, clean)
    except OSError as err:
        # A read-only store (a shared cache) is read, not written: these records only make the
        # next run faster and `status` more precise, so a run that needed no build still succeeds.
        if err.errno not in _READ_ONLY_ERRNOS:
            raise


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
