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
import bisect
import gc
import hashlib
import itertools
import json
import operator
import pickle
import secrets
import sys
import types
from typing import Any

IGNORED_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})
"""IPython's own names in the user namespace."""


def is_state_name(name: str, hidden: Any) -> bool:
    """Whether a name of the session's namespace is one of its variables, which the state's
    digest holds: not private, not IPython's own, not among the `hidden` ones."""
    return not name.startswith("_") and name not in hidden and name not in IGNORED_NAMES


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


_PLAIN_SCALARS = frozenset({str, bytes, int, float, complex, bool, type(None)})
_PLAIN_CONTAINERS = frozenset({tuple, list, dict})
"""(Not sets: a set may be weakly referenced at any time, and freeing it then runs code.)"""
PLAIN_BUDGET = 10_000
"""At most this many objects are looked at to call a value plain data (a larger one is not)."""


def plain_kind(value: Any) -> str | None:
    """ "immutable" or "mutable" when `value` is plain data (numbers, strings, bytes, None, and
    tuples, lists and dicts of them, exact types only), None otherwise. Reading or freeing
    plain data runs no code of the session's (none of these types can be weakly referenced),
    so a block that only reads plain data and calls only pure builtins depends on nothing but
    those values (see `read_keys` on mdrun's side)."""
    mutable = False
    budget = PLAIN_BUDGET
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind in _PLAIN_SCALARS:
            continue
        if kind not in _PLAIN_CONTAINERS:
            return None
        budget -= len(item) + 1
        if budget < 0:
            return None
        if kind is dict:
            pending.extend(item.keys())
            pending.extend(item.values())
        else:
            pending.extend(item)
        mutable = mutable or kind in (list, dict)
    return "mutable" if mutable else "immutable"


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


def changes_in_place(item: Any) -> bool:
    """Whether a change made to `item` through one name is seen through another bound to it:
    not for immutable values, nor for a library's classes and functions or numpy's dtypes and
    scalars (see `reach_of`)."""
    return not (
        isinstance(item, _IMMUTABLE_TYPES) or _is_foreign_global(item) or _is_numpy_fact(item)
    )


def _can_be_changed_through(value: Any) -> bool:
    """Whether a change made through another name bound to `value` may be seen through this
    one (a tuple cannot change, but a list in it may)."""
    return isinstance(value, tuple | frozenset) or changes_in_place(value)


def reach_of(memo: list[tuple[int, Any]]) -> tuple[dict[int, int], frozenset[str]]:
    """What a value's pickle went through (the pickler's memo, as (index, object) pairs, which
    it empties): where in the pickle each mutable object of the value sits, by id (with the
    arrays they view, see `_add_bases`), and the global names its functions use. Objects the
    pickle made for itself and freed after (a state dict a `__reduce__` built) are left out:
    their ids are soon another object's, which no variable shares."""
    indexes = [index for index, _item in memo]
    objects = [item for _index, item in memo]
    memo.clear()
    live = _held_elsewhere(objects)
    positions: dict[int, int] = {}
    names: set[str] = set()
    viewing: list[tuple[int, Any, bool]] = []
    for index, item, is_live in zip(indexes, objects, live, strict=True):
        if not changes_in_place(item):
            # The code of a session function is pickled (by value): that of a library's
            # function is not, and what it uses is the library's business.
            if isinstance(item, types.CodeType):
                names |= code_names(item)
            continue
        if isinstance(item, types.FunctionType):
            names |= code_names(item.__code__)
        if is_live:
            positions[id(item)] = index
        if is_array(item):
            viewing.append((index, item, is_live))
    if viewing:
        liveness = {id(item): is_live for item, is_live in zip(objects, live, strict=True)}
        for index, item, is_live in sorted(viewing, key=operator.itemgetter(0)):
            _add_bases(item, index, is_live, positions, liveness)
    return positions, frozenset(names)


def is_array(item: Any) -> bool:
    """Whether `item` shows memory as an array (its type says so: numpy's arrays)."""
    return getattr(type(item), "__array_interface__", None) is not None


def _shows_memory(base: Any) -> bool:
    """Whether a view's base shows memory as an array: numpy's, or an object that says how on
    itself (numpy's strided views have one as their base). (Looked up, not read from
    `__dict__`: reading that makes an empty one on an object that had none, which changes
    its pickle. A lookup that raises counts as no.)"""
    try:
        return is_array(base) or hasattr(base, "__array_interface__")
    except Exception:
        return False


def _held_elsewhere(objects: list[Any]) -> list[bool]:
    """Whether each of `objects` (each once) is held by something else than the list and the
    objects of it that are held by nothing else: the pickle's own temporaries are not."""
    counts = [count - _LIST_ONLY for count in map(sys.getrefcount, objects)]
    if all(counts):
        return [True] * len(objects)
    at = {id(item): place for place, item in enumerate(objects)}
    pending = [place for place, count in enumerate(counts) if count <= 0]
    while pending:
        temporary = objects[pending.pop()]
        buffers = _buffers_in(temporary)  # (counted before anything else here holds them)
        released = gc.get_referents(temporary)
        if is_array(temporary):
            released.append(_base_of(temporary)[0])  # (not a referent to gc)
        for buffer, references in buffers:
            if references <= _LONE_BUFFER:
                released.extend(gc.get_referents(buffer))
        for held in released:
            place = at.get(id(held))
            if place is not None and objects[place] is held:
                counts[place] -= 1
                if counts[place] == 0:
                    pending.append(place)
    return [count > 0 for count in counts]


def _buffers_in(container: Any) -> list[tuple[Any, int]]:
    """The out-of-band buffers a pickle's temporary holds (a numpy array's reduction does),
    which the memo does not list, each with its count of references here: an array a
    `__getstate__` made is held by one until the pickle is done."""
    found = []
    for held in gc.get_referents(container):
        if type(held) is pickle.PickleBuffer:
            found.append((held, sys.getrefcount(held)))
    return found


_LIST_ONLY = next(map(sys.getrefcount, [object()]))
"""What `sys.getrefcount` gives, called as `_held_elsewhere` calls it, for an object that only
a list holds (this interpreter's count of its own references included)."""
_LONE_BUFFER = _buffers_in((pickle.PickleBuffer(bytearray(1)),))[0][1]
"""What `_buffers_in` counts for a buffer that only its container holds."""


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


def _add_bases(
    item: Any, index: int, is_live: bool, positions: dict[int, int], liveness: dict[int, bool]
) -> None:
    """An array view shares its memory with the arrays it views (and the buffer under them):
    changing one changes the other, and where depends on the part of the memory it shows. So
    each of them is counted as held where the view sits, with that part (a base the pickle met
    itself, or another view of, gets both). The bases of a view the pickle made for itself
    count only while something else holds them (`liveness`: what `_held_elsewhere` found of
    the objects the pickle met)."""
    layout = _layout(item)
    holder = item
    for depth in range(1, 65):
        base, references = _base_of(holder)
        if isinstance(base, tuple):
            # (numpy's base for an array it took through `__array_struct__`: the object
            # that gave it, and a capsule. Where that object's memory starts is not known.)
            for part in base:
                if changes_in_place(part) and type(part).__name__ != "PyCapsule":
                    positions[id(part)] = -2 - secrets.randbits(62)
            return
        if base is None or isinstance(base, _IMMUTABLE_TYPES):
            return
        if not is_live:
            met = liveness.get(id(base))
            is_live = _held_by_more_than_its_view(holder, references) if met is None else met
        if not is_live:
            holder = base
            continue
        start = _start(base)
        shown = None if layout is None or start is None else (layout[0] - start, *layout[1:])
        if shown is None:
            # (Where it shows it cannot be told: this state is like no other.)
            shown = (secrets.randbits(64),)
        seen = positions.get(id(base))
        position = -2 - _hashed(repr((seen, index, depth, shown)).encode()) % (1 << 62)
        positions[id(base)] = position
        holder = base


def _layout(array: Any) -> tuple[Any, ...] | None:
    """Where an array's data starts in memory, its shape, strides and item type."""
    try:
        interface = array.__array_interface__
        return (
            int(interface["data"][0]),
            tuple(interface["shape"]),
            interface.get("strides"),
            str(interface["typestr"]),
        )
    except Exception:
        return None


def _start(base: Any) -> int | None:
    """Where the memory of an array or buffer starts (None: it cannot be told)."""
    if _shows_memory(base):
        layout = _layout(base)
        return None if layout is None else layout[0]
    numpy: Any = sys.modules.get("numpy")
    if numpy is None:
        return None
    try:
        # (A memoryview may show its memory with strides: frombuffer takes only contiguous.)
        shown = (
            numpy.asarray(base)
            if isinstance(base, memoryview)
            else numpy.frombuffer(base, dtype="uint8")
        )
        return int(shown.__array_interface__["data"][0])
    except Exception:
        return None


def _base_of(holder: Any) -> tuple[Any, int]:
    """What an array view (or a memoryview under one) shows the memory of, and how many
    references it has here (see `_held_by_more_than_its_view`)."""
    base: Any
    if isinstance(holder, memoryview):
        base = holder.obj
    elif _shows_memory(holder):
        try:
            base = getattr(holder, "base", None)
        except Exception:
            return None, 0
    else:
        return None, 0
    return base, sys.getrefcount(base)


_LONE_BASE_REFERENCES: dict[str, int] = {}
"""What `_base_of` counts for a base that nothing but its view holds, by kind of view."""


def _held_by_more_than_its_view(holder: Any, references: int) -> bool:
    """Whether a base `_base_of(holder)` counted `references` for is held by more than that
    view (when that cannot be told: yes)."""
    kind = "memoryview" if isinstance(holder, memoryview) else "array"
    lone = _LONE_BASE_REFERENCES.get(kind)
    if lone is None:
        numpy = sys.modules.get("numpy")
        if kind == "memoryview":
            probe: Any = memoryview(bytearray(1))
        elif numpy is not None:
            probe = numpy.zeros(2)[1:]
        else:
            return True
        lone = _LONE_BASE_REFERENCES[kind] = _base_of(probe)[1]
    return references > lone


_HASH_MODULUS = 1 << 128
"""The hashes of where names share each object are summed modulo this (`ReachIndex.sharing`)."""


def _hashed(data: bytes) -> int:
    """A 128-bit hash of `data`, the same in every process (unlike `hash`)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")


class Reach:
    """What a variable's last digest saw: its object, and what its pickle went through."""

    __slots__ = ("ids", "names", "object_id", "positions")

    def __init__(
        self, object_id: int, positions: dict[int, int] | None, names: frozenset[str]
    ) -> None:
        self.object_id = object_id
        """The id of the value the name was bound to."""
        self.positions = positions
        """Where in its pickle each mutable object it went through sits, by id (see
        `reach_of`); None: unknown (digest it every time)."""
        self.ids = None if positions is None else frozenset(positions)
        """The ids of `positions`."""
        self.names = names
        """The global names its functions use."""


class ReachIndex:
    """The reaches of a session's variables at the last capture, indexed both ways: the names
    whose pickle went through each object, and the names whose functions use each global. A
    block touches few names; finding those that share with them must not cost a pass over all
    of a long session's variables after every block."""

    __slots__ = (
        "_aliases", "_rebound", "by_global", "by_holders", "by_object", "held", "name_hashes",
        "object_ids", "reaches", "sharing", "unknown",
    )  # fmt: skip

    def __init__(self, reaches: dict[str, Reach] | None = None) -> None:
        self.reaches: dict[str, Reach] = {}
        """Each name's reach."""
        self.object_ids: dict[str, int] = {}
        """Each name's object id (compared with the namespace's in one pass, see `rebound`)."""
        self.unknown: set[str] = set()
        """The names whose reach is unknown (`Reach.ids` is None)."""
        self.by_object: dict[int, set[str]] = {}
        """The names that hold each object (see `held`)."""
        self.held: dict[str, frozenset[int]] = {}
        """The objects each name is listed under in `by_object`: those its pickle went
        through, or when that is unknown, the object it is bound to if that can change."""
        self.by_global: dict[str, set[str]] = {}
        self.sharing: dict[int, tuple[int, int, int]] = {}
        """For each object more than one name holds: the sum of their names' hashes (which
        stands for the set of them), the sum of the hashes of where each holds it (`_where`),
        and the hash of that sum."""
        self.by_holders: dict[int, list[Any]] = {}
        """For each set of names that hold objects together (by the sum of their hashes): the
        objects they hold so, and the sum of those objects' hashes."""
        self.name_hashes: dict[str, int] = {}
        self._rebound: tuple[dict[str, Any], set[str]] | None = None
        self._aliases: list[list[str]] | None = []
        """What `aliases` gives, until what names share changes."""
        for name, reach in (reaches or {}).items():
            self.put(name, reach)

    def put(self, name: str, reach: Reach, changeable: bool = False) -> None:
        """Record a name's reach, in place of the one it had (`changeable`: a change made to
        its value through another name may be seen through it, which counts when its reach is
        unknown)."""
        self.discard(name)
        self._rebound = None
        self.reaches[name] = reach
        self.object_ids[name] = reach.object_id
        held = reach.ids
        if held is None:
            self.unknown.add(name)
            held = frozenset((reach.object_id,)) if changeable else frozenset()
        self.held[name] = held
        for object_id in held:
            names = self.by_object.setdefault(object_id, set())
            if names:
                self._share(object_id, names, name, 1)
            names.add(name)
        for used in reach.names:
            self.by_global.setdefault(used, set()).add(name)

    def discard(self, name: str) -> None:
        """Forget a name."""
        self._rebound = None
        reach = self.reaches.get(name)
        if reach is None:
            return
        for object_id in self.held.pop(name):
            names = self.by_object[object_id]
            names.discard(name)
            if names:
                self._share(object_id, names, name, -1)
            else:
                del self.by_object[object_id]
        del self.reaches[name]
        del self.object_ids[name]
        self.unknown.discard(name)
        for used in reach.names:
            _unlist(self.by_global, used, name)

    def _share(self, object_id: int, others: set[str], name: str, change: int) -> None:
        """`name` joins (`change` 1) or leaves (-1) the `others` that hold an object. (In time
        that does not grow with how many hold it: every instance of a class holds the class.)"""
        self._aliases = None
        old = self.sharing.pop(object_id, None)
        if old is None:
            (other,) = others
            holders, total = self._name_hash(other), self._where(other, object_id)
        else:
            holders, total, value = old
            objects = self.by_holders[holders]
            objects[0].discard(object_id)
            objects[1] = (objects[1] - value) % _HASH_MODULUS
            if not objects[0]:
                del self.by_holders[holders]
        if change < 0 and len(others) < 2:
            return
        holders = (holders + change * self._name_hash(name)) % _HASH_MODULUS
        total = (total + change * self._where(name, object_id)) % _HASH_MODULUS
        value = _hashed(total.to_bytes(16, "big"))
        self.sharing[object_id] = (holders, total, value)
        objects = self.by_holders.setdefault(holders, [set(), 0])
        objects[0].add(object_id)
        objects[1] = (objects[1] + value) % _HASH_MODULUS

    def shared_through_views(self) -> list[str]:
        """The names that share an object with others through a numpy view of it (where
        `_add_bases` put it). A snapshot cannot keep that: a pickle writes what a view shows,
        not what it views, so the loaded view would be an array of its own."""
        names: set[str] = set()
        for object_id in self.sharing:
            holders = self.by_object[object_id]
            if any(self._position(name, object_id) <= -2 for name in holders):
                names.update(holders)
        return sorted(names)

    def _position(self, name: str, object_id: int) -> int:
        positions = self.reaches[name].positions
        return -1 if positions is None else positions[object_id]

    def _name_hash(self, name: str) -> int:
        found = self.name_hashes.get(name)
        if found is None:
            found = self.name_hashes[name] = _hashed(name.encode())
        return found

    def _where(self, name: str, object_id: int) -> int:
        """The hash of where a name holds an object (-1: it is bound to it, its reach
        unknown)."""
        return _hashed(f"{name}\0{self._position(name, object_id)}".encode())

    def aliases(self) -> list[list[str]]:
        """The names whose values share an object that `changes_in_place`, in groups: each
        the sorted names, then `@` and a digest of where in each name's pickle each object
        they share sits (the groups sorted). Two sessions whose variables hold equal values
        can differ in this alone: after `b = a`, `a.append(1)` changes `b`, after `b = []` it
        does not; after `v = z[0]`, `v.append(1)` changes `z`, after `v = z[1]` it changes
        `z` elsewhere. (A name whose reach is unknown counts by the object it is bound to.)
        Kept up to date object by object as names are put: a figure and its axes share
        hundreds of objects."""
        if self._aliases is None:
            self._aliases = self._groups()
        return [list(group) for group in self._aliases]

    def _groups(self) -> list[list[str]]:
        parent: dict[str, str] = {}

        def root(name: str) -> str:
            while parent.setdefault(name, name) != name:
                parent[name] = parent[parent[name]]
                name = parent[name]
            return name

        holding = {
            holders: self.by_object[next(iter(objects))]
            for holders, (objects, _total) in self.by_holders.items()
        }
        for names in holding.values():
            first, *others = names
            for other in others:
                parent[root(other)] = root(first)
        totals: dict[str, int] = {}
        for holders, (_objects, total) in self.by_holders.items():
            group = root(next(iter(holding[holders])))
            totals[group] = (totals.get(group, 0) + total) % _HASH_MODULUS
        members: dict[str, list[str]] = {}
        for name in parent:
            members.setdefault(root(name), []).append(name)
        return sorted(
            [*sorted(names), "@" + totals[group].to_bytes(16, "big").hex()]
            for group, names in members.items()
        )

    def rebound(self, values: dict[str, Any]) -> set[str]:
        """The names of `values` bound to another object than the one recorded (or to none
        recorded), and those whose reach is unknown; compared in a few passes of C code."""
        if self._rebound is not None and self._rebound[0] is values:
            return self._rebound[1]  # (asked again in one capture: nothing was put since)
        names = list(values)
        now = list(map(id, values.values()))
        recorded = list(map(self.object_ids.get, names))
        changed = set(itertools.compress(names, map(operator.ne, now, recorded)))
        changed |= self.unknown & values.keys()
        self._rebound = (values, changed)
        return changed

    def rebound_among(self, values: dict[str, Any], candidates: frozenset[str]) -> set[str]:
        """`rebound`, when only `candidates` can have been bound to another object."""
        changed = {
            name
            for name in candidates
            if name in values and id(values[name]) != self.object_ids.get(name)
        }
        changed.update(name for name in self.unknown if name in values)
        return changed


def _unlist(index: dict[Any, set[str]], key: Any, name: str) -> None:
    names = index.get(key)
    if names is not None:
        names.discard(name)
        if not names:
            del index[key]


def touched_names(
    values: dict[str, Any],
    code_touched: frozenset[str],
    previous: dict[str, Reach] | ReachIndex,
    current: dict[str, Reach],
    candidates: frozenset[str] | None = None,
) -> set[str] | None:
    """The names whose digests may have changed since `previous` was taken (with names that
    are not among `values`: those are not digested).

    `code_touched` are the names the block's code names; `current` holds what is known of the
    values digested again so far (the caller digests the answer, then asks again with the new
    reaches until the answer stops growing). None: digest everything. `candidates`: the only
    names that can have been bound or deleted since (None: any name)."""
    index = previous if isinstance(previous, ReachIndex) else ReachIndex(previous)
    # Names the code names or that are gone count too (a function that uses one changes),
    # though only those in `values` are digested.
    if candidates is None:
        touched = set(code_touched) | (index.reaches.keys() - values.keys())
        touched |= index.rebound(values)
    else:
        touched = set(code_touched) | index.rebound_among(values, candidates)
        touched.update(name for name in candidates if name in index.reaches and name not in values)
    reached_ids: set[int] = set()
    frontier = list(touched)

    def reach(name: str) -> None:
        if name not in touched and name in values:
            touched.add(name)
            frontier.append(name)

    while frontier:
        name = frontier.pop()
        for entry in (index.reaches.get(name), current.get(name)):
            if entry is None:
                continue
            if entry.ids is None or entry.names & DYNAMIC_NAMES:
                return None
            for other in entry.names:
                reach(other)
            # Sharing an object with a touched name: what the last capture saw of the others.
            for object_id in entry.ids - reached_ids:
                for other in index.by_object.get(object_id, ()):
                    reach(other)
            reached_ids |= entry.ids
        # A function that uses a touched name (a pickled function carries the values of the
        # globals it uses).
        for other in index.by_global.get(name, ()):
            reach(other)
    return touched


class Variables:
    """What the last capture knew of each of a session's variables (digest, size, reach, the
    package it comes from), kept up to date name by name: a block touches few of a long
    session's names, and a capture must not pass over all of them in Python after every one."""

    def __init__(self) -> None:
        self.index = ReachIndex()
        """The reach of each variable that could be digested."""
        self.known: dict[str, tuple[str, int]] = {}
        """Each variable's digest and size (those that could be digested)."""
        self.digests: dict[str, str] = {}
        """Each variable's digest (as `known`)."""
        self.encoded: dict[str, str] = {}
        """Each variable's entry in the digests' JSON text (see `digests_json`)."""
        self.opaque: dict[str, str] = {}
        """Why each variable that cannot be digested cannot."""
        self.modules: dict[str, str] = {}
        """The variables that hold a module: its name."""
        self.roots: dict[str, str | None] = {}
        """The package each variable's value comes from (see `kernel_modules.module_root`)."""
        self.size = 0
        """The bytes of the digested values that are not modules."""
        self.order: list[str] = []
        """The names of `encoded`, sorted."""

    def names(self) -> set[str]:
        """Every variable it knows."""
        return self.known.keys() | self.opaque.keys()

    def put(
        self, name: str, value: Any, known: tuple[str, int] | str, reach: Reach, root: str | None
    ) -> None:
        """Record what digesting a variable gave: a digest and size, or why it has none."""
        self.discard(name)
        self.roots[name] = root
        if isinstance(known, str):
            self.opaque[name] = known
            return
        self.known[name] = known
        self.digests[name] = known[0]
        self.encoded[name] = f"{json.dumps(name)}: {json.dumps(known[0])}"
        bisect.insort(self.order, name)
        self.index.put(name, reach, _can_be_changed_through(value))
        if isinstance(value, types.ModuleType):
            self.modules[name] = value.__name__
        else:
            self.size += known[1]

    def discard(self, name: str) -> None:
        """Forget a variable."""
        known = self.known.pop(name, None)
        if known is not None and self.modules.pop(name, None) is None:
            self.size -= known[1]
        self.digests.pop(name, None)
        if self.encoded.pop(name, None) is not None:
            del self.order[bisect.bisect_left(self.order, name)]
        self.opaque.pop(name, None)
        self.roots.pop(name, None)
        self.index.discard(name)

    def digests_json(self, others: dict[str, str]) -> str:
        """`json.dumps({**self.digests, **others}, sort_keys=True)`, from the entries kept for
        each variable: the text the state digest hashes, made without encoding every entry
        again."""
        if not others:
            return "{" + ", ".join(map(self.encoded.__getitem__, self.order)) + "}"
        entries = dict(self.encoded)
        for name, digest in others.items():
            entries[name] = f"{json.dumps(name)}: {json.dumps(digest)}"
        return "{" + ", ".join(map(entries.__getitem__, sorted(entries))) + "}"
