"""The one graph walk of mdrun.core: reachable sets and dependencies-first orders."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mdrun.core.graph import dependencies_first, reachable
from tests.core.strategies import dags


def _by_hand(graph: list[list[int]], roots: list[int]) -> set[int]:
    """What the roots need, by the definition: a fixed point of adding dependencies."""
    found = set(roots)
    while True:
        more = found | {dependency for node in found for dependency in graph[node]}
        if more == found:
            return found
        found = more


@given(dags(), st.data())
def test_reachable_is_the_roots_and_all_they_need(
    graph: list[list[int]], data: st.DataObject
) -> None:
    roots = data.draw(st.lists(st.integers(0, len(graph) - 1), max_size=3))
    assert reachable(roots, graph.__getitem__) == _by_hand(graph, roots)


@given(dags(), st.data())
def test_dependencies_first_puts_each_node_after_its_dependencies(
    graph: list[list[int]], data: st.DataObject
) -> None:
    roots = data.draw(st.lists(st.integers(0, len(graph) - 1), max_size=3))
    order = dependencies_first(roots, graph.__getitem__)
    assert sorted(order) == sorted(_by_hand(graph, roots))
    position = {node: index for index, node in enumerate(order)}
    for node in order:
        assert all(position[dependency] < position[node] for dependency in graph[node])


def test_a_long_chain_needs_no_deep_recursion() -> None:
    length = 20_000
    chain = [[index - 1] if index else [] for index in range(length)]
    assert len(reachable([length - 1], chain.__getitem__)) == length
    assert dependencies_first([length - 1], chain.__getitem__)[:2] == [0, 1]
