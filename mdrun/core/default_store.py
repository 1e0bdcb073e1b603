"""The store in use when none is named: `fsinit`'s, a `current_storage` block's, or the default.

The seeds' API passes stores implicitly (`S=None`); this module owns that choice. The folder
itself (`$MDRUN_STORE`, else the user's cache) is named by `store.default_store_root`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from mdrun.core.files import remove_tree
from mdrun.core.store import Store, default_store_root

__all__ = ["as_store", "current_storage", "default_store", "fsinit", "set_default_store"]

_default: Store | None = None
_local = threading.local()


def default_store() -> Store:
    """The store in use: the innermost `current_storage`, else `fsinit`'s, else the default."""
    stack: list[Store] = getattr(_local, "stack", [])
    if stack:
        return stack[-1]
    global _default
    if _default is None:
        _default = Store.initialize(default_store_root())
    return _default


def set_default_store(store: Store | None) -> None:
    """Make `store` the process-wide default (None: back to the environment's default)."""
    global _default
    _default = store


def as_store(store: Store | Path | str | None) -> Store:
    """Accept a Store, a root folder, or None for the default store."""
    if store is None:
        return default_store()
    if isinstance(store, Store):
        return store
    return Store.initialize(store)


@contextlib.contextmanager
def current_storage(store: Store | Path | str) -> Iterator[Store]:
    """Use another store within a `with` block (per thread)."""
    resolved = as_store(store)
    stack: list[Store] = getattr(_local, "stack", [])
    _local.stack = [*stack, resolved]
    try:
        yield resolved
    finally:
        _local.stack = stack


def fsinit(root: Path | str, use_as_default: bool = True, remove_existing: bool = False) -> Store:
    """Create (or open) a store at `root`; by default make it the default store."""
    if remove_existing:
        remove_tree(Path(root))
    store = Store.initialize(root)
    if use_as_default:
        set_default_store(store)
    return store
