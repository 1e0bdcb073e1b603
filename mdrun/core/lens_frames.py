"""Where a lens's values sit: the realization a dependency resolves to, and system paths.

A `Frame` says which derivation's config holds a value and which of its realizations (or which
build) the lens follows; a `FrameResolver` answers, for one lens path, which realization a
dependency's dref stands for (through the followed realization's context) and where a reference
or RefPath points on disk. Split from `lens` so that walking a config and resolving it into the
store read apart.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdrun.core.build import Build
from mdrun.core.config import is_refpath, is_selfpath
from mdrun.core.refs import DRef, RRef, is_dref, is_rref
from mdrun.core.store import Context, Store
from mdrun.errors import StoreError


@dataclass(frozen=True, slots=True)
class Frame:
    """Where a value sits: the derivation whose config holds it, and how that one is realized."""

    dref: DRef | None
    """The derivation whose config holds the value; None for plain data."""
    rrefs: tuple[RRef, ...] | None
    """Its realizations this lens follows; None when none is known (a lens from a dref)."""
    build: Build | None = None
    """The build in progress, when the value is in the config being built."""
    output: Path | None = None
    """An explicit output folder of that build (`mklens(..., o=path)`)."""
    output_index: int = 0
    """Which of the build's output folders promise paths resolve into."""


class FrameResolver:
    """Resolves references for one lens path (`where` names it in errors)."""

    __slots__ = ("store", "where")

    def __init__(self, store: Store, where: str) -> None:
        self.store = store
        self.where = where

    def context(self, frame: Frame) -> Context | None:
        """The direct context of the frame's derivation, when one realization is known."""
        if frame.build is not None:
            return frame.build.context
        if frame.rrefs is not None and len(frame.rrefs) == 1:
            return self.store.context_of(frame.rrefs[0])
        return None

    def resolve(self, dref: DRef, frame: Frame) -> tuple[RRef, ...] | None:
        """The realizations of `dref` that the frame's realization used; None if unknown."""
        if dref == frame.dref:
            return frame.rrefs
        context = self.context(frame)
        if context is None or dref not in context:
            return None
        return tuple(context[dref])

    def unresolved(self, dref: DRef, frame: Frame) -> StoreError:
        """Why `dref` has no realization in this lens, and what to do about it."""
        where = self.where
        if frame.build is None and frame.rrefs is None:
            owner = f"{frame.dref} has" if frame.dref is not None else "this lens has"
            return StoreError(
                f"{where}: {dref} has no known realization: {owner} no realization to resolve "
                "it against (start the lens from an rref, or pass rref=...)"
            )
        if frame.build is None and frame.rrefs is not None and len(frame.rrefs) != 1:
            return StoreError(
                f"{where}: {dref} is ambiguous: {frame.dref} has {len(frame.rrefs)} "
                "realizations here, each with its own dependencies"
            )
        return StoreError(f"{where}: {dref} is not a dependency of {frame.dref}")

    def one_realization(self, dref: DRef, frame: Frame) -> RRef:
        rrefs = self.resolve(dref, frame)
        if rrefs is None:
            raise self.unresolved(dref, frame)
        if len(rrefs) != 1:
            raise StoreError(
                f"{self.where}: {dref} has {len(rrefs)} realizations here, a lens follows "
                "exactly one: " + ", ".join(rrefs)
            )
        return rrefs[0]

    def build_output(self, frame: Frame) -> Path:
        assert frame.build is not None
        if frame.output is not None:
            return frame.output
        outputs = frame.build.outputs()
        if not 0 <= frame.output_index < len(outputs):
            raise StoreError(
                f"{self.where}: build_output_idx={frame.output_index}, but the build has "
                f"{len(outputs)} output folder(s)"
            )
        return outputs[frame.output_index]

    def folder(self, dref: DRef, frame: Frame) -> Path:
        """The realization (or build output) of `dref` that a RefPath headed by it lives in."""
        if frame.build is not None and dref == frame.dref:
            return self.build_output(frame)
        return self.store.realization_path(self.one_realization(dref, frame))

    def file_in_store(self, value: Any, frame: Frame) -> tuple[RRef, str] | None:
        """The published realization and the entry a RefPath or promise path names, so that
        its bytes are read through the store (checked); None for anything else (a build's
        output, a path leaving the realization)."""
        if is_selfpath(value):
            head = frame.dref
        elif is_refpath(value):
            head = DRef(value[0])
        else:
            return None
        if head is None or (frame.build is not None and head == frame.dref):
            return None
        name = posixpath.normpath("/".join(str(part) for part in value[1:]))
        if name.startswith(("../", "/")) or name in ("..", "."):
            return None
        return self.one_realization(head, frame), name

    def syspath(self, value: Any, frame: Frame) -> Path:
        if is_rref(value):
            return self.store.realization_path(value)
        if is_dref(value):
            if frame.build is not None and value == frame.dref:
                return self.build_output(frame)
            if self.resolve(value, frame) is None:
                return self.store.derivation_path(value)
            return self.store.realization_path(self.one_realization(value, frame))
        if is_selfpath(value):
            if frame.dref is None:
                raise StoreError(
                    f"{self.where}: a promise path {value!r} outside a stage's config has no "
                    "realization to point into"
                )
            return self.folder(frame.dref, frame).joinpath(*value[1:])
        if is_refpath(value):
            return self.folder(DRef(value[0]), frame).joinpath(*value[1:])
        raise StoreError(
            f"{self.where}: expected a dref, an rref or a RefPath to make a path, got {value!r}"
        )
