"""Walking the store's graphs: derivations by their configs, realizations by their contexts.

The one walk that every closure in mdrun.core uses (a registry's closure, a lens's sub-closure,
GC's roots, an archive's contents, a push): iterative, so a chain of ten thousand stages needs
no deep recursion. Callers say what a node's neighbours are; this module knows no store.
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


def reachable(roots: Iterable[Node], neighbours_of: Callable[[Node], Iterable[Node]]) -> set[Node]:
    """The roots and every node reachable from them (each node's neighbours asked once)."""
    found: set[Node] = set()
    pending = list(roots)
    while pending:
        node = pending.pop()
        if node in found:
            continue
        found.add(node)
        pending.extend(neighbours_of(node))
    return found
