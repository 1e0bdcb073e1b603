"""@autostage: config from defaults, keywords and overrides; dependencies; outputs; __source__."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mdrun.core.autostages import AutoStage, autostage, source_digest
from mdrun.core.build import Build
from mdrun.core.config import SELFREF as selfref
from mdrun.core.lens import mklens
from mdrun.core.matchers import match_all
from mdrun.core.realization import realize1, realizeMany
from mdrun.core.refs import DRef, rref_to_dref
from mdrun.core.registry import Registry, current_registry, instantiate
from mdrun.core.store import Store
from mdrun.errors import BuildError, ConfigError, PromiseError, RegistryError


def config_of(store: Store, dref: DRef) -> dict[str, Any]:
    return dict(store.config_of(dref).data)


# -- the config ------------------------------------------------------------------------------------


def test_config_is_defaults_plus_keywords_plus_overrides(registry: Registry, store: Store) -> None:
    @autostage(b=2, out=[selfref, "out.txt"])
    def stage(out: str, b: int, a: int = 1) -> None:
        Path(out).write_text("x")

    config = config_of(store, stage(registry))
    assert {key: config[key] for key in ("a", "b", "out", "name")} == {
        "a": 1,
        "b": 2,
        "out": [selfref, "out.txt"],
        "name": "stage",
    }
    assert set(config) == {"a", "b", "out", "name", "__source__"}
    overridden = instantiate(stage, a=33, r=registry).result
    assert mklens(overridden).a.val == 33
    assert overridden != stage(registry)


def test_a_name_in_the_signature_and_the_decorator_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"autostage .*stage: a given both as a default"):

        @autostage(a=2)
        def stage(a: int = 1) -> None:
            pass


def test_unknown_overrides_and_missing_values_are_errors(registry: Registry) -> None:
    @autostage
    def stage(a: int, b: int = 1) -> None:
        pass

    with pytest.raises(ConfigError, match=r"no value for parameter\(s\) a"):
        stage(registry)
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) typo \(fields: a, b, name\)"):
        stage(registry, a=1, typo=2)
    assert mklens(stage(registry, a=5)).a.val == 5


def test_non_json_values_are_refused_naming_the_field(registry: Registry) -> None:
    @autostage(data=(1, 2))
    def stage(data: list[int]) -> None:
        pass

    with pytest.raises(ConfigError, match=r"autostage .*stage: config\.data: a tuple is not JSON"):
        stage(registry)


def test_special_keywords_are_not_config_fields(registry: Registry, store: Store) -> None:
    @autostage(name="named", nouts=2, matcher=match_all(), always_multiref=True, A=1)
    def stage(build: Build, rindex: int, A: int) -> None:
        pass

    config = config_of(store, stage(registry))
    assert set(config) == {"A", "name", "__source__"}
    assert config["name"] == "named"
    assert mklens(stage(registry, name="other")).name.val == "other"


def test_rindex_needs_several_outputs() -> None:
    with pytest.raises(ConfigError, match="takes `rindex`, but the stage makes one output"):

        @autostage
        def stage(rindex: int) -> None:
            pass


def test_a_stage_needs_a_registry() -> None:
    @autostage(a=1)
    def stage(a: int) -> None:
        pass

    with pytest.raises(RegistryError, match="no registry"):
        stage()


# -- dependencies ------------------------------------------------------------------------------


def make_dataset() -> AutoStage:
    @autostage(size=3, out=[selfref, "data.txt"], name="dataset")
    def stage_dataset(size: int, out: str) -> None:
        Path(out).write_text(",".join(str(i) for i in range(size)))

    return stage_dataset


def test_dependencies_through_a_stage_default(registry: Registry) -> None:
    stage_dataset = make_dataset()
    seen: list[Any] = []

    @autostage(total=[selfref, "total.txt"])
    def stage_sum(total: str, DS: Any = stage_dataset) -> None:
        seen.append(DS)
        numbers = Path(DS.out).read_text().split(",")
        Path(total).write_text(str(sum(int(n) for n in numbers)))

    rref = realize1(instantiate(stage_sum, r=registry))
    assert mklens(rref).total.contents == "3"
    dataset = seen[0]
    assert dataset.size == 3
    assert dataset.name == "dataset"
    assert dataset._rref == mklens(rref).DS.rref
    assert Path(dataset.out) == mklens(rref).DS.out.syspath.path
    assert not hasattr(dataset, "__source__")


def test_dependencies_through_calls_and_lambdas(registry: Registry) -> None:
    stage_dataset = make_dataset()
    with current_registry(registry):

        @autostage(DS=stage_dataset(), out=[selfref, "o"])
        def eager(DS: Any, out: str) -> None:
            Path(out).write_text(Path(DS.out).read_text())

        @autostage(DS=lambda r: stage_dataset(r, size=5), out=[selfref, "o"])
        def with_lambda(DS: Any, out: str) -> None:
            Path(out).write_text(Path(DS.out).read_text())

        assert mklens(realize1(instantiate(eager))).out.contents == "0,1,2"
        assert mklens(realize1(instantiate(with_lambda))).out.contents == "0,1,2,3,4"


def test_refpaths_into_other_stages_arrive_as_lists(registry: Registry) -> None:
    stage_dataset = make_dataset()
    received: list[Any] = []

    @autostage(src=lambda r: [stage_dataset(r), "data.txt"], out=[selfref, "o"])
    def copy(src: list[str], out: str) -> None:
        received.append(src)
        Path(out).write_text(Path(src[0]).read_text())

    rref = realize1(instantiate(copy, r=registry))
    assert received == [[str(mklens(rref).src.syspath)]]
    assert mklens(rref).out.contents == "0,1,2"


def test_several_realizations_give_a_list_of_attrs(registry: Registry) -> None:
    @autostage(out=[selfref, "n"], nouts=3)
    def several(rindex: int, out: str) -> None:
        Path(out).write_text(str(rindex))

    @autostage(DS=several, out=[selfref, "o"])
    def gather(DS: list[Any], out: str) -> None:
        Path(out).write_text(" ".join(sorted(Path(item.out).read_text() for item in DS)))

    @autostage(DS=make_dataset(), out=[selfref, "o"], always_multiref=True)
    def multiref(DS: list[Any], out: str) -> None:
        Path(out).write_text(str(len(DS)))

    assert mklens(realize1(instantiate(gather, r=registry))).out.contents == "0 1 2"
    assert mklens(realize1(instantiate(multiref, r=registry))).out.contents == "1"


def test_dependencies_of_dependencies_resolve_in_their_own_realization(
    registry: Registry,
) -> None:
    stage_dataset = make_dataset()

    @autostage(DS=stage_dataset, out=[selfref, "middle.txt"])
    def middle(DS: Any, out: str) -> None:
        Path(out).write_text("middle")

    seen: list[Any] = []

    @autostage(M=middle)
    def top(M: Any, build: Build) -> None:
        seen.append(M)
        (build.outputs()[0] / "done").write_text("")

    rref = realize1(instantiate(top, r=registry))
    assert Path(seen[0].DS.out).read_text() == "0,1,2"
    assert seen[0].DS._rref == mklens(rref).M.DS.rref
    assert Path(seen[0].out) == mklens(rref).M.out.syspath.path


# -- outputs -----------------------------------------------------------------------------------


def test_nouts_calls_the_function_once_per_output(registry: Registry) -> None:
    calls: list[tuple[int, str]] = []

    @autostage(out=[selfref, "i.txt"], nouts=4)
    def stage(build: Build, rindex: int, out: str) -> None:
        assert isinstance(build, Build)
        calls.append((rindex, out))
        Path(out).write_text(str(rindex))

    rrefs = realizeMany(instantiate(stage, r=registry))
    assert len(rrefs) == 4
    assert sorted(mklens(rref).out.contents for rref in rrefs) == ["0", "1", "2", "3"]
    assert [index for index, _ in calls] == [0, 1, 2, 3]
    assert len({Path(out).parent for _, out in calls}) == 4
    assert realizeMany(instantiate(stage, r=registry)) == rrefs
    assert len(calls) == 4


def test_a_missing_promise_fails_the_build(registry: Registry, store: Store) -> None:
    @autostage(out=[selfref, "never.txt"])
    def lazy(out: str) -> None:
        pass

    with pytest.raises(PromiseError, match=r"never\.txt"):
        realize1(instantiate(lazy, r=registry))
    assert store.realizations_of(lazy(registry)) == []


def test_an_exception_in_the_function_is_a_build_error(registry: Registry) -> None:
    @autostage(a=1)
    def broken(a: int) -> None:
        raise ValueError("boom")

    with pytest.raises(BuildError, match="ValueError: boom") as info:
        realize1(instantiate(broken, r=registry))
    assert isinstance(info.value.exception, ValueError)
    assert info.value.dref == broken(registry)


def test_keyword_catch_all_receives_every_field(registry: Registry) -> None:
    received: dict[str, Any] = {}

    @autostage(a=1, out=[selfref, "o"])
    def stage(**fields: Any) -> None:
        received.update(fields)
        Path(fields["out"]).write_text("")

    rref = realize1(instantiate(stage, r=registry))
    assert received["a"] == 1
    assert received["name"] == "stage"
    assert Path(received["out"]).name == "o"
    assert rref_to_dref(rref) == stage(registry)


# -- __source__ ----------------------------------------------------------------------------------

MODULE = """
from pathlib import Path
from mdrun.core.autostages import autostage
from mdrun.core.config import SELFREF


@autostage(a=1, out=[SELFREF, "o"])
def stage(a, out):
    '''Write a.'''
    Path(out).write_text(str(a))
"""


def load_stage(folder: Path, source: str, module_name: str) -> AutoStage:
    """Import `source` from a file (so inspect finds it) and return its `stage`."""
    path = folder / f"{module_name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stage = module.stage
    assert isinstance(stage, AutoStage)
    return stage


def test_source_ignores_comments_whitespace_and_docstrings(tmp_path: Path) -> None:
    original = load_stage(tmp_path, MODULE, "original")
    cosmetic = MODULE.replace("    Path(out)", "    # a comment\n\n    Path(out)").replace(
        "'''Write a.'''", "'''Write the value of a.'''"
    )
    reformatted = cosmetic.replace("write_text(str(a))", "write_text( str( a ) )  # same")
    assert load_stage(tmp_path, reformatted, "cosmetic").source == original.source
    changed = MODULE.replace("str(a)", "str(a + 1)")
    assert load_stage(tmp_path, changed, "changed").source != original.source
    redecorated = MODULE.replace("a=1,", "a=2,")
    assert load_stage(tmp_path, redecorated, "redecorated").source == original.source


def test_source_changes_with_sourcedeps(tmp_path: Path) -> None:
    def helper() -> int:
        return 1

    def other_helper() -> int:
        return 2

    plain = source_digest(load_stage(tmp_path, MODULE, "plain").function)
    with_helper = source_digest(load_stage(tmp_path, MODULE, "helped").function, [helper])
    with_other = source_digest(load_stage(tmp_path, MODULE, "other").function, [other_helper])
    assert len({plain, with_helper, with_other}) == 3


SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from mdrun.core.registry import Registry
from mdrun.core.default_store import fsinit
import stagemodule
print(stagemodule.stage.source, stagemodule.stage(Registry(fsinit(sys.argv[2]))))
"""


def run_python(arguments: list[str], seed: str, cwd: Path) -> str:
    environment = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_source_and_dref_are_the_same_in_every_process(tmp_path: Path) -> None:
    (tmp_path / "stagemodule.py").write_text(MODULE)
    arguments = ["-c", SCRIPT, str(tmp_path), str(tmp_path / "store")]
    first = run_python(arguments, "1", tmp_path)
    second = run_python(arguments, "2", tmp_path)
    assert first == second
    assert first.split()[0] == load_stage(tmp_path, MODULE, "inprocess").source


INLINE = """
from mdrun.core.autostages import autostage
@autostage(a=1)
def stage(a):
    return {"x", "y", a * 2}
print(stage.source)
"""


def test_functions_without_source_hash_their_code(tmp_path: Path) -> None:
    first = run_python(["-c", INLINE], "1", tmp_path)
    second = run_python(["-c", INLINE], "2", tmp_path)
    changed = run_python(["-c", INLINE.replace("a * 2", "a * 3")], "1", tmp_path)
    assert first == second
    assert changed != first
    assert len(first) == 64
