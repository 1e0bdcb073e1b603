"""A kernel launched before a run has imported what it runs blocks with.

When the store holds nothing for a document's first block, that block's kernel must start: it
is launched at once, and its boot (a few tenths of a second) overlaps mdrun's own imports and
preparation instead of following them. So it is when a block changed since the document's last
run (`run_record`): its key fields differ, so it almost surely runs, after the blocks before it
are looked up. The session that runs the block connects to it (see
`KernelSession.launch`); a kernel launched for nothing (another process stored the block
meanwhile, the run stopped first) is killed when the run ends. Runs whose executors come from
elsewhere (the server's warm ones) have none.

Imports only what a run in process has imported by then, so that the launch comes first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mdrun.core.store import Store
from mdrun.document.block_keys import keyed_config
from mdrun.document.kernels import KernelChoice
from mdrun.document.plan import Plan, PlannedBlock, derivation_ref
from mdrun.document.run_record import last_run
from mdrun.document.session_state import SessionState
from mdrun.errors import KernelError

if TYPE_CHECKING:
    from mdrun.document.executor import Executor, ExecutorSetup
    from mdrun.document.kernel import KernelSession


class HeadStart:
    """The kernel launched ahead for a run (if any), handed to the first session that asks for
    a fresh kernel of its kind; an `ExecutorFactory` through `factory`."""

    def __init__(self, launched: KernelSession | None = None) -> None:
        self._launched = launched

    @classmethod
    def for_plan(
        cls,
        plan: Plan,
        store: Store,
        force: Callable[[PlannedBlock], bool],
        source: str | None = None,
    ) -> HeadStart:
        """Launch the kernel of the first block that will run (see the module's docstring);
        `source`: the document's path, whose last run is looked at."""
        first = first_to_run(plan, store, force, source)
        if first is None or first.kernel is None:
            return cls()
        from mdrun.document.kernel import KernelSession

        session = KernelSession(first.kernel, plan.base_dir)
        try:
            session.launch()
        except KernelError:
            return cls()  # the session starts its kernel itself, and says why it cannot
        return cls(session)

    @property
    def launched(self) -> bool:
        """Whether a kernel was launched and not yet taken."""
        return self._launched is not None

    @property
    def pid(self) -> int | None:
        """The process of the kernel launched ahead, until it is taken."""
        return None if self._launched is None else self._launched.pid

    def factory(self, setup: ExecutorSetup) -> Executor:
        """A session's executor, whose first fresh kernel may be the one launched ahead."""
        from mdrun.document.jupyter_executor import JupyterExecutor

        return JupyterExecutor(setup, _Kernels(self))

    def take(self, choice: KernelChoice, cwd: Path) -> KernelSession | None:
        """The kernel launched ahead, if it is of this kind (once)."""
        launched = self._launched
        if launched is None or launched.choice != choice or launched.cwd != cwd:
            return None
        self._launched = None
        return launched

    def close(self) -> None:
        """Kill the kernel launched ahead if no session took it."""
        launched, self._launched = self._launched, None
        if launched is not None:
            launched.close()


def first_to_run(
    plan: Plan, store: Store, force: Callable[[PlannedBlock], bool], source: str | None
) -> PlannedBlock | None:
    """The plan's first executable block if it must run; else the first one that is forced or
    whose key fields changed since the document's last run (or that did not run cached or
    executed then); None if there is none."""
    executable = [block for block in plan.blocks if block.executable]
    if not executable:
        return None
    if must_run(executable[0], store, force):
        return executable[0]
    previous = {} if source is None else last_run(store, source)
    if not previous:
        return None
    for block in executable:
        old = previous.get(block.block_id)
        if force(block) or not block.options.cache or old is None:
            return block
        if old.get("base") != block.base_config or old.get("status") not in _KEPT:
            return block
    return None


_KEPT = ("cached", "executed")
"""The outcomes after which a block unchanged since is in the store."""


def must_run(planned: PlannedBlock, store: Store, force: Callable[[PlannedBlock], bool]) -> bool:
    """Whether the first block of a session runs for sure: forced, never cached, or with no
    realization in the store (a cheap look: the evaluation reads the result itself)."""
    if planned.upstream is not None or planned.base_config is None:
        return False
    if force(planned) or not planned.options.cache:
        return True
    keyed = keyed_config(planned, SessionState(), None)
    if keyed is None:
        return False
    return not store.realizations_in_context(derivation_ref(keyed.config), {})


class _Kernels:
    """Fresh kernels for one session (a `jupyter_executor.KernelSource`): the one launched
    ahead when it is of the kind asked for, else one started now; shut down in the
    background."""

    def __init__(self, head_start: HeadStart) -> None:
        self.head_start = head_start

    def fresh(self, choice: KernelChoice, cwd: Path) -> KernelSession:
        from mdrun.document.jupyter_executor import start_kernel

        return start_kernel(choice, cwd, self.head_start.take(choice, cwd))

    def retire(self, session: KernelSession) -> None:
        from mdrun.document.kernel_shutdown import BACKGROUND

        BACKGROUND.shut_down(session)
