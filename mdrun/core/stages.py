"""Built-in stages that need no network: `mknode` (a config plus small files), and the stage
transformers `redefine` and `realized`. Fetching lives in `fetch.py`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mdrun.core.build import Build, build_outpath, build_wrapper
from mdrun.core.config import Config
from mdrun.core.integrity import UNHASHED_NAMES
from mdrun.core.jsonvalue import JSONObject
from mdrun.core.matchers import match_only
from mdrun.core.refs import DRef, is_dref, make_name
from mdrun.core.registry import Matcher, Realizer, Registry, mkdrv, resolve_registry
from mdrun.core.store import RESERVED_NAMES, Context, Store
from mdrun.errors import ConfigError, RegistryError, StoreError

__all__ = ["ARTIFACTS_FIELD", "mknode", "realized", "redefine"]

ARTIFACTS_FIELD = "__artifacts__"
"""Config field of `mknode`: {file name: sha256 of its bytes}, so contents are in the dref."""

Stage = Callable[..., Any]
"""A stage function: `stage(registry, *args, **kwargs) -> dref`."""


def _check_artifact_name(filename: str) -> None:
    """Artifacts are plain files at the top of the realization, and all of them are hashed."""
    if (
        not isinstance(filename, str)
        or filename in ("", ".", "..")
        or "/" in filename
        or "\\" in filename
        or "\0" in filename
    ):
        raise ConfigError(f"mknode: artifact name {filename!r} is not a plain file name")
    if filename in UNHASHED_NAMES or filename in RESERVED_NAMES:
        raise ConfigError(
            f"mknode: artifact name {filename!r} is reserved (the store writes that file)"
        )


def mknode(
    r: Registry | None,
    config_dict: Mapping[str, Any],
    artifacts: Mapping[str, bytes] | None = None,
    name: str = "mknode",
) -> DRef:
    """A stage whose realization holds `artifacts` as files; their hashes go in the config.

    Putting the hashes (not the bytes) in the config keeps configs small while two nodes with
    equal configs but different file contents still get different drefs.
    """
    files = dict(artifacts or {})
    if ARTIFACTS_FIELD in config_dict:
        raise ConfigError(f"mknode: the config field {ARTIFACTS_FIELD!r} is reserved")
    digests: dict[str, str] = {}
    for filename, content in files.items():
        _check_artifact_name(filename)
        if not isinstance(content, bytes):
            raise ConfigError(
                f"mknode: artifact {filename!r} must be bytes, not {type(content).__name__}"
            )
        digests[filename] = hashlib.sha256(content).hexdigest()
    data = dict(config_dict)
    data["name"] = make_name(name)
    data[ARTIFACTS_FIELD] = digests

    def write_artifacts(build: Build) -> None:
        output = build_outpath(build)
        for filename, content in files.items():
            (output / filename).write_bytes(content)

    return mkdrv(r, Config(data), match_only(), build_wrapper(write_artifacts))


def redefine(
    stage: Stage,
    new_config: Callable[[JSONObject], None] = lambda _config: None,
    new_matcher: Matcher | None = None,
    new_realizer: Realizer | None = None,
) -> Stage:
    """A stage like `stage`, with its config edited in place and/or another matcher or realizer.

    Only a stage nothing else depends on can change its config (its dref changes, and a
    dependent registered earlier would still name the old one): that case is refused.
    """

    def redefined(r: Registry | None, *args: Any, **kwargs: Any) -> DRef:
        registry = resolve_registry(r)
        old_dref = stage(registry, *args, **kwargs)
        if not is_dref(old_dref):
            raise RegistryError(f"redefine needs a stage that returns one dref, got {old_dref!r}")
        old = registry.derivations.get(old_dref)
        if old is None:
            raise RegistryError(f"redefine: {old_dref} is not defined in this registry")
        data = old.config.val
        new_config(data)
        config = Config(data)
        matcher = new_matcher if new_matcher is not None else old.matcher
        realizer = new_realizer if new_realizer is not None else old.realizer
        if config != old.config:
            dependents = [
                derivation.dref
                for derivation in registry.derivations.values()
                if old_dref in derivation.config.dependencies()
            ]
            if dependents:
                raise RegistryError(
                    f"redefine: cannot change the config of {old_dref}: "
                    f"{', '.join(dependents)} already depend on it; redefine a top-level stage"
                )
            registry.remove(old_dref)
        return mkdrv(registry, config, matcher, realizer)

    return redefined


def realized(stage: Stage) -> Stage:
    """A stage that uses the existing realizations of `stage` and refuses to build it."""

    def refuse_to_build(
        store: Store, dref: DRef, context: Context, arguments: JSONObject
    ) -> list[Path]:
        del store, context, arguments  # the protocol's names; nothing here is used
        raise StoreError(
            f"{dref} is not realized (in this context), and realized() forbids building it; "
            "realize the stage without realized() first"
        )

    return redefine(stage, new_realizer=refuse_to_build)
