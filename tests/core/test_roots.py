"""GC roots recorded on use: a run records, a deleted document releases, gc keeps the rest."""

from __future__ import annotations

import json
from pathlib import Path

from mdrun.core.garbage import gc
from mdrun.core.roots import (
    gc_roots,
    read_root_records,
    record_roots,
    recorded_roots,
    roots_record_path,
)
from mdrun.core.store import Store
from tests.core.helpers import derivation, publish


def test_a_record_names_the_document_and_what_it_used(store: Store, tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text("# doc\n")
    dref = derivation(store)
    first, second = publish(store, dref, {"a": "1"}), publish(store, dref, {"a": "2"})
    path = record_roots(store, document, [second, first, first])
    assert path == roots_record_path(store, document)
    assert path.parent == store.root / "roots"
    assert json.loads(path.read_text()) == {
        "document": str(document),
        "rrefs": sorted([first, second]),
    }
    record_roots(store, document, [first])  # the next run replaces the record
    assert recorded_roots(store) == [first]
    assert sorted(entry.name for entry in path.parent.iterdir()) == [path.name]


def test_gc_keeps_what_recorded_documents_use_and_releases_deleted_ones(
    store: Store, tmp_path: Path
) -> None:
    kept_document, deleted_document = tmp_path / "kept.md", tmp_path / "deleted.md"
    kept_document.write_text("kept")
    deleted_document.write_text("deleted")
    dref = derivation(store)
    kept, released, unused = (publish(store, dref, {"a": text}) for text in "123")
    record_roots(store, kept_document, [kept])
    record_roots(store, deleted_document, [released])
    deleted_document.unlink()

    # A dry run keeps every record; the one of a deleted document no longer counts.
    plan = gc(store, keep_rrefs=gc_roots(store))
    assert sorted(plan.rrefs) == sorted([released, unused])
    assert len(read_root_records(store)) == 2

    gc(store, keep_rrefs=gc_roots(store, release=True), delete=True)
    assert store.realizations_of(dref) == [kept]
    assert [record.document for record in read_root_records(store)] == [kept_document]


def test_emptying_the_store_releases_every_record(store: Store, tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text("doc")
    rref = publish(store, derivation(store), {"a": "1"})
    record_roots(store, document, [rref])
    assert gc_roots(store, keep_recorded=False, release=True) == []
    assert read_root_records(store) == []


def test_a_record_that_is_not_one_is_ignored(store: Store, tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text("doc")
    rref = publish(store, derivation(store), {"a": "1"})
    record_roots(store, document, [rref])
    folder = store.root / "roots"
    (folder / "garbage.json").write_text("not json")
    (folder / "relative.json").write_text('{"document": "doc.md", "rrefs": []}')
    (folder / "badref.json").write_text(f'{{"document": "{document}", "rrefs": ["x"]}}')
    assert recorded_roots(store, release=True) == [rref]
