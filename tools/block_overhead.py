"""mdrun's own cost per block, the kernel left out: what a run of N trivial blocks costs besides
executing them (planning, store lookups, locks, publishing each result, rendering, records).

Runs `pipeline.run` on a fresh store with an executor that answers at once, writing the state
record a kernel's capture would write, then says the time, CPU and files per block:

    .venv/bin/python tools/block_overhead.py 1000

Not a benchmark of mdrun against other tools (`make bench` is); a probe for this one cost.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from mdrun.core.store import Store
from mdrun.document import pipeline
from mdrun.document.block_result import BlockResult
from mdrun.document.executor import BlockRequest, ExecutorSetup
from mdrun.document.record_files import STATE_FILE


class InstantExecutor:
    """Answers every block at once, as a kernel that takes no time would."""

    snapshots_restored = 0

    def __init__(self, setup: ExecutorSetup) -> None:
        self.setup = setup

    def run(self, request: BlockRequest) -> BlockResult:
        digest = f"{abs(hash(request.step.code)):064x}"[-64:]
        if request.folder is not None:
            record = {"digest": digest, "changed": [], "removed": []}
            (request.folder / STATE_FILE).write_text(json.dumps(record), encoding="utf-8")
        return BlockResult.of("ok", (), 0.0, state=digest, folder=request.folder)

    def close(self) -> None:
        """Nothing to let go."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("blocks", type=int, nargs="?", default=1000)
    count = parser.parse_args().blocks
    with tempfile.TemporaryDirectory(prefix="mdrun-overhead-") as folder:
        root = Path(folder)
        document = root / "doc.md"
        document.write_text("".join(f"```python\nx{n} = {n}\n```\n\n" for n in range(count)))
        store = Store.initialize(root / "store")
        started, cpu = time.perf_counter(), time.process_time()
        pipeline.run(str(document), store, executor_factory=InstantExecutor)
        wall, used = time.perf_counter() - started, time.process_time() - cpu
        files = sum(len(names) for _, _, names in os.walk(store.root))
        folders = sum(len(names) for _, names, _ in os.walk(store.root))
    print(
        f"{count} blocks: {wall / count * 1e3:.2f} ms a block "
        f"({used / count * 1e3:.2f} ms of CPU), {files / count:.1f} files and "
        f"{folders / count:.1f} folders a block in the store"
    )


if __name__ == "__main__":
    main()
