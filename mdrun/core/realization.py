"""Realization: walk a closure in dependency order, reuse what matchers accept, build the rest.

For each derivation: its context is the realizations chosen for its direct dependencies; the
matcher sees the realizations built in that context. A build runs under the derivation's lock
(look up, lock, look up again, build), so two processes never build the same thing at once, and
a failed build leaves nothing behind. Between the second look up and the build, the store's
substituters are asked for verified realizations built in the same context (`substitute.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdrun.core.config import Config
from mdrun.core.jsonvalue import JSONObject
from mdrun.core.refs import DRef, RRef
from mdrun.core.registry import Closure, Derivation, find_drefs, instantiate
from mdrun.core.store import Context, Store, remove_tree
from mdrun.core.substitute import substitute
from mdrun.errors import BuildError, MatcherError, MdrunError, PromiseError, StoreError

BuildObserver = Callable[[DRef, str], None]
"""Told `(dref, event)` with event "build" before a realizer runs and "built" after."""


@dataclass(slots=True)
class RealizeResult:
    """What a realize call chose for every derivation of the closure."""

    chosen: dict[DRef, list[RRef]]
    """The matched realizations of each derivation."""
    built: list[DRef] = field(default_factory=list)
    """The derivations whose realizer ran, in order."""


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a realize call would do, computed without running any realizer."""

    to_build: tuple[DRef, ...]
    """Derivations that would be built (unrealized, or downstream of one that would be)."""
    reused: dict[DRef, list[RRef]]
    """Derivations whose existing realizations would be used."""


def _forced_set(closure: Closure, force_rebuild: bool | Iterable[DRef]) -> set[DRef]:
    if force_rebuild is True:
        return set(closure.targets)
    if force_rebuild is False:
        return set()
    if isinstance(force_rebuild, str) or not isinstance(force_rebuild, Iterable):
        raise StoreError("force_rebuild must be True, False or a list of drefs")
    return set(force_rebuild)


def direct_context(config: Config, chosen: dict[DRef, list[RRef]]) -> Context:
    """The context of a derivation: the chosen realizations of its direct dependencies."""
    return {dependency: chosen[dependency] for dependency in config.dependencies()}


def check_promises(dref: DRef, config: Config, folders: list[Path]) -> None:
    """Every promise path of the config must exist in every output folder."""
    missing = [
        f"{field_name} -> {'/'.join(parts)} (output {index})"
        for index, folder in enumerate(folders)
        for field_name, parts in config.promises()
        if not folder.joinpath(*parts).exists() and not folder.joinpath(*parts).is_symlink()
    ]
    if missing:
        raise PromiseError(
            f"{dref}: the realizer did not create the promised paths: " + "; ".join(missing),
            dref,
            missing,
        )


def run_realizer(
    store: Store, derivation: Derivation, context: Context, arguments: JSONObject
) -> list[RRef]:
    """Run a realizer, check its promises and publish its folders; nothing stays on failure."""
    dref = derivation.dref
    folders: list[Path] = []
    try:
        folders = list(derivation.realizer(store, dref, context, arguments))
        if not folders:
            raise BuildError(f"{dref}: the realizer returned no output folder", dref)
        check_promises(dref, derivation.config, folders)
        return [store.publish_realization(dref, context, folder) for folder in folders]
    except MdrunError:
        raise
    except Exception as err:
        message = f"failed to realize {dref}: {type(err).__name__}: {err}"
        raise BuildError(message, dref, err) from err
    finally:
        for folder in folders:
            if folder.exists() and store.tmp in folder.parents:
                remove_tree(folder)


def realize_derivation(
    store: Store,
    derivation: Derivation,
    context: Context,
    *,
    force: bool = False,
    arguments: JSONObject | None = None,
    observer: BuildObserver | None = None,
) -> tuple[list[RRef], bool]:
    """One step of the realize loop: the chosen realizations of one derivation, and whether
    its realizer ran. Public so that other drivers (the document evaluator, a process pool)
    can walk their own graphs with the same look up / lock / look up again / build logic."""
    dref = derivation.dref
    built = False
    chosen = None
    if not force:
        chosen = derivation.matcher(store, store.realizations_in_context(dref, context))
    if chosen is None:
        store.clean_leftovers()
        with store.lock(dref):
            if not force:
                chosen = derivation.matcher(store, store.realizations_in_context(dref, context))
            if chosen is None and not force and store.substituters:
                chosen = substitute(store, dref, context, derivation.matcher)
            if chosen is None:
                # Damaged realizations found while looking up go now, so the build replaces
                # them instead of leaving them to be found (and reported) on every run.
                store.discard_damaged(dref)
                if observer is not None:
                    observer(dref, "build")
                run_realizer(store, derivation, context, arguments or {})
                built = True
                chosen = derivation.matcher(store, store.realizations_in_context(dref, context))
                if observer is not None:
                    observer(dref, "built")
        if chosen is None:
            raise MatcherError(f"the matcher of {dref} is not satisfied by its realizations")
    if not chosen:
        raise MatcherError(f"the matcher of {dref} chose no realization")
    return sorted(chosen), built


def realize_closure(
    closure: Closure,
    force_rebuild: bool | Iterable[DRef] = False,
    realize_args: dict[DRef, JSONObject] | None = None,
    assert_realized: Iterable[DRef] = (),
    observer: BuildObserver | None = None,
) -> RealizeResult:
    """Realize every derivation of the closure; return what was chosen and what was built."""
    store = closure.store
    forced = _forced_set(closure, force_rebuild)
    must_exist = set(assert_realized)
    arguments = realize_args or {}
    result = RealizeResult(chosen={})
    for derivation in closure.derivations:
        dref = derivation.dref
        context = direct_context(derivation.config, result.chosen)
        if dref in must_exist and dref not in forced:
            matched = derivation.matcher(store, store.realizations_in_context(dref, context))
            if matched is None:
                raise StoreError(f"{dref} is not realized, and assert_realized forbids building it")
        chosen, built = realize_derivation(
            store,
            derivation,
            context,
            force=dref in forced,
            arguments=arguments.get(dref),
            observer=observer,
        )
        if built:
            result.built.append(dref)
        result.chosen[dref] = chosen
    return result


def dry_run(closure: Closure, force_rebuild: bool | Iterable[DRef] = False) -> DryRun:
    """What `realize` would build, without building anything."""
    store = closure.store
    forced = _forced_set(closure, force_rebuild)
    chosen: dict[DRef, list[RRef]] = {}
    to_build: list[DRef] = []
    for derivation in closure.derivations:
        dref = derivation.dref
        dependencies = derivation.config.dependencies()
        if dref in forced or any(dependency in to_build for dependency in dependencies):
            to_build.append(dref)
            continue
        context = direct_context(derivation.config, chosen)
        matched = derivation.matcher(store, store.realizations_in_context(dref, context))
        if matched is None:
            to_build.append(dref)
        else:
            chosen[dref] = sorted(matched)
    return DryRun(tuple(to_build), chosen)


def _as_closure(closure: Closure | Any) -> Closure:
    if isinstance(closure, Closure):
        return closure
    if callable(closure):
        return instantiate(closure)
    raise StoreError(f"expected a closure from instantiate(...), got {type(closure).__name__}")


def _single_target(closure: Closure) -> DRef:
    targets = find_drefs(closure.result)
    if len(targets) != 1 or not isinstance(closure.result, str):
        raise StoreError("realize1 and realizeMany need a stage that returns one dref")
    return targets[0]


def realizeMany(
    closure: Closure | Any,
    force_rebuild: bool | Iterable[DRef] = False,
    realize_args: dict[DRef, JSONObject] | None = None,
    assert_realized: Iterable[DRef] = (),
) -> list[RRef]:
    """Realize a one-target closure; all the realizations its matcher chose, sorted."""
    resolved = _as_closure(closure)
    target = _single_target(resolved)
    outcome = realize_closure(resolved, force_rebuild, realize_args, assert_realized)
    return outcome.chosen[target]


def realize1(
    closure: Closure | Any,
    force_rebuild: bool | Iterable[DRef] = False,
    realize_args: dict[DRef, JSONObject] | None = None,
    assert_realized: Iterable[DRef] = (),
) -> RRef:
    """Realize a one-target closure whose matcher chooses exactly one realization."""
    rrefs = realizeMany(closure, force_rebuild, realize_args, assert_realized)
    if len(rrefs) != 1:
        raise MatcherError(f"realize1 expected one realization, the matcher chose {len(rrefs)}")
    return rrefs[0]


realize = realize1
"""The manual's name: realize a closure to its one realization."""


def realize_all(
    closure: Closure | Any, force_rebuild: bool | Iterable[DRef] = False
) -> dict[DRef, list[RRef]]:
    """Realize a closure with any number of targets; the chosen realizations of every stage."""
    return realize_closure(_as_closure(closure), force_rebuild).chosen
