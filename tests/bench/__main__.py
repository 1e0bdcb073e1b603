"""`python -m tests.bench [--quick] [--only NAME]`: run the benchmark modules in sequence.

A benchmark module is added by appending its import path to `BENCHMARKS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from types import ModuleType

from .harness import RESULTS_DIRECTORY, BenchOptions

BENCHMARKS: tuple[str, ...] = (
    "tests.bench.store_chains",
    "tests.bench.documents",
    "tests.bench.many",
    "tests.bench.edit",
)
"""Modules run in this order; each has NAME, DESCRIPTION and run(options: BenchOptions).
`edit` measures `mdrun watch` through `edit_loop` (which still runs alone: `python -m
tests.bench.edit_loop`)."""


def load_benchmarks() -> list[ModuleType]:
    """Import every benchmark module (cheap: they import the libraries under test lazily)."""
    return [importlib.import_module(name) for name in BENCHMARKS]


def parse_arguments(argv: list[str] | None, names: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, one repeat: a smoke run (results/quick/)"
    )
    parser.add_argument(
        "--only", action="append", choices=names, help="run only this benchmark (repeatable)"
    )
    parser.add_argument(
        "--results", type=Path, default=None, help=f"output folder (default {RESULTS_DIRECTORY})"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    modules = load_benchmarks()
    names = [str(module.NAME) for module in modules]
    arguments = parse_arguments(argv, names)
    results = arguments.results or (
        RESULTS_DIRECTORY / "quick" if arguments.quick else RESULTS_DIRECTORY
    )
    options = BenchOptions(quick=arguments.quick, results_directory=results)
    selected = [m for m in modules if not arguments.only or m.NAME in arguments.only]
    for module in selected:
        print(f"## {module.NAME}: {module.DESCRIPTION}", flush=True)
        start = time.perf_counter()
        module.run(options)
        print(f"({module.NAME} took {time.perf_counter() - start:.0f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
