"""Configs: the JSON data that defines a stage, validated and put in canonical form.

A config is what a derivation reference hashes, so only JSON values are allowed (anything else
is refused with the path of the offending field), key order never matters, and the derivations a
config mentions (drefs anywhere inside it, RefPath heads included) are its dependencies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from mdrun.core.hashing import canonical_json, sha256_hex
from mdrun.core.jsonvalue import JSONObject, JSONValue
from mdrun.core.refs import (
    DEFAULT_NAME,
    DRef,
    HashPart,
    Name,
    is_dref,
    is_rref,
    make_dref,
    make_name,
)
from mdrun.errors import ConfigError, StoreError

SELFREF = "__self__"
"""Head of a promise path: `[SELFREF, 'out', 'model.npy']` names a file the realizer creates."""

RefPath = list[str]
"""`[dref, 'path', 'parts']`: a path inside a realization of a dependency."""


def is_selfpath(value: object) -> bool:
    """True for a promise path `[SELFREF, ...]`."""
    return (
        isinstance(value, list)
        and len(value) >= 1
        and value[0] == SELFREF
        and all(isinstance(part, str) for part in value)
    )


def is_refpath(value: object) -> bool:
    """True for `[dref, 'a', 'b']`: a dref head followed by plain path parts."""
    return (
        isinstance(value, list)
        and len(value) >= 1
        and is_dref(value[0])
        and all(isinstance(part, str) and not is_dref(part) for part in value[1:])
    )


def _field(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


def validate_json(value: object, path: str = "config") -> JSONValue:
    """Return `value` if it is plain JSON data, else raise ConfigError naming the field.

    Refused: tuples, sets, bytes, NaN and infinities, non-string keys, objects, and rrefs
    (a config names derivations; realizations are chosen by matchers, not written in configs).
    """
    try:
        return _validated(value)
    except _Refused as refused:
        where = path
        for key in reversed(refused.keys):
            where = _field(where, key)
        raise ConfigError(f"{where}{refused.reason}") from None


class _Refused(Exception):
    """A value that is not JSON data; `keys` (innermost first) say where, once it is known."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.keys: list[str | int] = []


def _validated(value: object) -> JSONValue:
    """`validate_json` without the field's name, which is made only for an error (a config is
    checked every time it is made: a block's config once per block and run)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        if value.startswith("rref:") and is_rref(value):
            raise _Refused(
                f": a realization reference ({value}) cannot be part of a config; "
                "depend on its derivation instead"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Refused(f": {value!r} is not a JSON number")
        return value
    if isinstance(value, list):
        items: list[JSONValue] = []
        for index, item in enumerate(value):
            try:
                items.append(_validated(item))
            except _Refused as refused:
                refused.keys.append(index)
                raise
        return items
    if isinstance(value, dict):
        result: JSONObject = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Refused(f": key {key!r} is a {type(key).__name__}, not a string")
            if key.startswith("rref:") and is_rref(key):
                raise _Refused(
                    f": a realization reference ({key}) cannot be part of a config, "
                    "not even as a key"
                )
            try:
                result[key] = _validated(item)
            except _Refused as refused:
                refused.keys.append(key)
                raise
        return result
    kind = type(value).__name__
    hint = " (use a list)" if isinstance(value, tuple) else ""
    raise _Refused(f": a {kind} is not JSON data{hint}")


def walk_strings(value: JSONValue) -> Iterator[str]:
    """Every string inside a JSON value, keys excluded."""
    stack: list[JSONValue] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())


def walk_selfpaths(value: JSONValue, path: str = "config") -> Iterator[tuple[str, list[str]]]:
    """(field, promised path parts) for every promise path inside a config."""
    if is_selfpath(value):
        assert isinstance(value, list)
        yield path, [str(part) for part in value[1:]]
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_selfpaths(item, _field(path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_selfpaths(item, _field(path, key))


class Config:
    """A validated, canonical stage config. Immutable: `val` returns a fresh copy."""

    __slots__ = ("_canonical", "_data", "_hash")

    def __init__(self, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"a config must be a dict, not a {type(data).__name__}")
        validated = validate_json(dict(data))
        assert isinstance(validated, dict)
        if "name" in validated:
            name = validated["name"]
            if not isinstance(name, str):
                raise ConfigError("config.name: a stage name must be a string")
            try:
                make_name(name)
            except ConfigError as err:
                raise ConfigError(f"config.name: {err.message}") from None
        self._data: JSONObject = validated
        self._canonical = canonical_json(validated)
        self._hash = sha256_hex(self._canonical)

    @classmethod
    def from_canonical(cls, text: bytes) -> Config:
        """Load a config that the store wrote (already canonical)."""
        return cls(json.loads(text))

    @property
    def val(self) -> JSONObject:
        """A deep copy of the config's data."""
        copied = json.loads(self._canonical)
        assert isinstance(copied, dict)
        return copied

    @property
    def data(self) -> JSONObject:
        """The config's data, shared: callers must not mutate it."""
        return self._data

    @property
    def canonical(self) -> bytes:
        """The exact bytes that are hashed."""
        return self._canonical

    @property
    def hash_part(self) -> HashPart:
        """The 32-character hash part of the derivation reference."""
        return HashPart(self._hash[:32])

    @property
    def name(self) -> Name:
        """The stage name: the config's `name` field, else `unnamed`."""
        name = self._data.get("name", DEFAULT_NAME)
        return Name(str(name))

    def dependencies(self) -> list[DRef]:
        """The derivations this config mentions, in first-seen order, without duplicates."""
        seen: dict[DRef, None] = {}
        for text in walk_strings(self._data):
            if is_dref(text):
                seen.setdefault(text, None)
        return list(seen)

    def promises(self) -> list[tuple[str, list[str]]]:
        """(field, path parts) of every promise path in the config."""
        return list(walk_selfpaths(self._data))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and other._canonical == self._canonical

    def __hash__(self) -> int:
        return hash(self._canonical)

    def __repr__(self) -> str:
        return f"Config({self._canonical.decode()})"


def is_registry(value: object) -> bool:
    """Registries mark their class so configs can leave them out without importing them."""
    return bool(getattr(type(value), "__mdrun_registry__", False))


def mkconfig(data: Mapping[str, Any]) -> Config:
    """Build a config from a dict, typically `locals()`; registries in it are left out."""
    return Config({key: value for key, value in data.items() if not is_registry(value)})


def checked_config(dref: DRef, data: bytes, where: str) -> Config:
    """A stored config read back: it must be a config and hash to `dref` (StoreError if not)."""
    try:
        config = Config.from_canonical(data)
    except (ValueError, ConfigError):
        raise StoreError(f"damaged derivation: {where}: not a config") from None
    if make_dref(config.hash_part, config.name) != dref:
        raise StoreError(f"damaged derivation: {where}: it does not hash to {dref}")
    return config
