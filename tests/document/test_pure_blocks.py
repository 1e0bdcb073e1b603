"""Pure blocks and the state mdrun follows without a kernel (`pure_blocks`, `session_state`).

The properties run blocks in this process as the kernel would (`kernel_state` is plain Python):
the state followed from the records is the kernel's own, two states giving a pure block the
same key give it the same outputs and the same effect, and a capture told what a pure block
names records what one that looks at everything does.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mdrun.document import kernel_other_code, kernel_state
from mdrun.document.pure_blocks import pure_block
from mdrun.document.session_state import SessionState

PURE = (
    "x = 1",
    "x = 2",
    "y = x + 1",
    "print('x is', x)",
    "z = [x, 1]",
    "z += [1]",
    "w = z",
    "s = 'ab'.upper() + str(x)",
    "t = (x, s)",
    "print(len(z), sorted(z), t)",
    "del y",
    "q = {k: v for k, v in [(1, x), (2, 3)]}",
    "print(q.get(1), sum(q.values()))",
    "n = 0\nfor i in range(x):\n    n += i",
    "e = 1 / (x - x)",
)
"""Blocks `pure_block` accepts (the last raises)."""
IMPURE = (
    "z.append(5)",
    "def f():\n    return x",
    "u = f()",
    "import math\nm = math.pi",
    "print(open)",
    "print(_)",
    "_x = 3",
    "w[0] = 9",
    "%time x = 1",
    "import os\nos.environ['K'] = '1'",
    "same = x is z",
)
"""Blocks it refuses."""


@pytest.mark.parametrize("code", PURE)
def test_plain_computations_are_pure(code: str) -> None:
    assert pure_block(code) is not None


@pytest.mark.parametrize("code", IMPURE)
def test_code_that_could_reach_anything_else_is_not(code: str) -> None:
    assert pure_block(code) is None


def test_what_a_pure_block_names() -> None:
    block = pure_block("total += len(items)\nprint(total)")
    assert block is not None
    assert block.names == {"total", "items", "len", "print"}
    assert block.called == {"len", "print"}
    assert block.extended == {"total"}


def _run(
    namespace: dict[str, Any], code: str, folder: Path, changes: list[str] | None = None
) -> tuple[str, dict[str, Any]]:
    """Run a block as the kernel would; what it printed (or raised), and its state record
    (`changes`: what the capture is told the block can bind, see `kernel_state.capture`)."""
    kernel_state._note_execution()
    kernel_state._note_cell_start(types.SimpleNamespace(raw_cell=code))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            exec(compile(code, "<block>", "exec"), namespace)
        except Exception as error:  # a block may raise: what it raised is its output
            print(type(error).__name__, error)
    report = folder / "state.json"
    kernel_state.capture(namespace, {"__builtins__"}, str(report), None, changes=changes)
    return printed.getvalue(), json.loads(report.read_text())


@pytest.fixture(autouse=True)
def _fresh_agent() -> None:
    kernel_state.forget_last_capture()
    kernel_state._executions_since_capture[0] = 0


BLOCKS = st.lists(st.sampled_from((*PURE, *IMPURE[:4], "x = [0]", "x = (z, 2)")), max_size=8)
"""Sessions: pure blocks, and others that make functions, modules and shared lists."""


def _followed(blocks: list[str], folder: Path) -> tuple[dict[str, Any], SessionState]:
    """Run `blocks` in a fresh namespace; the namespace and the state followed from records."""
    kernel_state.forget_last_capture()
    kernel_state._executions_since_capture[0] = 0
    namespace: dict[str, Any] = {"__name__": "__main__"}
    state = SessionState()
    # What this process holds outside variables (a kernel's is noted when it starts).
    assert state.apply(_run(namespace, "pass", folder)[1])
    for code in blocks:
        _printed, record = _run(namespace, code, folder)
        assert state.apply(record), code
        if not record["opaque"]:
            assert state.state_digest() == record["digest"], code
    return namespace, state


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(BLOCKS)
def test_the_state_followed_from_records_is_the_kernels(tmp_path: Path, blocks: list[str]) -> None:
    _followed(blocks, tmp_path)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(BLOCKS, BLOCKS, st.sampled_from(PURE))
def test_equal_read_keys_give_equal_outputs_and_effects(
    tmp_path: Path, first: list[str], second: list[str], code: str
) -> None:
    """Two sessions in which a pure block's key is equal: it prints the same, and leaves the
    names it mentions as digested the same, whatever else the sessions hold."""
    block = pure_block(code)
    assert block is not None
    results = []
    for history in (first, second):
        namespace, state = _followed(history, tmp_path)
        key = state.read_key(block)
        printed, record = _run(namespace, code, tmp_path)
        assert state.apply(record, block.names)
        functions = any(isinstance(value, types.FunctionType) for value in namespace.values())
        if key is not None and not record["opaque"] and not functions:
            # Only the names it mentions taken from its record: still the kernel's state
            # (a function using one of them is digested with its value by the kernel), when
            # the aliases are known (else the state's digest is a unique one).
            if state.aliases is not None:
                assert state.state_digest() == record["digest"]
            else:
                assert state.state_digest() != state.state_digest()
        after = {name: state.digests.get(name) for name in block.names}
        results.append((key, printed, after))
    (key1, printed1, after1), (key2, printed2, after2) = results
    if key1 is not None and key1 == key2:
        assert printed1 == printed2
        assert after1 == after2


def test_a_shared_list_extended_in_place_is_not_keyed_by_reads(tmp_path: Path) -> None:
    """`z += [1]` changes a list that `w` shares: the block's key could not say so."""
    _namespace, state = _followed(["x = 1", "z = [x, 1]", "w = z"], tmp_path)
    block = pure_block("z += [1]")
    assert block is not None
    assert state.read_key(block) is None
    assert state.read_key(pure_block("print(z)") or block) is not None


def test_a_forgotten_pure_block_that_names_an_alias_makes_the_aliases_unknown(
    tmp_path: Path,
) -> None:
    """A pure block not in the store may rebind one name of a group bound to one list: until
    it runs, the state's digest is a unique one and no block reading the group is keyed."""
    _namespace, state = _followed(["z = [1]", "w = z"], tmp_path)
    block = pure_block("print(z)")
    assert block is not None
    assert state.read_key(block) is not None
    assert state.state_digest() == state.state_digest()
    state.forget(frozenset({"w"}))
    assert state.aliases is None
    assert state.read_key(block) is None


def test_a_shadowed_builtin_is_not_called_by_a_pure_block(tmp_path: Path) -> None:
    _namespace, state = _followed(["len = 3"], tmp_path)
    block = pure_block("print(len([1]))")
    assert block is not None
    assert state.read_key(block) is None


@pytest.mark.parametrize(
    "code",
    [
        "x = z\nx += [2]",  # x may be a list another variable shares
        "for x in [z]:\n    x += [2]",
        "data = 'é'.encode('ascii', 'mark')",  # a codec error handler of the session's
        "x = " + " + ".join(["1"] * 100_000),  # too deep to parse: not analysed, no crash
    ],
)
def test_what_reaches_more_than_the_values_it_names_is_not_pure(code: str) -> None:
    assert pure_block(code) is None


def test_a_counter_bound_to_a_constant_may_be_augmented() -> None:
    assert pure_block("n = 0\nfor i in range(3):\n    n += i\nprint(n)") is not None


def _records(blocks: list[str], folder: Path, told: bool) -> list[dict[str, Any]]:
    """Run `blocks` in a fresh namespace; their state records (timings left out). With `told`,
    a capture is told what a pure block names whenever mdrun would tell it (its key is read)."""
    kernel_state.forget_last_capture()
    kernel_state._executions_since_capture[0] = 0
    namespace: dict[str, Any] = {"__name__": "__main__"}
    state = SessionState()
    records = []
    for code in ("pass", *blocks):
        block = pure_block(code)
        told_names = None
        if told and block is not None and state.read_key(block) is not None:
            told_names = sorted(block.names)
        _printed, record = _run(namespace, code, folder, told_names)
        state.apply(record)
        if record["opaque"]:
            del record["digest"]  # (made unique: a state that cannot be digested)
        records.append({key: value for key, value in record.items() if "seconds" not in key})
    return records


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(BLOCKS)
@example(["x = 1", "y = x + 1", "del y", "print(x)", "y = x + 1"])
@example(["x = 1", "def f():\n    return x", "x = 2", "u = f()"])
@example(["x = 1", "z = [x, 1]", "w = z", "z += [1]", "x = (z, 2)", "z += [1]"])
def test_a_capture_told_what_a_pure_block_names_records_what_a_full_one_does(
    tmp_path: Path, blocks: list[str]
) -> None:
    assert _records(blocks, tmp_path, told=True) == _records(blocks, tmp_path, told=False)


def test_a_capture_told_what_a_pure_block_names_looks_at_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the modules nor the other variables are looked at again: a long session's
    capture costs what the block touched."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for code in ("pass", "def f():\n    return x", "x = 1", "other = 2"):
        _run(namespace, code, tmp_path)

    def looked_at(*_arguments: Any) -> Any:
        raise AssertionError("looked at what a pure block cannot change")

    monkeypatch.setattr(kernel_state._modules(), "module_states", looked_at)
    monkeypatch.setattr(kernel_state._touched_module().ReachIndex, "rebound", looked_at)
    _printed, record = _run(namespace, "x = x + 1", tmp_path, ["x"])
    # (`f` looks `x` up when it is called: its digest holds the name, not the value.)
    assert record["changed"] == ["x"]


def test_a_function_that_uses_a_variable_leaves_the_blocks_that_read_it_keyed_by_their_reads(
    tmp_path: Path,
) -> None:
    """A function looks the variables it uses up when it is called: it does not share their
    objects. Were it to, a pure block reading one of them would leave the sharing unknown,
    and no block after it could be keyed by what it reads (they would run after every edit)."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    state = SessionState()
    for code in ("data = [1, 2, 3]", "def total():\n    return sum(data)"):
        state.apply(_run(namespace, code, tmp_path)[1])
    block = pure_block("n = len(data)")
    assert block is not None
    assert state.read_key(block) is not None
    state.apply(_run(namespace, "n = len(data)", tmp_path, sorted(block.names))[1], block.names)
    after = pure_block("m = max(data)")
    assert after is not None
    assert state.read_key(after) is not None


def test_a_told_capture_after_a_collection_that_freed_something_looks_at_everything(
    tmp_path: Path,
) -> None:
    """Freeing garbage may run the session's code (here `__del__` binds `count`) while a pure
    block runs: the capture after it then looks at the whole namespace."""
    gc.callbacks.append(kernel_other_code._note_collection)
    gc.disable()  # (the garbage is collected during the pure block, not before)
    try:
        namespace: dict[str, Any] = {"__name__": "__main__"}
        noisy = "class Noisy:\n    def __del__(self):\n        global count\n        count = 1"
        for code in ("pass", "count = 0", noisy, "x = Noisy()\nx.me = x\ndel x"):
            _run(namespace, code, tmp_path)
        kernel_state._note_execution()
        kernel_state._note_cell_start(types.SimpleNamespace(raw_cell="y = 1"))
        exec("y = 1", namespace)
        gc.collect()  # (as a collection during the block would)
        report = tmp_path / "state.json"
        kernel_state.capture(namespace, {"__builtins__"}, str(report), None, changes=["y"])
        record = json.loads(report.read_text())
    finally:
        gc.enable()
        gc.callbacks.remove(kernel_other_code._note_collection)
    assert namespace["count"] == 1
    assert {"count", "y"} <= set(record["changed"])


def test_a_told_capture_digests_again_what_could_not_be_digested(tmp_path: Path) -> None:
    """A value that could not be digested is tried again after every block, as a full capture
    does: a pure block may change what its pickling depends on."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    pickled_if_not_flag = (
        "class C:\n    def __reduce__(self):\n        if FLAG:\n"
        "            raise TypeError('not now')\n        return (int, (1,))"
    )
    for code in ("pass", "FLAG = True", pickled_if_not_flag, "c = C()"):
        _printed, record = _run(namespace, code, tmp_path)
    assert "c" in record["opaque"]
    _printed, record = _run(namespace, "FLAG = False", tmp_path, ["FLAG"])
    assert record["opaque"] == {}
    assert record["digests"]["c"] is not None
