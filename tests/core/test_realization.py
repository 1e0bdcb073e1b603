"""Realization: order, reuse, forced rebuilds, dry runs, failures and what they leave behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings

from mdrun.core.build import Build, build_outpath, build_path, build_wrapper
from mdrun.core.config import SELFREF
from mdrun.core.jsonvalue import JSONObject
from mdrun.core.matchers import match_all, match_latest, match_only, match_some
from mdrun.core.realization import dry_run, realize1, realize_closure, realizeMany
from mdrun.core.refs import DRef
from mdrun.core.registry import Registry, instantiate, mkdrv
from mdrun.core.store import Context, Store
from mdrun.errors import BuildError, MatcherError, PromiseError, StoreError
from tests.core.helpers import artifact, counting_text, file_stage, tmp_entries
from tests.core.strategies import dags


def diamond(r: Registry, log: list[str], **top: object) -> DRef:
    a = file_stage(r, "a", log=log)
    b = file_stage(r, "b", deps=[a], log=log)
    c = file_stage(r, "c", deps=[a], log=log)
    return file_stage(r, "d", deps=[c, b], log=log, **top)  # type: ignore[arg-type]


def test_dependencies_build_first_and_once(registry: Registry) -> None:
    log: list[str] = []
    closure = instantiate(diamond, log, r=registry)
    rref = realize1(closure)
    assert log == ["a", "b", "c", "d"]
    assert artifact(registry.store, rref) == "hello"


def test_a_realized_closure_is_reused(store: Store) -> None:
    log: list[str] = []
    first = realize1(instantiate(diamond, log, r=Registry(store)))
    log.clear()
    second = realize1(instantiate(diamond, log, r=Registry(store)))
    assert log == []
    assert first == second


def test_context_json_holds_the_direct_dependencies(registry: Registry) -> None:
    closure = instantiate(diamond, [], r=registry)
    chosen = realize_closure(closure).chosen
    a, b, c, d = (derivation.dref for derivation in closure.derivations)
    assert registry.store.context_of(chosen[d][0]) == {b: chosen[b], c: chosen[c]}
    assert registry.store.context_of(chosen[b][0]) == {a: chosen[a]}
    assert registry.store.context_of(chosen[a][0]) == {}


def test_dependencies_are_readable_from_the_build(registry: Registry) -> None:
    upstream = file_stage(registry, "up", text="42")

    def realize(b: Build) -> None:
        value = build_path(b, [upstream, "artifact"]).read_text()
        (build_outpath(b) / "artifact").write_text(f"got {value}")

    dref = mkdrv(registry, {"name": "down", "in": [upstream, "artifact"]}, match_only(),
                 build_wrapper(realize))
    assert artifact(registry.store, realize1(instantiate(dref, r=registry))) == "got 42"


def test_realize_args_reach_the_realizer(registry: Registry) -> None:
    def realize(store: Store, dref: DRef, context: Context, arguments: JSONObject) -> list[Path]:
        folder = store.new_build_folder(dref)
        (folder / "artifact").write_text(str(arguments["x"]))
        return [folder]

    dref = mkdrv(registry, {"name": "args"}, match_only(), realize)
    rref = realize1(instantiate(dref, r=registry), realize_args={dref: {"x": 7}})
    assert artifact(registry.store, rref) == "7"


# -- forced rebuilds ---------------------------------------------------------------------------


def test_force_rebuild_true_rebuilds_the_targets_only(store: Store) -> None:
    log: list[str] = []
    first = realize1(instantiate(diamond, log, r=Registry(store)))
    log.clear()
    again = realize1(instantiate(diamond, log, r=Registry(store)), force_rebuild=True)
    assert log == ["d"]
    assert again == first  # deterministic: the same content is the same realization


def test_forcing_a_deterministic_dependency_keeps_its_dependents(registry: Registry) -> None:
    log: list[str] = []
    closure = instantiate(diamond, log, r=registry)
    first = realize1(closure)
    log.clear()
    a = closure.derivations[0].dref
    assert realize1(closure, force_rebuild=[a]) == first
    assert log == ["a"]


def test_forcing_a_changing_dependency_rebuilds_its_dependents(registry: Registry) -> None:
    log: list[str] = []
    up = file_stage(registry, "up", log=log, text=counting_text(), matcher=match_latest())
    down = file_stage(registry, "down", deps=[up], log=log)
    closure = instantiate(down, r=registry)
    first = realize1(closure)
    log.clear()
    second = realize1(closure, force_rebuild=[up])
    assert log == ["up", "down"]
    assert second != first
    assert len(registry.store.realizations_of(up)) == 2


def test_force_rebuild_must_be_a_bool_or_a_list(registry: Registry) -> None:
    closure = instantiate(lambda r: file_stage(r, "a"), r=registry)
    with pytest.raises(StoreError, match="force_rebuild"):
        realize1(closure, force_rebuild=closure.targets[0])  # type: ignore[arg-type]


def test_assert_realized_refuses_to_build(registry: Registry) -> None:
    log: list[str] = []
    closure = instantiate(lambda r: file_stage(r, "a", log=log), r=registry)
    with pytest.raises(StoreError, match="assert_realized"):
        realize1(closure, assert_realized=closure.targets)
    assert log == []
    realize1(closure)
    realize1(closure, assert_realized=closure.targets)


# -- dry runs ----------------------------------------------------------------------------------


def test_dry_run_reports_the_unbuilt_stages_and_their_dependents(store: Store) -> None:
    log: list[str] = []

    def chain(r: Registry) -> DRef:
        a = file_stage(r, "a", log=log)
        b = file_stage(r, "b", deps=[a], log=log)
        other = file_stage(r, "other", log=log)
        c = file_stage(r, "c", deps=[b, other], log=log)
        return file_stage(r, "d", deps=[c], log=log)

    closure = instantiate(chain, r=Registry(store))
    a, b, other, c, d = (derivation.dref for derivation in closure.derivations)
    realize1(closure)
    # start again with only `a` and `b` realized
    for dref in (other, c, d):
        for rref in store.realizations_of(dref):
            store.remove_realization(rref)
    log.clear()
    plan = dry_run(closure)
    assert log == []
    assert plan.to_build == (other, c, d)
    assert set(plan.reused) == {a, b}
    assert plan.reused[b] == store.realizations_of(b)
    realize1(closure)
    assert log == ["other", "c", "d"]
    assert dry_run(closure).to_build == ()
    assert dry_run(closure, force_rebuild=[b]).to_build == (b, c, d)


# -- failures ----------------------------------------------------------------------------------


def test_a_broken_promise_stores_nothing(registry: Registry) -> None:
    def realize(b: Build) -> None:
        (build_outpath(b) / "other.txt").write_text("not what was promised")

    dref = mkdrv(registry, {"name": "p", "out": [SELFREF, "model.txt"]}, match_only(),
                 build_wrapper(realize))
    with pytest.raises(PromiseError) as raised:
        realize1(instantiate(dref, r=registry))
    assert raised.value.dref == dref
    assert "config.out" in raised.value.missing[0]
    assert registry.store.realizations_of(dref) == []
    assert tmp_entries(registry.store) == []


def test_a_kept_promise_is_published(registry: Registry) -> None:
    def realize(b: Build) -> None:
        (build_outpath(b) / "model.txt").write_text("ok")

    dref = mkdrv(registry, {"name": "p", "out": [SELFREF, "model.txt"]}, match_only(),
                 build_wrapper(realize))
    rref = realize1(instantiate(dref, r=registry))
    assert (registry.store.realization_path(rref) / "model.txt").read_text() == "ok"


def test_a_raising_realizer_leaves_nothing_and_the_next_run_builds(store: Store) -> None:
    log: list[str] = []
    failure = ValueError("boom")

    def pipeline(r: Registry, error: BaseException | None) -> DRef:
        up = file_stage(r, "up", log=log)
        return file_stage(r, "down", deps=[up], log=log, error=error)

    with pytest.raises(BuildError) as raised:
        realize1(instantiate(pipeline, failure, r=Registry(store)))
    closure = instantiate(pipeline, None, r=Registry(store))
    up, down = (derivation.dref for derivation in closure.derivations)
    assert raised.value.dref == down
    assert raised.value.exception is failure
    assert "boom" in str(raised.value)
    assert store.realizations_of(down) == []
    upstream_rrefs = store.realizations_of(up)
    assert len(upstream_rrefs) == 1
    assert tmp_entries(store) == []
    log.clear()
    rref = realize1(closure)
    assert log == ["down"]
    assert store.realizations_of(up) == upstream_rrefs
    assert store.context_of(rref) == {up: upstream_rrefs}


def test_a_raw_realizer_returning_nothing_is_a_build_error(registry: Registry) -> None:
    dref = mkdrv(registry, {"name": "empty"}, match_only(), lambda *_args: [])
    with pytest.raises(BuildError, match="no output folder"):
        realize1(instantiate(dref, r=registry))


def test_a_realizer_may_not_write_context_json(registry: Registry) -> None:
    def realize(b: Build) -> None:
        (build_outpath(b) / "context.json").write_text("{}")

    dref = mkdrv(registry, {"name": "sneaky"}, match_only(), build_wrapper(realize))
    with pytest.raises(StoreError, match="reserved"):
        realize1(instantiate(dref, r=registry))
    assert registry.store.realizations_of(dref) == []
    assert tmp_entries(registry.store) == []


def test_an_unsatisfiable_matcher_is_an_error_after_the_build(registry: Registry) -> None:
    dref = file_stage(registry, "det", matcher=match_some(2))
    with pytest.raises(MatcherError, match="not satisfied"):
        realize1(instantiate(dref, r=registry))


# -- several outputs ---------------------------------------------------------------------------


def test_several_outputs_become_several_realizations(registry: Registry) -> None:
    dref = file_stage(registry, "many", nouts=3, text=lambda i: f"out {i}", matcher=match_all())
    rrefs = realizeMany(instantiate(dref, r=registry))
    assert len(rrefs) == 3
    assert rrefs == sorted(rrefs)
    assert sorted(artifact(registry.store, rref) for rref in rrefs) == ["out 0", "out 1", "out 2"]
    with pytest.raises(MatcherError, match="expected one"):
        realize1(instantiate(dref, r=registry))


def test_identical_outputs_collapse_into_one_realization(registry: Registry) -> None:
    dref = file_stage(registry, "same", nouts=3, text="same", matcher=match_all())
    assert len(realizeMany(instantiate(dref, r=registry))) == 1


# -- the property ------------------------------------------------------------------------------


@settings(max_examples=25)
@given(dags())
def test_random_dag_builds_each_stage_once_in_dependency_order(graph: list[list[int]]) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = Store.initialize(root)
        log: list[str] = []

        def stage(r: Registry) -> list[DRef]:
            drefs: list[DRef] = []
            for index, parents in enumerate(graph):
                drefs.append(
                    file_stage(r, f"n{index}", deps=[drefs[p] for p in parents], log=log)
                )
            return drefs

        first = realize_closure(instantiate(stage, r=Registry(store))).chosen
        assert sorted(log) == sorted(f"n{index}" for index in range(len(graph)))
        position = {name: index for index, name in enumerate(log)}
        for index, parents in enumerate(graph):
            for parent in parents:
                assert position[f"n{parent}"] < position[f"n{index}"]
        log.clear()
        second = realize_closure(instantiate(stage, r=Registry(store))).chosen
        assert log == []
        assert second == first
        assert all(len(rrefs) == 1 for rrefs in first.values())

