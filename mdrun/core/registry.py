"""Registries and instantiation: stage functions register derivations; a closure is the result.

A stage is a function of a registry that returns a dref (or a list, tuple or dict of them).
Calling it writes the configs into the store and records each derivation's matcher and realizer
in the registry. `instantiate` calls a stage and returns the closure of its targets: the
derivations they need, in an order where each comes after its dependencies.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias

from mdrun.core.config import Config
from mdrun.core.default_store import as_store
from mdrun.core.graph import reachable
from mdrun.core.jsonvalue import JSONObject
from mdrun.core.refs import DRef, RRef, is_dref
from mdrun.core.store import Context, Store
from mdrun.errors import RegistryError

Matcher: TypeAlias = Callable[[Store, list[RRef]], list[RRef] | None]
"""Chooses among a derivation's realizations (built in the current context); None: build."""


class Realizer(Protocol):
    """Builds a derivation: returns one folder per realization it made (in the store's tmp)."""

    def __call__(
        self, store: Store, dref: DRef, context: Context, arguments: JSONObject
    ) -> list[Path]: ...


StageResult: TypeAlias = Any
"""What a stage returns: a dref, or a list, tuple or dict holding drefs."""


@dataclass(frozen=True, slots=True)
class Derivation:
    """A registered stage: its config (already in the store), matcher and realizer."""

    dref: DRef
    """The derivation reference, the hash of the config."""
    config: Config
    """The config as stored (promise paths unresolved)."""
    matcher: Matcher
    """Chooses which realizations count."""
    realizer: Realizer
    """Builds new realizations."""


class Registry:
    """The derivations defined by the stage functions called in one instantiation session."""

    __mdrun_registry__ = True

    def __init__(self, store: Store | Path | str | None = None) -> None:
        self.store = as_store(store)
        self.derivations: dict[DRef, Derivation] = {}
        self.instantiating = False

    def add(self, config: Config, matcher: Matcher, realizer: Realizer) -> DRef:
        """Store the config and record the derivation; re-adding replaces matcher and realizer."""
        for dependency in config.dependencies():
            if dependency not in self.derivations:
                raise RegistryError(
                    f"config {config.name!r} depends on {dependency}, which this registry does "
                    "not define (was it made by a stage called with another registry?)"
                )
        dref = self.store.add_derivation(config)
        self.derivations[dref] = Derivation(dref, config, matcher, realizer)
        return dref

    def remove(self, dref: DRef) -> None:
        """Forget a derivation (its config stays in the store until GC)."""
        self.derivations.pop(dref, None)

    def __repr__(self) -> str:
        return f"Registry({self.store!r}, {len(self.derivations)} derivations)"


Manager = Registry
"""The seeds' older name for a registry."""

_local = threading.local()


def registry_in_use() -> Registry | None:
    """The innermost registry of `current_registry`, if any."""
    stack: list[Registry] = getattr(_local, "stack", [])
    return stack[-1] if stack else None


@contextlib.contextmanager
def current_registry(registry: Registry) -> Iterator[Registry]:
    """Make `registry` the one stages use when none is passed (per thread)."""
    stack: list[Registry] = getattr(_local, "stack", [])
    _local.stack = [*stack, registry]
    try:
        yield registry
    finally:
        _local.stack = stack


def resolve_registry(registry: Registry | None) -> Registry:
    """The given registry, else the current one; a clear error when there is none."""
    if registry is not None:
        return registry
    current = registry_in_use()
    if current is None:
        raise RegistryError(
            "no registry: pass one to the stage, or call it inside `with current_registry(...)`"
        )
    return current


def mkdrv(
    r: Registry | None,
    config: Config | Mapping[str, Any],
    matcher: Matcher,
    realizer: Realizer,
) -> DRef:
    """Register a derivation: the seeds' constructor of every stage."""
    registry = resolve_registry(r)
    if not isinstance(config, Config):
        config = Config(config)
    return registry.add(config, matcher, realizer)


def find_drefs(result: StageResult) -> list[DRef]:
    """Every dref inside a stage's result, in order, without duplicates."""
    found: dict[DRef, None] = {}
    stack: list[Any] = [result]
    while stack:
        item = stack.pop()
        if is_dref(item):
            found.setdefault(item, None)
        elif isinstance(item, list | tuple):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
    return list(found)


@dataclass(frozen=True, slots=True)
class Closure:
    """What `instantiate` returns: a stage's result and every derivation it needs."""

    result: StageResult
    """What the stage returned."""
    targets: tuple[DRef, ...]
    """The drefs found in the result."""
    derivations: tuple[Derivation, ...]
    """The targets and their dependencies, each after its dependencies."""
    store: Store
    """Where the configs were written and the realizations go."""


def closure_of(registry: Registry, result: StageResult) -> Closure:
    """The derivations that the drefs of `result` need, in registration (dependency) order."""
    targets = find_drefs(result)
    if not targets:
        raise RegistryError(f"a stage returned no derivation reference: {result!r}")

    def dependencies(dref: DRef) -> list[DRef]:
        derivation = registry.derivations.get(dref)
        if derivation is None:
            raise RegistryError(
                f"{dref} is not defined in this registry (did you mix drefs of several "
                "registries?)"
            )
        return derivation.config.dependencies()

    needed = reachable(targets, dependencies)
    ordered = tuple(d for dref, d in registry.derivations.items() if dref in needed)
    return Closure(result, tuple(targets), ordered, registry.store)


def instantiate(
    stage: Callable[..., StageResult] | StageResult,
    *args: Any,
    r: Registry | None = None,
    **kwargs: Any,
) -> Closure:
    """Call a stage with a registry (the given one, the current one, or a new one)."""
    registry = r if r is not None else registry_in_use()
    if registry is None:
        registry = Registry()
    if not callable(stage):
        return closure_of(registry, stage)
    if registry.instantiating:
        raise RegistryError(
            "instantiate was called inside a stage with the same registry; "
            "call the stage function directly instead"
        )
    registry.instantiating = True
    try:
        with current_registry(registry):
            result = stage(registry, *args, **kwargs)
    finally:
        registry.instantiating = False
    return closure_of(registry, result)
