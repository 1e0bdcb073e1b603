"""Undoing a kept kernel's last blocks by deleting what they added (`kernel_rollback`): an edit
of the last block runs in the kernel that ran the document, without a fresh kernel or a replay,
and the document is what a fresh run writes; a block that changed what existed before it is
never undone (its session starts again)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdrun.core.store import Store
from mdrun.document.pipeline import RunResult, run
from mdrun.document.warm_executors import WarmExecutors

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(180)]


def blocks(*codes: str) -> str:
    """A document of Python blocks."""
    return "# Doc\n\n" + "\n".join(f"```python\n{code}\n```\n" for code in codes)


def edit_and_compare(
    tmp_path: Path, first: str, edited: str
) -> tuple[RunResult, WarmExecutors, str]:
    """Run `first`, then `edited` with the same kept kernels; the second run's result, the pool
    (closed) and what a fresh run of `edited` writes."""
    document = tmp_path / "doc.md"
    store = Store.initialize(tmp_path / "store")
    document.write_text(first, encoding="utf-8")
    with WarmExecutors(keep_spares=False) as pool:
        run(str(document), store, executor_factory=pool.factory)
        document.write_text(edited, encoding="utf-8")
        second = run(str(document), store, executor_factory=pool.factory)
    fresh = tmp_path / "fresh" / "doc.md"
    fresh.parent.mkdir()
    fresh.write_text(edited, encoding="utf-8")
    run(str(fresh), Store.initialize(tmp_path / "fresh-store"))
    return second, pool, fresh.read_text(encoding="utf-8")


def test_an_edit_of_blocks_that_only_added_names_rolls_the_kernel_back(tmp_path: Path) -> None:
    # Blocks 2 and 3 only add names (a private one too): editing block 2 deletes them all.
    first = blocks("x = 1", "y = x + 1\n_cache = {}\nprint(y)", "z = y * 10\nprint(z)")
    names = "print('seen:', [n for n in ('x', 'y', 'z', '_cache') if n in globals()])"
    edited = first.replace("y = x + 1\n_cache = {}", f"{names}\ny = x + 5")
    second, pool, fresh = edit_and_compare(tmp_path, first, edited)
    assert pool.counts().kernels_started == 1  # no fresh kernel: the kept one was rolled back
    assert second.evaluation.count("executed") == 2
    # The edited block saw neither y, z nor _cache: the state block 1 left, as a fresh run.
    assert "seen: ['x']" in second.text
    assert "60" in second.text
    assert second.text == fresh


def test_blocks_that_rebound_small_values_are_undone_by_putting_them_back(
    tmp_path: Path,
) -> None:
    # Block 2 rebinds n (an int: kept) and adds a label; block 3 rebinds n and deletes it.
    first = blocks(
        "n = 1\ntext = 'one'",
        "n = n + 1\nlabel = 'two'\nprint(n)",
        "n += 10\ndel text\nprint(n, label)",
    )
    edited = first.replace("n = n + 1", "print('seen:', n, text, 'label' in globals())\nn = n + 5")
    second, pool, fresh = edit_and_compare(tmp_path, first, edited)
    assert pool.counts().kernels_started == 1  # blocks 3 then 2 undone in the kept kernel
    assert "seen: 1 one False" in second.text
    assert "16 two" in second.text
    assert second.text == fresh


@pytest.mark.parametrize(
    ("changing", "why"),
    [
        ("items.append(3)", "changes a value in place"),
        ("alias.append(3)", "changes a value through another name"),
        ("del items", "deletes a name"),
        ("import random\nrandom.seed(7)", "changes random's state"),
        ("items = list(items)", "binds an equal value that alias no longer shares"),
    ],
)
def test_a_block_that_changed_what_existed_is_never_rolled_back(
    tmp_path: Path, changing: str, why: str
) -> None:
    del why
    setup = "x = 1\nitems = [1, 2]\nalias = items"
    show = "print(x, items, 'items' in globals() and items is alias)"
    first = blocks(setup, changing + "\nnew = 1", show)
    edited = blocks(setup, "new = 2", show)
    second, pool, fresh = edit_and_compare(tmp_path, first, edited)
    assert pool.counts().kernels_started == 2  # the session started again
    assert second.text == fresh
    assert "1 [1, 2] True" in second.text


def test_a_rolled_back_kernel_captures_incrementally_and_rolls_back_again(tmp_path: Path) -> None:
    # Three edits of the last block in a row: each one undoes the one before, in one kernel.
    document = tmp_path / "doc.md"
    store = Store.initialize(tmp_path / "store")
    with WarmExecutors(keep_spares=False) as pool:
        for value in range(3):
            document.write_text(blocks("x = [1, 2]", f"y = len(x) + {value}\nprint(y)"))
            result = run(str(document), store, executor_factory=pool.factory)
            assert f"{2 + value}" in result.text
        counts = pool.counts()
    assert counts.kernels_started == 1
    assert counts.executors_reused == 2


@pytest.mark.parametrize(
    ("first", "old", "new"),
    [
        # pyplot's first figure gives figures their inline printer: a bare Figure shown after
        # the edit is text in a fresh run, where no figure was drawn yet.
        (
            blocks("x = 1", "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"),
            "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
            "from matplotlib.figure import Figure\n"
            "fig = Figure()\nfig.add_subplot().plot([1, 2])\nfig",
        ),
        # matplotlib's settings are changed in place: undoing the block would keep them.
        (
            blocks(
                "import matplotlib.pyplot as plt\nxs = [1, 2]\nplt.plot(xs)\nplt.show()",
                "plt.rcParams['lines.linewidth'] = 12\nplt.plot(xs)\nplt.show()\n"
                "print(plt.rcParams['lines.linewidth'])",
            ),
            "plt.rcParams['lines.linewidth'] = 12\n",
            "",
        ),
    ],
    ids=["printer", "settings"],
)
def test_an_edited_block_that_drew_a_figure_equals_a_fresh_run(
    tmp_path: Path, first: str, old: str, new: str
) -> None:
    second, _pool, fresh = edit_and_compare(tmp_path, first, first.replace(old, new))
    assert second.text == fresh


def test_a_block_run_just_after_a_snapshot_was_loaded_can_be_undone(tmp_path: Path) -> None:
    """Block 2 changes a list in place: its edit loads block 1's snapshot in a fresh kernel.
    The kernel captures the loaded state, so the edited block 2 only adds a name, and the next
    edit undoes it in that kernel instead of loading the snapshot once more."""
    document = tmp_path / "doc.md"
    store = Store.initialize(tmp_path / "store")
    slow = "import time\ntime.sleep(0.4)\nitems = [1, 2]"
    texts = [
        blocks(slow, "items.append(3)", "print(items)"),
        blocks(slow, "size = len(items)", "print(items)"),
        blocks(slow, "size = len(items) + 1", "print(items)"),
    ]
    with WarmExecutors(keep_spares=False) as pool:
        started = []
        for text in texts:
            document.write_text(text, encoding="utf-8")
            result = run(str(document), store, executor_factory=pool.factory)
            started.append(pool.counts().kernels_started)
    assert started == [1, 2, 2]  # the second edit rolled the second kernel back
    assert "[1, 2]" in result.text and "[1, 2, 3]" not in result.text


UNDOABLE = ("number", "list", "alias", "private")
"""Kinds of block that only add a name (`block_code`)."""
KINDS = (*UNDOABLE, "append", "rebind", "delete", "seed")


def block_code(kind: str, index: int, names: list[str]) -> str:
    """A block of `kind`, the `index`th, over the names defined so far (which it updates)."""
    lists = [name for name in names if name.startswith(("l", "a"))]
    if kind == "list" or (kind in ("alias", "append") and not lists):
        names.append(f"l{index}")
        return f"l{index} = [{index}]"
    if kind == "alias":
        names.append(f"a{index}")
        return f"a{index} = {lists[-1]}"
    if kind == "append":
        return f"{lists[0]}.append({index})"
    if kind == "private":
        names.append(f"_p{index}")
        return f"_p{index} = {index}"
    if kind == "rebind" and names:
        return f"{names[0]} = {index}"
    if kind == "delete" and names:
        return f"del {names.pop()}"
    if kind == "seed":
        return f"import random\nrandom.seed({index})"
    names.append(f"v{index}")
    return f"v{index} = {index}"


PROBE = (
    "shown = sorted(n for n in globals() if n[0] in 'vla' or n.startswith('_p'))\n"
    "print([(n, globals()[n]) for n in shown])\n"
    "print([(n, m) for n in shown for m in shown if n < m and globals()[n] is globals()[m]])\n"
    "print(__import__('random').random() if 'random' in globals() else None)\n"
    "del shown"
)
"""A block that shows the whole state a block before it left: names, values, shared values."""


@pytest.mark.slow
@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=2, max_size=6),
    edited=st.integers(min_value=0, max_value=5),
)
def test_an_edit_after_rolling_back_equals_a_fresh_run(
    tmp_path_factory: pytest.TempPathFactory, kinds: list[str], edited: int
) -> None:
    names: list[str] = []
    codes = [block_code(kind, index, names) for index, kind in enumerate(kinds)]
    edited %= len(codes)
    probing = [*codes[:edited], PROBE, *codes[edited + 1 :]]
    second, pool, fresh = edit_and_compare(
        tmp_path_factory.mktemp("rollback"), blocks(*codes), blocks(*probing)
    )
    assert second.text == fresh
    if all(kind in UNDOABLE for kind in kinds[edited:]):
        assert pool.counts().kernels_started == 1
