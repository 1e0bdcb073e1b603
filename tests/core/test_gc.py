"""Garbage collection: the reference's vectors, roots folders, the sweep and concurrent builds."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from mdrun.core.build import Build, build_outpath, build_outpaths, build_wrapper
from mdrun.core.config import Config
from mdrun.core.garbage import GCPlan, gc, gc_plan, link_root, store_gc
from mdrun.core.matchers import match_all, match_only
from mdrun.core.realization import realize1, realizeMany
from mdrun.core.refs import DRef, RRef
from mdrun.core.registry import Registry, instantiate, mkdrv
from mdrun.core.stages import mknode
from mdrun.core.store import Store
from mdrun.errors import StoreError


@dataclass
class Chain:
    """d1 <- d2 (two realizations) <- d3, all realized."""

    d1: DRef
    d2: DRef
    d3: DRef
    r1: RRef
    r2a: RRef
    r2b: RRef
    r3: RRef


def two_outputs(b: Build) -> None:
    for index, folder in enumerate(build_outpaths(b)):
        (folder / "out").write_text(f"output {index}")


def chain_stages(r: Registry) -> tuple[DRef, DRef, DRef]:
    d1 = mknode(r, {"v": 1}, {"data": b"1" * 100}, name="d1")
    d2 = mkdrv(
        r, Config({"name": "d2", "d1": d1}), match_all(), build_wrapper(two_outputs, nouts=2)
    )
    d3 = mknode(r, {"d2": d2}, {"data": b"3" * 300}, name="d3")
    return d1, d2, d3


@pytest.fixture
def chain(store: Store) -> Chain:
    d1, d2, d3 = instantiate(chain_stages).result
    r3 = realize1(instantiate(lambda r: chain_stages(r)[2]))
    r2a, r2b = store.realizations_of(d2)
    (r1,) = store.realizations_of(d1)
    return Chain(d1, d2, d3, r1, r2a, r2b, r3)


def test_keep_nothing_removes_everything(store: Store, chain: Chain) -> None:
    drefs, rrefs = store_gc([], [])
    assert set(drefs) == {chain.d1, chain.d2, chain.d3}
    assert set(rrefs) == {chain.r1, chain.r2a, chain.r2b, chain.r3}


def test_keep_one_realization_keeps_its_context_only(store: Store, chain: Chain) -> None:
    drefs, rrefs = store_gc([], [chain.r2a])
    assert set(drefs) == {chain.d3}
    assert set(rrefs) == {chain.r3, chain.r2b}


def test_keep_a_derivation_keeps_all_realizations_below(store: Store, chain: Chain) -> None:
    drefs, rrefs = store_gc([chain.d2], [])
    assert set(drefs) == {chain.d3}
    assert set(rrefs) == {chain.r3}


def test_keep_the_top_realization_keeps_everything(store: Store, chain: Chain) -> None:
    assert store_gc([], [chain.r3]) == ([], [])


def test_plan_lists_dependents_first(store: Store, chain: Chain) -> None:
    plan = gc_plan(store)
    assert plan.drefs == (chain.d3, chain.d2, chain.d1)
    assert plan.rrefs.index(chain.r3) < plan.rrefs.index(chain.r2a) < plan.rrefs.index(chain.r1)


def test_roots_folder_links_are_roots(store: Store, chain: Chain, tmp_path: Path) -> None:
    roots = tmp_path / "roots"
    link = link_root(store, chain.r2a, roots, "result")
    assert link.is_symlink() and not Path(link.readlink()).is_absolute()
    assert link.resolve() == store.realization_path(chain.r2a).resolve()
    expected = gc_plan(store, keep_rrefs=[chain.r2a])
    assert gc_plan(store, roots_dir=roots) == expected
    assert gc_plan(store, roots_dir=link) == expected  # the folder itself is a link
    (roots / "unrelated").symlink_to(tmp_path)
    (roots / "dangling").symlink_to(tmp_path / "nowhere")
    (roots / "plain-file").write_text("not a link")
    assert gc_plan(store, roots_dir=roots) == expected
    link_root(store, chain.d2, roots, "result")  # replaces the old link
    assert gc_plan(store, roots_dir=roots) == gc_plan(store, keep_drefs=[chain.d2])


def test_dry_plan_deletes_nothing(store: Store, chain: Chain) -> None:
    before = store.all_realizations()
    plan = gc(store)
    assert len(plan.rrefs) == 4 and plan.size_bytes > 400
    assert store.all_realizations() == before
    assert len(store.all_derivations()) == 3


def test_sweep_frees_the_bytes_it_reported(store: Store, chain: Chain) -> None:
    used_before = store.size_of(store.objects)
    planned = gc(store, keep_rrefs=[chain.r2a])
    removed = gc(store, keep_rrefs=[chain.r2a], delete=True)
    assert removed == planned
    assert used_before - store.size_of(store.objects) == removed.size_bytes
    assert set(store.all_realizations()) == {chain.r1, chain.r2a}
    assert set(store.all_derivations()) == {chain.d1, chain.d2}
    assert gc(store, keep_rrefs=[chain.r2a], delete=True).rrefs == ()
    rebuilt = realize1(instantiate(lambda r: chain_stages(r)[2]))
    assert rebuilt != chain.r3  # d3 is now built from r2a alone


def test_a_realization_built_during_gc_is_kept(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(b: Build) -> None:
        started.set()
        assert release.wait(10)
        (build_outpath(b) / "result").write_text("done")

    def stage(r: Registry) -> DRef:
        return mkdrv(r, Config({"name": "slow"}), match_only(), build_wrapper(slow))

    built: list[RRef] = []
    builder = threading.Thread(target=lambda: built.extend(realizeMany(instantiate(stage))))
    builder.start()
    assert started.wait(10)

    lock_requested = threading.Event()
    original_lock = Store.lock

    def spying_lock(self: Store, dref: DRef) -> object:
        if threading.current_thread().name == "gc":
            lock_requested.set()
        return original_lock(self, dref)

    monkeypatch.setattr(Store, "lock", spying_lock)
    outcome: list[GCPlan] = []
    collector = threading.Thread(target=lambda: outcome.append(gc(store, delete=True)), name="gc")
    collector.start()
    assert lock_requested.wait(10)  # planned: "slow" has no realization, so it is garbage
    release.set()
    builder.join(10)
    collector.join(10)
    (rref,) = built
    assert store.realization_path(rref).is_dir()
    assert (store.realization_path(rref) / "result").read_text() == "done"
    assert outcome[0].drefs == () and outcome[0].rrefs == ()


def test_link_root_refuses_unknown_refs(store: Store, chain: Chain, tmp_path: Path) -> None:
    store.remove_realization(chain.r3)
    with pytest.raises(StoreError, match="not in the store"):
        link_root(store, chain.r3, tmp_path / "roots", "gone")
