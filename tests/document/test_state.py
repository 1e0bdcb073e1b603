"""Session state across runs: early cutoff on what a block produced, snapshots, what cannot be
saved. Each test runs real kernels, so they stay few and share documents where natural."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdrun.core.store import Store
from tests.document.conftest import Mdrun

pytestmark = pytest.mark.kernel

CHAIN = """\
```python
import random
base = 20
```

```python
def double(x):
    return 2 * x
```

```python
total = double(base) + 2
```

```python
print(total)
```
"""


def _edit(mdrun: Mdrun, name: str, old: str, new: str) -> None:
    text = mdrun.read(name)
    assert old in text
    mdrun.write(name, text.replace(old, new, 1))


def _executed_after_an_edit(mdrun: Mdrun, document: str, old: str, new: str) -> list[str]:
    """Run `document`, edit it (`old` becomes `new`) and run it again: the blocks executed."""
    mdrun.write("doc.md", document)
    assert mdrun("run", "doc.md").code == 0
    _edit(mdrun, "doc.md", old, new)
    _completed, report = mdrun.run_reported("run", "doc.md")
    return report.with_status("executed")


def _status_and_rerun(mdrun: Mdrun, document: str, old: str, new: str) -> tuple[str, str]:
    """Run `document` and show its status, edit it (`old` becomes `new`) and run it again:
    the status, and what the second run reported."""
    mdrun.write("doc.md", document)
    assert mdrun("run", "doc.md").code == 0
    status = mdrun("status", "doc.md").out
    _edit(mdrun, "doc.md", old, new)
    completed, _ = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0
    return status, completed.err


def _restored_after_an_edit(mdrun: Mdrun, document: str, old: str, new: str) -> str:
    """Run `document`, edit its last block (`old` becomes `new`), run it again with the state
    before that block loaded from a snapshot; the document written."""
    mdrun.write("doc.md", document)
    assert mdrun("run", "doc.md").code == 0
    _edit(mdrun, "doc.md", old, new)
    completed, _ = mdrun.run_reported("run", "doc.md")
    assert "1 state restored from snapshots" in completed.err
    return mdrun.read("doc.md")


def test_a_block_that_produces_the_same_keeps_the_blocks_after_it(mdrun: Mdrun) -> None:
    mdrun.write("doc.md", CHAIN)
    assert mdrun("run", "doc.md").code == 0
    assert "42" in mdrun.read("doc.md")

    # A comment: the block re-runs, leaves the same state, and nothing after it runs.
    _edit(mdrun, "doc.md", "base = 20", "base = 20  # the base")
    completed, report = mdrun.run_reported("run", "doc.md")
    assert report.with_status("executed") == ["b1"]
    assert report.with_status("cached") == ["b2", "b3", "b4"]
    assert [record["cutoff"] for record in report.records] == [False, True, True, True]
    assert "3 kept by early cutoff" in completed.err
    status = mdrun("status", "doc.md").out
    assert "b4: cached (kept by early cutoff in the last run)" in status

    # A refactor that computes the same value: only that block runs.
    _edit(mdrun, "doc.md", "total = double(base) + 2", "total = 2 + double(base)")
    _, report = mdrun.run_reported("run", "doc.md")
    assert report.with_status("executed") == ["b3"]

    # A different value: everything downstream of it runs again and shows the new output.
    _edit(mdrun, "doc.md", "base = 20", "base = 30")
    _, report = mdrun.run_reported("run", "doc.md")
    assert report.with_status("executed") == ["b1", "b2", "b3", "b4"]
    assert "62" in mdrun.read("doc.md")


def test_editing_a_function_body_is_seen_by_the_blocks_that_call_it(mdrun: Mdrun) -> None:
    mdrun.write("doc.md", CHAIN)
    mdrun("run", "doc.md")
    # The function is stored by value in the state digest: a new body is a new state.
    _edit(mdrun, "doc.md", "return 2 * x", "return 3 * x")
    _, report = mdrun.run_reported("run", "doc.md")
    assert report.with_status("executed") == ["b2", "b3", "b4"]
    assert "62" in mdrun.read("doc.md")


def test_reseeding_a_generator_is_a_change_of_state(mdrun: Mdrun) -> None:
    mdrun.write(
        "seeded.md",
        "```python\nimport random\nrandom.seed(1)\n```\n\n```python\nprint(random.random())\n```\n",
    )
    mdrun("run", "seeded.md")
    first = mdrun.read("seeded.md")
    _edit(mdrun, "seeded.md", "random.seed(1)", "random.seed(2)")
    _, report = mdrun.run_reported("run", "seeded.md")
    assert report.with_status("executed") == ["b1", "b2"]
    assert mdrun.read("seeded.md") != first.replace("random.seed(1)", "random.seed(2)")


SLOW = """\
```python snapshot=true
import time
numbers = list(range(10))
time.sleep(0.2)
```

```python
squares = [n * n for n in numbers]
```

```python
print(sum(squares))
```
"""


def test_state_is_restored_from_a_snapshot_and_equals_a_fresh_run(
    mdrun: Mdrun, tmp_path: Path
) -> None:
    mdrun.write("doc.md", SLOW)
    assert mdrun("run", "doc.md").code == 0
    snapshots = list((mdrun.store / "store").glob("*-b1/*/_snapshot.json"))
    assert len(snapshots) == 1
    assert re.search(r"b1: cached \(snapshot [0-9.]+ MB\)", mdrun("status", "doc.md").out)

    _edit(mdrun, "doc.md", "print(sum(squares))", "print(sum(squares) + 1)")
    completed, report = mdrun.run_reported("run", "doc.md")
    assert report.with_status("executed") == ["b3"]
    assert "1 state restored from snapshots" in completed.err
    incremental = mdrun.read("doc.md")
    assert "286" in incremental

    fresh = Mdrun(tmp_path / "fresh", tmp_path / "fresh-store")
    fresh.write("doc.md", SLOW.replace("print(sum(squares))", "print(sum(squares) + 1)"))
    fresh("run", "doc.md")
    assert fresh.read("doc.md") == incremental


def test_snapshot_false_takes_none(mdrun: Mdrun) -> None:
    # Every block says no: on a loaded machine the later blocks would otherwise earn a snapshot
    # of their own (replaying up to them costs more than the threshold).
    mdrun.write(
        "doc.md",
        SLOW.replace("snapshot=true", "snapshot=false").replace(
            "```python\n", "```python snapshot=false\n"
        ),
    )
    mdrun("run", "doc.md")
    assert not list((mdrun.store / "store").glob("*/*/_snapshot.*"))


def test_what_cannot_be_saved_is_named_and_replayed_instead(mdrun: Mdrun) -> None:
    mdrun.write("data.txt", "a\nb\n")
    document = (
        "```python snapshot=true\nhandle = open('data.txt')\nfirst = handle.readline()\n```\n\n"
        "```python\nprint(first.strip())\n```\n"
    )
    mdrun.write("doc.md", document)
    assert mdrun("run", "doc.md").code == 0
    status = mdrun("status", "doc.md").out
    assert "no snapshot: cannot save handle (TextIOWrapper" in status
    assert not list((mdrun.store / "store").glob("*/*/_snapshot.*"))

    _edit(mdrun, "doc.md", "print(first.strip())", "print(first.strip().upper())")
    completed, report = mdrun.run_reported("run", "doc.md")
    assert report.with_status("executed") == ["b2"]
    assert "restored from snapshots" not in completed.err
    assert "\nA\n" in mdrun.read("doc.md")


def _document(constants: list[int]) -> str:
    blocks = ["```python\nx0 = 0\n```\n"]
    for index, constant in enumerate(constants, start=1):
        blocks.append(f"```python\nx{index} = x{index - 1} + {constant}\nprint(x{index})\n```\n")
    return "---\nmdrun.snapshot: true\n---\n\n" + "\n".join(blocks)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    constants=st.lists(st.integers(0, 9), min_size=2, max_size=4),
    edited=st.data(),
)
def test_incremental_equals_fresh_with_snapshots(
    tmp_path_factory: pytest.TempPathFactory, constants: list[int], edited: st.DataObject
) -> None:
    folder = tmp_path_factory.mktemp("snapshots")
    warm = Mdrun(folder / "warm", folder / "warm-store")
    warm.write("doc.md", _document(constants))
    warm("run", "doc.md")
    position = edited.draw(st.integers(0, len(constants) - 1))
    changed = list(constants)
    changed[position] = edited.draw(st.integers(0, 9))
    warm.write("doc.md", _document(changed))
    warm("run", "doc.md")

    fresh = Mdrun(folder / "fresh", folder / "fresh-store")
    fresh.write("doc.md", _document(changed))
    fresh("run", "doc.md")
    assert warm.read("doc.md") == fresh.read("doc.md")


def test_state_kept_in_modules_travels_with_the_snapshot_or_is_named(mdrun: Mdrun) -> None:
    document = (
        "```python snapshot=true\nimport os, json, sys\nos.environ['MDRUN_TEST_VAR'] = 'set'\n"
        "json.decoder.NaN = 'configured'\nsys.path.append('extra-path')\n```\n\n"
        "```python\nprint(os.environ['MDRUN_TEST_VAR'], json.decoder.NaN, sys.path[-1])\n```\n"
    )
    text = _restored_after_an_edit(mdrun, document, "sys.path[-1])", "sys.path[-1], 1)")
    assert "set configured extra-path 1" in text

    # A module global that cannot be saved (it holds a lock) is named, and no snapshot is kept.
    mdrun.write(
        "lock.md",
        "```python snapshot=true\nimport json, threading\njson.decoder.NaN = threading.Lock()\n"
        "```\n\n```python\nprint(type(json.decoder.NaN).__name__)\n```\n",
    )
    mdrun("run", "lock.md")
    assert "cannot save <global json.decoder.NaN>" in mdrun("status", "lock.md").out


def test_functions_loaded_from_a_snapshot_see_the_variables_later_blocks_bind(
    mdrun: Mdrun,
) -> None:
    """A function (and a method) defined in a snapshotted block reads a global that the next
    block rebinds: once loaded, it must read the session's namespace, not a copy of it."""
    document = (
        "```python snapshot=true\nn = 3\ndef f():\n    return n * 2\n"
        "class C:\n    def g(self):\n        return n + 1\n```\n\n"
        "```python\nn = 5\n```\n\n```python\nprint(f(), C().g())\n```\n"
    )
    assert "14 8" in _restored_after_an_edit(mdrun, document, "n = 5", "n = 7")


def test_a_figure_drawn_by_the_same_code_keeps_the_blocks_after_it(mdrun: Mdrun) -> None:
    """A figure's pickle holds addresses, and pickling it counts: its digest leaves both out,
    so the block after one that draws the same figure again is kept by the early cutoff."""
    document = (
        "```python\nimport matplotlib.pyplot as plt\nxs = [1, 2, 3]\n```\n\n"
        "```python\nfig, ax = plt.subplots()\nax.plot(xs, 'r-')\nplt.show()\n```\n\n"
        "```python\nfig, ax = plt.subplots()\nax.plot(xs, 'b-')\nplt.show()\n```\n\n"
        "```python\nprint(len(fig.axes), len(ax.lines))\n```\n"
    )
    assert _executed_after_an_edit(mdrun, document, "'r-'", "'g-'") == ["b2", "b3"]
    assert "1 1" in mdrun.read("doc.md")


def test_a_class_of_the_sessions_loaded_from_a_snapshot_keeps_the_blocks_after_it(
    mdrun: Mdrun,
) -> None:
    """A class loaded from a snapshot names its module with a copy of the session's `__name__`;
    a fresh run's class and functions share one: it gets that one back, or the state after
    the edited block would digest differently from the first run's and no block after it would
    be kept by the early cutoff."""
    document = (
        "```python snapshot=true\nfrom dataclasses import dataclass\n\n@dataclass\n"
        "class Point:\n    x: float\n    y: float\n\np = Point(3, 4)\n```\n\n"
        "```python\n# the first comment\nq = Point(p.x + 1, p.y)\n```\n\n"
        "```python\nprint(p, q)\n```\n"
    )
    assert _executed_after_an_edit(mdrun, document, "the first", "another") == ["b2"]
    assert "Point(x=3, y=4) Point(x=4, y=4)" in mdrun.read("doc.md")


_ARRAY = "import numpy as np\nz = np.zeros(3)"


@pytest.mark.parametrize(
    ("first", "old", "new", "last", "printed"),
    [
        ("a = []", "b = a", "b = []", "a.append(1)\nprint(b)", "[]"),
        ("a = []", "b = []", "b = a", "a.append(1)\nprint(b)", "[1]"),
        ("a = ([],)", "b = a", "b = ([],)", "a[0].append(1)\nprint(b)", "([],)"),
        ("z = [[1]]", "v = [1]", "v = z[0]", "v.append(2)\nprint(z)", "[[1, 2]]"),
        ("z = [[1]]", "v = z[0]", "v = [1]", "v.append(2)\nprint(z)", "[[1]]"),
        ("z = [[1], [1]]", "v = z[0]", "v = z[1]", "v.append(2)\nprint(z)", "[[1], [1, 2]]"),
        ("z = {'k': [1]}", "v = [1]", "v = z['k']", "v.append(2)\nprint(z)", "{'k': [1, 2]}"),
        (_ARRAY, "v = np.zeros(2)", "v = z[:2]", "v[0] = 1\nprint(z)", "[1. 0. 0.]"),
        (_ARRAY, "v = z[:2]", "v = z[1:]", "v[0] = 1\nprint(z)", "[0. 1. 0.]"),
    ],
)
def test_names_that_share_an_object_are_not_the_state_of_equal_copies(
    mdrun: Mdrun, first: str, old: str, new: str, last: str, printed: str
) -> None:
    """`b = a` and `b = []` leave variables of equal values, but a change made through `a`
    is seen through `b` only after the first (a tuple cannot change, but a list in it can).
    After `v = z[0]`, a change made through `v` is seen in `z`, after `v = [1]` it is not,
    and after `v = z[1]` it is seen elsewhere in `z`; a numpy view writes into the array it
    views, where it starts. The state's digest tells these apart, so the block after the
    edit is not kept by the early cutoff with the other's output."""
    document = f"```python\n{first}\n```\n\n```python\n{old}\n```\n\n```python\n{last}\n```\n"
    assert _executed_after_an_edit(mdrun, document, old, new) == ["b2", "b3"]
    written = mdrun.read("doc.md").split(last)[1]
    assert f"``` text\n{printed}\n```" in written


def test_an_array_viewing_another_is_replayed_not_loaded(mdrun: Mdrun) -> None:
    """A snapshot would load `v` as an array of its own: none is taken, status says why, and
    after an edit the session is replayed, so writing through `v` still changes `a`."""
    document = (
        "```python snapshot=true\nimport numpy as np\na = np.arange(10)\nv = a[2:5]\n```\n\n"
        "```python\nv[0] = 99\nprint(a[:4])\n```\n"
    )
    status, rerun = _status_and_rerun(mdrun, document, "print(a[:4])", "print(a[:5])")
    assert "a, v: memory shared through a numpy view" in status
    assert "restored from snapshots" not in rerun
    assert "[ 0  1 99  3  4]" in mdrun.read("doc.md")


def test_a_callback_connected_to_a_figure_is_in_its_digest(mdrun: Mdrun) -> None:
    """A figure's own pickle leaves out the callbacks connected to it; its digest does not."""
    document = (
        "```python\nfrom matplotlib.figure import Figure\n"
        "from matplotlib.backends.backend_agg import FigureCanvasAgg\n```\n\n"
        "```python\nfig = Figure()\ncanvas = FigureCanvasAgg(fig)\n"
        "cid = fig.canvas.mpl_connect('draw_event', lambda event: print('handler A'))\n```\n\n"
        "```python\nfig.canvas.draw()\n```\n"
    )
    assert _executed_after_an_edit(mdrun, document, "handler A", "handler B") == ["b2", "b3"]
    assert "handler B" in mdrun.read("doc.md").split("fig.canvas.draw()")[1]


def test_a_figure_with_a_callback_of_the_sessions_is_replayed_not_loaded(mdrun: Mdrun) -> None:
    """matplotlib's pickle of a figure leaves out the callbacks connected to it: a snapshot
    would give back a figure that does not call them, so none is taken, and status says why."""
    document = (
        "```python snapshot=true\nfrom matplotlib.figure import Figure\n"
        "from matplotlib.backends.backend_agg import FigureCanvasAgg\nfig = Figure()\n"
        "canvas = FigureCanvasAgg(fig)\n"
        "cid = fig.canvas.mpl_connect('draw_event', lambda event: print('handler'))\n```\n\n"
        "```python\nfig.canvas.draw()\nprint(1)\n```\n"
    )
    status, rerun = _status_and_rerun(mdrun, document, "print(1)", "print(2)")
    assert "cannot be saved" in status
    assert "restored from snapshots" not in rerun
    assert "handler\n2" in mdrun.read("doc.md")


def test_a_matplotlib_setting_changed_in_place_is_a_change_of_state(mdrun: Mdrun) -> None:
    document = (
        "```python\nimport matplotlib.pyplot as plt\n```\n\n"
        "```python\nplt.rcParams['font.sans-serif'].insert(0, 'Foo')\n```\n\n"
        "```python\nprint(plt.rcParams['font.sans-serif'][:1])\n```\n"
    )
    assert _executed_after_an_edit(mdrun, document, "'Foo'", "'Bar'") == ["b2", "b3"]
    assert "['Bar']" in mdrun.read("doc.md")


def test_matplotlib_settings_travel_with_the_snapshot(mdrun: Mdrun) -> None:
    """`plt.rcParams` is changed in place: it is state a snapshot carries, and that makes the
    state's digest change."""
    document = (
        "```python snapshot=true\nimport matplotlib.pyplot as plt\n"
        "plt.rcParams['lines.linewidth'] = 7\n```\n\n"
        "```python\nprint(plt.rcParams['lines.linewidth'])\n```\n"
    )
    edit = ("['lines.linewidth'])", "['lines.linewidth'], 1)")
    assert "7.0 1" in _restored_after_an_edit(mdrun, document, *edit)
    # The setting changed: the block after it is not kept by the early cutoff.
    _edit(mdrun, "doc.md", "= 7", "= 8")
    _completed, report = mdrun.run_reported("run", "doc.md")
    assert report.with_status("executed") == ["b1", "b2"]
    assert "8.0 1" in mdrun.read("doc.md")


@pytest.mark.parametrize(
    ("first", "last", "shown"),
    [
        ("%precision 3\nx = 1.0 / 3", "x", "0.333\n"),
        # `%precision` sets numpy's precision too, but only once numpy is imported.
        ("%precision 3\nimport numpy as np", "np.array([1 / 3])", "array([0.33333333])"),
        ("import numpy as np\nnp.set_printoptions(precision=3)", "np.array([1 / 3])", "[0.333]"),
        (
            "_ = get_ipython().display_formatter.formatters['text/plain'].pop(dict)",
            "{i: 'abcdefgh' for i in range(12)}",
            "{0: 'abcdefgh', 1: 'abcdefgh', 2:",
        ),
        # pyplot's first figure gives figures their printer: a bare Figure is an image.
        (
            "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
            "from matplotlib.figure import Figure\nfig = Figure()\nfig.add_subplot()\nfig",
            "![output of b2]",
        ),
        # The inline backend's figure formats wait in IPython's configuration.
        (
            "%config InlineBackend.figure_formats = ['svg']\nimport matplotlib.pyplot as plt",
            "plt.plot([1, 2])\nplt.show()",
            ".svg)",
        ),
    ],
    ids=[
        "precision",
        "precision before numpy",
        "numpy",
        "printer removed",
        "figure printer",
        "figure formats",
    ],
)
def test_how_ipython_displays_values_travels_with_the_snapshot(
    mdrun: Mdrun, first: str, last: str, shown: str
) -> None:
    document = f"```python snapshot=true\n{first}\n```\n\n```python\n{last}\n```\n"
    text = _restored_after_an_edit(mdrun, document, f"{last}\n", f"{last}  # shown\n")
    assert shown in text


def test_moving_the_document_folder_keeps_everything_cached(mdrun: Mdrun, tmp_path: Path) -> None:
    mdrun.write("doc.md", CHAIN)
    mdrun("run", "doc.md")
    moved = Mdrun(tmp_path / "moved", mdrun.store)
    moved.write("doc.md", mdrun.read("doc.md"))
    _, report = moved.run_reported("run", "doc.md")
    assert report.with_status("cached") == ["b1", "b2", "b3", "b4"]


def _state_records(mdrun: Mdrun, block_id: str) -> list[dict[str, object]]:
    paths = (mdrun.store / "store").glob(f"*-{block_id}/*/_state.json")
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


def test_a_state_record_lists_what_its_block_changed_not_every_variable(mdrun: Mdrun) -> None:
    count = 40
    # (No snapshots: the edit below replays the blocks before the one it changed.)
    blocks = [f"```python snapshot=false\nv{index} = {index}\n```\n" for index in range(count)]
    mdrun.write("doc.md", "\n".join(blocks))
    assert mdrun("run", "doc.md").code == 0
    (first,) = _state_records(mdrun, "b1")
    assert first["since"] == "nothing"
    assert first["changed"] == ["v0"]
    for index in range(1, count):
        (record,) = _state_records(mdrun, f"b{index + 1}")
        assert record["since"] == "the block before"
        assert record["changed"] == [f"v{index}"], record
        assert record["removed"] == []
    # The store grows with the document, not with its square.
    sizes = [len(json.dumps(_state_records(mdrun, f"b{index + 1}"))) for index in range(count)]
    assert max(sizes) < 2 * min(sizes)

    # A block run after the kernel replayed the blocks before it has no baseline: its record
    # lists every variable. (After a snapshot was loaded, the loaded state is its baseline.)
    _edit(mdrun, "doc.md", f"v{count - 1} = {count - 1}", f"v{count - 1} = -1\ndel v0")
    assert mdrun("run", "doc.md").code == 0
    (_, edited) = sorted(
        _state_records(mdrun, f"b{count}"), key=lambda record: record["since"] == "nothing"
    )
    assert edited["since"] == "nothing"
    assert edited["changed"] == sorted(f"v{index}" for index in range(1, count))


def test_an_unchanged_variable_is_stored_once_and_the_store_stays_sound(mdrun: Mdrun) -> None:
    document = (
        "```python snapshot=true\nbig = list(range(200_000))\n```\n\n"
        "```python snapshot=true\nsmall = 1\n```\n\n"
        "```python\nprint(len(big) + small)\n```\n"
    )
    mdrun.write("doc.md", document)
    assert mdrun("run", "doc.md").code == 0
    files = {
        block: {
            name: (index.parent / file)
            for file, entry in json.loads(index.read_text())["files"].items()
            for name in entry["names"]
        }
        for block in ("b1", "b2")
        for index in (mdrun.store / "store").glob(f"*-{block}/*/_snapshot.json")
    }
    assert files["b1"]["big"].samefile(files["b2"]["big"])  # one file, two realizations
    assert "small" not in files["b1"]
    assert mdrun("store", "verify").code == 0

    # The first block's realization goes (as GC removes one): the second's file stays, and
    # stays read-only.
    Store.initialize(mdrun.store).local.remove(files["b1"]["big"].parent)
    assert not files["b1"]["big"].exists()
    assert files["b2"]["big"].stat().st_mode & 0o222 == 0
    assert mdrun("store", "verify").code == 0


PARTIAL = """\
```python snapshot=true
import time
big = list(range(300_000))
small = 1
time.sleep(1.5)
```

```python
print(small)
```
"""


def test_a_restore_loads_only_what_is_read_and_a_block_that_reaches_more_runs_again(
    mdrun: Mdrun,
) -> None:
    mdrun.write("doc.md", PARTIAL)
    helper = "import __main__\ndef show():\n    exec('print(len(big))', vars(__main__))\n"
    mdrun.write("helper.py", helper)
    assert mdrun("run", "doc.md").code == 0
    _edit(mdrun, "doc.md", "print(small)", "print(small + 1)")
    completed, report = mdrun.run_reported("run", "doc.md")
    assert "1 state restored from snapshots" in completed.err, completed.err
    assert report.with_status("executed") == ["b2"]
    assert "\n2\n" in mdrun.read("doc.md")

    # `big` was left in its file; a library function reaches it by a way the analysis of the
    # block does not see: the block runs again with everything loaded, as a fresh run.
    _edit(mdrun, "doc.md", "print(small + 1)", "import helper\nhelper.show()")
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0, completed.err
    assert "300000" in mdrun.read("doc.md")
    assert "NameError" not in mdrun.read("doc.md")
    # Loaded twice: only what the block names, then everything.
    assert "2 state restored from snapshots" in completed.err, completed.err


def test_a_blocks_recorded_time_leaves_out_the_digest_of_the_state_it_leaves(
    mdrun: Mdrun,
) -> None:
    # The state after the second block is digested in its request, but replaying the block
    # costs only its own time: counted in, 500 MB digested after each quick block made the cost
    # model snapshot an array that the first block rebuilds faster than it loads.
    document = (
        "```python\nimport numpy\nbig = numpy.ones(25_000_000)\n```\n\n"
        "```python\nbig[0] += 1\n```\n"
    )
    mdrun.write("doc.md", document)
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0, completed.err
    (state,) = _state_records(mdrun, "b2")
    (outputs,) = (mdrun.store / "store").glob("*-b2/*/outputs.json")
    seconds = json.loads(outputs.read_text(encoding="utf-8"))["seconds"]
    assert isinstance(state["capture_seconds"], float)
    assert seconds < state["capture_seconds"], (seconds, state)
    assert report.records[1]["seconds"] == pytest.approx(seconds, abs=1e-5)
    assert not list((mdrun.store / "store").glob("*/*/_snapshot.json"))
