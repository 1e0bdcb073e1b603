"""Code that runs inside a Python kernel: which blocks can be undone, and undoing them.

A kept kernel that ran blocks 1..n cannot serve an edit of block n as it is: it holds block n's
effects. When block n only added names, or rebound (or deleted) names whose old values were
small immutable ones (numbers, short strings), and changed nothing else that existed before it,
the state before it is the state after it with those names deleted and those values put back.
Undoing it takes a millisecond, without a fresh kernel and without replaying blocks 1..n-1.

`kernel_state.capture` asks `note_capture` after each block: it compares the namespace's names
and the identities of their values with those at the previous capture, and the digests that
changed (which the incremental digest computes anyway, mutations seen through other names
included). An undoable block's entry (the names it added, the old values to put back) is kept
here, and the names it added go to the host with the state record. The host undoes blocks only
on that answer, and only when this kernel captured the block before it with nothing run in
between (`only_the_block`), so the comparison is exact. Only small immutable old values are
kept: keeping a large one alive would cost the memory its rebinding freed.

What undoing does not undo, and a fresh kernel would not hold (the digest does not cover it
either, so the early cutoff treats it alike): modules the undone blocks imported stay imported,
IPython's output history (`_`, `Out`) keeps their results, and what libraries set up the first
time they are used stays set up (`kernel_modules.WARM_UPS`).
"""

from __future__ import annotations

import re
from typing import Any

IPYTHON_NAMES = re.compile(
    r"_{1,3}|_i{1,3}|_i?\d+|_[odis]h|__\w+__|In|Out|exit|quit|get_ipython|open"
)
"""Names IPython itself binds and rebinds on every request (output and input history,
builtins, the module's dunders): never a block's own."""
KEPT_TYPES = (int, float, complex, bool, type(None), range)
"""Values small and immutable whatever they hold: kept, so that a rebinding can be undone."""
KEPT_TEXT = 1 << 16
"""Strings and bytes up to this length are kept too."""
STACK_LIMIT = 100_000
"""Entries kept for undoing (the most recent ones)."""


Entry = tuple[list[str], dict[str, Any]]
"""How to undo one block: the names it added, and the old values of those it rebound."""


class Bindings:
    """Each name a block may have bound (private ones too: `_cache = {}` is the user's), with
    its value's identity, and the value itself where it is kept (see `KEPT_TYPES`). Brought up
    to date by `update` in passes of C code, plus Python work only for the names a block added
    or rebound: a capture after every block must not cost a pass in Python over all of a long
    session's names."""

    __slots__ = ("hidden", "ids", "kept", "keys", "names")

    def __init__(self, namespace: dict[str, Any], hidden: set[str] | dict[str, Any]) -> None:
        self.keys = set(namespace)
        """The namespace's names (IPython's and hidden ones included)."""
        self.hidden = set(hidden)
        self.names = {name for name in self.keys - self.hidden if _is_users(name)}
        """The names tracked."""
        self.ids = _identities(namespace, self.names)
        self.kept: dict[str, Any] = {}
        """The values kept, of the names bound to a value of `KEPT_TYPES`."""
        for name in self.names:
            _keep(self.kept, name, namespace[name])

    def update(
        self, namespace: dict[str, Any], hidden: set[str] | dict[str, Any]
    ) -> tuple[set[str], set[str], dict[str, Any]]:
        """Take the namespace's bindings now; the names added, the names rebound or gone, and
        the kept values those had before."""
        hidden_now = hidden.keys() if isinstance(hidden, dict) else hidden
        keys_now = namespace.keys()
        if hidden_now != self.hidden:
            self.hidden = set(hidden_now)
            self.names = {name for name in keys_now - self.hidden if _is_users(name)}
        else:
            self.names -= self.keys - keys_now
            self.names.update(
                name for name in keys_now - self.keys if name not in self.hidden and _is_users(name)
            )
        self.keys = set(keys_now)
        ids = _identities(namespace, self.names)
        different = {name for name, _identity in ids.items() - self.ids.items()}
        added = different - self.ids.keys()
        replaced = (different - added) | (self.ids.keys() - ids.keys())
        old_values = {name: self.kept.pop(name, NOT_KEPT) for name in replaced}
        for name in different:
            _keep(self.kept, name, namespace[name])
        self.ids = ids
        return added, replaced, old_values

    def update_names(
        self, namespace: dict[str, Any], names: frozenset[str]
    ) -> tuple[set[str], set[str], dict[str, Any]]:
        """`update`, when only `names` can have been bound or deleted since."""
        added: set[str] = set()
        replaced: set[str] = set()
        old_values: dict[str, Any] = {}
        for name in names:
            if name in self.hidden or not _is_users(name):
                continue
            if name in namespace:
                identity = id(namespace[name])
                if self.ids.get(name) == identity:
                    continue
                if name in self.ids:
                    replaced.add(name)
                    old_values[name] = self.kept.pop(name, NOT_KEPT)
                else:
                    added.add(name)
                    self.names.add(name)
                    self.keys.add(name)
                self.ids[name] = identity
                _keep(self.kept, name, namespace[name])
            elif name in self.ids:
                replaced.add(name)
                old_values[name] = self.kept.pop(name, NOT_KEPT)
                del self.ids[name]
                self.names.discard(name)
                self.keys.discard(name)
        return added, replaced, old_values


def _identities(namespace: dict[str, Any], names: set[str]) -> dict[str, int]:
    ordered = list(names)
    return dict(zip(ordered, map(id, map(namespace.__getitem__, ordered)), strict=True))


class _NotKept:
    """The old value of a binding was not kept (see `KEPT_TYPES`)."""


NOT_KEPT = _NotKept()

_last_bindings: list[Bindings] = []
"""The bindings at the last capture, while they can serve as baseline."""
_undo: list[Entry | None] = []
"""One entry per capture since the kernel started (None: that block cannot be undone)."""


def _keep(kept: dict[str, Any], name: str, value: Any) -> None:
    kind = type(value)
    if kind in KEPT_TYPES or (kind in (str, bytes) and len(value) <= KEPT_TEXT):
        kept[name] = value


IPYTHON_PLAIN_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})
"""`IPYTHON_NAMES` that do not start with an underscore (the pattern is tried only on those)."""


def _is_users(name: str) -> bool:
    if name[:1] != "_":
        return name not in IPYTHON_PLAIN_NAMES
    # Not IPython's, nor mdrun's installer (gone once it ran).
    return not IPYTHON_NAMES.fullmatch(name) and not name.startswith("_mdrun")


def note_start(namespace: dict[str, Any], hidden: set[str] | dict[str, Any]) -> None:
    """The kernel is fresh: its namespace is the baseline of the first block's capture."""
    _last_bindings[:] = [Bindings(namespace, hidden)]
    _undo.clear()


def note_capture(
    namespace: dict[str, Any],
    hidden: set[str] | dict[str, Any],
    changed: list[str],
    only_the_block: bool,
    known: frozenset[str] | None = None,
) -> list[str] | None:
    """The names the block just captured added, if it can be undone (see the module's
    docstring); else None.

    `changed` lists the names (and module states such as `<random>`) whose digest changed since
    the previous capture (or all of them, for the first); `only_the_block`: that capture was of
    the block before (or the kernel is fresh), and nothing ran since; `known`: the only names
    the block can have bound or deleted (see `kernel_state.capture`)."""
    entry = None
    if _last_bindings and only_the_block:
        bindings = _last_bindings[0]
        if known is None:
            added, replaced, old_values = bindings.update(namespace, hidden)
        else:
            added, replaced, old_values = bindings.update_names(namespace, known)
        entry = _entry(added, replaced, old_values, changed)
    else:
        _last_bindings[:] = [Bindings(namespace, hidden)]
    _undo.append(entry)
    del _undo[:-STACK_LIMIT]
    return None if entry is None else entry[0]


def _entry(
    added: set[str], replaced: set[str], old_values: dict[str, Any], changed: list[str]
) -> Entry | None:
    if any(value is NOT_KEPT for value in old_values.values()):
        return None  # a name deleted or rebound whose old value is gone
    if not set(changed) <= added | replaced:
        return None  # a value that existed changed in place, or a module's state did
    return sorted(added), old_values


def undo(
    namespace: dict[str, Any], hidden: set[str] | dict[str, Any], count: int, added: list[str]
) -> dict[str, Any]:
    """Undo the last `count` blocks captured, newest first; `added` is what the host knows they
    added (refused unless it is what they did). The values put back, by name."""
    if count > len(_undo) or any(entry is None for entry in _undo[len(_undo) - count :]):
        raise RuntimeError(f"cannot undo the last {count} blocks: not all are undoable")
    entries = [entry for entry in _undo[len(_undo) - count :] if entry is not None]
    if sorted(name for names, _values in entries for name in names) != sorted(added):
        raise RuntimeError("cannot undo: the host's record of the blocks is not this kernel's")
    put_back: dict[str, Any] = {}
    for names, old_values in reversed(entries):
        for name in names:
            del namespace[name]
            put_back.pop(name, None)
        namespace.update(old_values)
        put_back.update(old_values)
    del _undo[len(_undo) - count :]
    _last_bindings[:] = [Bindings(namespace, hidden)]
    return put_back


def forget_all() -> None:
    """The state is no longer what the last capture saw (a snapshot was loaded)."""
    _last_bindings.clear()
    _undo.clear()
