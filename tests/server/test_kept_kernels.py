"""The server's pool keeps a bounded number of sessions between runs (no kernel is started
here: the executors kept have none yet)."""

from __future__ import annotations

from pathlib import Path

from mdrun.document.executor import ExecutorSetup
from mdrun.document.kernels import default_python_kernel
from mdrun.document.plan import SessionKey
from mdrun.server import kept_kernels
from mdrun.server.kept_kernels import KeptExecutors


def test_the_least_recently_used_sessions_beyond_the_bound_are_let_go(tmp_path: Path) -> None:
    kernel = default_python_kernel()
    pool = KeptExecutors(keep_spares=False)
    try:
        sessions = [SessionKey(f"s{index}", kernel.name) for index in range(6)]
        for session in sessions:
            lease = pool.factory(ExecutorSetup(session, kernel, tmp_path))
            lease.close()
        assert [key[0].name for key in pool._idle] == ["s2", "s3", "s4", "s5"]
        # s2 is used again: the most recent now, so a new session lets s3 go, not s2.
        pool.factory(ExecutorSetup(sessions[2], kernel, tmp_path)).close()
        pool.factory(ExecutorSetup(sessions[0], kernel, tmp_path)).close()
        assert [key[0].name for key in pool._idle] == ["s4", "s5", "s2", "s0"]
        assert kept_kernels.KEPT_SESSIONS == 4
        assert pool.counts().executors_reused == 1
    finally:
        pool.close()
