"""The state digest computed incrementally (only what a block may have touched) equals the full
digest, checked in this process: `kernel_state` is plain Python, so no kernel is needed."""

from __future__ import annotations

import contextlib
import itertools
import json
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdrun.document import kernel_digest, kernel_rollback, kernel_snapshot, kernel_state
from mdrun.document.kernel_state import group_names
from mdrun.document.kernel_touched import Reach, ReachIndex, Variables, names_in_code

STATEMENTS = (
    "a = [1]",
    "b = a",
    "a.append(2)",
    "b.append(3)",
    "c = {'k': a}",
    "c['k'].append(4)",
    "e = c['k']",
    "e.append(8)",
    "def f():\n    a.append(9)",
    "def f():\n    global b\n    b = 5",
    "def g():\n    f()",
    "f()",
    "g()",
    "del a",
    "a = a + [1]",
    "class K:\n    def bump(self):\n        a.append(7)",
    "k = K()",
    "k.x = b",
    "k.x.append(1)",
    "k.bump()",
    "import numpy as np\nn = np.zeros(3)",
    "v = n[1:]",
    "n[1] += 5",
    "v[0] -= 1",
    "t = (a, 1)",
    "t[0].append(0)",
    "s = 'text'",
    "h = [f]",
    "h[0]()",
    "h = [lambda: a.append(1)]",
    "def q():\n    b.append(5)\nq()",
    "w = {'x': b}\nw['x'].append(6)",
    "import random\nr = random.random()",
    # Arrays that a block only reads keep their digest (`kernel_reads`); every way of changing
    # one must still be seen.
    "import numpy as np\nm = np.arange(6.0)",
    "print(m[2] * 3, m.sum(), len(m), m.shape, f'{m[0]}', m.T[1] > 0)",
    "x = m[1:3]",
    "x[0] = 42.0",
    "m.T[0] = 7.0",
    "m.sort()",
    "m.reshape(2, 3)[0, 0] = 1.0",
    "m.clip(0, 1, out=m)",
    "np.negative(m, m)",
    "mm = m\nmm += 1",
    "for row in m.reshape(3, 2):\n    row[0] = 0",
    "[r.fill(1) for r in m.reshape(3, 2)]",
    "m[m > 3] = 0",
    "del m[0]",
    "m2 = m.copy()\nm2[0] = 5",
    "mo = np.array([[1], [2]], dtype=object)\nprint(mo[0])",
    "mo[0].append(3)",
)


def _run_block(namespace: dict[str, Any], code: str, folder: Path) -> str:
    """Run one block as the kernel would, and capture the state it leaves."""
    kernel_state._note_execution()
    kernel_state._note_cell_start(types.SimpleNamespace(raw_cell=code))
    # A block may raise (a name deleted before): the state it leaves is captured too.
    with contextlib.suppress(Exception):
        exec(compile(code, "<block>", "exec"), namespace)
    return _capture(namespace, folder)


def _capture(namespace: dict[str, Any], folder: Path) -> str:
    report = folder / "state.json"
    kernel_state.capture(namespace, {"__builtins__"}, str(report), None)
    return str(json.loads(report.read_text())["digest"])


def _full_digest(namespace: dict[str, Any], folder: Path) -> str:
    """The digest as a capture without a baseline computes it (every variable digested)."""
    kernel_state._executions_since_capture[0] = 5
    return _capture(namespace, folder)


@pytest.fixture(autouse=True)
def _fresh_agent() -> None:
    kernel_state.forget_last_capture()
    kernel_state._executions_since_capture[0] = 0


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(STATEMENTS), min_size=1, max_size=12))
def test_incremental_digest_equals_full_digest(tmp_path: Path, blocks: list[str]) -> None:
    kernel_state.forget_last_capture()
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for code in blocks:
        incremental = _run_block(namespace, code, tmp_path)
        assert incremental == _full_digest(namespace, tmp_path), code


def counting_digests(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """From now on, every value digested, in order."""
    digested: list[Any] = []
    original = kernel_digest.value_digest

    def counting(value: Any, memo: list[Any] | None = None) -> tuple[str, int]:
        digested.append(value)
        return original(value, memo)

    monkeypatch.setattr(kernel_digest, "value_digest", counting)
    return digested


def test_an_untouched_variable_is_not_digested_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    _run_block(namespace, "big = list(range(1000))\nsmall = 1", tmp_path)
    digested = counting_digests(monkeypatch)
    _run_block(namespace, "small = [2]", tmp_path)
    assert namespace["big"] not in digested
    assert [2] in digested


def test_code_that_reaches_names_dynamically_is_not_analysed() -> None:
    assert names_in_code("x = 1\ny = x") == frozenset({"x", "y"})
    assert names_in_code("from os import *") is None
    assert names_in_code("globals()['x'] = 2") is None
    assert names_in_code("exec('x = 2')") is None
    assert names_in_code("%time x = 1") is None
    assert names_in_code("from IPython import get_ipython as g") is None
    assert names_in_code("from sys import modules") is None
    assert names_in_code("from __main__ import x") is None
    assert names_in_code("import os.path\nfor i in x: pass") == frozenset({"os", "i", "x"})


def test_a_large_buffer_is_digested_by_its_content(monkeypatch: pytest.MonkeyPatch) -> None:
    numpy = pytest.importorskip("numpy")
    hashed: list[int] = []
    parallel = kernel_digest._parallel_digest

    def counting(raw: memoryview) -> bytes:
        hashed.append(len(raw))
        return parallel(raw)

    monkeypatch.setattr(kernel_digest, "_parallel_digest", counting)
    array = numpy.zeros(kernel_digest.PARALLEL_BYTES + 5, dtype=numpy.uint8)
    before = kernel_digest.value_digest(array)
    assert hashed == [array.nbytes]  # out of band, in chunks
    assert kernel_digest.value_digest(array.copy()) == before
    array[-1] = 1  # the last chunk
    assert kernel_digest.value_digest(array) != before
    array[-1], array[kernel_digest.CHUNK_BYTES] = 0, 1  # the second chunk
    assert kernel_digest.value_digest(array) != before


def _undo(folder: Path) -> Any:
    return json.loads((folder / "state.json").read_text())["undo"]


class _ReducedToAFreshState:
    """Pickled through a state the pickle makes for itself (a dict holding a dict holding a
    list), with the object's own list inside."""

    def __init__(self) -> None:
        self.items = [1]

    def __reduce__(self) -> tuple[Any, ...]:
        return _ReducedToAFreshState, (), {"items": self.items, "made": {"for": ["it"]}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.items = state["items"]


def test_what_a_pickle_makes_for_itself_is_in_no_variables_reach() -> None:
    """Objects a pickle makes and frees are soon other objects' addresses: counted in a
    variable's reach, they would make it seem to share an object with a later variable, and
    the state's digest would depend on where Python happened to put that one."""
    value = _ReducedToAFreshState()
    _digest, _size, reach = kernel_digest.digest_and_reach(value)
    assert reach.positions is not None
    assert reach.positions.keys() == {id(value), id(value.items)}


class _ScaledOnPickling:
    """Pickled through an array its `__getstate__` makes (held by a pickle buffer, out of
    the pickle's memo)."""

    def __init__(self) -> None:
        import numpy as np

        self.data = np.arange(4.0)

    def __getstate__(self) -> dict[str, Any]:
        scaled = self.data * 2
        return {"scaled": scaled, "head": scaled[:2]}


def test_an_array_a_pickle_makes_for_itself_is_in_no_variables_reach() -> None:
    """Nor is it when a view of it was made too (numpy's views hold their base where the
    garbage collector does not look)."""
    value = _ScaledOnPickling()
    _digest, _size, reach = kernel_digest.digest_and_reach(value)
    assert reach.positions is not None
    assert reach.positions.keys() == {id(value)}


@pytest.mark.parametrize(
    "codes",
    [
        (
            "b = bytearray(4)\na = np.frombuffer(b, np.uint8)",
            "b = bytearray(4)\na = np.zeros(4, np.uint8)",
        ),
        (
            "b = bytearray(5)\na = np.frombuffer(b, np.uint8, 4)",
            "b = bytearray(5)\na = np.frombuffer(b, np.uint8, 4, 1)",
        ),
        ("z = np.zeros(3)\nv = (z[1:], z[:2])", "z = np.zeros(3)\nv = (z[1:], np.zeros(2))"),
        (
            "z = np.zeros(4)\nv = np.lib.stride_tricks.sliding_window_view(z, 2)",
            "z = np.zeros(4)\nv = np.lib.stride_tricks.sliding_window_view(z.copy(), 2)",
        ),
    ],
)
def test_arrays_that_show_other_memory_digest_apart(tmp_path: Path, codes: tuple[str, str]) -> None:
    """An array over a bytearray, or over another part of it, or one of two views of an
    array made a copy: equal values, but writing through it changes another variable, or
    another part of it."""
    digests = []
    for code in codes:
        kernel_state.forget_last_capture()
        digests.append(
            _run_block({"__name__": "__main__"}, "import numpy as np\n" + code, tmp_path)
        )
    assert digests[0] != digests[1]


def test_a_function_is_digested_with_the_names_of_the_variables_it_uses(tmp_path: Path) -> None:
    """Not their values: each is digested on its own. A private global is not a variable the
    state's digest holds: its value is in the function's digest."""

    def digest_of_f(code: str) -> str:
        namespace: dict[str, Any] = {"__name__": "__main__"}
        kernel_digest.use_namespace(namespace)
        exec(code, namespace)
        return kernel_digest.digest_value(namespace["f"])[0]

    uses_data = "def f():\n    return data + _scale\n"
    base = digest_of_f(f"data = 1\n_scale = 2\n{uses_data}")
    assert digest_of_f(f"data = 5\n_scale = 2\n{uses_data}") == base
    assert digest_of_f(f"data = 1\n_scale = 3\n{uses_data}") != base
    assert digest_of_f("data = 1\n_scale = 2\ndef f():\n    return data - _scale\n") != base
    # A module made in the session is named by its own digest: its globals count here.
    made = "import types\ncfg = types.ModuleType('cfg')\ncfg.value = {}\n"
    made += "def f():\n    return cfg.value\n"
    assert digest_of_f(made.format(1)) != digest_of_f(made.format(2))
    # A function whose globals are another dictionary (a script's, run by `%run`) holds them.
    script = "g = {'__name__': '__main__'}\nexec('data = 1\\ndef f():\\n    return data', g)\n"
    assert digest_of_f(script + "f = g['f']") != digest_of_f(script + "g['data'] = 2\nf = g['f']")


class _RaisingArrayLike:
    """Says it is an array, and raises when asked how (a property of the session's)."""

    def __init__(self) -> None:
        self.items = [1]

    @property
    def __array_interface__(self) -> Any:
        raise ValueError("not an array after all")

    @property
    def base(self) -> Any:
        raise RuntimeError("no base")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_RaisingArrayLike, ())


def test_a_value_whose_array_properties_raise_is_still_digested() -> None:
    """Its pickle does not ask them: neither may the look at what it shares."""
    value = [_RaisingArrayLike()]
    _digest, _size, reach = kernel_digest.digest_and_reach(value)
    assert reach.positions is not None
    assert id(value) in reach.positions


def test_where_two_names_share_an_object_is_in_the_states_digest(tmp_path: Path) -> None:
    """`v = z[0]` and `v = z[1]` leave equal values; a change through `v` lands elsewhere."""
    digests = []
    for code in ("z = [[1], [1]]\nv = z[0]", "z = [[1], [1]]\nv = z[1]", "z = [[1], [1]]\nv = [1]"):
        kernel_state.forget_last_capture()
        digests.append(_run_block({"__name__": "__main__"}, code, tmp_path))
    assert len(set(digests)) == 3


_OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from("abcd"),
        st.one_of(
            st.none(),
            st.dictionaries(st.integers(1, 5), st.integers(-3, 3), max_size=4),
        ),
        st.integers(1, 5),
    ),
    max_size=25,
)


@given(_OPERATIONS)
def test_the_groups_of_names_that_share_are_kept_as_if_made_anew(
    operations: list[tuple[str, dict[int, int] | None, int]],
) -> None:
    """`ReachIndex.aliases`, kept up to date as names are put and discarded, is what an index
    made anew from the same reaches gives, and groups exactly the names that hold a common
    object. (None: a name whose reach is unknown, put or discarded, bound to an object.)"""
    index = ReachIndex()
    bound: dict[str, tuple[Reach, bool]] = {}
    for name, positions, object_id in operations:
        if positions is None and name in bound and object_id % 2:
            index.discard(name)
            del bound[name]
            continue
        reach = Reach(object_id, positions, frozenset())
        changeable = positions is None or object_id in positions
        index.put(name, reach, changeable)
        bound[name] = (reach, changeable)
        anew = ReachIndex()
        for other in sorted(bound, reverse=True):
            anew.put(other, *bound[other])
        assert index.aliases() == anew.aliases()
        holding = {
            other: set(reach.positions or ())
            | ({reach.object_id} if reach.positions is None else set())
            for other, (reach, changeable) in bound.items()
            if reach.positions is not None or changeable
        }
        linked = {
            frozenset((first, second))
            for first in holding
            for second in holding
            if first != second and holding[first] & holding[second]
        }
        grouped = [group_names(group) for group in index.aliases()]
        for first, second in itertools.combinations(sorted(holding), 2):
            together = any(first in group and second in group for group in grouped)
            assert together == _connected(linked, first, second)


def _connected(links: set[frozenset[str]], first: str, second: str) -> bool:
    seen, pending = {first}, [first]
    while pending:
        name = pending.pop()
        for link in links:
            if name in link:
                (other,) = link - {name}
                if other not in seen:
                    seen.add(other)
                    pending.append(other)
    return second in seen


def test_a_block_is_undoable_only_while_no_restored_variable_is_unloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    kernel_state.forget_last_capture()  # a fresh kernel
    kernel_rollback.note_start(namespace, {"__builtins__"})
    # (This process's working folder and environment differ from what a kernel starts with.)
    _run_block(namespace, "pass", tmp_path)
    _run_block(namespace, "x = 1", tmp_path)
    assert _undo(tmp_path) == ["x"]
    _run_block(namespace, "y = [x]", tmp_path)
    assert _undo(tmp_path) == ["y"]
    _run_block(namespace, "y.append(2)", tmp_path)
    assert _undo(tmp_path) is None  # it changed a value that existed
    # After a partial restore, binding a name of an unloaded group drops the group: deleting
    # the name again would lose the group's digest.
    unloaded = {"names": ["big"], "digests": {"big": "0" * 64}, "bytes": 0}
    monkeypatch.setitem(kernel_snapshot._deferred_files, "group", unloaded)
    _run_block(namespace, "big = 2", tmp_path)
    assert _undo(tmp_path) is None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(STATEMENTS), min_size=1, max_size=10))
def test_the_changed_names_are_those_whose_digest_changed(
    tmp_path: Path, blocks: list[str]
) -> None:
    # The record lists only the names digested again; it must say what comparing every name
    # with the block before would say.
    kernel_state.forget_last_capture()
    namespace: dict[str, Any] = {"__name__": "__main__"}
    before: dict[str, str | None] | None = None
    for code in blocks:
        _run_block(namespace, code, tmp_path)
        record = json.loads((tmp_path / "state.json").read_text())
        after = dict(kernel_state._last_capture[0])
        if before is not None:
            changed = [name for name, digest in after.items() if before.get(name, "") != digest]
            assert record["since"] == "the block before"
            assert record["changed"] == sorted(changed), code
            assert record["removed"] == sorted(set(before) - set(after)), code
        before = after


@given(
    st.dictionaries(st.text(max_size=6), st.text(max_size=8), max_size=12),
    st.dictionaries(st.text(max_size=6), st.text(max_size=8), max_size=4),
)
def test_the_digests_text_is_the_sorted_json_of_every_digest(
    variables: dict[str, str], others: dict[str, str]
) -> None:
    # The state digest hashes this text: it must stay what json.dumps made, or every stored
    # result key would change.
    table = Variables()
    for name, digest in variables.items():
        table.put(name, 0, (digest, 1), Reach(0, {}, frozenset()), None)
    expected = json.dumps({**variables, **others}, sort_keys=True)
    assert table.digests_json(others) == expected


def test_a_long_session_digests_only_what_each_block_touched(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for index in range(50):
        _run_block(namespace, f"v{index} = [{index}]", tmp_path)
    table = kernel_state._table()
    assert sorted(table.known) == sorted(f"v{index}" for index in range(50))
    assert table.size == sum(kernel_digest.value_digest([index])[1] for index in range(50))
    _run_block(namespace, "del v3\nv7.append(1)", tmp_path)
    record = json.loads((tmp_path / "state.json").read_text())
    assert (record["changed"], record["removed"]) == (["v7"], ["v3"])
    assert "v3" not in table.known and "v3" not in table.index.reaches
    assert _run_block(namespace, "pass", tmp_path) == _full_digest(namespace, tmp_path)
