"""Is a document exactly what the last run wrote? Then a run has nothing to do.

After a clean run (every block executed or cached, none failed, none with `cache=false`, only
mdrun's own Python kernel), the store records what the run produced: the digest of the document
it wrote, of its input files and images, the realizations it used, and the environment that
ran it. The next run compares those with what is on disk; when all agree it reports the blocks
as cached without parsing the document, which is what makes an unchanged run cost about as much
as starting Python. Any doubt (a file changed, a realization collected, another Python) sends
the run through the full pipeline, which reaches the same answer the slow way.

This module imports only the standard library and the store's paths, on purpose.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdrun import __version__
from mdrun.core.files import replaced_atomically
from mdrun.core.store import STORE_VERSION, Store
from mdrun.errors import NO_SPACE_ERRNOS, ReferenceFormatError, os_error

STDIO = "-"


def record_key(source: str) -> str:
    """The name under which the store remembers a document (its absolute path)."""
    path = "<stdin>" if source == STDIO else str(Path(source).absolute())
    return hashlib.sha256(path.encode()).hexdigest()[:32]


def record_path(store: Store, source: str, suffix: str = "") -> Path:
    """Where the store keeps what the last run of a document did."""
    return store.root / "documents" / f"{record_key(source)}{suffix}.json"


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def environment_identity() -> dict[str, str]:
    """What ran the blocks: a change of Python or of mdrun makes every document stale."""
    return {
        "mdrun": __version__,
        "store": str(STORE_VERSION),
        "python": sys.version,
        "executable": sys.executable,
    }


@dataclass(frozen=True, slots=True)
class CleanRun:
    """What a clean run leaves for the next one to compare against."""

    source: str
    """The document as the user named it."""
    output: str | None
    """Where the result was written (None: in place)."""
    inputs: tuple[str, ...]
    """The input files the blocks declared (paths as the run saw them)."""
    images: tuple[str, ...]
    """The image files the document links."""
    rrefs: tuple[str, ...]
    """The realizations the blocks' outputs came from."""
    report: tuple[dict[str, Any], ...]
    """The `--report` records of the run, statuses made `cached`."""
    settings: str = ""
    """The command line's settings (`--languages`, `--doctest`): others read blocks otherwise."""


def remember_clean_run(store: Store, run: CleanRun) -> None:
    """Record a clean run (call it after the document was written)."""
    target = Path(run.output or run.source)
    data = {
        "environment": environment_identity(),
        "source": _sha256(Path(run.source)),
        "output": None if run.output is None else str(Path(run.output).absolute()),
        "written": _sha256(target),
        "inputs": {str(Path(name).absolute()): _sha256(Path(name)) for name in run.inputs},
        "images": [str(Path(name).absolute()) for name in run.images],
        "rrefs": list(run.rrefs),
        "report": list(run.report),
        "settings": run.settings,
    }
    write_record(record_path(store, run.source, ".clean"), data)


def write_record(path: Path, data: dict[str, Any]) -> None:
    """Write one of the store's records of a document whole (temporary file, then rename);
    a full disk is an error naming the record; no temporary file is left either way."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(path) as temporary:
            temporary.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    except OSError as err:
        if err.errno in NO_SPACE_ERRNOS:
            raise os_error(err, path, "cannot record the run in the store") from err
        raise  # (a read-only store is the caller's to allow)


def forget_clean_run(store: Store, source: str) -> None:
    """Drop the record (after a run that was not clean)."""
    record_path(store, source, ".clean").unlink(missing_ok=True)


def up_to_date(
    store: Store, source: str, output: str | None, settings: str = ""
) -> list[dict[str, Any]] | None:
    """The report of the last clean run if nothing it depended on changed (and the command
    line's settings, as `Settings.key` gives them, are the same), else None."""
    if STDIO in (source, output):
        return None
    try:
        data = json.loads(record_path(store, source, ".clean").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    report = data.get("report")
    if data.get("settings", "") != settings:
        return None
    if not isinstance(report, list) or not _unchanged(store, data, source, output):
        return None
    return report


def _unchanged(store: Store, data: dict[str, Any], source: str, output: str | None) -> bool:
    """Every check, cheapest first; the first difference ends it."""
    if data.get("environment") != environment_identity():
        return False
    if data.get("output") != (None if output is None else str(Path(output).absolute())):
        return False
    if data.get("written") != _sha256(Path(output or source)):
        return False
    if output is not None and data.get("source") != _sha256(Path(source)):
        return False
    for name in data.get("images", []):
        if not os.path.isfile(name):
            return False
    for name, digest in data.get("inputs", {}).items():
        if _sha256(Path(name)) != digest:
            return False
    for rref in data.get("rrefs", []):
        try:
            if not store.has_realization(rref):
                return False
        except ReferenceFormatError:
            return False
    return True
