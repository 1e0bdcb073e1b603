"""The realizer's side: a `Build` describes one build in progress and owns its output folders.

`build_wrapper(f)` turns a function of a Build into a realizer. Output folders are made on
demand (`build_setoutpaths`, `build_outpath`), promise paths resolve inside them, and the
store's realize loop checks promises and publishes the folders when `f` returns.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mdrun.core.config import Config, is_refpath, is_selfpath
from mdrun.core.integrity import BUILD_FILE
from mdrun.core.jsonvalue import JSONObject, JSONValue
from mdrun.core.paths import StorePath
from mdrun.core.refs import DRef, RRef
from mdrun.core.store import Context, Store
from mdrun.errors import StoreError


class Attrs:
    """A read-only view of a dict whose keys are attributes: `build_cattrs(b).name`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)

    def __getattr__(self, name: str) -> Any:
        """Only called for missing attributes; declared so typed callers may use any field."""
        raise AttributeError(f"no field {name!r} (fields: {', '.join(sorted(self.__dict__))})")

    def __repr__(self) -> str:
        return f"Attrs({self.__dict__!r})"


class Build:
    """One build of a derivation: its config, the context it is built in, its outputs."""

    def __init__(
        self, store: Store, dref: DRef, context: Context, arguments: JSONObject | None = None
    ) -> None:
        self.store = store
        self.dref = dref
        self.context = context
        self.arguments: JSONObject = arguments or {}
        self.config: Config = store.config_of(dref)
        self.outpaths: list[Path] | None = None
        self.starttime = time.time()
        self._cattrs: Attrs | None = None

    def set_outpaths(self, count: int) -> list[Path]:
        """Create `count` fresh output folders (replacing any made before)."""
        if not isinstance(count, int) or count < 1:
            raise StoreError(f"{self.dref}: a build needs at least one output, not {count!r}")
        self.discard_outputs()
        self.outpaths = [self.store.new_build_folder(self.dref) for _ in range(count)]
        for path in self.outpaths:
            write_build_metadata(path, self.starttime, None)
        return self.outpaths

    def outputs(self) -> list[Path]:
        """The output folders, creating one if the realizer has not said how many."""
        if self.outpaths is None:
            return self.set_outpaths(1)
        return self.outpaths

    def discard_outputs(self) -> None:
        """Delete the output folders (after a failure, or before making new ones)."""
        from mdrun.core.store import remove_tree

        for path in self.outpaths or []:
            remove_tree(path)
        self.outpaths = None

    def resolve(self, refpath: list[str], output_index: int = 0) -> Path:
        """A system path for a promise path (in an output) or a RefPath (in a dependency)."""
        if is_selfpath(refpath):
            return self.outputs()[output_index].joinpath(*refpath[1:])
        if is_refpath(refpath):
            dependency = DRef(refpath[0])
            rrefs = self.context.get(dependency)
            if not rrefs:
                raise StoreError(f"{self.dref}: {dependency} is not a dependency of this build")
            if len(rrefs) != 1:
                raise StoreError(
                    f"{self.dref}: {dependency} has {len(rrefs)} realizations here; "
                    "use build_paths to get all of them"
                )
            return self.store.realization_path(rrefs[0]).joinpath(*refpath[1:])
        raise StoreError(f"{self.dref}: {refpath!r} is not a RefPath or a promise path")


def build_metadata(start: float, stop: float | None) -> dict[str, JSONValue]:
    """When and where a build ran: a realization's build record (unhashed metadata)."""
    data: dict[str, JSONValue] = {"start": start, "host": socket.gethostname(), "pid": os.getpid()}
    if stop is not None:
        data["stop"] = stop
    return data


def write_build_metadata(folder: Path, start: float, stop: float | None) -> None:
    """Record when and where a build ran (unhashed metadata)."""
    (folder / BUILD_FILE).write_text(json.dumps(build_metadata(start, stop)))


def build_wrapper(function: Callable[[Build], None], nouts: int | None = None) -> Any:
    """Turn `function(build)` into a realizer; `nouts` pre-creates that many outputs."""

    def realizer(
        store: Store, dref: DRef, context: Context, arguments: JSONObject
    ) -> list[Path]:
        build = Build(store, dref, context, arguments)
        if nouts is not None:
            build.set_outpaths(nouts)
        try:
            function(build)
        except BaseException:
            build.discard_outputs()
            raise
        outputs = build.outputs()
        stop = time.time()
        for path in outputs:
            write_build_metadata(path, build.starttime, stop)
        return outputs

    return realizer


# -- the seeds' helper functions -------------------------------------------------------------


def build_setoutpaths(b: Build, nouts: int) -> list[StorePath]:
    """Declare that this build makes `nouts` realizations; returns their folders."""
    return [StorePath(path) for path in b.set_outpaths(nouts)]


def build_outpaths(b: Build) -> list[StorePath]:
    """All output folders of the build."""
    return [StorePath(path) for path in b.outputs()]


def build_outpath(b: Build) -> StorePath:
    """The output folder of a build with one output."""
    outputs = b.outputs()
    if len(outputs) != 1:
        raise StoreError(f"{b.dref}: build_outpath needs one output, this build has {len(outputs)}")
    return StorePath(outputs[0])


def build_config(b: Build) -> Config:
    """The config being built."""
    return b.config


def build_cattrs(b: Build) -> Attrs:
    """The config as attributes (cached, so realizer steps can share scratch values)."""
    if b._cattrs is None:
        b._cattrs = Attrs(b.config.val)
    return b._cattrs


def build_name(b: Build) -> str:
    """The stage's name."""
    return b.config.name


def build_context(b: Build) -> Context:
    """The realizations of the direct dependencies this build uses."""
    return b.context


def build_deref_(b: Build, dref: DRef) -> list[RRef]:
    """The realizations of a dependency used by this build."""
    rrefs = b.context.get(dref)
    if rrefs is None:
        raise StoreError(f"{b.dref}: {dref} is not a dependency of this build")
    return list(rrefs)


def build_deref(b: Build, dref: DRef) -> RRef:
    """The one realization of a dependency used by this build."""
    rrefs = build_deref_(b, dref)
    if len(rrefs) != 1:
        raise StoreError(f"{b.dref}: {dref} has {len(rrefs)} realizations, expected one")
    return rrefs[0]


def build_paths(b: Build, refpath: list[str]) -> list[StorePath]:
    """All system paths a RefPath names: one per output (self) or per matched realization."""
    if is_selfpath(refpath) or (refpath and refpath[0] == b.dref):
        return [StorePath(path.joinpath(*refpath[1:])) for path in b.outputs()]
    return [
        StorePath(b.store.realization_path(rref).joinpath(*refpath[1:]))
        for rref in build_deref_(b, DRef(refpath[0]))
    ]


def build_path(b: Build, refpath: list[str]) -> StorePath:
    """The one system path a RefPath names."""
    paths = build_paths(b, refpath)
    if len(paths) != 1:
        raise StoreError(f"{b.dref}: {refpath!r} names {len(paths)} paths, expected one")
    return paths[0]


__all__ = [
    "Attrs",
    "Build",
    "build_cattrs",
    "build_config",
    "build_context",
    "build_deref",
    "build_deref_",
    "build_name",
    "build_outpath",
    "build_outpaths",
    "build_path",
    "build_paths",
    "build_setoutpaths",
    "build_metadata",
    "build_wrapper",
    "write_build_metadata",
]
