"""The corpus environment (a venv with mdrun and the documented packages) and one document's runs.

Documents run where their authors put them, in a fresh unpacking of their sdist, against a store
of their own, so that the first run executes every block and the second must execute none.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .checks import Outcome, Step
from .manifest import Document, Manifest

REPOSITORY = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 900
"""Seconds one mdrun command may take before the corpus counts it as hung."""


def _quietly(command: list[str]) -> None:
    """Run a set-up command; its output is shown only when it fails."""
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise subprocess.CalledProcessError(completed.returncode, command)


class Environment:
    """`.corpus/venv`: mdrun (editable, so the work tree's code runs) plus the pinned packages."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venv = root / "venv"
        self.python = self.venv / "bin" / "python"
        self.mdrun = self.venv / "bin" / "mdrun"

    def _fingerprint(self, manifest: Manifest) -> str:
        pyproject = (REPOSITORY / "pyproject.toml").read_bytes()
        wanted = "\n".join([str(REPOSITORY), *manifest.requirements]).encode() + b"\0" + pyproject
        return hashlib.sha256(wanted).hexdigest()

    def prepare(self, manifest: Manifest) -> None:
        """Create or update the venv; a stamp records what it was built from."""
        stamp = self.venv / ".corpus-installed"
        fingerprint = self._fingerprint(manifest)
        if stamp.is_file() and stamp.read_text() == fingerprint:
            return
        if not self.python.exists():
            _quietly([sys.executable, "-m", "venv", str(self.venv)])
        pip = [str(self.python), "-m", "pip", "install", "--quiet"]
        _quietly([*pip, "--upgrade", "pip"])
        editable = ["-e", str(REPOSITORY), "--config-settings", "editable_mode=compat"]
        _quietly([*pip, *editable, *manifest.requirements])
        stamp.write_text(fingerprint)

    def variables(self, scratch: Path) -> dict[str, str]:
        """The environment mdrun runs in: no user kernels (a README's shell block must never find
        a bash kernel by accident), no default store, the venv first on PATH."""
        variables = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("MDRUN_", "JUPYTER_", "VIRTUAL_ENV", "PYTHON"))
        }
        variables["JUPYTER_DATA_DIR"] = str(scratch / "jupyter-data")
        variables["JUPYTER_CONFIG_DIR"] = str(scratch / "jupyter-config")
        variables["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{variables.get('PATH', '')}"
        variables["MPLBACKEND"] = "agg"
        variables["MDRUN_SERVER"] = "off"  # each document in process; no server left behind
        return variables


def _mdrun(
    environment: Environment,
    command: str,
    document: Path,
    store: Path,
    arguments: tuple[str, ...],
    report: Path | None,
    scratch: Path,
) -> Step:
    line = [str(environment.mdrun), "--store", str(store), command, document.name, "--keep-going"]
    if report is not None:
        line += ["--report", str(report)]
        report.unlink(missing_ok=True)
    line += list(arguments)
    try:
        completed = subprocess.run(
            line, cwd=document.parent, env=environment.variables(scratch),
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as timeout:
        return Step(-1, "", f"timed out after {timeout.timeout} s")
    records: tuple[dict[str, object], ...] = ()
    if report is not None and report.is_file():
        records = tuple(json.loads(report.read_text(encoding="utf-8"))["blocks"])
    return Step(completed.returncode, completed.stdout, completed.stderr, records)


def run_document(environment: Environment, top: Path, document: Document, scratch: Path) -> Outcome:
    """First run, second run and check on the document inside the unpacked sdist at `top`."""
    path = top / document.name
    store = scratch / "store"
    if scratch.exists():
        shutil.rmtree(scratch)  # a store left by an earlier corpus run would answer the first run
    scratch.mkdir(parents=True)
    original = path.read_bytes().decode("utf-8")

    def step(command: str, name: str) -> tuple[Step, str]:
        report = scratch / f"{name}.json" if command == "run" else None
        result = _mdrun(environment, command, path, store, document.arguments, report, scratch)
        text = path.read_bytes()
        # Kept for whoever reads the results: the document as each command left it, its stderr.
        (scratch / f"{name}{path.suffix}").write_bytes(text)
        (scratch / f"{name}.stderr").write_text(result.stderr, encoding="utf-8")
        return result, text.decode("utf-8")

    first, after_first = step("run", "first")
    if first.exit_code not in (0, 1):
        return Outcome(original, first, after_first)
    second, after_second = step("run", "second")
    check, _ = step("check", "check")
    return Outcome(original, first, after_first, second, after_second, check)
