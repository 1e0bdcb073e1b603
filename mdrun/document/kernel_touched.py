"""Which of a session's names a block may have touched, so that only those are digested again.

Runs inside the kernel with `kernel_state` (sent as source, standard library only). The answer
over-approximates: the names the block's code loads, stores or deletes; the names reachable from
the functions and classes those names hold (their code's global names, transitively); and the
names whose values share a mutable object with a touched one. Where code can reach names the
analysis cannot see (exec, eval, globals(), IPython magics, star imports), the answer is None:
digest everything.
"""

from __future__ import annotations

import ast
import types
from typing import Any

DYNAMIC_NAMES = frozenset(
    {
        "exec",
        "eval",
        "compile",
        "globals",
        "locals",
        "vars",
        "dir",
        "get_ipython",
        "__import__",
        "__builtins__",
        "__main__",
        "__dict__",
        "builtins",
        "breakpoint",
        "sys",
        "gc",
        "inspect",
        "ctypes",
        "importlib",
        "_mdrun_state",
    }
)
"""Names through which code can reach the session's namespace without naming its variables."""

_IMMUTABLE_TYPES = (
    str,
    bytes,
    int,
    float,
    complex,
    bool,
    type(None),
    tuple,
    frozenset,
    range,
    types.CodeType,
    types.ModuleType,
    types.BuiltinFunctionType,
    type(Ellipsis),
)
"""Objects that a block cannot change through another name (or that belong to no variable): a
variable holding one is never touched by a change made through another variable."""


def names_in_code(code: str) -> frozenset[str] | None:
    """Every name a block's code loads, stores or deletes; None when it may reach names the
    analysis cannot see (it does not parse as Python, as IPython's magics do; a star import; a
    name in `DYNAMIC_NAMES`)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names.update(node.names)
        elif isinstance(node, ast.ImportFrom) and node.module in DYNAMIC_NAMES:
            return None  # from sys import modules, from __main__ import x
        elif isinstance(node, ast.alias):
            if node.name == "*" or node.name in DYNAMIC_NAMES:
                return None
            names.add(node.asname or node.name.partition(".")[0])
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar):
            if node.name is not None:
                names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest is not None:
            names.add(node.rest)
        elif isinstance(node, ast.Attribute) and node.attr in DYNAMIC_NAMES:
            return None
    return None if names & DYNAMIC_NAMES else frozenset(names)


def code_names(code: types.CodeType) -> set[str]:
    """The global names a code object (and the functions and classes nested in it) uses."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= code_names(constant)
    return names


def reach_of(objects: list[Any]) -> tuple[frozenset[int], frozenset[str]]:
    """What a value's pickle went through (the pickler's memo): the ids of the mutable objects in
    it (and the arrays they view), and the global names its functions use."""
    ids: set[int] = set()
    names: set[str] = set()
    for item in objects:
        if isinstance(item, _IMMUTABLE_TYPES) or _is_foreign_global(item) or _is_numpy_fact(item):
            # The code of a session function is pickled (by value): that of a library's
            # function is not, and what it uses is the library's business.
            if isinstance(item, types.CodeType):
                names |= code_names(item)
            continue
        if isinstance(item, types.FunctionType):
            names |= code_names(item.__code__)
        ids.add(id(item))
        _add_bases(item, ids)
    return frozenset(ids), frozenset(names)


def _is_numpy_fact(item: Any) -> bool:
    """A numpy dtype or scalar: immutable, and a dtype is shared by every array of its kind (an
    array and a float computed from another would otherwise seem to share an object)."""
    return any(
        base.__module__ == "numpy" and base.__name__ in ("dtype", "generic")
        for base in type(item).__mro__
    )


def _is_foreign_global(item: Any) -> bool:
    """A class or function of a library (pickled by name): shared by every value, held by none."""
    if isinstance(item, type | types.FunctionType):
        return getattr(item, "__module__", None) != "__main__"
    return False


def _add_bases(item: Any, ids: set[int]) -> None:
    """An array view shares its memory with the array it views: changing one changes both."""
    base: Any
    if isinstance(item, memoryview):
        base = item.obj
    elif getattr(type(item), "__array_interface__", None) is not None:
        base = getattr(item, "base", None)
    else:
        return
    for _ in range(64):
        if base is None or isinstance(base, _IMMUTABLE_TYPES) or id(base) in ids:
            return
        ids.add(id(base))
        if getattr(type(base), "__array_interface__", None) is None:
            return
        base = getattr(base, "base", None)


class Reach:
    """What a variable's last digest saw: its object, and what its pickle went through."""

    __slots__ = ("ids", "names", "object_id")

    def __init__(self, object_id: int, ids: frozenset[int] | None, names: frozenset[str]) -> None:
        self.object_id = object_id
        """The id of the value the name was bound to."""
        self.ids = ids
        """The mutable objects its pickle went through; None: unknown (digest it every time)."""
        self.names = names
        """The global names its functions use."""


def touched_names(
    values: dict[str, Any],
    code_touched: frozenset[str],
    previous: dict[str, Reach],
    current: dict[str, Reach],
) -> set[str] | None:
    """The names whose digests may have changed since `previous` was taken (with names that
    are not among `values`: those are not digested).

    `code_touched` are the names the block's code names; `current` holds what is known of the
    values digested again so far (the caller digests the answer, then asks again with the new
    reaches until the answer stops growing). None: digest everything."""
    # Names the code names or that are gone count too (a function that uses one changes),
    # though only those in `values` are digested.
    touched = set(code_touched) | (set(previous) - set(values))
    for name, value in values.items():
        entry = previous.get(name)
        if entry is None or entry.ids is None or entry.object_id != id(value):
            touched.add(name)
    reached_ids: set[int] = set()
    frontier = list(touched)
    while True:
        while frontier:
            name = frontier.pop()
            for entry in (previous.get(name), current.get(name)):
                if entry is None:
                    continue
                if entry.ids is None:
                    return None
                reached_ids |= entry.ids
                if entry.names & DYNAMIC_NAMES:
                    return None
                for other in entry.names - touched:
                    if other in values:
                        touched.add(other)
                        frontier.append(other)
        for name, entry in previous.items():
            if name in touched or name not in values:
                continue
            # Sharing an object with a touched name, or a function that uses one (a pickled
            # function carries the values of the globals it uses).
            if (entry.ids and entry.ids & reached_ids) or entry.names & touched:
                touched.add(name)
                frontier.append(name)
        if not frontier:
            return touched
