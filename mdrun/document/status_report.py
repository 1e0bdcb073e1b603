"""What `mdrun status` reports: for each block, cached or stale and why, computed without
running anything (the statuses themselves are named in `status`).

The answer comes from the plan, the store's lookups and the record of the last run
(`run_record`); what a change of each key field means is `plan.KEY_FIELDS`'s to say.
"""

from __future__ import annotations

from dataclasses import dataclass

from mdrun.core.jsonvalue import JSONObject
from mdrun.core.store import Store
from mdrun.document.block_keys import pure_part
from mdrun.document.formats.settings import Settings
from mdrun.document.pipeline import make_plan
from mdrun.document.plan import Plan, PlannedBlock, key_changes
from mdrun.document.record_files import SNAPSHOT_FILES
from mdrun.document.results import StoredResult, cached_results
from mdrun.document.run_record import last_run


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
            reason = why_stale(
                old,
                planned.base_config,
                plan.blocks[upstream].block_id if upstream in stale else None,
                None if upstream_result is None else upstream_result.key,
                pure=pure_part(planned) is not None,
            )
        lines.append(BlockStatusLine(planned, "stale", reason))
    return lines


def why_stale(
    old: JSONObject | None,
    new: JSONObject,
    stale_upstream: str | None,
    upstream_key: str | None,
    *,
    pure: bool = False,
) -> str:
    """Why a block is stale, from what the last run recorded about it (`old`) and its base
    config now (`new`): the key fields that changed first, then what happened upstream
    (`pure`: the block is keyed by the variables it reads, see `block_keys`)."""
    if old is None:
        return "never run"
    base = old.get("base")
    reasons = key_changes(base if isinstance(base, dict) else {}, new)
    if reasons:
        return ", ".join(reasons)
    if old.get("status") == "failed":
        return "it failed in the last run"
    if old.get("status") == "not-run":
        return "it did not run in the last run (a block before it failed)"
    if stale_upstream is not None:
        return f"an upstream block changed: {stale_upstream}"
    if pure:
        return "a variable it reads changed"
    if old.get("upstream") != upstream_key:
        return "an upstream block's result changed"
    return "not in the store (it was collected)"


def _cached_note(result: StoredResult, previous: JSONObject | None) -> str:
    notes = []
    if previous is not None and previous.get("cutoff"):
        notes.append("kept by early cutoff in the last run")
    snapshot = result.snapshot
    if snapshot is not None:
        # Its index and files of variables (those left on a remote cache count nothing).
        size = sum(path.stat().st_size for path in snapshot.parent.glob(SNAPSHOT_FILES))
        notes.append(f"snapshot {size / 1e6:.1f} MB")
    opaque = result.state().get("opaque")
    if isinstance(opaque, dict) and opaque:
        names = ", ".join(f"{name} ({kind})" for name, kind in sorted(opaque.items()))
        notes.append(f"no snapshot: cannot save {names}; later blocks replay from earlier")
    skipped = result.state().get("snapshot_skipped")
    if isinstance(skipped, str):
        notes.append(f"no snapshot: {skipped}; later blocks replay from earlier")
    error = result.state().get("snapshot_error")
    if isinstance(error, str):
        # (`folder: why`: the folder was a temporary one)
        notes.append(f"no snapshot: {error.partition(': ')[2] or error}")
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
