"""The store workloads, written once for mdrun and once for pylightnix 0.3.0, and their worker.

A worker process (`python -m tests.bench.store_workloads ...`) times one library on one
workload and prints JSON records (see `harness.emit`). The stage functions build the whole
graph in one loop of `mkdrv` calls, so 10,000 stages need no deep Python recursion.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from .harness import emit

Shape = Literal["chain", "dag"]
LibraryName = Literal["mdrun", "pylightnix"]
LIBRARIES: tuple[LibraryName, ...] = ("mdrun", "pylightnix")


@dataclass(frozen=True, slots=True)
class Workload:
    """A graph of stages; every realizer writes one small file."""

    shape: Shape
    """chain: stage i depends on stage i-1. dag: leaves -> groups -> one root."""
    size: int
    """chain: the number of stages. dag: the number of leaves."""
    groups: int = 10
    """dag: how many group stages the leaves are split between (evenly)."""

    @property
    def stages(self) -> int:
        """How many derivations the workload defines."""
        if self.shape == "chain":
            return self.size
        return self.size + self.groups + 1

    @property
    def label(self) -> str:
        """How reports name it."""
        if self.shape == "chain":
            return f"chain {self.size:,}"
        return f"dag {self.size:,}>{self.groups}>1"

    def arguments(self) -> list[str]:
        """The worker's command-line options for this workload."""
        return ["--shape", self.shape, "--size", str(self.size), "--groups", str(self.groups)]


Define = Callable[[dict[str, Any]], str]
"""Registers one derivation of a config (the library's matcher and realizer), returns its dref."""


def define_workload(workload: Workload, define: Define) -> str:
    """Register every stage of the workload through `define`; the target's dref."""
    if workload.shape == "chain":
        previous: str | None = None
        for index in range(workload.size):
            previous = define({"name": "link", "index": index, "previous": previous})
        assert previous is not None
        return previous
    leaves = [define({"name": "leaf", "index": index}) for index in range(workload.size)]
    groups = [
        define({"name": "group", "index": index, "inputs": leaves[index :: workload.groups]})
        for index in range(workload.groups)
    ]
    return define({"name": "root", "index": 0, "inputs": groups})


builds = 0
"""How many times a realizer ran in this process (a warm run must leave it unchanged)."""


class Library(Protocol):
    """One store library driven the same way: open a store, instantiate and realize a target."""

    def open_store(self, root: Path) -> Any: ...

    def realize(self, store: Any, workload: Workload) -> str: ...


class Mdrun:
    """mdrun.core, through its Pylightnix-compatible names."""

    def open_store(self, root: Path) -> Any:
        from mdrun.core import Store

        return Store.initialize(root)

    def realize(self, store: Any, workload: Workload) -> str:
        from mdrun.core.build import Build, build_config, build_outpath, build_wrapper
        from mdrun.core.matchers import match_only
        from mdrun.core.realization import realize1
        from mdrun.core.registry import Registry, instantiate, mkdrv

        def write_file(build: Build) -> None:
            global builds
            builds += 1
            config = build_config(build).data
            (build_outpath(build) / "value.txt").write_text(f"{config['name']} {config['index']}")

        realizer = build_wrapper(write_file)

        def stage(r: Registry) -> str:
            return define_workload(
                workload, lambda config: mkdrv(r, config, match_only(), realizer)
            )

        return str(realize1(instantiate(stage, r=Registry(store))))


class Pylightnix:
    """pylightnix 0.3.0: `mkdrv(config, matcher, realizer, r)`, stages take `r=` by keyword."""

    def open_store(self, root: Path) -> Any:
        pylightnix: Any = importlib.import_module("pylightnix")
        settings = pylightnix.mkSS(str(root))
        pylightnix.fsinit(settings)
        return settings

    def realize(self, store: Any, workload: Workload) -> str:
        pylightnix: Any = importlib.import_module("pylightnix")

        def write_file(build: Any) -> None:
            global builds
            builds += 1
            attributes = pylightnix.build_cattrs(build)
            path = Path(pylightnix.build_outpath(build)) / "value.txt"
            path.write_text(f"{attributes.name} {attributes.index}")

        realizer = pylightnix.build_wrapper(write_file)

        def stage(r: Any) -> str:
            def define(config: dict[str, Any]) -> str:
                matcher = pylightnix.match_only()
                return str(pylightnix.mkdrv(pylightnix.mkconfig(config), matcher, realizer, r))

            return define_workload(workload, define)

        registry = pylightnix.Registry(store)
        return str(pylightnix.realize1(pylightnix.instantiate(stage, r=registry)))


def library(name: LibraryName) -> Library:
    """The adapter of a library."""
    return Mdrun() if name == "mdrun" else Pylightnix()


def import_seconds(name: LibraryName) -> float:
    """Import the library (timed), so that runs measure the work and not the import."""
    start = time.perf_counter()
    importlib.import_module("mdrun.core" if name == "mdrun" else "pylightnix")
    return time.perf_counter() - start


def timed_realize(adapter: Library, store: Any, workload: Workload) -> tuple[float, str, int]:
    """(seconds, target rref, realizers run) of one instantiate + realize1."""
    before = builds
    gc.collect()
    start = time.perf_counter()
    rref = adapter.realize(store, workload)
    seconds = time.perf_counter() - start
    return seconds, rref, builds - before


def run_session(arguments: argparse.Namespace, workload: Workload) -> None:
    """Cold runs, each in a new store; then warm runs in the last store, in this process."""
    from mdrun.core.store import remove_tree

    adapter = library(arguments.library)
    emit({"kind": "import", "seconds": import_seconds(arguments.library)})
    workdir = Path(arguments.workdir)
    root = workdir / "cold-0"
    spent = 0.0
    for repeat in range(arguments.repeats):
        if repeat:
            remove_tree(root)
            root = workdir / f"cold-{repeat}"
        store = adapter.open_store(root)
        seconds, rref, built = timed_realize(adapter, store, workload)
        emit({"kind": "cold", "seconds": seconds, "rref": rref, "built": built})
        spent += seconds
        if spent > arguments.budget:
            break
    spent = 0.0
    for _ in range(arguments.repeats):
        seconds, rref, built = timed_realize(adapter, store, workload)
        emit({"kind": "warm", "seconds": seconds, "rref": rref, "built": built})
        spent += seconds
        if spent > arguments.budget:
            break
    emit({"kind": "store", "path": str(root)})


def run_warm_new_process(arguments: argparse.Namespace, workload: Workload) -> None:
    """One warm run in an existing store, as a user re-running a script would do."""
    adapter = library(arguments.library)
    imported = import_seconds(arguments.library)
    store = adapter.open_store(Path(arguments.store))
    seconds, rref, built = timed_realize(adapter, store, workload)
    emit(
        {
            "kind": "warm_new_process",
            "seconds": seconds,
            "import_seconds": imported,
            "rref": rref,
            "built": built,
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.store_workloads")
    parser.add_argument("mode", choices=["session", "warm"])
    parser.add_argument("--library", choices=LIBRARIES, required=True)
    parser.add_argument("--shape", choices=["chain", "dag"], required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--workdir", help="session: where to create the stores")
    parser.add_argument("--store", help="warm: the store to re-run in")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--budget", type=float, default=60.0, help="stop repeating after (s)")
    arguments = parser.parse_args(argv)
    workload = Workload(arguments.shape, arguments.size, arguments.groups)
    if arguments.mode == "session":
        run_session(arguments, workload)
    else:
        run_warm_new_process(arguments, workload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
