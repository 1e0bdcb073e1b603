"""The session chain decides, without a kernel, how to bring a session to the state a block
needs: restart when the kernel ran something else, restore the latest snapshot when replaying
would cost enough, replay the rest; and which snapshots are worth keeping."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdrun.document.executor import ChainStep
from mdrun.document.session_chain import (
    REPLAY_OVERHEAD_SECONDS,
    SNAPSHOT_BYTES_PER_SECOND,
    SNAPSHOT_MAX_BYTES,
    SessionChain,
    load_cost,
)

MB = 1_000_000


def step(name: str, seconds: float = 0.1, snapshot: bool = False, size: int = 0) -> ChainStep:
    path = Path(f"/store/{name}/_snapshot.pickle") if snapshot else None
    return ChainStep(
        name, f"# {name}", name, None, seconds=seconds, snapshot=path,
        snapshot_sha256="0" * 64 if snapshot else None, snapshot_bytes=size,
    )  # fmt: skip


def test_a_fresh_kernel_replays_every_block_before() -> None:
    chain = SessionChain(inspects_state=True)
    before = [step("a"), step("b")]
    preparation = chain.prepare(before)
    assert not preparation.restart and preparation.restore is None
    assert list(chain.to_replay(before)) == before


def test_a_kernel_holding_the_blocks_before_replays_nothing() -> None:
    chain = SessionChain(inspects_state=True)
    before = [step("a", 5.0, snapshot=True), step("b")]
    for earlier in before:
        chain.ran(earlier)
    assert chain.prepare(before).restore is None
    assert list(chain.to_replay(before)) == []


def test_a_kernel_that_ran_something_else_restarts() -> None:
    chain = SessionChain(inspects_state=True)
    chain.ran(step("other"))
    assert chain.prepare([step("a")]).restart


def test_a_fresh_kernel_restores_the_latest_snapshot_then_replays_after_it() -> None:
    chain = SessionChain(inspects_state=True)
    before = [step("a", snapshot=True), step("b", snapshot=True), step("c")]
    assert chain.prepare(before).restore == 1
    chain.restored_from(before, 1)
    assert list(chain.to_replay(before)) == [before[2]] and chain.restored == 1


def test_a_warm_kernel_restores_only_when_it_skips_enough_replaying() -> None:
    chain = SessionChain(inspects_state=True)
    chain.ran(step("a"))
    cheap = [step("a"), step("b", 0.1, snapshot=True)]
    costly = [step("a"), step("b", 5.0, snapshot=True)]
    assert chain.prepare(cheap).restore is None
    assert chain.prepare(costly).restore == 1


def test_a_refused_snapshot_is_not_tried_again() -> None:
    chain = SessionChain(inspects_state=True)
    before = [step("a", snapshot=True)]
    assert before[0].snapshot is not None
    chain.refuse(before[0].snapshot)
    assert chain.prepare(before).restore is None
    assert chain.replay_cost(before) == before[0].seconds + REPLAY_OVERHEAD_SECONDS


def test_a_kernel_whose_state_cannot_be_inspected_always_replays() -> None:
    chain = SessionChain(inspects_state=False)
    assert chain.prepare([step("a", 60.0, snapshot=True)]).restore is None


def test_the_replay_cost_stops_at_the_last_snapshot() -> None:
    chain = SessionChain(inspects_state=True)
    before = [step("a", 3.0), step("b", 2.0, snapshot=True), step("c", 0.5), step("d", 0.25)]
    expected = load_cost(0) + 0.75 + 2 * REPLAY_OVERHEAD_SECONDS
    assert abs(chain.replay_cost(before) - expected) < 1e-9


def test_an_automatic_snapshot_is_kept_only_when_loading_it_is_cheaper_than_replaying() -> None:
    keep = SessionChain.snapshot_worth_keeping
    assert keep(1_000, None, replay_cost=1.0, seconds=0.5)
    assert not keep(100 * MB, None, replay_cost=0.1, seconds=0.1)
    assert not keep(SNAPSHOT_MAX_BYTES + 1, None, replay_cost=1e6, seconds=0.0)
    assert keep(100_000_000, True, replay_cost=0.0, seconds=0.0)
    assert not keep(10, False, replay_cost=1e6, seconds=0.0)


def test_a_large_snapshot_is_not_loaded_when_replaying_rebuilds_it_faster() -> None:
    # A 500 MB array made in 0.3 s, then quick blocks: replaying them all costs less than
    # loading the array back.
    chain = SessionChain(inspects_state=True)
    before = [step("big", 0.3, snapshot=True, size=500 * MB)] + [
        step(f"q{i}", 0.01) for i in range(4)
    ]
    assert 500 * MB / SNAPSHOT_BYTES_PER_SECOND > 0.3 + 5 * (0.01 + REPLAY_OVERHEAD_SECONDS)
    assert chain.prepare(before).restore is None
    # The same array made in 5 s: loading it wins.
    slow = [step("big", 5.0, snapshot=True, size=500 * MB), *before[1:]]
    assert chain.prepare(slow).restore == 0


def test_replaying_many_quick_blocks_costs_their_overhead_too() -> None:
    # 200 blocks of 1 ms cost 3 s to replay with mdrun's overhead: a small snapshot after them
    # is loaded, though the blocks' own time (0.2 s) is small.
    chain = SessionChain(inspects_state=True)
    before = [step(f"b{i}", 0.001) for i in range(199)] + [step("b199", 0.001, snapshot=True)]
    assert chain.prepare(before).restore == 199
    keep = SessionChain.snapshot_worth_keeping
    assert keep(1_000, None, replay_cost=chain.replay_cost(before[:-1]), seconds=0.001)


def test_the_cheapest_snapshot_wins_not_the_latest() -> None:
    # A small snapshot early and a large one late: the small one then a short replay is cheaper.
    chain = SessionChain(inspects_state=True)
    before = [
        step("a", 4.0, snapshot=True, size=1_000),
        step("b", 0.2),
        step("c", 0.2, snapshot=True, size=900 * MB),
    ]
    assert chain.prepare(before).restore == 0


def test_a_snapshot_that_loads_slower_than_its_blocks_rerun_is_dropped() -> None:
    keep = SessionChain.snapshot_worth_keeping
    assert not keep(500 * MB, None, replay_cost=0.05, seconds=0.3)
    assert keep(500 * MB, None, replay_cost=0.05, seconds=3.0)


def test_a_kernel_holding_undoable_blocks_after_those_wanted_rolls_back() -> None:
    chain = SessionChain(inspects_state=True)
    for name, added in (("a", None), ("b", ("y",)), ("c", ("z", "_w"))):
        chain.ran(step(name))
        if added is not None:
            chain.undoable(added)
    before = [step("a"), step("b2")]  # block b was edited: undo c, then b
    preparation = chain.prepare(before[:1])
    assert not preparation.restart and preparation.roll_back == 2
    assert chain.names_to_roll_back(2) == ["y", "z", "_w"]
    assert chain.can_roll_back_to(["a"]) and not chain.can_roll_back_to(["a", "x"])
    chain.rolled_back_by(2)
    assert chain.history == ["a"] and chain.rolled_back == 2
    assert list(chain.to_replay(before)) == [before[1]]


def test_a_kernel_holding_a_block_that_changed_what_existed_restarts() -> None:
    chain = SessionChain(inspects_state=True)
    chain.ran(step("a"))
    chain.ran(step("b"))  # not undoable: it rebound or changed a name (or was replayed)
    chain.ran(step("c"))
    chain.undoable(("z",))
    preparation = chain.prepare([step("a")])
    assert preparation.restart and preparation.roll_back == 0
    assert not chain.can_roll_back_to(["a"])
    # Undoing c alone reaches a prefix of [a, b]: no restart.
    assert chain.prepare([step("a"), step("b")]).roll_back == 1


def test_a_restored_kernel_cannot_roll_back_past_the_restore() -> None:
    chain = SessionChain(inspects_state=True)
    before = [step("a", snapshot=True), step("b")]
    chain.restored_from(before, 0)
    chain.ran(before[1])
    chain.undoable(("y",))
    assert chain.can_roll_back_to(["a"]) and not chain.can_roll_back_to([])


def _replay_cost_by_scanning(chain: SessionChain, before: list[ChainStep]) -> float:
    """What `replay_cost` means, computed the plain way."""
    from_start = sum(item.seconds + REPLAY_OVERHEAD_SECONDS for item in before)
    for index in range(len(before) - 1, -1, -1):
        item = before[index]
        if item.snapshot is not None and item.snapshot not in chain.refused:
            after = sum(later.seconds + REPLAY_OVERHEAD_SECONDS for later in before[index + 1 :])
            return min(from_start, load_cost(item.snapshot_bytes) + after)
    return from_start


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 2.0), st.booleans(), st.integers(0, 2_000 * MB), st.booleans()),
        max_size=30,
    )
)
def test_the_cost_of_reaching_a_state_is_the_same_asked_after_every_block(
    blocks: list[tuple[float, bool, int, bool]],
) -> None:
    # The chain remembers its last scan for a snapshot, to answer in constant time after each
    # block of a long session: its answers must equal a scan of every block each time, with
    # snapshots refused on the way.
    chain = SessionChain(inspects_state=True)
    before: list[ChainStep] = []
    for number, (seconds, snapshot, size, refuse) in enumerate(blocks):
        before.append(step(f"b{number}", seconds, snapshot, size))
        cost = chain.replay_cost(before)
        assert cost == pytest.approx(_replay_cost_by_scanning(chain, before))
        if refuse:  # the latest snapshot (the one the chain found last) turns out bad
            latest = [item.snapshot for item in before if item.snapshot is not None]
            if latest:
                chain.refuse(latest[-1])
