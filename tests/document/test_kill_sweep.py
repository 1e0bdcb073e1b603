"""The kill sweep: `mdrun run` SIGKILLed at random instants leaves nothing broken.

Each kill edits a document so that every block runs again (one shows an image, one starts a
child process), starts the installed `mdrun run` on it, SIGKILLs it at a random instant of a
run's length, and checks what a user would find: the document is either as it was or fully
rewritten, the store passes `verify_store` (what `mdrun store verify` runs), every image the
document links exists, and no process that run started (kernel, watchdog, the block's child)
survives. A run to completion follows, which gives the rewritten document the next kill starts
from.

`make test` runs a few kills; `make sweep` runs `MDRUN_SWEEP_KILLS` of them (200 by default)
and prints how many were survived.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mdrun.core.store import Store
from mdrun.core.verify import verify_store
from tests.document.conftest import INSTALLED_MDRUN

KILLS = int(os.environ.get("MDRUN_SWEEP_KILLS", "5"))
"""How many kills: a few in `make test`, 200 in `make sweep`."""
MARK_VARIABLE = "MDRUN_SWEEP_MARK"
"""Set in the environment of each run: every process it starts inherits it."""
GONE_WITHIN_SECONDS = 10.0
"""How long a killed run's processes may take to go (its kernel learns of mdrun's death)."""

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.timeout(120 + 40 * KILLS)]

DOCUMENT = """\
# Kill sweep

```python
import time
seed = {seed}
time.sleep(0.2)
print("seed", seed)
```

```python
import subprocess
_ = subprocess.Popen(["sleep", "300"])
print("started a child process")
```

```python
import struct, zlib
from IPython.display import Image, display

def chunk(kind, data):
    checksum = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return struct.pack(">I", len(data)) + kind + data + checksum

pixel = bytes([0, seed * 40 % 256, 80, 160])
header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixel))
display(Image(data=png + chunk(b"IEND", b"")))
```

```python
time.sleep(1.5)
print(sum(range(seed + 10)))
```
"""
"""The child process starts early and the last block takes a while, so that many kills land
while the child lives."""
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(<?([^)>]+)>?\)")


@dataclass
class Sweep:
    """One document, one store, and what went wrong so far."""

    folder: Path
    store: Path
    failures: list[str] = field(default_factory=list)

    @property
    def document(self) -> Path:
        return self.folder / "doc.md"

    def run(self, mark: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(INSTALLED_MDRUN), "--store", str(self.store), "run", "doc.md"],
            cwd=self.folder,
            env={**os.environ, MARK_VARIABLE: mark},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def run_to_completion(self) -> float:
        """Run the document through; the seconds it took."""
        started = time.monotonic()
        mark = uuid.uuid4().hex
        process = self.run(mark)
        _, error = process.communicate(timeout=120)
        document = self.document.read_text(encoding="utf-8")
        assert process.returncode == 0, error.decode(errors="replace") + document
        assert wait_until_gone(mark), f"processes of a finished run survive: {survivors(mark)}"
        return time.monotonic() - started

    def kill_once(self, number: int, seed: int, seconds: float) -> None:
        """Edit, run, SIGKILL after `seconds`, check, then run to completion and check again."""
        text = self.document.read_text(encoding="utf-8")
        old = re.sub(r"seed = \d+", f"seed = {seed}", text, count=1).encode()
        self.document.write_bytes(old)
        mark = uuid.uuid4().hex
        process = self.run(mark)
        time.sleep(seconds)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        killed = self.document.read_bytes()
        problems = []
        if not wait_until_gone(mark):
            problems.append(f"processes survive: {survivors(mark)}")
        problems += store_problems(Store(self.store))
        problems += missing_images(self.document)
        try:
            self.run_to_completion()
        except AssertionError as failure:
            problems.append(f"the run after the kill failed: {failure}")
        new = self.document.read_bytes()
        if killed not in (old, new):
            problems.append("the document is neither the old one nor the fully new one")
        problems += missing_images(self.document)
        for problem in problems:
            self.failures.append(f"kill {number} after {seconds:.2f} s: {problem}")
        outcome = "old" if killed == old else "new" if killed == new else "broken"
        print(f"kill {number} after {seconds:.2f} s: document {outcome}, {len(problems)} problems")


def survivors(mark: str) -> list[str]:
    """The live processes whose environment holds the run's mark, with their command lines."""
    needle = f"{MARK_VARIABLE}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != "Z":
            found.append(f"{entry.name} {command.strip()}")
    return found


def wait_until_gone(mark: str) -> bool:
    deadline = time.monotonic() + GONE_WITHIN_SECONDS
    while survivors(mark):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def store_problems(store: Store) -> list[str]:
    """What `mdrun store verify` would report: realizations that do not match their hash or
    manifest, configs that do not parse.

    A realization is built in the store's tmp/ folder and published by one rename: a kill
    may leave a partial build in tmp/, never a partial realization where readers look."""
    verification = verify_store(store)
    return [f"{finding.ref}: {', '.join(finding.problems)}" for finding in verification.damaged]


def missing_images(document: Path) -> list[str]:
    text = document.read_text(encoding="utf-8")
    links = IMAGE_LINK.findall(text)
    return [
        f"image {link} is linked but missing"
        for link in links
        if not (document.parent / link).is_file()
    ]


def test_kill_sweep(tmp_path: Path) -> None:
    sweep = Sweep(tmp_path / "doc", tmp_path / "store")
    sweep.folder.mkdir()
    sweep.document.write_text(DOCUMENT.format(seed=0), encoding="utf-8")
    length = sweep.run_to_completion()
    assert IMAGE_LINK.search(sweep.document.read_text(encoding="utf-8")), "no image to check"
    rng = random.Random(int(os.environ.get("MDRUN_SWEEP_SEED", "0")) or None)
    for number in range(1, KILLS + 1):
        sweep.kill_once(number, number, rng.uniform(0, length * 1.2))
    survived = KILLS - len({failure.split(":")[0] for failure in sweep.failures})
    print(f"\nkill sweep: {survived} of {KILLS} kills survived")
    assert sweep.failures == []
