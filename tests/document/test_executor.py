"""The executor protocol: the evaluator runs a document end to end through an executor that is
not a Jupyter kernel (here, Python's `exec` over a dict), and keeps every behaviour it has with
kernels: outputs rendered, results cached, failures reported, `allow_error`, early cutoff."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mdrun.core.store import Store
from mdrun.document.block_result import BlockResult
from mdrun.document.evaluate import Evaluation, Evaluator
from mdrun.document.executor import BlockRequest, ChainStep, Executor, ExecutorSetup
from mdrun.document.outputs import Output
from mdrun.document.pipeline import ImageFiles, make_plan, render
from tests.document.conftest import no_kernel_starts


@dataclass
class DictExecutor:
    """Runs a session's blocks with `exec` in one dict; replays the chain when the dict holds
    something else than the blocks before the one asked for."""

    setup: ExecutorSetup
    calls: list[str]
    namespace: dict[str, Any] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    closed: bool = False

    @property
    def snapshots_restored(self) -> int:
        return 0

    def run(self, request: BlockRequest) -> BlockResult:
        self.calls.append(request.step.block_id)
        wanted = [step.identity for step in request.before]
        if self.history != wanted:
            self.namespace, self.history = {}, []
            for step in request.before:
                self.setup.on_replay(step.block_id)
                self._exec(step)
        status, outputs = self._exec(request.step)
        return BlockResult.of(status, outputs, 0.01, state=self._digest())

    def _exec(self, step: ChainStep) -> tuple[Any, tuple[Output, ...]]:
        printed = io.StringIO()
        self.history.append(step.identity)
        try:
            with contextlib.redirect_stdout(printed):
                exec(step.code, self.namespace)
        except Exception as err:
            error: Output = {
                "output_type": "error",
                "ename": type(err).__name__,
                "evalue": str(err),
                "traceback": [f"{type(err).__name__}: {err}"],
            }
            return "error", (*_stdout(printed.getvalue()), error)
        return "ok", _stdout(printed.getvalue())

    def _digest(self) -> str:
        names = sorted(name for name in self.namespace if not name.startswith("__"))
        text = repr([(name, repr(self.namespace[name])) for name in names])
        return hashlib.sha256(text.encode()).hexdigest()

    def close(self) -> None:
        self.closed = True


def _stdout(text: str) -> tuple[Output, ...]:
    return ({"output_type": "stream", "name": "stdout", "text": text},) if text else ()


@dataclass
class Runs:
    """Runs a document with `DictExecutor`s, remembering which blocks each run executed."""

    folder: Path
    store: Store
    calls: list[str] = field(default_factory=list)
    executors: list[DictExecutor] = field(default_factory=list)

    def factory(self, setup: ExecutorSetup) -> Executor:
        executor = DictExecutor(setup, self.calls)
        self.executors.append(executor)
        return executor

    def run(self, text: str, *, keep_going: bool = False) -> tuple[Evaluation, str]:
        self.calls.clear()
        document = self.folder / "doc.md"
        document.write_text(text)
        plan = make_plan(str(document))
        factory = self.factory
        evaluation = Evaluator(
            plan, self.store, keep_going=keep_going, executor_factory=factory
        ).evaluate()
        return evaluation, render(evaluation, ImageFiles(str(document)))


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Runs]:
    with no_kernel_starts():
        yield Runs(tmp_path, Store.initialize(tmp_path / "store"))


def statuses(evaluation: Evaluation) -> dict[str, str]:
    return {
        outcome.planned.block_id: outcome.status
        for outcome in evaluation.outcomes
        if outcome.status != "skipped"
    }


DOCUMENT = textwrap.dedent(
    """\
    # Sums

    ```python
    total = 1 + 2
    print("total", total)
    ```

    ```python
    print("twice", total * 2)
    ```

    ```python session=other
    print("other session")
    ```
    """
)


def test_a_document_runs_through_another_executor_and_is_cached_the_second_time(
    runs: Runs,
) -> None:
    evaluation, text = runs.run(DOCUMENT)
    assert statuses(evaluation) == {"b1": "executed", "b2": "executed", "other-1": "executed"}
    assert "total 3" in text and "twice 6" in text and "other session" in text
    assert all(executor.closed for executor in runs.executors)
    rendered = text
    evaluation, text = runs.run(rendered)
    assert runs.calls == []
    assert statuses(evaluation) == {"b1": "cached", "b2": "cached", "other-1": "cached"}
    assert text == rendered


def test_editing_a_block_reruns_it_and_the_blocks_after_it_see_its_state(runs: Runs) -> None:
    runs.run(DOCUMENT)
    evaluation, text = runs.run(DOCUMENT.replace("1 + 2", "10 + 20"))
    assert runs.calls == ["b1", "b2"]
    assert "total 30" in text and "twice 60" in text
    assert statuses(evaluation)["other-1"] == "cached"


def test_a_block_whose_state_and_outputs_are_unchanged_keeps_the_next_one_cached(
    runs: Runs,
) -> None:
    runs.run(DOCUMENT)
    evaluation, _text = runs.run(DOCUMENT.replace("total = 1 + 2", "total = 1 + 2  # same"))
    assert runs.calls == ["b1"]
    cutoff = {outcome.planned.block_id: outcome.cutoff for outcome in evaluation.outcomes}
    assert statuses(evaluation)["b2"] == "cached" and cutoff["b2"]


def test_a_block_run_after_cached_ones_gets_their_state_from_the_executor(runs: Runs) -> None:
    runs.run(DOCUMENT)
    extended = DOCUMENT + '\n```python\nprint("again", total)\n```\n'
    _evaluation, text = runs.run(extended)
    assert runs.calls == ["b3"]
    assert "again 3" in text


FAILING = textwrap.dedent(
    """\
    ```python
    print("before")
    ```

    ```python
    raise ValueError("no luck")
    ```

    ```python
    print("after")
    ```

    ```python session=other
    print("elsewhere")
    ```
    """
)


def test_a_failing_block_is_reported_and_other_sessions_still_run(runs: Runs) -> None:
    evaluation, text = runs.run(FAILING)
    assert evaluation.failed
    assert statuses(evaluation) == {
        "b1": "executed",
        "b2": "failed",
        "b3": "not-run",
        "other-1": "executed",
    }
    failed = evaluation.outcomes[1]
    assert failed.note == "ValueError: no luck"
    assert "ValueError: no luck" in text and "elsewhere" in text
    assert "after" not in text.replace('print("after")', "")
    # A failure is not a result: the block runs again; the block after it stays unrun.
    evaluation, _text = runs.run(text)
    assert runs.calls == ["b2"]
    assert statuses(evaluation)["b3"] == "not-run"


def test_with_keep_going_the_blocks_after_a_failure_run(runs: Runs) -> None:
    evaluation, text = runs.run(FAILING, keep_going=True)
    assert statuses(evaluation)["b3"] == "executed"
    assert "after" in text.replace('print("after")', "")


def test_an_allowed_error_is_the_blocks_result_and_is_cached(runs: Runs) -> None:
    allowed = FAILING.replace("```python\nraise", "```python allow_error=true\nraise")
    evaluation, text = runs.run(allowed)
    assert not evaluation.failed
    assert statuses(evaluation)["b2"] == "executed"
    assert statuses(evaluation)["b3"] == "executed"
    assert "ValueError: no luck" in text
    evaluation, _text = runs.run(text)
    assert runs.calls == []
    assert set(statuses(evaluation).values()) == {"cached"}


def test_a_run_that_builds_cleans_the_build_folders_a_killed_run_left(runs: Runs) -> None:
    dead = 2**22 + 12345  # (above the kernel's default pid_max: no process has it)
    leftover = runs.store.tmp / f"build-{dead}-b1-abcd1234"
    (leftover / "realization").mkdir(parents=True)
    (leftover / "config.json").write_text("{}")
    mine = runs.store.tmp / f"build-{os.getpid()}-b9-abcd1234"  # a live process's: kept
    mine.mkdir()
    evaluation, _ = runs.run(DOCUMENT)
    assert statuses(evaluation) == {"b1": "executed", "b2": "executed", "other-1": "executed"}
    assert sorted(path.name for path in runs.store.tmp.iterdir()) == [mine.name]
