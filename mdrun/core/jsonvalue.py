"""The type of JSON values, shared by configs, contexts and stored metadata."""

from __future__ import annotations

from typing import TypeAlias

JSONValue: TypeAlias = (
    "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"
)
JSONObject: TypeAlias = "dict[str, JSONValue]"
