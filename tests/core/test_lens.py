"""mklens: values, references and paths through two levels of dependencies, in and out of builds."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from mdrun.core.build import Build, build_outpaths, build_wrapper
from mdrun.core.config import SELFREF as selfref
from mdrun.core.files import make_writable
from mdrun.core.lens import mklens
from mdrun.core.matchers import match_all, match_latest, match_only
from mdrun.core.realization import realize1, realize_all, realizeMany
from mdrun.core.refs import DRef, rref_to_dref
from mdrun.core.registry import Registry, instantiate, mkdrv
from mdrun.core.store import Store
from mdrun.errors import DamagedRealization, StoreError


def stage_a(r: Registry, counter: itertools.count[int] | None = None) -> DRef:
    """The root: a text file, and a JSON file a lens can walk into."""

    def realize(b: Build) -> None:
        text = "a" if counter is None else f"a{next(counter)}"
        Path(mklens(b).out.syspath).write_text(text)
        mklens(b).data.syspath.write_text(json.dumps({"field": 42, "nested": {"deep": "yes"}}))

    config = {
        "name": "a",
        "x": 1,
        "nothing": None,
        "out": [selfref, "a.txt"],
        "data": [selfref, "data.json"],
    }
    return mkdrv(r, config, match_latest(1), build_wrapper(realize))


def stage_b(r: Registry, seen: dict[str, Any], counter: itertools.count[int] | None = None) -> DRef:
    """Depends on a; its realizer records what the lens showed inside the build."""
    dependency = stage_a(r, counter)

    def realize(b: Build) -> None:
        seen["syspath"] = mklens(b).syspath
        seen["outputs"] = build_outpaths(b)
        seen["out"] = mklens(b).out.syspath
        seen["out_val"] = mklens(b).out.val
        seen["src"] = mklens(b).src.syspath
        seen["a_rref"] = mklens(b).a.rref
        seen["a_x"] = mklens(b).a.x.val
        seen["a_out"] = mklens(b).a.out.syspath
        seen["a_field"] = mklens(b).a.data.field.val
        seen["name"] = mklens(b).name.val
        seen["dref"] = mklens(b).dref
        mklens(b).out.syspath.write_text("b:" + mklens(b).src.contents)

    config = {
        "name": "b",
        "a": dependency,
        "src": [dependency, "a.txt"],
        "out": [selfref, "b.txt"],
    }
    return mkdrv(r, config, match_only(), build_wrapper(realize))


def stage_c(r: Registry, seen: dict[str, Any] | None = None) -> DRef:
    """Depends on b, so a is two levels down."""
    dependency = stage_b(r, {} if seen is None else seen)

    def realize(b: Build) -> None:
        mklens(b).syspath.joinpath("c.txt").write_text("c")

    return mkdrv(
        r, {"name": "c", "b": dependency, "k": {"v": [1, 2]}}, match_only(), build_wrapper(realize)
    )


def test_terminals_of_an_rref(store: Store) -> None:
    rref = realize1(instantiate(stage_c))
    assert mklens(rref).val == rref
    assert mklens(rref).rref == rref
    assert mklens(rref).dref == rref_to_dref(rref)
    assert mklens(rref).syspath.path == store.realization_path(rref)
    assert (mklens(rref).syspath / "c.txt").read_text() == "c"
    assert mklens(rref).name.val == "c"
    assert mklens(rref).k.v.get(1).val == 2


def test_contents_are_checked_against_the_manifest(store: Store) -> None:
    """A lens reads a published file through the store: changed bytes are refused, not shown."""
    rref_c = realize1(instantiate(stage_c))
    path = mklens(rref_c).b.a.out.syspath.path
    make_writable(path)
    path.write_text("tampered")
    with pytest.raises(DamagedRealization, match=r"a\.txt"):
        _ = mklens(rref_c).b.a.out.contents


def test_two_levels_of_dependencies(store: Store) -> None:
    rref_c = realize1(instantiate(stage_c))
    rref_b = mklens(rref_c).b.rref
    rref_a = mklens(rref_c).b.a.rref
    assert rref_to_dref(rref_b) == mklens(rref_c).b.dref
    assert store.context_of(rref_b) == {mklens(rref_c).b.a.dref: [rref_a]}
    assert mklens(rref_c).b.a.x.val == 1
    assert mklens(rref_c).b.a.out.val == [mklens(rref_c).b.a.dref, "a.txt"]
    assert mklens(rref_c).b.a.out.refpath == [mklens(rref_c).b.a.dref, "a.txt"]
    assert mklens(rref_c).b.a.out.syspath.path == store.realization_path(rref_a) / "a.txt"
    assert mklens(rref_c).b.a.out.contents == "a"
    assert mklens(rref_c).b.out.contents == "b:a"
    assert mklens(rref_c).b.src.contents == "a"
    assert mklens(rref_c).b.a.syspath.path == store.realization_path(rref_a)


def test_walks_into_json_artifacts(store: Store) -> None:
    rref_c = realize1(instantiate(stage_c))
    assert mklens(rref_c).b.a.data.field.val == 42
    assert mklens(rref_c).b.a.data.nested.deep.val == "yes"


def test_inside_a_build(store: Store) -> None:
    seen: dict[str, Any] = {}
    rref_b = realize1(instantiate(stage_b, seen))
    output = seen["outputs"][0]
    assert seen["syspath"] == str(output)
    assert seen["out"] == str(output / "b.txt")
    assert seen["out_val"] == [rref_to_dref(rref_b), "b.txt"]
    assert seen["a_rref"] == mklens(rref_b).a.rref
    assert seen["src"] == str(store.realization_path(seen["a_rref"]) / "a.txt")
    assert seen["a_out"] == seen["src"]
    assert seen["a_x"] == 1
    assert seen["a_field"] == 42
    assert seen["name"] == "b"
    assert seen["dref"] == rref_to_dref(rref_b)
    assert (store.realization_path(rref_b) / "b.txt").read_text() == "b:a"


def test_each_realization_follows_its_own_context(store: Store) -> None:
    registry = Registry(store)
    counter = itertools.count()
    dref_b = stage_b(registry, {}, counter)
    dref_a = mklens(dref_b).a.dref
    first_b = realize1(instantiate(dref_b, r=registry))
    realize_all(instantiate(dref_a, r=registry), force_rebuild=True)
    second_b = realize1(instantiate(dref_b, r=registry))
    assert first_b != second_b
    assert mklens(first_b).a.out.contents == "a0"
    assert mklens(second_b).a.out.contents == "a1"
    assert mklens(first_b).a.rref != mklens(second_b).a.rref
    assert mklens(first_b).out.contents == "b:a0"


def test_a_dref_reads_configs_but_needs_a_realization_for_paths(store: Store) -> None:
    closure = instantiate(stage_c)
    dref_c = closure.result
    assert mklens(dref_c).b.a.x.val == 1
    assert mklens(dref_c).syspath.path == store.derivation_path(dref_c)
    with pytest.raises(StoreError, match=r"mklens\(.*\)\.b: .*start the lens from an rref"):
        _ = mklens(dref_c).b.rref
    with pytest.raises(StoreError, match=r"\.b\.out: .*no known realization"):
        _ = mklens(dref_c).b.out.syspath
    rref_c = realize1(closure)
    assert mklens(dref_c, rref=rref_c).b.a.rref == mklens(rref_c).b.a.rref
    assert mklens(dref_c, rref=rref_c).syspath.path == store.realization_path(rref_c)
    refpath = mklens(rref_c).b.src.refpath
    assert mklens(refpath, rref=mklens(rref_c).b.rref).syspath.read_text() == "a"


def test_several_realizations_are_refused_where_one_is_needed(store: Store) -> None:
    def stage_many(r: Registry) -> DRef:
        def realize(b: Build) -> None:
            for index, folder in enumerate(build_outpaths(b)):
                (folder / "n").write_text(str(index))

        return mkdrv(r, {"name": "many"}, match_all(), build_wrapper(realize, nouts=2))

    def stage_user(r: Registry) -> DRef:
        return mkdrv(
            r, {"name": "user", "dep": stage_many(r)}, match_only(), build_wrapper(lambda b: None)
        )

    rref = realize1(instantiate(stage_user))
    with pytest.raises(StoreError, match=r"\.dep: .* has 2 realizations here"):
        _ = mklens(rref).dep.rref
    with pytest.raises(StoreError, match=r"has 2 realizations here"):
        _ = mklens(rref).dep.syspath
    assert len(realizeMany(instantiate(stage_many))) == 2


def test_build_output_index(store: Store) -> None:
    seen: list[Path] = []

    def stage(r: Registry) -> DRef:
        def realize(b: Build) -> None:
            for index in range(2):
                path = mklens(b, build_output_idx=index).out.syspath
                seen.append(path.path)
                path.write_text(str(index))

        return mkdrv(
            r, {"name": "two", "out": [selfref, "o"]}, match_all(), build_wrapper(realize, nouts=2)
        )

    rrefs = realizeMany(instantiate(stage))
    assert seen[0].parent != seen[1].parent
    assert sorted(mklens(rref).out.contents for rref in rrefs) == ["0", "1"]


def test_errors_name_the_key_path_and_what_was_expected(store: Store) -> None:
    rref = realize1(instantiate(stage_c))
    with pytest.raises(StoreError, match=r"\.b\.a\.nope: no such key \(keys: .*data.*name.*x\)"):
        _ = mklens(rref).b.a.nope.val
    with pytest.raises(
        StoreError,
        match=r"\.b\.a\.x: is 1, not a config, dict, reference or JSON file: cannot look up 'y'",
    ):
        _ = mklens(rref).b.a.x.y.val
    with pytest.raises(StoreError, match=r"\.b\.a\.nothing: the value is null"):
        _ = mklens(rref).b.a.nothing.val
    with pytest.raises(StoreError, match=r"\.b\.a\.x: expected a dref or an rref, got 1"):
        _ = mklens(rref).b.a.x.rref
    with pytest.raises(StoreError, match=r"\.name: expected a dref, an rref or a RefPath"):
        _ = mklens(rref).name.syspath
    with pytest.raises(StoreError, match=r"\.b\.a: .* is not a file"):
        _ = mklens(rref).b.a.contents
    with pytest.raises(StoreError, match="only a lens made from a plain dict"):
        mklens(rref).name.val = "other"
    with pytest.raises(StoreError, match="not a readable JSON file"):
        _ = mklens(rref).b.a.out.field.val
    with pytest.raises(StoreError, match="expects a dref, an rref"):
        mklens("not a reference")
    assert mklens(rref).b.a.nothing.optval is None
    assert mklens(rref).b.a.absent.optval is None


def test_a_plain_dict_lens_can_set_existing_keys() -> None:
    data: dict[str, Any] = {"a": {"b": 1}, "items": [1, 2], "out": [selfref, "x"]}
    mklens(data).a.b.val = 5
    mklens(data).items.get(0).val = 7
    assert data == {"a": {"b": 5}, "items": [7, 2], "out": [selfref, "x"]}
    assert mklens(data).a.val == {"b": 5}
    assert mklens(data).out.val == [selfref, "x"]
    with pytest.raises(StoreError, match=r"mklens\(dict\)\.a\.c: no such key to set"):
        mklens(data).a.c.val = 1
    with pytest.raises(StoreError, match="name the key to set"):
        mklens(data).val = {}
    copied = mklens(data).a.val
    copied["b"] = 0
    assert data["a"]["b"] == 5


def test_values_are_copies_of_the_stored_config(store: Store) -> None:
    rref = realize1(instantiate(stage_c))
    value = mklens(rref).k.val
    value["v"].append(3)
    assert mklens(rref).k.v.val == [1, 2]


def test_a_closure_lens_gives_sub_closures(store: Store) -> None:
    closure = instantiate(stage_c)
    sub = mklens(closure).b.closure
    names = [derivation.config.name for derivation in sub.derivations]
    assert names == ["a", "b"]
    rref_b = realize1(sub)
    assert mklens(rref_b).out.contents == "b:a"
    with pytest.raises(StoreError, match="needs a lens made from a Closure"):
        _ = mklens(closure.result).b.closure
