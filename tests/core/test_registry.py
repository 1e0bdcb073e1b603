"""Registries and instantiation: closures, mixing registries, recursion, re-registration."""

from __future__ import annotations

import pytest

from mdrun.core.matchers import match_only
from mdrun.core.realization import realize1
from mdrun.core.refs import DRef
from mdrun.core.registry import Registry, current_registry, instantiate, mkdrv
from mdrun.core.store import Store
from mdrun.errors import RegistryError
from tests.core.helpers import artifact, file_stage, never_realize


def test_mkdrv_without_a_registry_fails_clearly() -> None:
    with pytest.raises(RegistryError, match="no registry"):
        mkdrv(None, {"name": "x"}, match_only(), never_realize)


def test_mkdrv_uses_the_current_registry(registry: Registry) -> None:
    with current_registry(registry):
        dref = file_stage(None, "implicit")
    assert dref in registry.derivations


def test_instantiate_writes_configs_before_any_build(store: Store) -> None:
    log: list[str] = []
    closure = instantiate(lambda r: file_stage(r, "a", log=log), r=Registry(store))
    (target,) = closure.targets
    assert (store.derivation_path(target) / "config.json").is_file()
    assert store.realizations_of(target) == []
    assert log == []


def test_instantiating_twice_gives_the_same_dref(store: Store) -> None:
    first = instantiate(lambda r: file_stage(r, "a"), r=Registry(store))
    second = instantiate(lambda r: file_stage(r, "a"), r=Registry(store))
    assert first.targets == second.targets


def test_drefs_of_two_registries_do_not_mix(store: Store) -> None:
    one, two = Registry(store), Registry(store)
    upstream = file_stage(one, "up")
    with pytest.raises(RegistryError, match="another registry"):
        file_stage(two, "down", deps=[upstream])
    with pytest.raises(RegistryError, match="mix drefs"):
        instantiate(upstream, r=two)


def test_instantiating_inside_a_stage_with_the_same_registry_fails(registry: Registry) -> None:
    def outer(r: Registry) -> DRef:
        instantiate(lambda inner: file_stage(inner, "inner"), r=r)
        return file_stage(r, "outer")

    with pytest.raises(RegistryError, match="same registry"):
        instantiate(outer, r=registry)
    with pytest.raises(RegistryError, match="same registry"):
        instantiate(lambda r: instantiate(lambda inner: file_stage(inner, "x")), r=registry)
    assert not registry.instantiating


def test_realizing_inside_a_stage_with_another_registry_works(store: Store) -> None:
    def outer(r: Registry) -> DRef:
        inner = realize1(instantiate(lambda other: file_stage(other, "inner", text="in"),
                                     r=Registry(store)))
        return file_stage(r, "outer", text=artifact(store, inner) + "+out")

    rref = realize1(instantiate(outer, r=Registry(store)))
    assert artifact(store, rref) == "in+out"


def test_re_adding_replaces_matcher_and_realizer_keeping_its_place(registry: Registry) -> None:
    first = file_stage(registry, "first")
    log: list[str] = []
    second = file_stage(registry, "second", deps=[first], text="old", log=log)
    again = file_stage(registry, "second", deps=[first], text="new", log=log)
    assert again == second
    assert list(registry.derivations) == [first, second]
    rref = realize1(instantiate(second, r=registry))
    assert artifact(registry.store, rref) == "new"


def test_a_closure_holds_only_what_the_targets_need_in_dependency_order(
    registry: Registry,
) -> None:
    def stage(r: Registry) -> DRef:
        file_stage(r, "unrelated")
        a = file_stage(r, "a")
        b = file_stage(r, "b", deps=[a])
        c = file_stage(r, "c", deps=[a])
        return file_stage(r, "d", deps=[c, b])

    closure = instantiate(stage, r=registry)
    names = [registry.store.config_of(d.dref).name for d in closure.derivations]
    assert names == ["a", "b", "c", "d"]
    assert closure.store is registry.store


def test_a_stage_may_return_a_container_of_drefs(registry: Registry) -> None:
    def stage(r: Registry) -> dict[str, list[DRef]]:
        return {"all": [file_stage(r, "x"), file_stage(r, "y")]}

    closure = instantiate(stage, r=registry)
    assert len(closure.targets) == 2


def test_a_stage_returning_no_dref_fails(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="no derivation reference"):
        instantiate(lambda r: 42, r=registry)
