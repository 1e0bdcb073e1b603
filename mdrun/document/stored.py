"""The document as the store holds it: nothing runs and no kernel starts.

`check --no-exec` compares a document with it and `export --no-exec` writes it. It shows what
`mdrun run` wrote: each stored result; a block whose last run failed, with its failure; after
that, in its session, what the store holds or a note that the block did not run. The blocks
whose results the store lacks are named, for the caller to refuse.
"""

from __future__ import annotations

from collections.abc import Collection

from mdrun.core.store import Store
from mdrun.document.block_result import execution_error
from mdrun.document.evaluate import BlockOutcome, Evaluation
from mdrun.document.formats.settings import Settings
from mdrun.document.images import ImageFiles
from mdrun.document.pipeline import RunResult, make_plan, render
from mdrun.document.plan import Plan, SessionKey
from mdrun.document.results import cached_results

NOT_IN_STORE = "not in the store"
"""Why a block cannot be shown without running it: the store holds no result for it."""


def stored_evaluation(plan: Plan, store: Store) -> tuple[Evaluation, list[int]]:
    """The evaluation the store holds for a plan, and the indexes of the blocks it lacks."""
    found = cached_results(plan, store)
    evaluation = Evaluation(plan)
    missing: list[int] = []
    broken: dict[SessionKey, str] = {}
    for index, planned in enumerate(plan.blocks):
        result = found.get(index)
        session = planned.session
        if not planned.executable or session is None:
            outcome = BlockOutcome(planned, "skipped")
        elif result is not None and result.failed:
            broken.setdefault(
                session,
                f"block {planned.block_id} (line {planned.line}) of session `{session}` failed",
            )
            note = execution_error("error", result.outputs).message
            outcome = BlockOutcome(
                planned, "failed", result.outputs, rref=result.rref, note=note, key=result.key
            )
        elif result is not None:
            # A `cache=false` block shows its latest result.
            outcome = BlockOutcome(
                planned, "cached", result.outputs, rref=result.rref, key=result.key
            )
        elif session in broken:
            outcome = BlockOutcome(planned, "not-run", note=broken[session])
        else:
            missing.append(index)
            outcome = BlockOutcome(planned, "not-run", note=_why_missing(plan, index, found))
        evaluation.outcomes.append(outcome)
    return evaluation, missing


def _why_missing(plan: Plan, index: int, found: Collection[int]) -> str:
    upstream = plan.blocks[index].upstream
    if upstream is not None and upstream not in found:
        name = plan.blocks[upstream].block_id
        return f"not looked up: its upstream block {name} is not in the store"
    return NOT_IN_STORE


def run_from_store(
    source: str, store: Store, settings: Settings | None = None, output: str | None = None
) -> tuple[RunResult, list[int]]:
    """The document rendered from the store (images linked as from `output`, else from the
    document), and the indexes of the blocks the store lacks."""
    plan = make_plan(source, settings)
    evaluation, missing = stored_evaluation(plan, store)
    images = ImageFiles(output or source)
    text = render(evaluation, images)
    return RunResult(evaluation, text, text != plan.document.source, images), missing
