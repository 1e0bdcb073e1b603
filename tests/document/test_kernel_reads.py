"""Which numpy arrays a block only reads (`kernel_reads`): those keep their digest, so a block
that reads a large array does not pay for hashing it again; every use that may change an array
counts as a change."""

from __future__ import annotations

from typing import Any

import pytest

from mdrun.document.kernel_reads import only_read_arrays

numpy = pytest.importorskip("numpy")


def session() -> dict[str, Any]:
    return {
        "big": numpy.arange(10.0),
        "grid": numpy.zeros((2, 3)),
        "n": 3,
        "objects": numpy.array([[1], [2]], dtype=object),
    }


@pytest.mark.parametrize(
    "code",
    [
        "x = int(big[5] * 1000)",
        "print(big, len(big), big.shape, big.dtype, big.nbytes)",
        "total = big.sum() + big.mean() + big[2:4].max()",
        "view = big[1:3]",
        "print(f'{big[0]:.2f}', big.T[1] > 0, -big)",
        "big[3]",
        "copy = big.copy()\ncopy[0] = 1",
        # A view bound to a name: a change through it is seen by the digest's sharing rule
        # (`kernel_touched`; the property in test_incremental_digest covers it).
        "alias = big\nalias[0] = 5",
        "flags = big > 0.5\nprint(big[big > 0.5])",
        "print(grid[0, 1] + grid.T[2, 0])",
    ],
)
def test_reads(code: str) -> None:
    assert "big" in only_read_arrays(code, session()) or "grid" in only_read_arrays(code, session())


@pytest.mark.parametrize(
    "code",
    [
        "big[0] = 1",
        "big += 1",
        "big[1:3] *= 2",
        "big.T[0] = 1",
        "big.sort()",
        "big.fill(0)",
        "big.reshape(2, 5)[0, 0] = 1",
        "big.ravel()[0] = 1",
        "big.astype(float, copy=False)[0] = 1",
        "big.clip(0, 1, out=big)",
        "big.sum(**options)",
        "numpy.negative(big, big)",
        "numpy.random.default_rng().shuffle(big)",
        "helper(big)",
        "a, b = big[:2], big",
        "items = [big]",
        "for value in big:\n    pass",
        "[row.fill(0) for row in grid]",
        "del big",
        "global big",
        "f = lambda: big",
        "def f():\n    big[0] = 1",
        "big.shape = (5, 2)",
        "big.flags.writeable = False",
        "len = lambda x: x.fill(0)\nlen(big)",
        "big = big * 2",
    ],
)
def test_possible_changes(code: str) -> None:
    values = session()
    if code.startswith("len ="):
        values["len"] = lambda x: x.fill(0)  # a builtin's name, shadowed by the session
    assert "big" not in only_read_arrays(code, values)


def test_only_numeric_arrays_are_exempted() -> None:
    # An array of Python objects hands out its mutable elements; other values are not arrays.
    assert only_read_arrays("print(objects[0], n + 1)", session()) == frozenset()
    assert only_read_arrays("print(big[0]) +", session()) == frozenset()  # does not parse
