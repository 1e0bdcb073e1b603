"""The key's fields named once: every field of a block's base config has the words `status`
uses when it changes, and `status` says them (no kernel needed: the plan and the record only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdrun.core.jsonvalue import JSONObject
from mdrun.document.formats.settings import Settings
from mdrun.document.parse import parse_document
from mdrun.document.plan import KEY_FIELDS, plan_document
from mdrun.document.status_report import why_stale

EVERY_FIELD = """\
```python id=load inputs=data.txt allow_error=true max_output=2k
data = open("data.txt").read()
```

```pycon
>>> 1 + 1
2
```
"""
"""A document whose blocks between them write every optional field of the key."""


def planned_configs(tmp_path: Path) -> list[JSONObject]:
    (tmp_path / "data.txt").write_text("one two\n", encoding="utf-8")
    document = parse_document(EVERY_FIELD, str(tmp_path / "doc.md"))
    plan = plan_document(document, tmp_path, Settings(doctest=True))
    return [planned.base_config for planned in plan.blocks if planned.base_config is not None]


def test_every_field_of_a_block_key_has_a_status_reason(tmp_path: Path) -> None:
    configs = planned_configs(tmp_path)
    written = {name for config in configs for name in config}
    assert {"doctest", "max_output", "inputs", "allow_error"} <= written, "the document covers them"
    assert written - KEY_FIELDS.keys() == set()


@pytest.mark.parametrize("field", sorted(KEY_FIELDS))
def test_a_changed_key_field_is_named_as_the_reason(tmp_path: Path, field: str) -> None:
    new = planned_configs(tmp_path)[0]
    old = {**new, field: "something else"}
    record: JSONObject = {"base": old, "upstream": None, "status": "executed", "cutoff": False}
    assert why_stale(record, new, None, None) == KEY_FIELDS[field]


def test_several_changes_are_each_named_once_in_the_tables_order(tmp_path: Path) -> None:
    new = planned_configs(tmp_path)[0]
    old = {**new, "kernel": {}, "code": "", "id": "x", "max_output": 1}
    record: JSONObject = {"base": old, "upstream": None, "status": "executed", "cutoff": False}
    assert why_stale(record, new, None, None) == (
        "its code changed, its options changed, the kernel changed"
    )


def test_a_field_this_version_does_not_know_says_the_key_changed(tmp_path: Path) -> None:
    new = planned_configs(tmp_path)[0]
    old = {**new, "retired": True}
    record: JSONObject = {"base": old, "upstream": None, "status": "executed", "cutoff": False}
    assert why_stale(record, new, None, None) == "mdrun keys blocks differently now"


def test_an_unchanged_key_looks_upstream_then_at_the_store(tmp_path: Path) -> None:
    new = planned_configs(tmp_path)[0]
    record: JSONObject = {"base": new, "upstream": "k1", "status": "executed", "cutoff": False}
    assert why_stale(record, new, "b1", "k1") == "an upstream block changed: b1"
    assert why_stale(record, new, None, "k2") == "an upstream block's result changed"
    assert why_stale(record, new, None, "k1") == "not in the store (it was collected)"
    assert why_stale(record, new, None, "k1", pure=True) == "a variable it reads changed"
    assert why_stale(record, new, "b1", "k1", pure=True) == "an upstream block changed: b1"
    assert why_stale(None, new, None, None) == "never run"
