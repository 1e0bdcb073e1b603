"""Matchers: which realizations count, and when a build is asked for."""

from __future__ import annotations

import itertools
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdrun.core.matchers import (
    match_all,
    match_best,
    match_exact,
    match_latest,
    match_only,
    match_some,
)
from mdrun.core.realization import realize1, realizeMany
from mdrun.core.refs import RRef
from mdrun.core.registry import Matcher, Registry, instantiate
from mdrun.core.store import Store
from mdrun.errors import MatcherError
from tests.core.helpers import artifact, counting_text, derivation, file_stage, publish


def realizations(store: Store, count: int, name: str = "m") -> list[RRef]:
    dref = derivation(store, name)
    return sorted(publish(store, dref, {"id": str(index)}) for index in range(count))


def test_match_only(store: Store) -> None:
    one, two = realizations(store, 2)
    matcher = match_only()
    assert matcher(store, []) is None
    assert matcher(store, [one]) == [one]
    with pytest.raises(MatcherError, match="at most one"):
        matcher(store, [one, two])


def test_match_only_fails_the_realize_of_a_stage_with_two_realizations(
    registry: Registry,
) -> None:
    dref = file_stage(registry, "nondet", text=counting_text(), matcher=match_only())
    closure = instantiate(dref, r=registry)
    realize1(closure)
    with pytest.raises(MatcherError, match="at most one"):
        realize1(closure, force_rebuild=True)


def test_match_all(store: Store) -> None:
    rrefs = realizations(store, 3)
    assert match_all()(store, []) is None
    assert match_all()(store, list(reversed(rrefs))) == rrefs


def test_match_some(store: Store) -> None:
    rrefs = realizations(store, 3)
    assert match_some(4)(store, rrefs) is None
    chosen = match_some(2)(store, rrefs)
    assert chosen is not None and len(chosen) == 2 and set(chosen) <= set(rrefs)
    assert match_some(2)(store, list(reversed(rrefs))) == chosen


def test_match_latest_chooses_by_build_start(store: Store) -> None:
    dref = derivation(store, "timed")
    old = publish(store, dref, {"id": "old"}, start=100.0)
    new = publish(store, dref, {"id": "new"}, start=300.0)
    mid = publish(store, dref, {"id": "mid"}, start=200.0)
    assert match_latest()(store, [old, new, mid]) == [new]
    assert match_latest(2)(store, [old, new, mid]) == sorted([new, mid])
    assert match_latest(4)(store, [old, new, mid]) is None


def test_match_latest_follows_new_builds(registry: Registry) -> None:
    dref = file_stage(registry, "latest", text=counting_text(), matcher=match_latest())
    closure = instantiate(dref, r=registry)
    assert artifact(registry.store, realize1(closure)) == "0"
    assert artifact(registry.store, realize1(closure, force_rebuild=True)) == "1"
    assert artifact(registry.store, realize1(closure)) == "1"


def test_match_exact(store: Store) -> None:
    one, two, three = realizations(store, 3)
    assert match_exact([two, one])(store, [one, two, three]) == sorted([one, two])
    assert match_exact([one, two])(store, [one, three]) is None
    with pytest.raises(MatcherError, match="at least one"):
        match_exact([])


def test_match_best_chooses_by_the_number_in_a_file(store: Store) -> None:
    dref = derivation(store, "scored")
    low = publish(store, dref, {"score": "0.5\n"})
    high = publish(store, dref, {"score": "2.5\nmore text"})
    mid = publish(store, dref, {"score": "1"})
    unscored = publish(store, dref, {"other": "x"})
    garbage = publish(store, dref, {"score": "not a number"})
    candidates = [low, high, mid, unscored, garbage]
    assert match_best("score")(store, candidates) == [high]
    assert match_best("score", n=2)(store, candidates) == sorted([high, mid])
    assert match_best("score", lowest=True)(store, candidates) == [low]
    assert match_best("score", n=4)(store, candidates) is None


def test_match_best_keeps_the_best_realization_across_builds(registry: Registry) -> None:
    scores = iter(["3", "7", "5"])
    best = match_best("artifact")
    dref = file_stage(registry, "trial", text=lambda _i: next(scores), matcher=best)
    closure = instantiate(dref, r=registry)
    assert artifact(registry.store, realize1(closure)) == "3"
    realize1(closure, force_rebuild=True)
    assert artifact(registry.store, realize1(closure)) == "7"
    realize1(closure, force_rebuild=True)
    assert artifact(registry.store, realize1(closure)) == "7"
    assert len(realizeMany(instantiate(dref, r=registry))) == 1


@pytest.mark.parametrize("count", [0, -1, True, 1.5])
def test_counts_below_one_are_refused(count: int) -> None:
    for factory in (match_latest, match_some):
        with pytest.raises(MatcherError, match="1 or more"):
            factory(count)
    with pytest.raises(MatcherError, match="1 or more"):
        match_best("score", n=count)


_fresh = itertools.count()


@given(
    st.lists(st.one_of(st.none(), st.integers(-5, 5)), max_size=6),
    st.integers(min_value=1, max_value=4),
    st.booleans(),
)
def test_matchers_choose_within_bounds(scores: list[int | None], n: int, lowest: bool) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = Store.initialize(root)
        dref = derivation(store, "bounds", example=next(_fresh))
        rrefs = [
            publish(store, dref, {"id": str(index)} | ({} if s is None else {"score": str(s)}),
                    start=float(index))
            for index, s in enumerate(scores)
        ]
        score = dict(zip(rrefs, scores, strict=True))
        scored = [rref for rref in rrefs if score[rref] is not None]

        def check(matcher: Matcher, pool: list[RRef], expected_count: int | None) -> list[RRef]:
            chosen = matcher(store, list(reversed(rrefs)))
            if expected_count is None:
                assert chosen is None
                return []
            assert chosen is not None
            assert len(chosen) == expected_count
            assert chosen == sorted(set(chosen))
            assert set(chosen) <= set(pool)
            return chosen

        enough = len(rrefs) >= n
        check(match_some(n), rrefs, n if enough else None)
        latest = check(match_latest(n), rrefs, n if enough else None)
        assert latest == sorted(rrefs[-n:]) or not enough
        check(match_all(), rrefs, len(rrefs) or None)
        best = check(match_best("score", n, lowest), scored, n if len(scored) >= n else None)
        sign = -1 if lowest else 1
        for chosen in best:
            for other in set(scored) - set(best):
                assert sign * score[chosen] >= sign * score[other]  # type: ignore[operator]
        if len(rrefs) > 1:
            with pytest.raises(MatcherError):
                match_only()(store, rrefs)
        else:
            check(match_only(), rrefs, len(rrefs) or None)
