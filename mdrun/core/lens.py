"""Lens: walk a stage's config across its dependencies and read values, references and paths.

`mklens(rref).dataset.out.syspath` starts at a realization, moves into the config of its
`dataset` dependency through the realization's context, and turns the promise path `out` into a
system path inside the realization that was actually used. Contexts hold direct dependencies
only, so each step into a dependency reads the context of the realization it reached. What a
lens reads of a published realization (`.contents`, JSON files walked into) goes through the
store, checked against its manifest. A lens only reads (except `.val = v` on a plain dict);
building and matching belong to `realize`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from mdrun.core.build import Build
from mdrun.core.config import is_refpath, is_selfpath
from mdrun.core.default_store import as_store
from mdrun.core.graph import reachable
from mdrun.core.lens_frames import Frame, FrameResolver
from mdrun.core.paths import StorePath
from mdrun.core.refs import DRef, RRef, is_dref, is_rref, rref_to_dref
from mdrun.core.registry import Closure, Derivation, Registry
from mdrun.core.store import Store
from mdrun.errors import StoreError

Step = str | int
"""One navigation step: a dict key, or an index into a list."""


class Lens:
    """A path of keys from a starting point; terminals (`.val`, `.syspath`...) evaluate it.

    Navigation is lazy: `mklens(x).a.b` only records the keys, so an error names the whole path.
    Config keys named like a terminal (`val`, `name` is fine) are reached with `.get('val')`.
    """

    __slots__ = ("_closure", "_frame", "_label", "_plain_dict", "_start", "_steps", "_store")

    def __init__(
        self,
        store: Store,
        start: Any,
        frame: Frame,
        label: str,
        *,
        steps: tuple[Step, ...] = (),
        closure: Closure | None = None,
        plain_dict: bool = False,
    ) -> None:
        self._store = store
        self._start = start
        self._frame = frame
        self._label = label
        self._steps = steps
        self._closure = closure
        self._plain_dict = plain_dict

    # -- navigation ---------------------------------------------------------------------------

    def get(self, key: Step) -> Lens:
        """The lens one step further: a config key (or a list index)."""
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise StoreError(f"{self._where()}: a lens key must be a string or an index: {key!r}")
        return Lens(
            self._store,
            self._start,
            self._frame,
            self._label,
            steps=(*self._steps, key),
            closure=self._closure,
            plain_dict=self._plain_dict,
        )

    def __getattr__(self, key: str) -> Lens:
        if key.startswith("__") and key.endswith("__"):
            raise AttributeError(key)
        return self.get(key)

    def __repr__(self) -> str:
        return f"<Lens {self._where()}>"

    # -- terminals ----------------------------------------------------------------------------

    @property
    def optval(self) -> Any:
        """The value (a copy), or None; a missing last key also gives None."""
        found = self._walk_to_end(optional=True)
        if found is None:
            return None
        value, frame = found
        return _presented(value, frame)

    @property
    def val(self) -> Any:
        """The value (a copy; promise paths shown as RefPaths headed by their own dref)."""
        value, frame = self._walk()
        if value is None:
            raise StoreError(f"{self._where()}: the value is null (use .optval to allow it)")
        return _presented(value, frame)

    @val.setter
    def val(self, new_value: Any) -> None:
        """Replace an existing key's value: only in a lens made from a plain dict."""
        if not self._plain_dict:
            raise StoreError(
                f"{self._where()}: only a lens made from a plain dict can be assigned to; "
                "configs and realizations in the store never change"
            )
        if not self._steps:
            raise StoreError(f"{self._where()}: name the key to set, as in mklens(d).key.val = v")
        container = self._start
        for depth, step in enumerate(self._steps):
            where = self._where(depth + 1)
            if isinstance(step, str) and isinstance(container, dict):
                if step not in container:
                    raise StoreError(f"{where}: no such key to set (a lens never adds keys)")
            elif isinstance(step, int) and isinstance(container, list):
                if not -len(container) <= step < len(container):
                    raise StoreError(f"{where}: index out of range (length {len(container)})")
            else:
                raise StoreError(f"{where}: cannot set inside a {_kind(container)}")
            if depth == len(self._steps) - 1:
                container[step] = new_value
            else:
                container = container[step]

    @property
    def refpath(self) -> list[str]:
        """The value as a RefPath; a promise path is headed by its own dref."""
        value, frame = self._walk()
        if is_selfpath(value) and frame.dref is not None:
            return [frame.dref, *value[1:]]
        if is_refpath(value):
            return list(value)
        raise StoreError(f"{self._where()}: expected a RefPath [dref, 'path', ...], got {value!r}")

    @property
    def dref(self) -> DRef:
        """The value as a derivation reference (an rref gives its derivation)."""
        value, _ = self._walk()
        if is_dref(value):
            return value
        if is_rref(value):
            return rref_to_dref(value)
        raise StoreError(f"{self._where()}: expected a dref or an rref, got {value!r}")

    @property
    def rref(self) -> RRef:
        """The value as the one realization this lens follows (a dref is resolved)."""
        value, frame = self._walk()
        if is_rref(value):
            return value
        if not is_dref(value):
            raise StoreError(f"{self._where()}: expected a dref or an rref, got {value!r}")
        if frame.build is not None and value == frame.dref:
            raise StoreError(f"{self._where()}: {value} is being built; it has no rref yet")
        return self._frames().one_realization(value, frame)

    @property
    def syspath(self) -> StorePath:
        """The value as a path on disk (a realization, a file in one, or a build output); a
        `str`, as in the seeds (`syspath + '/x'`), with pathlib's methods too."""
        value, frame = self._walk()
        return StorePath(self._frames().syspath(value, frame))

    @property
    def contents(self) -> str:
        """The text of the file at `.syspath`."""
        value, frame = self._walk()
        path = self._frames().syspath(value, frame)
        located = self._frames().file_in_store(value, frame)
        if located is None:
            if not path.is_file():
                raise StoreError(f"{self._where()}: {path} is not a file")
            return path.read_text()
        rref, name = located
        if self._store.recorded_digest(rref, name) is None:
            raise StoreError(f"{self._where()}: {path} is not a file")
        return self._store.read_file(rref, name).decode()

    @property
    def closure(self) -> Closure:
        """The sub-closure of a dref, to realize one stage of an instantiated closure alone."""
        if self._closure is None:
            raise StoreError(f"{self._where()}: .closure needs a lens made from a Closure")
        value, _ = self._walk()
        if not is_dref(value):
            raise StoreError(f"{self._where()}: .closure needs a dref, got {value!r}")
        return sub_closure(self._closure, value)

    # -- evaluation ---------------------------------------------------------------------------

    def _where(self, depth: int | None = None) -> str:
        steps = self._steps if depth is None else self._steps[:depth]
        return self._label + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps)

    def _frames(self) -> FrameResolver:
        return FrameResolver(self._store, self._where())

    def _walk(self) -> tuple[Any, Frame]:
        """(value, frame) at the end of the path."""
        found = self._walk_to_end(optional=False)
        assert found is not None
        return found

    def _walk_to_end(self, optional: bool) -> tuple[Any, Frame] | None:
        """(value, frame) at the end; None when `optional` and the last key is absent."""
        value, frame = self._start, self._frame
        for depth, step in enumerate(self._steps):
            container, frame = self._open(value, frame, depth)
            if isinstance(step, int):
                if not isinstance(container, list):
                    raise StoreError(
                        f"{self._where(depth)}: is a {_kind(container)}, not a list: "
                        f"cannot take item [{step}]"
                    )
                if not -len(container) <= step < len(container):
                    if optional and depth == len(self._steps) - 1:
                        return None
                    raise StoreError(
                        f"{self._where(depth + 1)}: index out of range (length {len(container)})"
                    )
                value = container[step]
                continue
            if not isinstance(container, dict):
                raise StoreError(
                    f"{self._where(depth)}: is a {_kind(container)}, not a config or dict: "
                    f"cannot look up {step!r}"
                )
            if step not in container:
                if optional and depth == len(self._steps) - 1:
                    return None
                keys = ", ".join(sorted(container)) or "none"
                raise StoreError(f"{self._where(depth + 1)}: no such key (keys: {keys})")
            value = container[step]
        return value, frame

    def _open(self, value: Any, frame: Frame, depth: int) -> tuple[Any, Frame]:
        """The dict (or list) a value stands for, and the frame of the values inside it."""
        if isinstance(value, dict | list) and not (is_refpath(value) or is_selfpath(value)):
            return value, frame
        if is_dref(value):
            inner = (
                frame if value == frame.dref else Frame(value, self._frames().resolve(value, frame))
            )
            return self._store.config_of(value).data, inner
        if is_rref(value):
            dref = rref_to_dref(value)
            return self._store.config_of(dref).data, Frame(dref, (value,))
        if is_refpath(value) or is_selfpath(value):
            head = DRef(value[0]) if is_refpath(value) else frame.dref
            path = self._frames().syspath(value, frame)
            located = self._frames().file_in_store(value, frame)
            try:
                if located is not None and self._store.recorded_digest(*located) is not None:
                    loaded = json.loads(self._store.read_file(*located))
                else:
                    loaded = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise StoreError(
                    f"{self._where(depth)}: cannot walk into {path}: not a readable JSON file "
                    f"({err})"
                ) from None
            inner = (
                frame
                if head == frame.dref or head is None
                else Frame(head, self._frames().resolve(head, frame))
            )
            return loaded, inner
        raise StoreError(
            f"{self._where(depth)}: is {value!r}, not a config, dict, reference or JSON file: "
            f"cannot look up {self._steps[depth]!r}"
        )


def _kind(value: Any) -> str:
    if is_dref(value) or is_rref(value):
        return "reference"
    return {dict: "dict", list: "list", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _presented(value: Any, frame: Frame) -> Any:
    """A deep copy of a value, with promise paths written as RefPaths to their own dref."""
    if frame.dref is None:
        return copy.deepcopy(value)
    if is_selfpath(value):
        return [frame.dref, *value[1:]]
    if isinstance(value, list):
        return [_presented(item, frame) for item in value]
    if isinstance(value, dict):
        return {key: _presented(item, frame) for key, item in value.items()}
    return copy.deepcopy(value)


def sub_closure(closure: Closure, dref: DRef) -> Closure:
    """The part of a closure that `dref` needs, with `dref` as its one target."""
    by_dref = {derivation.dref: derivation for derivation in closure.derivations}
    if dref not in by_dref:
        raise StoreError(f"{dref} is not part of this closure")
    needed = reachable([dref], lambda current: by_dref[current].config.dependencies())
    kept: tuple[Derivation, ...] = tuple(d for d in closure.derivations if d.dref in needed)
    return Closure(dref, (dref,), kept, closure.store)


def _describe(start: Any) -> str:
    if isinstance(start, Build):
        return f"mklens(build of {start.dref})"
    if isinstance(start, Closure):
        return "mklens(closure)"
    if isinstance(start, dict):
        return "mklens(dict)"
    return f"mklens({start!r})"


def mklens(  # noqa: PLR0917 (the seeds' positional signature)
    x: Any,
    o: Path | str | None = None,
    b: Build | None = None,
    rref: RRef | None = None,
    build_output_idx: int = 0,
    S: Store | Path | str | None = None,
    r: Registry | None = None,
) -> Lens:
    """A lens from a dref, rref, Build, RefPath, dict or Closure.

    `b` (or `x` a Build) resolves values inside that build: promise paths go to its output
    folder `build_output_idx` (or `o`). `rref` names the realization the starting value lives
    in, so `mklens(dref, rref=...)` can resolve paths. `S` or `r` choose the store.
    """
    build = x if isinstance(x, Build) else b
    if S is not None:
        store = as_store(S)
    elif build is not None:
        store = build.store
    elif isinstance(x, Closure):
        store = x.store
    elif r is not None:
        store = r.store
    else:
        store = as_store(None)
    output = Path(o) if o is not None else None
    label = _describe(x)

    if rref is not None and not is_rref(rref):
        raise StoreError(f"mklens: rref= expects a realization reference, got {rref!r}")
    if build is not None:
        frame = Frame(build.dref, None, build, output, build_output_idx)
    elif rref is not None:
        frame = Frame(rref_to_dref(rref), (rref,))
    else:
        frame = Frame(None, None)

    if isinstance(x, Build):
        return Lens(store, x.dref, frame, label)
    if isinstance(x, Closure):
        return Lens(store, x.result, frame, label, closure=x)
    if isinstance(x, dict):
        return Lens(store, x, frame, label, plain_dict=True)
    if is_rref(x):
        return Lens(store, x, Frame(rref_to_dref(x), (x,)), label)
    if is_dref(x):
        if frame.dref is None:
            frame = Frame(x, None)
        return Lens(store, x, frame, label)
    if is_refpath(x):
        return Lens(store, list(x), frame, label)
    raise StoreError(
        f"mklens expects a dref, an rref, a Build, a RefPath, a dict or a Closure; "
        f"got {type(x).__name__} {x!r}"
    )


__all__ = ["Lens", "mklens"]
