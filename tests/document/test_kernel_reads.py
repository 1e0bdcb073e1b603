"""A numpy array that a block only reads is not digested again, and one it may write to (through
a view, a function, an operand's code) is: checked in this process, as `kernel_state` runs in
the kernel, against the full digest and against the array's bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdrun.document import kernel_state
from mdrun.document.kernel_reads import only_read
from tests.document.test_incremental_digest import _full_digest, _run_block, counting_digests

numpy = pytest.importorskip("numpy")

READS = (
    "x = int(big[1] * 1000)",
    "x = (x + int(big[2] * 1000) + 1) % 1_000_003",
    "y = big[2] < 0.5",
    "y = 0.5 >= big[3] > -1",
    "z = f'{big[3]} {big[4]!r:>10}'",
    "s = big.shape, big.nbytes, big.ndim",
    "u = -big[1]",
    "w = big[1:3] * 2",
    "w = big[0:2] + big[2:4]",
    "q = big[1][()] ** 2",
    "e = big * 2",
    "n = not big[5]",
    "k = [big[i] * 2 for i in range(3)]",
    "def r():\n    return big[8] * 2",
    "m = big.mean(), big[0:6].sum(0), big.max(axis=0, initial=0.0), big.copy().tolist()",
)
"""Blocks that only read `big`."""
WRITES = (
    "big[0:2].fill(7)",
    "v = big[4:6]",
    "v[0] = -1",
    "big[5] += 1",
    "big[1:3][0] = 9",
    "(t := big[6:8]).fill(3)",
    "def m():\n    big[7] = 9",
    "m()",
    "q = r()",
    "numpy.add(1, 1, out=big[9:10])",
    "pair = big.reshape(2, 6)",
    "pair[1][1] = 11",
    "box = [big]",
    "box[0][10] = 4",
    "big.sort()",
    "class Operand:\n    def __radd__(self, other):\n        other[0] = 5\n        return 0\n"
    "operand = Operand()",
    "o = big[0:3] + operand",
    "big.T[0] = 1",
    "big.max(0, big[11:12].reshape(()))",
    "big[0:4].sum(axis=0, out=big[11:12].reshape(()))",
    "big.fill(1.5)",
    "for row in big.reshape(3, 4):\n    row[0] = 2",
    "def f(big):\n    return big[0] * 2",
    "big = big.copy()",
    "del big\nbig = numpy.arange(12.0)",
)
"""Blocks that write to `big`, rebind it, or may (or set up a later write)."""


def _values() -> dict[str, Any]:
    return {"big": numpy.arange(12.0), "other": numpy.ones(3), "x": 1}


def test_plain_reads_of_an_array_leave_it_untouched() -> None:
    for code in READS:
        assert only_read(code, _values()) == {"big"}, code


def test_every_other_use_of_an_array_touches_it() -> None:
    for code in WRITES:
        assert only_read(code, _values()) == frozenset(), code
    assert only_read("print(big[0])", _values()) == frozenset()  # print could be rebound
    assert only_read("y = big[0] * other[0]", _values()) == frozenset()
    assert only_read("y = big[0] * x", _values()) == frozenset()  # x's type is not known
    assert only_read("y = big[0] +", _values()) == frozenset()  # does not parse
    assert only_read("m = big.sum(out=other)", _values()) == frozenset()
    assert only_read("m = big.max(0, other)", _values()) == frozenset()  # `out`, by position
    assert only_read("m = big.sum\nm()", _values()) == frozenset()
    assert only_read("big.shape = (3, 4)", _values()) == frozenset()


def test_only_plain_arrays_of_numbers_count() -> None:
    code = "y = big[0] * 2"
    assert only_read(code, {"big": numpy.array([object()], dtype=object)}) == frozenset()
    assert only_read(code, {"big": numpy.ma.masked_array([1.0, 2.0])}) == frozenset()
    assert only_read(code, {"big": [1.0, 2.0]}) == frozenset()


@pytest.fixture(autouse=True)
def _fresh_agent() -> None:
    kernel_state.forget_last_capture()
    kernel_state._executions_since_capture[0] = 0


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(READS + WRITES), min_size=1, max_size=10))
def test_incremental_digest_with_array_reads_equals_full_digest(
    tmp_path: Path, blocks: list[str]
) -> None:
    kernel_state.forget_last_capture()
    namespace: dict[str, Any] = {"__name__": "__main__"}
    _run_block(namespace, "import numpy\nbig = numpy.arange(12.0)\nx = 0", tmp_path)
    for code in blocks:
        incremental = _run_block(namespace, code, tmp_path)
        assert incremental == _full_digest(namespace, tmp_path), code


def test_a_large_array_a_block_only_reads_is_not_digested_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    _run_block(namespace, "import numpy\nbig = numpy.zeros(1_000_000)\nx = 0", tmp_path)
    digested = counting_digests(monkeypatch)
    unchanged = _run_block(namespace, "x = int(big[1] * 1000)", tmp_path)
    assert all(value is not namespace["big"] for value in digested)
    changed = _run_block(namespace, "big[1:2].fill(5)\nx = int(big[1] * 1000)", tmp_path)
    assert any(value is namespace["big"] for value in digested)
    assert changed != unchanged
