"""Fixtures for the evaluator's end-to-end tests: run `mdrun` in-process, read its reports.

`Mdrun` calls `mdrun.cli.main([...])` with `--store` pointing at the test's own store, inside the
document's folder, capturing stdout and stderr. It depends on no function-scoped fixture, so
module fixtures and Hypothesis properties use it too. `installed_mdrun` runs the console script
as a user would, in a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mdrun.cli import main
from mdrun.document import kernel as kernel_module

INSTALLED_MDRUN = Path(sys.executable).parent / "mdrun"
"""The console script of the venv running the tests."""

DEMO = """\
# A greeting, a function, a call

```python
print("Hello from mdrun")
```

```python
def square(x):
    return x * x
```

```python
print(square(5))
```
"""
"""The demo document of the product issue."""


@dataclass(frozen=True, slots=True)
class Completed:
    """One finished `mdrun` command."""

    code: int
    """Its exit code."""
    out: str
    """What it wrote on stdout."""
    err: str
    """What it wrote on stderr."""


class Mdrun:
    """Runs `mdrun` in-process in `folder`, on the store `store` (unless told otherwise)."""

    def __init__(self, folder: Path, store: Path) -> None:
        self.folder = folder
        self.store = store
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(
        self, *args: str, stdin: bytes | None = None, store: Path | bool | None = True
    ) -> Completed:
        """`mdrun --store STORE ARGS...`; `store=False` leaves `--store` out."""
        chosen = self.store if store is True else store
        argv = ([] if chosen is False or chosen is None else ["--store", str(chosen)]) + list(args)
        out, err = io.StringIO(), io.StringIO()
        saved_stdin = sys.stdin
        try:
            if stdin is not None:
                sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
            with (
                contextlib.chdir(self.folder),
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(err),
            ):
                code = main(argv)
        finally:
            sys.stdin = saved_stdin
        return Completed(code, out.getvalue(), err.getvalue())

    def path(self, name: str) -> Path:
        """A file of the folder."""
        return self.folder / name

    def write(self, name: str, text: str) -> Path:
        """Write a document exactly as given (no newline translation)."""
        target = self.folder / name
        target.write_bytes(text.encode("utf-8"))
        return target

    def read(self, name: str) -> str:
        """A document's text exactly as on disk."""
        return (self.folder / name).read_bytes().decode("utf-8")

    def run_reported(self, *args: str, stdin: bytes | None = None) -> tuple[Completed, Report]:
        """`mdrun ARGS... --report FILE`, and the report read back."""
        report_file = self.folder / ".report.json"
        report_file.unlink(missing_ok=True)
        completed = self(*args, "--report", str(report_file), stdin=stdin)
        return completed, read_report(report_file)


@dataclass(frozen=True, slots=True)
class Report:
    """A `--report` file: one record per executable block, in document order."""

    records: tuple[dict[str, object], ...]

    @property
    def statuses(self) -> dict[str, str]:
        """Block id → status."""
        return {str(record["id"]): str(record["status"]) for record in self.records}

    def with_status(self, status: str) -> list[str]:
        """The ids of the blocks with this status, in order."""
        return [block for block, value in self.statuses.items() if value == status]


def read_report(path: Path) -> Report:
    """Read a `--report` file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return Report(tuple(data["blocks"]))


@pytest.fixture
def mdrun(tmp_path: Path) -> Mdrun:
    """`mdrun` in a fresh folder with a fresh store of its own."""
    return Mdrun(tmp_path / "doc", tmp_path / "store")


@contextlib.contextmanager
def no_kernel_starts() -> Iterator[None]:
    """Fail the test if a kernel is started inside the block."""

    def refuse(self: kernel_module.KernelSession) -> None:
        raise AssertionError(f"a kernel was started ({self.choice.display})")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernel_module.KernelSession, "start", refuse)
        yield


def installed_mdrun(
    args: list[str],
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    bound_by_permissions: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a user would.

    `bound_by_permissions`: read-only files and folders stop it even when the tests run as root
    (as in a container), by running it without the capabilities that let root ignore them.
    """
    prefix: list[str] = []
    if bound_by_permissions and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: read-only folders cannot be tested")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    return subprocess.run(
        [*prefix, str(INSTALLED_MDRUN), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def document(tmp_path: Path) -> Path:
    """Where a watched document lives (its folder exists; the store can go beside it)."""
    folder = tmp_path / "doc"
    folder.mkdir()
    return folder / "doc.md"
