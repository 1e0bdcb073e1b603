"""A session's chain: which blocks its kernel holds, how to reach the state a block needs, and
when a block's state is worth a snapshot.

The chain knows no kernel: the executor asks it what to do (restart, restore a snapshot, replay
which blocks) and tells it what it did, so every decision about a session's state is made here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from mdrun.document.executor import ChainStep

REPLAY_OVERHEAD_SECONDS = 0.015
"""What replaying one block costs mdrun besides the block's own time (sending it, waiting for
the kernel to be idle again): 200 trivial blocks replayed took 11 ms each (median), 15 ms on
average, on the shared 2-core machine busy with other jobs."""
RESTART_SECONDS = 0.45
"""What starting a fresh kernel costs: a kernel that holds some blocks already restarts to load
a snapshot only when that saves more than this."""
SNAPSHOT_AFTER_SECONDS = 0.25
"""Take a snapshot once replaying the blocks since the last one would cost this much (a
snapshot of a small state costs milliseconds; a large one is not taken when reading it back
would cost more than replaying, see `SNAPSHOT_BYTES_PER_SECOND`)."""
SNAPSHOT_BYTES_PER_SECOND = 250e6
"""How fast a snapshot loads back: read, checked against its digest, unpickled. Measured for a
500 MB array on the shared 2-core machine, busy with other jobs: 165-200 MB/s; an idle machine
does better, but a choice that leans to replaying loses little."""
SNAPSHOT_WRITE_BYTES_PER_SECOND = 300e6
"""How fast a snapshot is written: pickled, hashed and written by the kernel, then hashed again
to publish it. Measured for a 500 MB array on the shared 2-core machine at a load of 2-4: 0.6-1.8
s to write, 0.45 s to publish (230-450 MB/s). Writing is paid now, on the run's critical path,
for a saving at a later restore: an automatic snapshot must pay for its writing the first time
it is loaded (variables linked from the session's previous snapshot cost nothing)."""
SNAPSHOT_LOAD_SECONDS = 0.01
"""What loading any snapshot costs besides its bytes (a request to the kernel, the index)."""
SNAPSHOT_MAX_BYTES = 1 << 30
"""Larger snapshots are dropped: reading them back would cost more than it saves."""


def load_cost(size: int) -> float:
    """Seconds that loading a snapshot of `size` bytes back takes."""
    return SNAPSHOT_LOAD_SECONDS + size / SNAPSHOT_BYTES_PER_SECOND


def replay_seconds(steps: Sequence[ChainStep]) -> float:
    """Seconds that replaying `steps` takes: their own recorded time and mdrun's per block."""
    own: float = sum(map(_SECONDS, steps))
    return own + REPLAY_OVERHEAD_SECONDS * len(steps)


def _replay_seconds_up_to(steps: Sequence[ChainStep], limit: float) -> float:
    """`replay_seconds(steps)`, or a number over `limit` as soon as the sum passes it: asked
    after every block of a long session, the whole sum would cost a pass over all of them."""
    total = 0.0
    for step in steps:
        total += step.seconds + REPLAY_OVERHEAD_SECONDS
        if total > limit:
            break
    return total


_SECONDS: Callable[[ChainStep], float] = attrgetter("seconds")
_IDENTITY = attrgetter("identity")


@dataclass(frozen=True, slots=True)
class Preparation:
    """How to bring a kernel to the state the blocks before a block leave."""

    restart: bool
    """Restart the kernel first: it ran something else than those blocks."""
    restore: int | None
    """The index (in `before`) of the step whose snapshot to load, then replay from there."""
    roll_back: int = 0
    """Undo the kernel's last blocks first (it holds blocks after those wanted, and each of
    them only added names: see `kernel_rollback`), instead of restarting."""


class SessionChain:
    """The history of one session's kernel and the decisions about its state."""

    def __init__(self, inspects_state: bool) -> None:
        self.inspects_state = inspects_state
        """Whether the kernel's state can be digested and snapshotted (Python kernels)."""
        self.history: list[str] = []
        """The identities of the blocks the kernel ran since it started, in order."""
        self.undo: list[tuple[str, ...] | None] = []
        """For each block of `history`: the names deleting which undoes it, or None when that
        would not (it changed what existed, or was not captured: replayed, restored)."""
        self.rolled_back = 0
        """How many blocks were undone by deleting what they added."""
        self.refused: set[Path] = set()
        """Snapshots that did not match their digest: never tried again in this run."""
        self.restored = 0
        """How many times a snapshot was loaded."""
        self._latest: tuple[int, ChainStep, int | None] | None = None
        """The last scan for a loadable snapshot: the position and step it started from, and
        what it found (see `_latest_loadable`)."""

    def started(self) -> None:
        """The kernel is fresh: it holds no block's state."""
        self.history = []
        self.undo = []

    def ran(self, step: ChainStep) -> None:
        """The kernel ran a block (executed, replayed)."""
        self.history.append(step.identity)
        self.undo.append(None)

    def undoable(self, names: Sequence[str]) -> None:
        """The capture of the block just run says deleting `names` undoes it."""
        self.undo[-1] = tuple(names)

    def names_to_roll_back(self, count: int) -> list[str]:
        """What deleting undoes the last `count` blocks (each of them is undoable)."""
        names: list[str] = []
        for entry in self.undo[len(self.undo) - count :]:
            assert entry is not None
            names.extend(entry)
        return names

    def rolled_back_by(self, count: int) -> None:
        """The kernel deleted what its last `count` blocks added."""
        del self.history[len(self.history) - count :]
        del self.undo[len(self.undo) - count :]
        self.rolled_back += count

    def restored_from(self, before: Sequence[ChainStep], index: int) -> None:
        """The kernel loaded the snapshot taken after `before[index]`."""
        self.history = [step.identity for step in before[: index + 1]]
        self.undo = [None] * len(self.history)
        self.restored += 1

    def refuse(self, snapshot: Path) -> None:
        """A snapshot did not match its digest: the chain will replay instead of loading it."""
        self.refused.add(snapshot)
        self._latest = None

    def prepare(self, before: Sequence[ChainStep]) -> Preparation:
        """What to do before running the block that follows `before`."""
        wanted = list(map(_IDENTITY, before))
        if self.history == wanted[: len(self.history)]:
            held = len(self.history)
            return Preparation(False, self._restore_point(before, held))
        held = self.common_prefix(wanted)
        if any(entry is None for entry in self.undo[held:]):
            return Preparation(True, self._restore_point(before, 0))
        return Preparation(False, self._restore_point(before, held), len(self.history) - held)

    def common_prefix(self, wanted: Sequence[str]) -> int:
        """How many first blocks the kernel's history shares with `wanted`."""
        held = 0
        for ran, needed in zip(self.history, wanted, strict=False):
            if ran != needed:
                break
            held += 1
        return held

    def can_roll_back_to(self, wanted: Sequence[str]) -> bool:
        """Whether undoing its last blocks (or none) leaves the kernel holding `wanted` exactly."""
        held = self.common_prefix(wanted)
        return held == len(wanted) and all(entry is not None for entry in self.undo[held:])

    def to_replay(self, before: Sequence[ChainStep]) -> Sequence[ChainStep]:
        """The blocks to run again silently after what the kernel holds."""
        return before[len(self.history) :]

    def _restore_point(self, before: Sequence[ChainStep], held: int) -> int | None:
        """The step to restore from, or None to replay from the `held` blocks the kernel has:
        the snapshot from which loading and replaying what follows costs least, when that costs
        less than replaying from what is held (a kernel that holds blocks must restart first)."""
        if not self.inspects_state:
            return None
        best: int | None = None
        best_cost = replay_seconds(before[held:])
        restart = RESTART_SECONDS if held else 0.0
        for index in range(len(before) - 1, held - 1, -1):
            if not self._loadable(before[index]):
                continue
            cost = restart + load_cost(before[index].snapshot_bytes)
            cost += replay_seconds(before[index + 1 :])
            if cost < best_cost:
                best, best_cost = index, cost
        return best

    def latest_snapshot(self, before: Sequence[ChainStep]) -> ChainStep | None:
        """The latest step with a snapshot here (not left on a remote cache), whose unchanged
        files a new snapshot links."""
        latest = self._latest_loadable(before)
        if latest is None:
            return None
        for step in reversed(before[: latest + 1]):
            if self._loadable(step) and step.snapshot is not None and step.snapshot.exists():
                return step
        return None

    def _latest_loadable(self, before: Sequence[ChainStep]) -> int | None:
        """The index of the last step of `before` with a loadable snapshot. Asked after every
        block, it starts from the last answer when `before` grew from the sequence it was
        found in (a session's steps are made once and only appended to), so that a long
        session without snapshots is not passed over whole after each block."""
        found: int | None = None
        known = self._latest
        for index in range(len(before) - 1, -1, -1):
            if known is not None and known[0] == index and known[1] is before[index]:
                found = known[2]
                break
            if self._loadable(before[index]):
                found = index
                break
        if before:
            self._latest = (len(before) - 1, before[-1], found)
        return found

    def _loadable(self, step: ChainStep) -> bool:
        return (
            step.snapshot is not None
            and step.snapshot_sha256 is not None
            and step.snapshot not in self.refused
        )

    def replay_cost(self, before: Sequence[ChainStep]) -> float:
        """What replaying the blocks before a block since the last snapshot would cost, and
        loading that snapshot (the cheaper of the two when the snapshot is large)."""
        index = self._latest_loadable(before)
        if index is None:
            return replay_seconds(before)
        after = replay_seconds(before[index + 1 :])
        load = load_cost(before[index].snapshot_bytes)
        # Replaying from the start instead costs `after` plus the blocks up to it.
        return after + min(load, _replay_seconds_up_to(before[: index + 1], load))

    @staticmethod
    def snapshot_worth_keeping(
        size: int, option: bool | None, replay_cost: float, seconds: float
    ) -> bool:
        """With `snapshot=auto` (None), a snapshot that would cost more to load than replaying
        the blocks it skips (`replay_cost` for those before, `seconds` for this one) is
        dropped; `snapshot=true` keeps every one."""
        if option is not None:
            return option
        cost = replay_cost + seconds + REPLAY_OVERHEAD_SECONDS
        return size <= SNAPSHOT_MAX_BYTES and load_cost(size) <= cost
