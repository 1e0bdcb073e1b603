"""What a correct run of a corpus document looks like, decided from its texts and mdrun's reports.

Pure functions of values (no files, no processes), so they are unit-tested in `make test`.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

from .manifest import Document

MDRUN_ERRORS = {2: "bad usage or input", 3: "internal error"}
CHECK_DIFF = "check printed a diff"


def inserts_only(original: str, rendered: str) -> bool:
    """Every line of `original` is still in `rendered`, in order, and nothing else changed."""
    matcher = difflib.SequenceMatcher(
        None, original.splitlines(keepends=True), rendered.splitlines(keepends=True),
        autojunk=False,
    )  # fmt: skip
    return all(operation in ("equal", "insert") for operation, *_ in matcher.get_opcodes())


def failed_ids(records: Sequence[dict[str, object]]) -> tuple[str, ...]:
    """The ids of the blocks a `--report` file says failed."""
    return tuple(str(record["id"]) for record in records if record.get("status") == "failed")


def executed_count(records: Sequence[dict[str, object]]) -> int:
    """Blocks that ran in the kernel: executed, or failed after running for some time."""
    return sum(
        1
        for record in records
        if record.get("status") == "executed"
        or (record.get("status") == "failed" and float(str(record.get("seconds", 0))) > 0)
    )


@dataclass(frozen=True, slots=True)
class Step:
    """One mdrun command run on the document."""

    exit_code: int
    stdout: str
    stderr: str
    records: tuple[dict[str, object], ...] = ()
    """The `--report` records, when the command wrote them."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The three commands run on one document, and the texts before and after."""

    original: str
    first: Step
    after_first: str
    second: Step | None = None
    after_second: str | None = None
    check: Step | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the results table shows for one document; `problems` empty means it passed."""

    blocks: int
    executed: int
    failed: tuple[str, ...]
    inserts_only: bool
    idempotent: bool | None
    """None when the second run did not happen (the first one was refused)."""
    check_passed: bool | None
    exit_code: int
    problems: tuple[str, ...] = field(default=())
    accepted: tuple[str, ...] = field(default=())
    """Problems of the second run and of `check` that the document's `reruns` declares."""

    @property
    def passed(self) -> bool:
        return not self.problems


def _second_run_problems(outcome: Outcome) -> list[str]:
    """A second run must change no byte and execute nothing but blocks that fail again."""
    second = outcome.second
    assert second is not None
    problems = []
    if outcome.after_second != outcome.after_first:
        problems.append("the second run changed the document")
    again = set(failed_ids(second.records))
    reran = [
        str(record["id"])
        for record in second.records
        if record.get("status") == "executed" and str(record["id"]) not in again
    ]
    if reran:
        problems.append(f"the second run executed {', '.join(reran)}")
    return problems


def _check_problems(outcome: Outcome, expected_exit: int) -> list[str]:
    """No diff, and the exit code of an up-to-date document (1 only when blocks fail)."""
    check = outcome.check
    assert check is not None
    problems = []
    if check.stdout.strip():
        problems.append(CHECK_DIFF)
    if check.exit_code != expected_exit:
        problems.append(f"check exit {check.exit_code}, expected {expected_exit}")
    return problems


def judge(document: Document, outcome: Outcome) -> Verdict:
    """Compare the outcome with what the manifest expects of the document."""
    first = outcome.first
    expected_exit = 1 if document.expected_failures else 0
    problems: list[str] = []
    if first.exit_code in MDRUN_ERRORS:
        problems.append(f"mdrun error: exit {first.exit_code} ({MDRUN_ERRORS[first.exit_code]})")
    elif first.exit_code != expected_exit:
        problems.append(f"exit {first.exit_code}, expected {expected_exit}")
    failed = failed_ids(first.records)
    if first.exit_code not in MDRUN_ERRORS and set(failed) != set(document.expected_failures):
        problems.append(
            f"failed blocks {list(failed)}, expected {list(document.expected_failures)}"
        )
    if first.exit_code not in MDRUN_ERRORS and len(first.records) != document.blocks:
        problems.append(f"{len(first.records)} executable blocks, expected {document.blocks}")
    added_only = inserts_only(outcome.original, outcome.after_first)
    if not added_only:
        problems.append("the first run changed or removed lines of the original")
    idempotent: bool | None = None
    check_passed: bool | None = None
    strict = not document.reruns
    accepted: list[str] = []
    if outcome.second is not None:
        second_problems = _second_run_problems(outcome)
        idempotent = not second_problems
        (problems if strict else accepted).extend(second_problems)
    if outcome.check is not None:
        check_problems = _check_problems(outcome, expected_exit)
        check_passed = not check_problems
        for problem in check_problems:  # a wrong exit code is never accepted
            (accepted if problem == CHECK_DIFF and not strict else problems).append(problem)
    if not strict and outcome.second is not None and not accepted:
        problems.append("declares re-runs, but the second run re-ran and changed nothing")
    return Verdict(
        blocks=len(first.records),
        executed=executed_count(first.records),
        failed=failed,
        inserts_only=added_only,
        idempotent=idempotent,
        check_passed=check_passed,
        exit_code=first.exit_code,
        problems=tuple(problems),
        accepted=tuple(accepted),
    )
