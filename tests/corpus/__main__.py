"""`python -m tests.corpus [--only PACKAGE]`: run real documents by others through mdrun.

Each sdist of the manifest is fetched from PyPI with pip, checked against its sha256 and
unpacked under `.corpus/`; each document gets a first run, a second run and `mdrun check`, and
the table goes to tests/corpus/results.md. Exit 1 when a document does not behave as expected.
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from .checks import Outcome, judge
from .manifest import load_manifest
from .results import Row, render_results
from .runner import REPOSITORY, Environment, run_document
from .sdist import download, extract

RESULTS_PATH = Path(__file__).with_name("results.md")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.corpus", description=__doc__)
    parser.add_argument("--only", action="append", help="run only this package (repeatable)")
    parser.add_argument("--work", type=Path, default=REPOSITORY / ".corpus", help="work folder")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH, help="results file")
    return parser.parse_args(argv)


def _git(*arguments: str) -> str:
    completed = subprocess.run(
        ["git", *arguments], cwd=REPOSITORY, capture_output=True, text=True, check=False
    )
    return completed.stdout.strip()


def _errors(outcome: Outcome) -> str:
    """The tail of what mdrun printed on stderr in each command that went wrong."""
    lines: list[str] = []
    named = (("run", outcome.first), ("second run", outcome.second), ("check", outcome.check))
    for name, step in named:
        if step is not None and (step.exit_code not in (0, 1) or step.stdout.strip()):
            lines.append(f"$ mdrun {name}: exit {step.exit_code}")
            lines += step.stderr.splitlines()[-12:]
            lines += step.stdout.splitlines()[:30]
    if not lines:
        lines = outcome.first.stderr.splitlines()[-8:]
    return "\n".join(lines)


def _scratch_name(document_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", document_name)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    manifest = load_manifest()
    started = time.monotonic()
    environment = Environment(arguments.work)
    print(f"corpus: preparing {environment.venv} (minutes the first time)", flush=True)
    environment.prepare(manifest)
    prepared = time.monotonic()
    rows: list[Row] = []
    for package in manifest.packages:
        if arguments.only and package.name not in arguments.only:
            continue
        archive = download(package, environment.python, arguments.work / "sdists")
        folder = arguments.work / "work" / package.sdist.removesuffix(".tar.gz")
        top = extract(archive, folder / "source")
        for document in package.documents:
            document_started = time.monotonic()
            scratch = folder / "runs" / _scratch_name(document.name)
            outcome = run_document(environment, top, document, scratch)
            verdict = judge(document, outcome)
            seconds = time.monotonic() - document_started
            errors = "" if verdict.passed else _errors(outcome)
            rows.append(Row(package, document, verdict, seconds, errors))
            status = "pass" if verdict.passed else "FAIL " + "; ".join(verdict.problems)
            print(f"{package.requirement} {document.name}: {status} ({seconds:.1f} s)", flush=True)
    elapsed = time.monotonic() - started
    base = _git("merge-base", "HEAD", "main")
    on_main = f"on main at `{base[:7]}`, " if base else ""
    heading = (
        f"Commit `{_git('rev-parse', '--short', 'HEAD')}` "
        f"({_git('log', '-1', '--format=%s')[:80]}), {on_main}"
        f"Python {platform.python_version()}: {len(rows)} documents from "
        f"{len({row.package.name for row in rows})} packages. `make corpus` took {elapsed:.0f} s, "
        f"of which {prepared - started:.0f} s preparing `.corpus/venv` and the rest fetching, "
        "checking and running.\n"
    )
    arguments.results.write_text(render_results(rows, heading), encoding="utf-8")
    print(f"corpus: results in {arguments.results} ({elapsed:.0f} s)")
    return 0 if all(row.verdict.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
