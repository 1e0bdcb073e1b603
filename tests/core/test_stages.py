"""Built-in stages: mknode, redefine, realized."""

from __future__ import annotations

from typing import Any

import pytest

from mdrun.core.build import Build, build_outpath, build_wrapper
from mdrun.core.config import mkconfig
from mdrun.core.lens import mklens
from mdrun.core.matchers import match_all, match_only
from mdrun.core.realization import realize1, realizeMany
from mdrun.core.refs import DRef
from mdrun.core.registry import Registry, instantiate, mkdrv
from mdrun.core.stages import mknode, realized, redefine
from mdrun.core.store import Store
from mdrun.errors import ConfigError, RegistryError, StoreError


def test_mknode_writes_artifacts_and_is_read_only(store: Store) -> None:
    rref = realize1(
        instantiate(mknode, {"a": 1}, {"hello.txt": b"hi", "data.bin": b"\x00\x01"}, name="n")
    )
    folder = store.realization_path(rref)
    assert (folder / "hello.txt").read_bytes() == b"hi"
    assert (folder / "data.bin").read_bytes() == b"\x00\x01"
    assert not (folder / "hello.txt").stat().st_mode & 0o222
    assert mklens(rref).a.val == 1
    assert mklens(rref).name.val == "n"


def test_mknode_is_deterministic_and_contents_change_the_dref(store: Store) -> None:
    def node(content: bytes) -> Any:
        return lambda r: mknode(r, {"b": [1, 2], "a": "x"}, {"f": content})

    first = realize1(instantiate(node(b"one")))
    again = realize1(instantiate(node(b"one")))
    other = realize1(instantiate(node(b"two")))
    assert first == again
    assert mklens(first).dref != mklens(other).dref
    assert len(store.all_derivations()) == 2


def test_mknode_forces_the_name_and_refuses_reserved_fields(store: Store) -> None:
    dref = instantiate(mknode, {"name": "ignored"}, name="forced").result
    assert store.config_of(dref).name == "forced"
    with pytest.raises(ConfigError, match="__artifacts__"):
        instantiate(mknode, {"__artifacts__": {}})
    for bad in ("../x", "__build__.json", "__manifest__.txt", "context.json", ""):
        with pytest.raises(ConfigError, match="artifact name"):
            instantiate(mknode, {}, {bad: b""})


def _counter_stage(r: Registry | None) -> DRef:
    """A non-deterministic stage: every build writes a new number."""
    counter = {"n": 0}

    def build(b: Build) -> None:
        counter["n"] += 1
        (build_outpath(b) / "n").write_text(str(counter["n"]))

    def config() -> Any:
        name = "counter"
        return mkconfig(locals())

    return mkdrv(r, config(), match_only(), build_wrapper(build))


def test_redefine_changes_matcher_config_and_realizer(store: Store) -> None:
    first = realize1(instantiate(_counter_stage))
    rebuilt = realizeMany(instantiate(redefine(_counter_stage, new_matcher=match_all())))
    assert rebuilt == [first]

    def set_answer(data: dict[str, Any]) -> None:
        data["answer"] = 42

    changed = realize1(instantiate(redefine(_counter_stage, new_config=set_answer)))
    assert mklens(changed).answer.val == 42
    assert mklens(changed).dref != mklens(first).dref

    def write_seven(b: Build) -> None:
        (build_outpath(b) / "n").write_text("7")

    def set_seven(data: dict[str, Any]) -> None:
        data["answer"] = 7

    seven_stage = redefine(
        _counter_stage, new_config=set_seven, new_realizer=build_wrapper(write_seven)
    )
    seven = realize1(instantiate(seven_stage))
    assert (store.realization_path(seven) / "n").read_text() == "7"


def test_redefine_refuses_changing_a_stage_others_depend_on(store: Store) -> None:
    def pipeline(r: Registry) -> DRef:
        base = mknode(r, {"x": 1}, name="base")
        mknode(r, {"base": base}, name="user")
        return base

    def set_x(data: dict[str, Any]) -> None:
        data["x"] = 2

    with pytest.raises(RegistryError, match="already depend"):
        instantiate(redefine(pipeline, new_config=set_x))


def test_realized_reuses_and_refuses_to_build(store: Store) -> None:
    stage = realized(lambda r: mknode(r, {"v": 1}))
    with pytest.raises(StoreError, match="realized\\(\\) forbids building"):
        realize1(instantiate(stage))
    assert store.all_realizations() == []
    rref = realize1(instantiate(lambda r: mknode(r, {"v": 1})))
    assert realize1(instantiate(stage)) == rref
