"""Stage makers and small store helpers for the core's tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mdrun.core.build import Build, build_outpaths, build_wrapper, write_build_metadata
from mdrun.core.config import Config
from mdrun.core.jsonvalue import JSONObject, JSONValue
from mdrun.core.matchers import match_only
from mdrun.core.refs import DRef, RRef
from mdrun.core.registry import Matcher, Registry, mkdrv
from mdrun.core.store import Context, Store

Text = str | Callable[[int], str]
"""An artifact's content, or a function of the output's index that makes it."""


def file_stage(
    r: Registry | None,
    name: str,
    *,
    deps: Sequence[DRef] = (),
    log: list[str] | None = None,
    text: Text = "hello",
    matcher: Matcher | None = None,
    nouts: int | None = None,
    extra: Mapping[str, JSONValue] | None = None,
    error: BaseException | None = None,
) -> DRef:
    """A stage writing `artifact` in each output; it appends its name to `log` when it builds.

    `deps` go in the config (so they are dependencies); `error` makes the realizer raise it
    after writing its output.
    """
    config: dict[str, JSONValue] = {"name": name, "deps": list(deps), **(extra or {})}

    def realize(b: Build) -> None:
        if log is not None:
            log.append(name)
        for index, folder in enumerate(build_outpaths(b)):
            (folder / "artifact").write_text(text(index) if callable(text) else text)
        if error is not None:
            raise error

    return mkdrv(r, config, matcher or match_only(), build_wrapper(realize, nouts=nouts))


def never_realize(
    store: Store, dref: DRef, context: Context, arguments: JSONObject
) -> list[Path]:
    """A realizer for stages that must not be built."""
    raise AssertionError(f"{dref} must not be built")


def counting_text() -> Callable[[int], str]:
    """Artifact text that differs on every call: a non-deterministic stage."""
    counter = itertools.count()
    return lambda _index: str(next(counter))


def publish(
    store: Store,
    dref: DRef,
    files: Mapping[str, str],
    start: float | None = None,
) -> RRef:
    """Publish a realization of `dref` (root context) holding `files`, built at `start`."""
    folder = store.new_build_folder(dref)
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    if start is not None:
        write_build_metadata(folder, start, start)
    return store.publish_realization(dref, {}, folder)


def derivation(store: Store, name: str = "thing", **fields: JSONValue) -> DRef:
    """Add a derivation (config only) to the store."""
    return store.add_derivation(Config({"name": name, **fields}))


def tmp_entries(store: Store) -> list[str]:
    """What is left in the store's tmp folder (build folders, staging, trash)."""
    return sorted(path.name for path in store.tmp.iterdir()) if store.tmp.is_dir() else []


def artifact(store: Store, rref: RRef) -> str:
    """The text of a realization's `artifact` file."""
    return (store.realization_path(rref) / "artifact").read_text()


def realization_files(store: Store, rref: RRef) -> list[Path]:
    """Every path inside a realization folder, the folder included."""
    root = store.realization_path(rref)
    return [root, *sorted(root.rglob("*"))]
