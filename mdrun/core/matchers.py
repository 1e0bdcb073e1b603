"""Matchers: which realizations of a derivation count, or whether to build a new one.

A matcher sees the realizations of a derivation that were built in the current context and
returns the ones downstream stages will use, or None to ask for a build. Each public name is a
factory, so every matcher is written `match_only()`, `match_latest(3)` and so on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mdrun.core.refs import RRef
from mdrun.core.registry import Matcher
from mdrun.core.store import Store
from mdrun.errors import DamagedRealization, MatcherError

Key = Callable[[Store, RRef], float | None]
"""A sort key for realizations; None leaves a realization out."""


def _check_count(count: int, matcher: str) -> None:
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise MatcherError(f"{matcher}: the number of realizations must be 1 or more: {count!r}")


def build_start(store: Store, rref: RRef) -> float:
    """When a realization's build started (0 when unknown)."""
    start = store.build_metadata(rref).get("start")
    return float(start) if isinstance(start, int | float) else 0.0


def match_top(count: int, key: Key, description: str) -> Matcher:
    """The `count` realizations with the largest keys, or a build while there are fewer."""
    _check_count(count, description)

    def matcher(store: Store, rrefs: list[RRef]) -> list[RRef] | None:
        keyed = [(value, rref) for rref in rrefs if (value := key(store, rref)) is not None]
        if len(keyed) < count:
            return None
        keyed.sort(key=lambda pair: (-pair[0], pair[1]))
        return sorted(rref for _, rref in keyed[:count])

    return matcher


def match_only() -> Matcher:
    """Exactly one realization: build if there is none, an error if there are several."""

    def matcher(_store: Store, rrefs: list[RRef]) -> list[RRef] | None:
        if len(rrefs) > 1:
            raise MatcherError(
                f"match_only expects at most one realization, found {len(rrefs)}: "
                + ", ".join(rrefs)
            )
        return list(rrefs) or None

    return matcher


def match_latest(n: int = 1) -> Matcher:
    """The `n` most recently built realizations (build while there are fewer)."""
    top = match_top(n, build_start, "match_latest")

    def matcher(store: Store, rrefs: list[RRef]) -> list[RRef] | None:
        # Exactly `n`: all of them, whenever they were built (no build record to read).
        return sorted(rrefs) if len(rrefs) == n else top(store, rrefs)

    return matcher


def match_some(n: int = 1) -> Matcher:
    """Any `n` realizations, chosen deterministically (build while there are fewer)."""
    return match_top(n, lambda _store, _rref: 0.0, "match_some")


def match_all() -> Matcher:
    """Every realization there is; build only when there is none."""

    def matcher(_store: Store, rrefs: list[RRef]) -> list[RRef] | None:
        return sorted(rrefs) or None

    return matcher


def match_exact(rrefs: Sequence[RRef]) -> Matcher:
    """Exactly these realizations; a build is asked for while any of them is missing."""
    wanted = sorted(set(rrefs))
    if not wanted:
        raise MatcherError("match_exact needs at least one realization reference")

    def matcher(_store: Store, available: list[RRef]) -> list[RRef] | None:
        present = set(available)
        return list(wanted) if all(rref in present for rref in wanted) else None

    return matcher


def read_number(store: Store, rref: RRef, filename: str) -> float | None:
    """The number on the first line of a file in a realization (None if absent or not a number;
    None too if the file does not match its recorded digest, which is reported)."""
    try:
        if store.recorded_digest(rref, filename) is None:
            return None
        first = store.read_file(rref, filename).decode().strip().splitlines()
        return float(first[0]) if first else None
    except DamagedRealization as damage:
        store.report_damage(damage)
        return None
    except (ValueError, IndexError):
        return None


def match_best(filename: str, n: int = 1, lowest: bool = False) -> Matcher:
    """The `n` realizations with the best number in `filename` (largest, or `lowest=True`)."""

    def key(store: Store, rref: RRef) -> float | None:
        value = read_number(store, rref, filename)
        return None if value is None else (-value if lowest else value)

    return match_top(n, key, "match_best")
