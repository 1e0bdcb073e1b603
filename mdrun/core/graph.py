"""Ordering nodes of the store's graphs (derivations by config, realizations by context).

One iterative depth-first walk, so a chain of ten thousand stages needs no deep recursion.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

Node = TypeVar("Node", bound=Hashable)


def dependencies_first(
    roots: Iterable[Node], dependencies_of: Callable[[Node], Iterable[Node]]
) -> list[Node]:
    """The roots and everything they depend on, each node after all of its dependencies."""
    order: list[Node] = []
    visited: set[Node] = set()
    for root in roots:
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if node in visited:
                continue
            visited.add(node)
            stack.append((node, True))
            stack.extend((dependency, False) for dependency in dependencies_of(node))
    return order
