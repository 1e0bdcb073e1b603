"""Configs: what is refused (with the field's path), canonical identity, dependencies, promises."""

from __future__ import annotations

import copy
import json
import random
import tempfile
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mdrun.core.config import SELFREF, Config, mkconfig
from mdrun.core.hashing import canonical_json
from mdrun.core.jsonvalue import JSONObject, JSONValue
from mdrun.core.matchers import match_only
from mdrun.core.refs import DRef, is_dref, make_dref
from mdrun.core.registry import Registry, mkdrv
from mdrun.core.store import Store
from mdrun.errors import ConfigError
from tests.core.helpers import file_stage, never_realize
from tests.core.strategies import config_keys, configs, json_leaves, shuffled_keys

DREF = "dref:0123456789abcdef0123456789abcdef-dep"
RREF = "rref:fedcba9876543210fedcba9876543210-0123456789abcdef0123456789abcdef-dep"


def dref_of(config: Config) -> DRef:
    return make_dref(config.hash_part, config.name)


# -- what is refused --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"a": {"b": [1, 2, (3, 4)]}}, "config.a.b[2]"),
        ({"a": b"bytes"}, "config.a"),
        ({"a": [float("nan")]}, "config.a[0]"),
        ({"a": {"x": float("inf")}}, "config.a.x"),
        ({"a": -float("inf")}, "config.a"),
        ({"a": object()}, "config.a"),
        ({"a": {1, 2}}, "config.a"),
        ({"a": {"b": {1: "one"}}}, "config.a.b"),
        ({"a": {"b": {None: "none"}}}, "config.a.b"),
        ({"deps": [DREF, RREF]}, "config.deps[1]"),
        ({"a": [[{"b": RREF}]]}, "config.a[0][0].b"),
        ({"a": {RREF: "as a key"}}, "config.a"),
    ],
)
def test_non_json_values_are_refused_naming_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Config(data)
    assert str(raised.value).startswith(f"{field}:")


def test_a_tuple_is_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="use a list"):
        Config({"shape": (3, 4)})


def test_a_non_dict_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be a dict"):
        Config([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [3, None, "a b", "", "x/y"])
def test_invalid_names_are_refused(name: object) -> None:
    with pytest.raises(ConfigError, match=r"^config\.name:"):
        Config({"name": name})


def test_name_defaults_to_unnamed() -> None:
    assert Config({"a": 1}).name == "unnamed"
    assert Config({"name": "x-1"}).name == "x-1"


def test_mkconfig_leaves_registries_out(registry: Registry) -> None:
    def stage(r: Registry, a: int = 1) -> Config:
        return mkconfig(locals())

    assert stage(registry).val == {"a": 1}


# -- canonical identity ----------------------------------------------------------------------


def test_key_order_and_whitespace_never_change_a_dref(registry: Registry) -> None:
    never = never_realize
    first = mkdrv(registry, {"name": "k", "a": 1, "b": {"x": 1, "y": 2}}, match_only(), never)
    second = mkdrv(registry, {"b": {"y": 2, "x": 1}, "a": 1, "name": "k"}, match_only(), never)
    spaced = Config.from_canonical(b'{ "name" : "k",\n  "b": {"y":2, "x":1},\t"a": 1 }')
    assert first == second == dref_of(spaced)


@given(configs, st.randoms(use_true_random=False), st.integers(0, 4))
def test_dref_ignores_key_order_and_whitespace(
    data: JSONObject, rng: random.Random, indent: int
) -> None:
    reordered = shuffled_keys(data, rng)
    assert isinstance(reordered, dict)
    text = json.dumps(reordered, indent=indent, separators=(", ", " : "), ensure_ascii=True)
    with tempfile.TemporaryDirectory() as root:
        registry = Registry(Store.initialize(root))
        original = mkdrv(registry, {"name": "p", **data}, match_only(), never_realize)
        again = mkdrv(registry, {**json.loads(text), "name": "p"}, match_only(), never_realize)
        assert original == again
        assert registry.store.config_of(original).val == {"name": "p", **data}


Step = str | int
Where = tuple[Step, ...]


def _places(value: JSONValue, prefix: Where = ()) -> list[tuple[str, Where]]:
    """Every leaf (as a value to replace) and every key (as a name to change) inside a value."""
    places: list[tuple[str, Where]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            places.append(("key", (*prefix, key)))
            places.extend(_places(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            places.extend(_places(item, (*prefix, index)))
    if not value or not isinstance(value, dict | list):
        places.append(("leaf", prefix))
    return places


def _parent(root: JSONObject, path: Where) -> Any:
    parent: Any = root
    for step in path[:-1]:
        parent = parent[step]
    return parent


@given(configs.filter(bool), st.data())
def test_any_nested_change_changes_dref(data: JSONObject, draw: st.DataObject) -> None:
    kind, path = draw.draw(st.sampled_from([p for p in _places(data) if p[1]]))
    changed = copy.deepcopy(data)
    parent = _parent(changed, path)
    if kind == "leaf":
        old = parent[path[-1]]
        new = draw.draw(json_leaves.filter(lambda v: canonical_json(v) != canonical_json(old)))
        parent[path[-1]] = new
    else:
        new_key = draw.draw(config_keys.filter(lambda k: k not in parent))
        parent[new_key] = parent.pop(path[-1])
    assume(changed != data or kind == "key")
    with tempfile.TemporaryDirectory() as root:
        registry = Registry(Store.initialize(root))
        before = mkdrv(registry, {"name": "p", **data}, match_only(), never_realize)
        after = mkdrv(registry, {"name": "p", **changed}, match_only(), never_realize)
    assert before != after


def test_a_changed_name_changes_the_hash_too() -> None:
    assert Config({"name": "a"}).hash_part != Config({"name": "b"}).hash_part


def test_equal_numbers_of_different_json_types_are_different_configs() -> None:
    hashes = {Config({"v": value}).hash_part for value in (1, 1.0, True, "1")}
    assert len(hashes) == 4


def test_canonical_bytes_are_sorted_compact_utf8() -> None:
    config = Config({"b": "é", "a": [1, {"d": None, "c": 2.5}]})
    assert config.canonical == '{"a":[1,{"c":2.5,"d":null}],"b":"é"}'.encode()


def test_val_is_a_copy() -> None:
    config = Config({"a": [1]})
    copied = config.val["a"]
    assert isinstance(copied, list)
    copied.append(2)
    assert config.val == {"a": [1]}


def test_config_does_not_alias_the_callers_data() -> None:
    data: dict[str, Any] = {"a": [1]}
    config = Config(data)
    data["a"].append(2)
    assert config.val == {"a": [1]}
    assert Config({"a": [1]}) == config


# -- dependencies and promises -------------------------------------------------------------


def test_dependencies_are_the_drefs_anywhere_in_values(registry: Registry) -> None:
    first = file_stage(registry, "first")
    second = file_stage(registry, "second")
    third = file_stage(registry, "third")
    config = Config(
        {
            "name": "user",
            "direct": first,
            "nested": {"list": [1, [second]]},
            "refpath": [third, "artifact"],
            "again": first,
            "prefix-only": "dref:not-a-reference",
            first.replace("first", "key"): "keys are not dependencies",
        }
    )
    assert sorted(config.dependencies()) == sorted([first, second, third])
    assert all(is_dref(dependency) for dependency in config.dependencies())


def test_promises_name_their_fields() -> None:
    config = Config(
        {"out": [SELFREF, "model.npy"], "more": {"logs": [[SELFREF, "logs", "a.txt"]]}}
    )
    assert sorted(config.promises()) == [
        ("config.more.logs[0]", ["logs", "a.txt"]),
        ("config.out", ["model.npy"]),
    ]

