"""Several `mdrun run` processes on one store at once (invariant 7): each block is built once.

Two copies of one document, in two folders, run at the same time against one store: their
blocks have the same keys, so whichever process takes a block's lock first builds it, and the
other waits and finds it in the store (then replays it silently if it must build a later block
itself). Each block is executed by one of the two runs, both documents come out equal, and the
store holds one sound realization per block.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mdrun.core.store import Store
from mdrun.core.verify import verify_store
from tests.document.conftest import INSTALLED_MDRUN, read_report

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

BLOCKS = 6
DOCUMENT = "```python\nimport time\ntotal = 0\n```\n\n" + "".join(
    f"```python\ntime.sleep(0.2)\ntotal += {number}\nprint(total)\n```\n\n"
    for number in range(1, BLOCKS)
)


def test_two_runs_at_once_build_each_block_once(tmp_path: Path) -> None:
    store = tmp_path / "store"
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
        (folder / "doc.md").write_text(DOCUMENT, encoding="utf-8")
    command = [str(INSTALLED_MDRUN), "--store", str(store), "run", "doc.md", "--report", "r.json"]
    runs = [
        subprocess.Popen(command, cwd=folder, stderr=subprocess.PIPE, text=True)
        for folder in folders
    ]
    for run in runs:
        _, error = run.communicate(timeout=180)
        assert run.returncode == 0, error
    reports = [read_report(folder / "r.json").statuses for folder in folders]
    for block_id in reports[0]:
        statuses = sorted(report[block_id] for report in reports)
        assert statuses == ["cached", "executed"], (block_id, reports)
    texts = [(folder / "doc.md").read_text(encoding="utf-8") for folder in folders]
    assert texts[0] == texts[1] and "\n15\n" in texts[0]
    opened = Store(store)
    assert len(opened.all_realizations()) == BLOCKS == len(opened.all_derivations())
    assert verify_store(opened).damaged == []
