"""Results remembered by a long-lived process (`remembered_results`): used again while their
derivation's folder is unchanged, never once a realization was removed or added."""

from __future__ import annotations

import shutil

import pytest

from mdrun.core import Store
from mdrun.core.refs import RRef
from mdrun.document import remembered_results
from mdrun.document.remembered_results import keeping_results
from tests.document.conftest import Mdrun

pytestmark = pytest.mark.kernel

DOCUMENT = "```python\nx = 1\nprint('first', x)\n```\n\n```python\nprint('second')\n```\n"


def _realizations_of(mdrun: Mdrun, block_id: str) -> list[RRef]:
    store = Store(mdrun.store)
    return [
        rref
        for dref in store.all_derivations()
        if store.config_of(dref).val.get("id") == block_id
        for rref in store.realizations_of(dref)
    ]


def test_a_removed_result_is_not_taken_from_memory(mdrun: Mdrun) -> None:
    with keeping_results():
        mdrun.write("doc.md", DOCUMENT)
        assert mdrun("run", "doc.md").code == 0
        assert remembered_results._results, "what the run stored is remembered"

        mdrun.write("doc.md", mdrun.read("doc.md").replace("'second'", "'again'"))
        completed, report = mdrun.run_reported("run", "doc.md")
        assert report.statuses == {"b1": "cached", "b2": "executed"}

        # Removed from the store (as `mdrun gc` would): the first block runs again.
        store = Store(mdrun.store)
        for rref in _realizations_of(mdrun, "b1"):
            shutil.rmtree(store.realization_path(rref))
        mdrun.write("doc.md", mdrun.read("doc.md").replace("'again'", "'third'"))
        completed, report = mdrun.run_reported("run", "doc.md")
        assert completed.code == 0
        assert report.statuses == {"b1": "executed", "b2": "executed"}
        assert "first 1" in mdrun.read("doc.md")
    assert not remembered_results._results, "forgotten when the last scope closes"


def test_nothing_is_remembered_outside_a_scope(mdrun: Mdrun) -> None:
    mdrun.write("doc.md", DOCUMENT)
    assert mdrun("run", "doc.md").code == 0
    assert not remembered_results._results and not remembered_results._records
