"""The contract every storage tier keeps (`mdrun.core.backend.StoreBackend`), as one test suite.

Subclass `BackendContract` in a `test_*.py` module and override its `backend` fixture with one
that returns a fresh, empty, writable tier; every test below then runs against it:

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend(self, tmp_path: Path) -> StoreBackend:
            return MyBackend(tmp_path / "tier")

The realizations put into the tier are real ones, built in a local store (`source`): a folder,
a plain file, an executable, a link, a build record, and a dependency in the context.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from mdrun.core.backend import StoreBackend
from mdrun.core.build import write_build_metadata
from mdrun.core.config import Config
from mdrun.core.files import make_writable
from mdrun.core.integrity import MANIFEST_FILE
from mdrun.core.refs import DRef, RRef, rref_to_dref
from mdrun.core.store import Store
from mdrun.core.substitute import fetch_realization, push_closure
from mdrun.errors import StoreError

__all__ = ["BackendContract", "Source", "make_source"]


@dataclass(frozen=True, slots=True)
class Source:
    """A local store holding two realizations to put into a tier."""

    store: Store
    upstream: RRef
    """A realization with a folder, a file, an executable and a link."""
    downstream: RRef
    """A realization of another derivation, built from `upstream` (a non-empty context)."""

    def dref_of(self, rref: RRef) -> DRef:
        """The derivation of one of them."""
        return rref_to_dref(rref)

    def put(self, backend: StoreBackend, rref: RRef) -> None:
        """Put one of them into `backend`, as `push_realization` does."""
        dref = self.dref_of(rref)
        config = self.store.config_of(dref).canonical
        backend.put_realization(dref, config, rref, self.store.realization_path(rref))


def make_source(root: Path) -> Source:
    """Build the two realizations in a new store at `root`."""
    store = Store.initialize(root)
    up_dref = store.add_derivation(Config({"name": "up", "value": 1}))
    folder = store.new_build_folder(up_dref)
    (folder / "data").mkdir()
    (folder / "data" / "numbers.txt").write_bytes(b"1 2 3\n")
    (folder / "run.sh").write_text("#!/bin/sh\necho ran\n")
    os.chmod(folder / "run.sh", 0o755)
    os.symlink("data/numbers.txt", folder / "latest")
    write_build_metadata(folder, 100.0, 101.0)
    upstream = store.publish_realization(up_dref, {}, folder)
    down_dref = store.add_derivation(Config({"name": "down", "input": up_dref}))
    folder = store.new_build_folder(down_dref)
    (folder / "result").write_text("6")
    downstream = store.publish_realization(down_dref, {up_dref: [upstream]}, folder)
    return Source(store, upstream, downstream)


class BackendContract:
    """The tests; a subclass provides the `backend` fixture."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> StoreBackend:
        """A fresh, empty, writable tier (override this)."""
        raise NotImplementedError("a BackendContract subclass must define the backend fixture")

    @pytest.fixture
    def source(self, tmp_path: Path) -> Source:
        """A local store with realizations to put."""
        return make_source(tmp_path / "source-store")

    def test_it_speaks_the_protocol(self, backend: StoreBackend) -> None:
        assert isinstance(backend, StoreBackend)
        assert isinstance(backend.location, str) and backend.location
        assert backend.writable

    def test_an_empty_tier_holds_nothing(self, backend: StoreBackend, source: Source) -> None:
        rref = source.upstream
        assert backend.config_bytes(source.dref_of(rref)) is None
        assert backend.realizations_of(source.dref_of(rref)) == []
        assert backend.manifest_bytes(rref) is None
        assert backend.build_record_bytes(rref) is None
        with pytest.raises(KeyError):
            backend.read_entry(rref, "run.sh")

    def test_what_is_put_reads_back_byte_for_byte(
        self, backend: StoreBackend, source: Source, tmp_path: Path
    ) -> None:
        rref, local = source.upstream, source.store.realization_path(source.upstream)
        source.put(backend, rref)
        dref = source.dref_of(rref)
        assert backend.config_bytes(dref) == source.store.config_of(dref).canonical
        assert backend.realizations_of(dref) == [rref]
        assert backend.manifest_bytes(rref) == source.store.manifest(rref).data
        assert backend.build_record_bytes(rref) == (local / "__build__.json").read_bytes()
        assert backend.read_entry(rref, "data/numbers.txt") == b"1 2 3\n"
        assert backend.read_entry(rref, "latest") == b"data/numbers.txt"
        assert backend.read_entry(rref, "context.json") == b"{}"
        backend.copy_entry(rref, "run.sh", tmp_path / "copied")
        assert (tmp_path / "copied").read_bytes() == (local / "run.sh").read_bytes()
        with pytest.raises(KeyError):
            backend.copy_entry(rref, "absent", tmp_path / "absent")
        with pytest.raises(KeyError):
            backend.read_entry(rref, "absent")

    def test_putting_again_changes_nothing(self, backend: StoreBackend, source: Source) -> None:
        source.put(backend, source.upstream)
        source.put(backend, source.upstream)
        dref = source.dref_of(source.upstream)
        assert backend.realizations_of(dref) == [source.upstream]
        manifest = source.store.manifest(source.upstream).data
        assert backend.manifest_bytes(source.upstream) == manifest
        assert backend.read_entry(source.upstream, "data/numbers.txt") == b"1 2 3\n"

    def test_realizations_are_listed_by_derivation(
        self, backend: StoreBackend, source: Source
    ) -> None:
        source.put(backend, source.upstream)
        source.put(backend, source.downstream)
        assert backend.realizations_of(source.dref_of(source.downstream)) == [source.downstream]
        assert backend.realizations_of(source.dref_of(source.upstream)) == [source.upstream]

    def test_a_removed_realization_is_gone_and_the_others_stay(
        self, backend: StoreBackend, source: Source
    ) -> None:
        source.put(backend, source.upstream)
        source.put(backend, source.downstream)
        backend.remove_realization(source.upstream)
        assert backend.realizations_of(source.dref_of(source.upstream)) == []
        assert backend.manifest_bytes(source.upstream) is None
        assert backend.realizations_of(source.dref_of(source.downstream)) == [source.downstream]
        assert backend.read_entry(source.downstream, "result") == b"6"

    def test_a_half_written_realization_is_invisible(
        self, backend: StoreBackend, source: Source, tmp_path: Path
    ) -> None:
        """A put that fails part way (an entry its manifest lists cannot be read) leaves no
        realization to be listed: the manifest is written last."""
        broken = tmp_path / "broken"
        shutil.copytree(source.store.realization_path(source.upstream), broken, symlinks=True)
        make_writable(broken)
        (broken / "run.sh").unlink()
        assert (broken / MANIFEST_FILE).exists()
        dref = source.dref_of(source.upstream)
        config = source.store.config_of(dref).canonical
        with pytest.raises((StoreError, OSError)):
            backend.put_realization(dref, config, source.upstream, broken)
        assert backend.realizations_of(dref) == []
        assert backend.manifest_bytes(source.upstream) is None

    def test_a_closure_pushed_then_fetched_is_the_same_realization(
        self, backend: StoreBackend, source: Source, tmp_path: Path
    ) -> None:
        assert push_closure(source.store, backend, [source.downstream]) == [
            source.upstream,
            source.downstream,
        ]
        assert push_closure(source.store, backend, [source.downstream]) == []
        other = Store.initialize(tmp_path / "other-store")
        assert fetch_realization(other, backend, source.downstream) == source.downstream
        for rref in (source.upstream, source.downstream):
            assert other.realization_problems(rref) == []
        fetched = other.realization_path(source.upstream)
        assert os.readlink(fetched / "latest") == "data/numbers.txt"
        assert os.access(fetched / "run.sh", os.X_OK)
        assert other.context_of(source.downstream) == {
            source.dref_of(source.upstream): [source.upstream]
        }
        assert other.build_metadata(source.upstream)["start"] == 100.0
