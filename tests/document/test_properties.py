"""Properties of running documents (DESIGN §5): idempotency, incremental equals fresh, minimal work.

Each example starts kernels, so there are few of them. Documents are made of deterministic
blocks whose output and state depend on every block before them in their session:

    history = globals().get("history", ()) + (("k3", 5),)
    print("k3", sum(...), len(history))

so a block's result is the same exactly when the blocks before it in its session are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.document.conftest import Mdrun, Report, no_kernel_starts

pytestmark = pytest.mark.kernel

SESSIONS = ("main", "side")
HEADER = "# A document\n\nSome text.\n\n"


@dataclass(frozen=True, slots=True)
class Cell:
    """One block of a generated document."""

    label: str
    """Unique in the document; names the block's contribution to its session's history."""
    session: str
    """`main` or `side`."""
    constant: int
    """What the block adds to the history."""

    def code(self) -> str:
        return (
            f'history = globals().get("history", ()) + (("{self.label}", {self.constant}),)\n'
            f'print("{self.label}", sum(value for _, value in history), len(history))\n'
        )

    def chunk(self) -> str:
        """The block's Markdown, without any region."""
        info = "python" if self.session == "main" else f"python session={self.session}"
        return f"```{info}\n{self.code()}```\n"


def document_text(cells: Sequence[Cell]) -> str:
    return HEADER + "\n".join(cell.chunk() for cell in cells)


def split_chunks(text: str) -> list[str]:
    """A rendered generated document's blocks, each with its region (if any)."""
    header, *chunks = re.split(r"(?m)^(?=```python)", text)
    assert header == HEADER
    return [chunk.rstrip("\n") + "\n" for chunk in chunks]


def block_ids(cells: Sequence[Cell]) -> list[str]:
    """The ids mdrun gives the blocks: their position within their session."""
    positions = dict.fromkeys(SESSIONS, 0)
    ids = []
    for cell in cells:
        positions[cell.session] += 1
        number = positions[cell.session]
        ids.append(f"b{number}" if cell.session == "main" else f"{cell.session}-{number}")
    return ids


# -- strategies ---------------------------------------------------------------------------------

sessions = st.sampled_from((*SESSIONS, "main"))  # main twice as likely
constants = st.integers(min_value=1, max_value=9)


@st.composite
def cell_lists(draw: st.DrawFn, min_size: int = 1, max_size: int = 4) -> list[Cell]:
    size = draw(st.integers(min_size, max_size))
    return [Cell(f"k{index}", draw(sessions), draw(constants)) for index in range(size)]


@dataclass(frozen=True, slots=True)
class Edit:
    """A user's edit of a rendered document: on its blocks, regions travelling with them."""

    kind: str
    position: int
    other: int = 0
    cell: Cell | None = None
    constant: int = 0

    def apply(self, cells: list[Cell], chunks: list[str]) -> None:
        if self.kind == "constant":
            old = cells[self.position]
            new = replace(old, constant=self.constant)
            chunks[self.position] = chunks[self.position].replace(old.code(), new.code())
            cells[self.position] = new
        elif self.kind == "insert":
            assert self.cell is not None
            cells.insert(self.position, self.cell)
            chunks.insert(self.position, self.cell.chunk())
        elif self.kind == "delete":
            del cells[self.position], chunks[self.position]
        else:
            first, second = self.position, self.other
            cells[first], cells[second] = cells[second], cells[first]
            chunks[first], chunks[second] = chunks[second], chunks[first]


@st.composite
def edits(draw: st.DrawFn, size: int, number: int) -> Edit:
    kinds = ["constant", "insert"] + (["delete", "swap"] if size > 1 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "insert":
        position = draw(st.integers(0, size))
        return Edit(kind, position, cell=Cell(f"new{number}", draw(sessions), draw(constants)))
    position = draw(st.integers(0, size - 1))
    if kind == "constant":
        return Edit(kind, position, constant=draw(constants))
    if kind == "swap":
        other = draw(st.integers(0, size - 1).filter(lambda index: index != position))
        return Edit(kind, position, other=other)
    return Edit(kind, position)


@dataclass(frozen=True, slots=True)
class Scenario:
    cells: list[Cell]
    edits: list[Edit]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A document and one or two edits of it."""
    cells = draw(cell_lists())
    size = len(cells)
    chosen = []
    for number in range(draw(st.integers(1, 2))):
        edit = draw(edits(size, number))
        chosen.append(edit)
        size += {"insert": 1, "delete": -1}.get(edit.kind, 0)
    return Scenario(cells, chosen)


def edited(rendered: str, scenario: Scenario) -> tuple[str, list[Cell]]:
    """The rendered document after the scenario's edits, and its blocks."""
    cells = list(scenario.cells)
    chunks = split_chunks(rendered)
    assert len(chunks) == len(cells)
    for edit in scenario.edits:
        edit.apply(cells, chunks)
    return HEADER + "\n".join(chunks), cells


# -- running ------------------------------------------------------------------------------------


def new_runner(factory: pytest.TempPathFactory) -> Mdrun:
    folder = factory.mktemp("example")
    return Mdrun(folder / "doc", folder / "store")


def run_ok(runner: Mdrun, text: str) -> tuple[str, Report]:
    runner.write("doc.md", text)
    completed, report = runner.run_reported("run", "doc.md")
    assert completed.code == 0, completed.err
    return runner.read("doc.md"), report


def expected_statuses(before: Sequence[Cell], after: Sequence[Cell]) -> dict[str, str]:
    """What minimal work means: a block runs when it, or a block before it in its session,
    is not what it was at that place in the session; every other block is read from the store."""
    statuses = {}
    for block_id, cell in zip(block_ids(after), after, strict=True):
        old_chain = [c for c in before if c.session == cell.session]
        new_chain = [c for c in after if c.session == cell.session]
        position = new_chain.index(cell) + 1
        same = new_chain[:position] == old_chain[:position]
        statuses[block_id] = "cached" if same else "executed"
    return statuses


# -- the properties -----------------------------------------------------------------------------


CONTAINERS = ("", "  ", "> ")


@st.composite
def decorated_documents(draw: st.DrawFn) -> str:
    """Generated blocks, some in a list item or block quote, with a few other kinds of block."""
    parts = [HEADER]
    for cell in draw(cell_lists(max_size=3)):
        prefix = draw(st.sampled_from(CONTAINERS))
        extra = draw(st.sampled_from(["", "allow_error", "output=false", "markdown", "stderr"]))
        chunk = cell.chunk()
        if extra == "allow_error":
            chunk = chunk.replace("```\n", "1 / len(history) / 0\n```\n", 1)
            chunk = chunk.replace("```python", "```python allow_error=true", 1)
        elif extra == "output=false":
            chunk = chunk.replace("```python", "```python output=false", 1)
        elif extra == "markdown":
            chunk = chunk.replace(
                "```\n", 'from IPython.display import Markdown\nMarkdown("**bold**")\n```\n', 1
            )
        elif extra == "stderr":
            chunk = chunk.replace("```\n", 'import sys; print("warn", file=sys.stderr)\n```\n', 1)
        if prefix == "  ":
            parts.append("- Item:\n\n")
        parts.append("".join(prefix + line for line in chunk.splitlines(keepends=True)))
        parts.append("\n")
    return "".join(parts)


@settings(max_examples=6, deadline=None)
@given(text=decorated_documents())
def test_idempotent_run(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    """Running a document on its own output changes no byte, executes nothing, starts no kernel."""
    runner = new_runner(tmp_path_factory)
    rendered, _ = run_ok(runner, text)
    with no_kernel_starts():
        again, report = run_ok(runner, rendered)
        assert runner("check", "doc.md").code == 0
    assert again == rendered
    assert set(report.statuses.values()) == {"cached"}


@settings(max_examples=5, deadline=None)
@given(scenario=scenarios())
def test_incremental_equals_fresh(
    tmp_path_factory: pytest.TempPathFactory, scenario: Scenario
) -> None:
    """After edits, the document rendered with a warm store equals the one from an empty store."""
    warm = new_runner(tmp_path_factory)
    rendered, _ = run_ok(warm, document_text(scenario.cells))
    text, _ = edited(rendered, scenario)
    incremental, _ = run_ok(warm, text)
    fresh, report = run_ok(new_runner(tmp_path_factory), text)
    assert set(report.statuses.values()) == {"executed"}
    assert incremental == fresh


@settings(max_examples=6, deadline=None)
@given(scenario=scenarios())
def test_minimal_work(tmp_path_factory: pytest.TempPathFactory, scenario: Scenario) -> None:
    """After edits, exactly the changed blocks and those after them in their session execute."""
    runner = new_runner(tmp_path_factory)
    rendered, _ = run_ok(runner, document_text(scenario.cells))
    text, cells = edited(rendered, scenario)
    _, report = run_ok(runner, text)
    assert report.statuses == expected_statuses(scenario.cells, cells)
