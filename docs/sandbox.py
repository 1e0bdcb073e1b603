"""A throwaway folder in which the docs run `mdrun` as a user would, with stable output.

The docs' blocks import this module (with `inputs=sandbox.py`, so editing it re-runs them).
Each `Sandbox` has its own folder and its own store; `sh("mdrun run doc.md")` runs the command
there and prints what a terminal would show, with what honestly varies (timings, the temporary
folder) normalised, so the docs' outputs are the same on every run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

_SECONDS = re.compile(r"\bin \d+\.\d+ s\b")
_SIZE = re.compile(r"\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b")
_STORE_PATH = re.compile(r"store/[0-9a-f]{32}-([\w.-]+)/[0-9a-f]{32}\b")
_MDRUN = [sys.executable, "-c", "from mdrun.cli import console_main; console_main()"]


class Sandbox:
    """A temporary folder with a store of its own, removed when the kernel exits."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="mdrun-docs-")
        self.root = Path(self._folder.name)
        self.store = self.root / ".store"
        self.exit_code = 0
        """The exit code of the last command."""

    def write(self, name: str, text: str) -> None:
        """Write a file (its text dedented), creating folders as needed."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")

    def append(self, name: str, text: str) -> None:
        """Add text (dedented) at the end of a file."""
        path = self.root / name
        path.write_text(path.read_text(encoding="utf-8") + textwrap.dedent(text), encoding="utf-8")

    def read(self, name: str) -> str:
        """A file's text."""
        return (self.root / name).read_text(encoding="utf-8")

    def show(self, name: str) -> None:
        """Print a file, as `cat` would."""
        print(f"$ cat {name}")
        print(self.read(name), end="")

    def edit(self, name: str, old: str, new: str) -> None:
        """Replace the one occurrence of `old` in a file."""
        text = self.read(name)
        if text.count(old) != 1:
            raise ValueError(f"{old!r} occurs {text.count(old)} times in {name}")
        (self.root / name).write_text(text.replace(old, new, 1), encoding="utf-8")

    def sh(self, command: str, *, quiet: bool = False) -> None:
        """Run an `mdrun ...` command in the folder; print its output and a non-zero exit code."""
        words = shlex.split(command)
        if words[0] != "mdrun":
            raise ValueError("the sandbox runs mdrun commands only")
        environment = {**os.environ, "MDRUN_STORE": str(self.store)}
        done = subprocess.run(
            _MDRUN + words[1:],
            cwd=self.root,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if not quiet:
            print(f"$ {command}")
            print(self.normalise(done.stdout), end="")
            print(self.normalise(done.stderr), end="")
            if done.returncode != 0:
                print(f"[exit code {done.returncode}]")
        self.exit_code = done.returncode

    def normalise(self, text: str) -> str:
        """Output without what varies from run to run: timings, sizes, the folder's path, the
        hashes in the store's paths."""
        text = text.replace(str(self.root) + os.sep, "").replace(str(self.root), ".")
        text = _STORE_PATH.sub(r"store/…-\1/…", text)
        text = _SECONDS.sub("in … s", text)
        return _SIZE.sub("N KiB", text)
