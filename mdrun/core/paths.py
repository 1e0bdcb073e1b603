"""Paths handed to users of the seeds' API: strings, as in Pylightnix, that also act as paths.

The seeds write `rref2path(rref) + '/x'`, `join(path, 'x')` and `open(path)`: a Pylightnix path
is a `str`. mdrun's paths are `StorePath`s, which are exactly that, and which also answer
pathlib's questions (`path / 'x'`, `.read_text()`, `.exists()`), so code written for either
style works. Inside the store, `pathlib.Path` is used throughout; only the public face converts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mdrun.core.default_store import as_store
from mdrun.core.refs import DRef, RRef
from mdrun.core.store import Store


class StorePath(str):
    """A file or folder path that is a `str`; pathlib's methods are read from `Path(self)`."""

    __slots__ = ()

    @property
    def path(self) -> Path:
        """The same path as a `pathlib.Path`."""
        return Path(self)

    def __truediv__(self, other: str | os.PathLike[str]) -> StorePath:
        return StorePath(os.path.join(self, os.fspath(other)))

    def joinpath(self, *parts: str | os.PathLike[str]) -> StorePath:
        """`path / a / b`, as pathlib's `joinpath`."""
        return StorePath(os.path.join(self, *(os.fspath(part) for part in parts)))

    def __getattr__(self, name: str) -> Any:
        # Only reached for names `str` lacks: `.exists()`, `.read_text()`, `.name`, `.parent`...
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(Path(self), name)


def rref2path(rref: RRef, S: Store | Path | str | None = None) -> StorePath:
    """The folder of a realization (in the store `S`, else the default store)."""
    return StorePath(as_store(S).realization_path(rref))


def dref2path(dref: DRef, S: Store | Path | str | None = None) -> StorePath:
    """The folder of a derivation (in the store `S`, else the default store)."""
    return StorePath(as_store(S).derivation_path(dref))


__all__ = ["StorePath", "dref2path", "rref2path"]
