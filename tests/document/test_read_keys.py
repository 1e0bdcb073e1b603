"""Pure blocks keyed by what they read (`block_keys`), end to end in a real kernel: an edit
re-runs the blocks that read what it changed, and no others; what is shown equals a fresh run."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from tests.document.conftest import Mdrun, Report

pytestmark = pytest.mark.kernel


def _blocks(*codes: str) -> str:
    return "\n".join(f"```python\n{textwrap.dedent(code).strip()}\n```\n" for code in codes)


def _outputs(text: str) -> dict[str, str]:
    """Each output region's text, by block id."""
    found = re.findall(r"<!-- mdrun:output id=(\S+) -->\n(.*?)<!-- mdrun:end -->", text, re.S)
    return dict(found)


def _first_run(mdrun: Mdrun, document: str) -> None:
    mdrun.write("doc.md", document)
    completed = mdrun("run", "doc.md")
    assert completed.code == 0, completed.err


def _rerun(mdrun: Mdrun, old: str, new: str) -> Report:
    """Edit doc.md (`old` becomes `new`) and run it again; its report."""
    mdrun.write("doc.md", mdrun.read("doc.md").replace(old, new))
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0, completed.err
    return report


def _rerun_failing(mdrun: Mdrun, old: str, new: str) -> Report:
    """As `_rerun`, for an edit that makes a block fail."""
    mdrun.write("doc.md", mdrun.read("doc.md").replace(old, new))
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 1, completed.err
    return report


def _fresh(tmp_path: Path, name: str, text: str) -> dict[str, str]:
    """The outputs of a first run of `text` on an empty store."""
    fresh = Mdrun(tmp_path / name, tmp_path / f"{name}-store")
    fresh.write("doc.md", text)
    assert fresh("run", "doc.md").code == 0
    return _outputs(fresh.read("doc.md"))


def test_an_edit_reruns_only_the_blocks_that_read_what_it_changed(
    mdrun: Mdrun, tmp_path: Path
) -> None:
    codes = [f"v{index} = {index}\nprint('block', {index}, v{index})" for index in range(8)]
    codes.append("print('sum', v2 + v6)")
    mdrun.write("doc.md", _blocks(*codes))
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0 and len(report.with_status("executed")) == 9

    codes[3] = "v3 = 1003\nprint('block', 3, v3)"
    report = _rerun(mdrun, "v3 = 3\n", "v3 = 1003\n")
    assert report.with_status("executed") == ["b4"]
    assert _outputs(mdrun.read("doc.md")) == _fresh(tmp_path, "fresh1", _blocks(*codes))

    # An edit of a value a later block reads re-runs that block too.
    codes[6] = "v6 = 1006\nprint('block', 6, v6)"
    report = _rerun(mdrun, "v6 = 6\n", "v6 = 1006\n")
    assert report.with_status("executed") == ["b7", "b9"]
    assert _outputs(mdrun.read("doc.md")) == _fresh(tmp_path, "fresh2", _blocks(*codes))


def test_a_block_that_is_not_pure_after_a_pure_one_sees_the_state_change(mdrun: Mdrun) -> None:
    """A file written by the first block is read by the third: the pure block between them
    stays cached, the third runs again (it is keyed by the whole state the pure one left)."""
    document = _blocks(
        """
        data = [1, 2]
        with open("data.txt", "w") as stream:
            stream.write(str(data))
        """,
        "print('between')",
        "print(open('data.txt').read())",
    )
    _first_run(mdrun, document)
    report = _rerun(mdrun, "data = [1, 2]", "data = [1, 2, 3]")
    assert report.statuses == {"b1": "executed", "b2": "cached", "b3": "executed"}
    assert "[1, 2, 3]" in _outputs(mdrun.read("doc.md"))["b3"]


def test_a_pure_blocks_snapshot_from_another_state_is_not_loaded(mdrun: Mdrun) -> None:
    """The second block's stored snapshot was taken when `a` was 91: after `a` changed, the
    block is still cached (it reads nothing of `a`), but restoring the state after it must not
    load that snapshot."""
    document = (
        "```python snapshot=false\nimport time\ntime.sleep(0.6)\na = 91\n```\n\n"
        "```python snapshot=true\nb = 92\n```\n\n"
        "```python\nprint(a, b)\n```\n"
    )
    _first_run(mdrun, document)
    mdrun.write("doc.md", mdrun.read("doc.md").replace("a = 91", "a = 93"))
    assert mdrun("run", "doc.md").code == 0
    # Only the last block runs: the kernel must reach the state after the second block.
    report = _rerun(mdrun, "print(a, b)", "print('now', a, b)")
    assert report.statuses == {"b1": "cached", "b2": "cached", "b3": "executed"}
    assert "now 93 92" in _outputs(mdrun.read("doc.md"))["b3"]


def test_a_list_changed_through_another_name_reruns_its_readers(mdrun: Mdrun) -> None:
    document = _blocks(
        "xs = [1, 2]",
        "ys = xs",
        "ys.append(3)",
        "print('xs', xs)",
        "print('other')",
    )
    _first_run(mdrun, document)
    report = _rerun(mdrun, "ys.append(3)", "ys.append(4)")
    assert report.statuses == {
        "b1": "cached",
        "b2": "cached",
        "b3": "executed",
        "b4": "executed",
        "b5": "cached",
    }
    assert "xs [1, 2, 4]" in _outputs(mdrun.read("doc.md"))["b4"]


def test_status_foresees_which_blocks_an_edit_reruns(mdrun: Mdrun) -> None:
    """Before running: the blocks that read nothing a changed pure block names are cached."""
    document = _blocks(
        "price = 12",
        "count = 3",
        "print('count:', count)",
        "print('total:', price * count)",
        "import math\nprint(math.pi)",
    )
    _first_run(mdrun, document)
    mdrun.write("doc.md", mdrun.read("doc.md").replace("price = 12", "price = 15"))
    lines = [line.split(": ", 1)[1] for line in mdrun("status", "doc.md").out.splitlines()]
    assert lines == [
        "b1: stale (its code changed)",
        "b2: cached",
        "b3: cached",
        "b4: stale (a variable it reads changed)",
        "b5: stale (an upstream block changed: b4)",
    ]
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0
    assert report.with_status("executed") == ["b1", "b4", "b5"]


INTERPRETER_STATE = {
    "hidden name": (
        "get_ipython().push({'sum': lambda numbers: 99}, interactive=False)",
        "get_ipython().push({'sum': lambda numbers: 98}, interactive=False)",
        "print('sum is', sum([1, 2]))",
        "sum is 98",
    ),
    "builtin rebound": (
        "import builtins\nbuiltins.divmod = lambda a, b: 'patched'",
        "import builtins\nbuiltins.divmod = lambda a, b: 'patched again'",
        "print('divmod is', divmod(7, 2))",
        "divmod is patched again",
    ),
    "display precision": (
        "%precision 3",
        "%precision 2",
        "x = 1 / 3\nx",
        "0.33\n",
    ),
    "display printer": (
        "get_ipython().display_formatter.formatters['text/plain'].for_type(int, "
        "lambda n, p, cycle: p.text('int ' + str(n)))",
        "get_ipython().display_formatter.formatters['text/plain'].for_type(int, "
        "lambda n, p, cycle: p.text('number ' + str(n)))",
        "n = 3\nn",
        "number 3",
    ),
    "digits limit": (
        "import sys\nsys.set_int_max_str_digits(0)",
        "import sys\nsys.set_int_max_str_digits(640)",
        "print('digits', len(str(10 ** 5000)))",
        "Exceeds the limit",
    ),
}
"""Interpreter state outside variables that changes what a plain computation shows: a first
block that sets it one way, then another way (what the kernel reports of it may read the same),
a pure block, and what it shows after the edit."""


@pytest.mark.parametrize("case", INTERPRETER_STATE, ids=list(INTERPRETER_STATE))
def test_interpreter_state_outside_variables_keeps_blocks_keyed_by_the_chain(
    mdrun: Mdrun, case: str
) -> None:
    setting, other_setting, pure, shown = INTERPRETER_STATE[case]
    _first_run(mdrun, _blocks(setting, pure))
    mdrun.write("doc.md", mdrun.read("doc.md").replace(setting, other_setting))
    completed, report = mdrun.run_reported("run", "doc.md", "--keep-going")
    assert report.statuses["b2"] in ("executed", "failed"), completed.err
    assert shown in _outputs(mdrun.read("doc.md"))["b2"]


def test_a_state_holding_an_undigestible_value_keeps_its_chain_after_a_pure_block(
    mdrun: Mdrun,
) -> None:
    """An open file has no digest: after the pure block, the next block is keyed by the keys
    before it, which the store gives back, not by a digest made anew for every run."""
    _first_run(
        mdrun,
        _blocks(
            "x = 1",
            "handle = open('data.txt', 'w')",
            "print('between')",
            "import math\nprint(math.floor(2.5))",
        ),
    )
    report = _rerun(mdrun, "x = 1\n", "x = 1  # one\n")
    assert report.with_status("executed") == ["b1"]


def test_a_pure_block_after_a_new_failure_is_not_run_as_in_a_fresh_run(mdrun: Mdrun) -> None:
    _first_run(mdrun, _blocks("v = 2", "del v", "print('after')"))
    report = _rerun_failing(mdrun, "v = 2", "w = 2")
    assert report.statuses == {"b1": "executed", "b2": "failed", "b3": "not-run"}
    assert "**not run**" in _outputs(mdrun.read("doc.md"))["b3"]


def test_a_callback_run_by_freeing_a_set_is_seen_as_in_a_fresh_run(
    mdrun: Mdrun, tmp_path: Path
) -> None:
    """Rebinding a name that held a set with a finalizer runs the session's code, which binds a
    name the block does not mention: the block after it must see that (a capture told only the
    block's names would not)."""
    document = _blocks(
        """
        import weakref
        count = 0
        s = {1}
        def bump():
            global count
            count += 1
        weakref.finalize(s, bump)
        """,
        "s = 0",
        "print('count', count)",
    )
    _first_run(mdrun, document)
    assert "count 1" in _outputs(mdrun.read("doc.md"))["b3"]
    _rerun(mdrun, "s = 0", "t = 0")
    edited = document.replace("s = 0", "t = 0")
    assert _outputs(mdrun.read("doc.md"))["b3"] == _fresh(tmp_path, "fresh", edited)["b3"]
    assert "count 0" in _outputs(mdrun.read("doc.md"))["b3"]


def test_a_set_weakly_referenced_after_it_was_bound_is_not_plain_data(
    mdrun: Mdrun, tmp_path: Path
) -> None:
    """A block can attach a finalizer to a set without changing its digest: rebinding the set
    later runs the session's code (here it binds `count`), so no block that names a set is
    keyed by what it reads, nor its capture told only its names."""
    document = _blocks(
        "s = {1, 2}\ncount = 0",
        """
        import weakref
        def bump():
            global count
            count += 1
        weakref.finalize(s, bump);
        """,
        "s = 0",
        "print('count', count)",
    )
    _first_run(mdrun, document)
    assert "count 1" in _outputs(mdrun.read("doc.md"))["b4"]
    old = "weakref.finalize(s, bump);"
    _rerun(mdrun, old, "x = 1")
    assert (
        _outputs(mdrun.read("doc.md"))["b4"]
        == _fresh(tmp_path, "fresh", document.replace(old, "x = 1"))["b4"]
    )


def test_a_thread_a_block_started_keeps_the_blocks_after_it_off_their_reads(
    mdrun: Mdrun, tmp_path: Path
) -> None:
    """Another thread may change a variable while a pure block runs, or between blocks."""
    document = _blocks(
        "log = []",
        "import threading\nthreading.Timer(0.05, log.append, ['tick']).start()",
        "n = 0\nwhile n < 3_000_000:\n    n += 1",
        "print(log)",
    )
    _first_run(mdrun, document)
    old = "log.append, ['tick']"
    _rerun(mdrun, old, "log.extend, [[]]")
    assert (
        _outputs(mdrun.read("doc.md"))["b4"]
        == _fresh(tmp_path, "fresh", document.replace(old, "log.extend, [[]]"))["b4"]
    )
    assert "[]" in _outputs(mdrun.read("doc.md"))["b4"]


def test_blocks_after_a_figure_are_still_keyed_by_what_they_read(mdrun: Mdrun) -> None:
    """pyplot gives figures a printer when it first draws: it shows no plain data, so the
    pure blocks after it are still keyed by what they read."""
    document = _blocks(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
        "a = 1",
        "b = 2",
        "print(a)",
    )
    _first_run(mdrun, document)
    report = _rerun(mdrun, "b = 2", "b = 3")
    assert report.with_status("executed") == ["b3"]


def test_a_printer_for_a_builtin_type_keeps_the_blocks_off_their_reads(
    mdrun: Mdrun, tmp_path: Path
) -> None:
    """A pure block may compute a set, whose printer runs the session's code."""
    document = _blocks(
        "counter = []",
        "_ = get_ipython().display_formatter.formatters['text/plain'].for_type(\n"
        "    set, lambda o, p, c: (counter.append(len(o)), p.text('SET')))",
        "xs = [1, 2]",
        "set(xs)",
        "print(sum(counter))",
    )
    _first_run(mdrun, document)
    _rerun(mdrun, "xs = [1, 2]", "xs = [1, 2, 3]")
    fresh = _fresh(tmp_path, "fresh", document.replace("xs = [1, 2]", "xs = [1, 2, 3]"))
    assert _outputs(mdrun.read("doc.md"))["b5"] == fresh["b5"]


def test_a_long_output_leaves_the_state_known(mdrun: Mdrun) -> None:
    """pyzmq starts a thread of its own the first time the kernel sends 64 KiB or more at once
    (a figure, a long output): it runs none of the session's code, and blocks after it are
    still keyed by what they read."""
    document = _blocks("x = 1", "print('-' * 100_000)", "y = 2", "print(x)")
    _first_run(mdrun, document)
    records = [json.loads(path.read_text()) for path in mdrun.store.glob("store/*/*/_state.json")]
    assert len(records) == 4
    assert not any("<other code>" in record["opaque"] for record in records)
    report = _rerun(mdrun, "y = 2", "y = 3")
    assert report.with_status("executed") == ["b3"]


def test_a_figure_drawn_with_pyplot_leaves_the_state_known(mdrun: Mdrun) -> None:
    """pyplot and its inline backend add IPython event callbacks that only draw: they are not
    code that may change variables, so the state after a figure stays known (a block that
    registers a callback of its own makes it unknown)."""
    _first_run(
        mdrun,
        _blocks(
            "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
            "x = 1",
            "get_ipython().events.register('post_run_cell', lambda result: None)",
            "y = 2",
        ),
    )
    unknown = {}
    for record in mdrun.store.glob("store/*/*/_state.json"):
        block = record.parent.parent.name.rpartition("-")[2]
        unknown[block] = "<other code>" in json.loads(record.read_text())["opaque"]
    assert unknown == {"b1": False, "b2": False, "b3": True, "b4": True}
