"""References: formatting, parsing and the rejection of malformed strings."""

from __future__ import annotations

import pytest
from hypothesis import given

from mdrun.core.refs import (
    is_dref,
    is_rref,
    make_dref,
    make_name,
    make_rref,
    parse_dref,
    parse_rref,
    rref_to_dref,
)
from mdrun.errors import ReferenceFormatError
from tests.core.strategies import hash_parts, names

H1 = "0123456789abcdef0123456789abcdef"
H2 = "fedcba9876543210fedcba9876543210"


def test_dref_and_rref_formats() -> None:
    assert make_dref(H1, "my-stage_2") == f"dref:{H1}-my-stage_2"
    assert make_rref(H2, H1, "my-stage_2") == f"rref:{H2}-{H1}-my-stage_2"


def test_names_with_dashes_parse_back() -> None:
    assert parse_dref(f"dref:{H1}-a-b-c") == (H1, "a-b-c")
    assert parse_rref(f"rref:{H2}-{H1}-a-b-c") == (H2, H1, "a-b-c")


def test_rref_to_dref_drops_the_realization_hash() -> None:
    assert rref_to_dref(make_rref(H2, H1, "x")) == make_dref(H1, "x")


@given(hash_parts, hash_parts, names)
def test_refs_round_trip(realization_hash: str, derivation_hash: str, name: str) -> None:
    dref = make_dref(derivation_hash, name)
    rref = make_rref(realization_hash, derivation_hash, name)
    assert is_dref(dref) and not is_rref(dref)
    assert is_rref(rref) and not is_dref(rref)
    assert make_dref(*parse_dref(dref)) == dref
    assert make_rref(*parse_rref(rref)) == rref
    assert rref_to_dref(rref) == dref


MALFORMED_DREFS = [
    "",
    "dref:",
    f"dref:{H1}",  # no name
    f"dref:{H1}-",  # empty name
    f"dref:{H1[:-1]}-x",  # short hash
    f"dref:{H1}0-x",  # long hash (the name would start after 33 characters)
    f"dref:{H1.upper()}-x",  # upper-case hex
    f"dref:{'g' * 32}-x",  # not hex
    f"dref:{H1}-a.b",  # a dot in the name
    f"dref:{H1}-a b",
    f"dref:{H1}-x\n",  # a trailing newline
    f" dref:{H1}-x",
    f"DREF:{H1}-x",
    f"rref:{H1}-x",
    f"dref:{H1}_x",  # wrong separator
    f"rref:{H2}-{H1}-x",  # an rref is not a dref
]

MALFORMED_RREFS = [
    "",
    f"rref:{H2}-x",  # one hash only
    f"rref:{H2}-{H1}",  # no name
    f"rref:{H2}-{H1[:-1]}-x",
    f"rref:{H2.upper()}-{H1}-x",
    f"rref:{H2}-{H1}-x/y",
    f"rref:{H2}-{H1}-x\n",
    f"dref:{H2}-{H1}-x",  # a dref whose name looks like a hash
]


@pytest.mark.parametrize("text", MALFORMED_DREFS)
def test_malformed_drefs_are_rejected(text: str) -> None:
    assert not is_dref(text)
    with pytest.raises(ReferenceFormatError):
        parse_dref(text)


@pytest.mark.parametrize("text", MALFORMED_RREFS)
def test_malformed_rrefs_are_rejected(text: str) -> None:
    assert not is_rref(text)
    with pytest.raises(ReferenceFormatError):
        parse_rref(text)
    with pytest.raises(ReferenceFormatError):
        rref_to_dref(text)


@pytest.mark.parametrize("value", [None, 3, [f"dref:{H1}-x"], b"dref:" + H1.encode() + b"-x"])
def test_non_strings_are_not_references(value: object) -> None:
    assert not is_dref(value)
    assert not is_rref(value)


@pytest.mark.parametrize("name", ["", "a b", "a.b", "a/b", "ä", "x\n"])
def test_invalid_names_are_rejected(name: str) -> None:
    with pytest.raises(ReferenceFormatError, match="invalid stage name"):
        make_name(name)
    with pytest.raises(ReferenceFormatError):
        make_dref(H1, name)


@pytest.mark.parametrize("bad_hash", ["", H1[:-1], H1 + "0", H1.upper(), "z" * 32, "-" * 32])
def test_invalid_hash_parts_are_rejected(bad_hash: str) -> None:
    with pytest.raises(ReferenceFormatError, match="hash part"):
        make_dref(bad_hash, "x")
    with pytest.raises(ReferenceFormatError, match="hash part"):
        make_rref(bad_hash, H1, "x")
    with pytest.raises(ReferenceFormatError, match="hash part"):
        make_rref(H1, bad_hash, "x")
