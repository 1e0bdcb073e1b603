"""Code that runs inside a Python kernel: which blocks can be undone by deleting what they added.

A kept kernel that ran blocks 1..n cannot serve an edit of block n as it is: it holds block n's
effects. When block n only added names (it rebound, deleted and changed nothing that existed
before it), the state before it is the state after it without those names, so deleting them
undoes it in a millisecond, without a fresh kernel and without replaying blocks 1..n-1.

`kernel_state.capture` asks `note_capture` after each block: it compares the namespace's names
and the identities of their values with those at the previous capture, and the digests that
changed (which the incremental digest computes anyway, mutations seen through other names
included). The answer, the names to delete or None, goes to the host with the state record; the
host undoes a block only on that answer, and only when this kernel captured the block before it
with nothing run in between (`only_the_block`), so the comparison is exact.

What deleting does not undo, and a fresh kernel would not hold (the digest does not cover it
either, so the early cutoff treats it alike): modules the undone blocks imported stay imported,
and IPython's output history (`_`, `Out`) keeps their results.
"""

from __future__ import annotations

import re
from typing import Any

IPYTHON_NAMES = re.compile(
    r"_{1,3}|_i{1,3}|_i?\d+|_[odis]h|__\w+__|In|Out|exit|quit|get_ipython|open"
)
"""Names IPython itself binds and rebinds on every request (output and input history,
builtins, the module's dunders): never a block's own."""

_last_identities: list[dict[str, int]] = []
"""Each tracked name's value's identity at the last capture, while it can serve as baseline."""


def tracked_identities(
    namespace: dict[str, Any], hidden: set[str] | dict[str, Any]
) -> dict[str, int]:
    """Every name a block may have bound (private ones too: `_cache = {}` is the user's), with
    its value's identity."""
    return {
        name: id(value)
        for name, value in namespace.items()
        if name not in hidden
        and not IPYTHON_NAMES.fullmatch(name)
        and not name.startswith("_mdrun")  # mdrun's installer, gone once it ran
    }


def note_start(namespace: dict[str, Any], hidden: set[str] | dict[str, Any]) -> None:
    """The kernel is fresh: its namespace is the baseline of the first block's capture."""
    _last_identities[:] = [tracked_identities(namespace, hidden)]


def note_capture(
    namespace: dict[str, Any],
    hidden: set[str] | dict[str, Any],
    changed: list[str],
    only_the_block: bool,
) -> list[str] | None:
    """The names the block just captured added, if deleting them undoes it exactly; else None.

    `changed` lists the names (and module states such as `<random>`) whose digest changed since
    the previous capture (or all of them, for the first); `only_the_block`: that capture was of
    the block before (or the kernel is fresh), and nothing ran since."""
    current = tracked_identities(namespace, hidden)
    before = _last_identities[0] if _last_identities and only_the_block else None
    _last_identities[:] = [current]
    if before is None:
        return None
    added = set(current) - set(before)
    if any(name not in current or current[name] != identity for name, identity in before.items()):
        return None  # a name was deleted or rebound: its old value is gone
    if not set(changed) <= added:
        return None  # a value that existed changed in place, or a module's state did
    return sorted(added)


def forget(names: list[str]) -> None:
    """The names were deleted: the baseline is the state before the blocks that added them."""
    if _last_identities:
        _last_identities[0] = {
            name: identity for name, identity in _last_identities[0].items() if name not in names
        }


def forget_all() -> None:
    """The state is no longer what the last capture saw (a snapshot was loaded)."""
    _last_identities.clear()
