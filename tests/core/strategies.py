"""Hypothesis strategies for the core's tests: JSON configs, reference parts, stage DAGs."""

from __future__ import annotations

import random
import string

from hypothesis import strategies as st

from mdrun.core.jsonvalue import JSONObject, JSONValue

hash_parts = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
"""The 32 lowercase hex digits of a reference's hash part."""

names = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=20)
"""Valid stage names (they may contain `-`, which the parsers must cope with)."""

json_leaves: st.SearchStrategy[JSONValue] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
"""Any JSON scalar (strings random enough never to look like references)."""

config_keys = st.text(max_size=6).filter(lambda key: key != "name")
"""Keys of a config's fields; `name` is left out because it must be a valid stage name."""

json_values: st.SearchStrategy[JSONValue] = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(config_keys, children, max_size=4),
    ),
    max_leaves=20,
)
"""Nested JSON values."""

configs: st.SearchStrategy[JSONObject] = st.dictionaries(config_keys, json_values, max_size=5)
"""Random configs of nested JSON data."""


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 7) -> list[list[int]]:
    """A random DAG as the dependency lists of nodes 0..n-1 (node i depends on lower nodes)."""
    count = draw(st.integers(min_value=1, max_value=max_nodes))
    return [
        sorted(draw(st.sets(st.integers(min_value=0, max_value=index - 1), max_size=3)))
        if index
        else []
        for index in range(count)
    ]


def shuffled_keys(value: JSONValue, rng: random.Random) -> JSONValue:
    """The same JSON value with every dict's keys in a random insertion order."""
    if isinstance(value, list):
        return [shuffled_keys(item, rng) for item in value]
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {key: shuffled_keys(value[key], rng) for key in keys}
    return value
