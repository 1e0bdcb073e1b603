"""The ways of running mdrun that the edit benchmark compares, and what it measures about mdrun.

One-shot `mdrun run` without the per-user server; with it (`mdrun server start` and a warm-up
run before a sequence, in a servers' folder of the sequence's own, `mdrun server stop` after);
and as it was at an earlier commit (unpacked from git, run in this environment). What the mdrun
under test offers is read from its own `--help`, so the benchmark runs against a checkout from
before the server existed too: the server variant is then skipped, with the reason. Also: the
bytes a store holds on disk, counting a hard-linked file once.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from .measure import run_environment
from .peers import ENVS_DIRECTORY, REPOSITORY, Command, Tool

PROGRAM_VARIABLE = "MDRUN_BENCH_MDRUN"
"""A command line that runs another mdrun's console script (e.g. a checkout's, through
PYTHONPATH); by default the installed `mdrun`, as a user runs it."""
MDRUN_PROGRAM: list[str] = shlex.split(os.environ.get(PROGRAM_VARIABLE, "")) or [
    str(Path(sys.executable).parent / "mdrun")
]
NO_SERVER_FLAG = "--no-server"
SERVER_VARIABLE = "MDRUN_SERVER"
"""on or off: whether a one-shot command may use the server."""
SERVER_FOLDER_VARIABLE = "MDRUN_SERVER_FOLDER"
"""The servers' folder (their sockets), so that the benchmark's server is its own."""
SERVER_IDLE_VARIABLE = "MDRUN_SERVER_IDLE_SECONDS"
SERVER_IDLE_SECONDS = "300"
"""Should the stop at the end of a sequence fail, the server still goes after this long idle."""
WARM_UP_DOCUMENT = "# warm-up\n\n```python\nprint('warm')\n```\n"
READY_SECONDS = 120.0
STOP_SECONDS = 30.0
PAUSE_SECONDS = 2.0
"""Before each timed run of every contender: an author reads and types (the server boots a
spare kernel meanwhile, as `edit_loop` lets `watch` do). Every contender pauses alike: on this
machine, memory a process gave back is returned to the host within about a second, and a run
that allocates much pays for it again (making the 500 MB array took 0.2 s right after another
process freed one, 0.7-1.4 s after a pause of 1-5 s), so a contender run without the pause
would be measured on warmer memory than the one paused."""


@dataclass(frozen=True, slots=True)
class Contender:
    """One column of the benchmark: a tool, and what must be up around a sequence of its runs."""

    tool: Tool
    around: Callable[[Path], AbstractContextManager[None]] = field(
        default=lambda work: nullcontext()
    )
    """(the sequence's work folder) -> a context held while the sequence runs."""
    check: Callable[[Path], str] = field(default=lambda work: "")
    """(the work folder) -> what is wrong after a run, beyond its output ("" when nothing)."""

    @property
    def name(self) -> str:
        return self.tool.name

    @property
    def label(self) -> str:
        return self.tool.label


def _help(*arguments: str) -> str:
    done = subprocess.run(
        [*MDRUN_PROGRAM, *arguments, "--help"], capture_output=True, text=True, check=False
    )
    return done.stdout + done.stderr


@dataclass(frozen=True, slots=True)
class ServerSupport:
    """What the mdrun under test offers for its per-user server, read from its help."""

    no_server_flag: bool
    """`mdrun run --no-server` exists."""
    server_command: bool
    """`mdrun server start|stop` exists."""

    @classmethod
    def detect(cls) -> ServerSupport:
        return cls(NO_SERVER_FLAG in _help("run"), "server" in _help().split())

    def unavailable(self) -> str:
        """Why the server variant cannot be measured ("" when it can)."""
        if not self.no_server_flag or not self.server_command:
            return (
                f"this mdrun has no per-user server (`mdrun run --help` offers no "
                f"`{NO_SERVER_FLAG}`, or `mdrun --help` no `server` command)"
            )
        return ""


def _one_shot(environment: dict[str, str], *options: str) -> Callable[[Path, bool], list[Command]]:
    def commands(work: Path, first: bool) -> list[Command]:
        del first
        argv = [*MDRUN_PROGRAM, "--store", str(work / "store"), "run", *options, "doc.md",
                "--report", "report.json"]  # fmt: skip
        extra = {**environment, **({SERVER_FOLDER_VARIABLE: str(server_folder(work))}
                                   if SERVER_FOLDER_VARIABLE in environment else {})}  # fmt: skip
        return [Command(argv, env=extra)]

    return commands


SERVER_ON = {
    SERVER_VARIABLE: "on", SERVER_FOLDER_VARIABLE: "", SERVER_IDLE_VARIABLE: SERVER_IDLE_SECONDS
}
"""The server variant's settings (the folder is filled in per sequence)."""


def server_folder(work: Path) -> Path:
    """The sequence's own servers' folder (short: a socket's path has a length limit)."""
    return work / "srv"


class ServerSetUpError(OSError):
    """Starting or warming the server up failed (with what mdrun said)."""


def _mdrun(arguments: list[str], environment: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(
        [*MDRUN_PROGRAM, *arguments], cwd=cwd, env=environment, capture_output=True, text=True,
        timeout=READY_SECONDS, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ServerSetUpError(f"`mdrun {' '.join(arguments)}` exited {done.returncode}: "
                               f"{done.stderr.strip()[-800:]}")  # fmt: skip


def stop_servers(folder: Path, environment: dict[str, str]) -> None:
    """`mdrun server stop`; then any server still answering in the folder is stopped (and
    killed if it does not go) through the server's own control module."""
    from mdrun.server import control

    subprocess.run([*MDRUN_PROGRAM, "server", "stop"], env=environment, capture_output=True,
                   timeout=STOP_SECONDS, check=False)  # fmt: skip
    for server in control.servers(str(folder)):
        control.stop(server)


@contextmanager
def running_server(work: Path) -> Iterator[None]:
    """Around a sequence: `mdrun server start`, then a warm-up run through it (its first
    kernel), both untimed; the server is stopped after."""
    folder = server_folder(work)
    _served_before.pop(folder, None)  # a new server: its warm-up is its first command
    environment = run_environment({**SERVER_ON, SERVER_FOLDER_VARIABLE: str(folder)})
    scratch = Path(tempfile.mkdtemp(prefix="mdrun-bench-warm-up-"))
    try:
        _mdrun(["server", "start"], environment, scratch)
        (scratch / "warm.md").write_text(WARM_UP_DOCUMENT, encoding="utf-8")
        _mdrun(["--store", str(scratch / "store"), "run", "warm.md"], environment, scratch)
        yield
    finally:
        stop_servers(folder, environment)
        shutil.rmtree(scratch, ignore_errors=True)


_served_before: dict[Path, int] = {}
"""The commands each sequence's server had run at the last check (the warm-up's first)."""


def served_by_one_server(work: Path) -> str:
    """After a run with the server: what went wrong if it was not the warm one that ran it
    (else ""): one server listens, and it counts one command more than at the last check (a
    client that ran the command in process, an old console script for one, must not pass)."""
    from mdrun.server import control

    folder = server_folder(work)
    count = len(list(folder.glob("*.sock")))
    if count != 1:
        return (f"{count} servers listen in the sequence's folder (expected 1: the warm-up's); "
                "the run did not go to the warm server")  # fmt: skip
    answering = control.servers(str(folder))
    served = answering[0].requests if len(answering) == 1 else 0
    before = _served_before.get(folder, 1)
    _served_before[folder] = served
    if served <= before:
        return (f"the warm server counts {served} commands, as before this run: the run did not "
                "go to it (ran in process)")  # fmt: skip
    return ""


def one_shot_contenders(support: ServerSupport) -> list[Contender]:
    """mdrun run without the server, and with it when this mdrun has one."""
    no_server = (NO_SERVER_FLAG,) if support.no_server_flag else ()
    contenders = [
        Contender(Tool("mdrun run", "mdrun `run` (no server)", "plain", "doc.md", "doc.md",
                       "each block (store)",
                       _one_shot({SERVER_VARIABLE: "off"}, *no_server)))
    ]  # fmt: skip
    if not support.unavailable():
        contenders.append(
            Contender(
                Tool("mdrun run+server", "mdrun `run` (server)", "plain", "doc.md", "doc.md",
                     "each block (store), kernels in the server", _one_shot(SERVER_ON)),
                running_server,
                served_by_one_server,
            )
        )  # fmt: skip
    return contenders


BEFORE_VARIABLE = "MDRUN_BENCH_BEFORE"
BEFORE_DEFAULT = "c7acc1775c939d712d2704c41140ce1d263198be"
"""main before the second part of issue 10 (server, state, overhead, watch, this benchmark)."""
IN_PROCESS_MAIN = "import sys; from mdrun.cli import main; sys.exit(main(sys.argv[1:]))"


def before_sources(reference: str) -> Path:
    """mdrun's package at a commit, unpacked once under tests/bench/.envs (git-ignored)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{reference}^{{commit}}"], cwd=REPOSITORY,
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    folder = ENVS_DIRECTORY / f"mdrun-{commit[:12]}"
    if not (folder / "mdrun" / "__init__.py").is_file():
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit, "mdrun"], cwd=REPOSITORY,
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as unpacked:
            unpacked.extractall(partial, filter="data")
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return folder


def before_contender() -> Contender | str:
    """`mdrun run` as it was at $MDRUN_BENCH_BEFORE (default: before this part of issue 10),
    in this environment, so "no slower than before" is measured under the same load; or why
    it cannot be."""
    reference = os.environ.get(BEFORE_VARIABLE, BEFORE_DEFAULT)
    try:
        sources = before_sources(reference)
    except (subprocess.CalledProcessError, OSError, tarfile.TarError) as err:
        return f"mdrun at {reference[:12]} cannot be unpacked: {err}"

    def commands(work: Path, first: bool) -> list[Command]:
        del first
        argv = [sys.executable, "-c", IN_PROCESS_MAIN, "--store", str(work / "store"), "run",
                "doc.md", "--report", "report.json"]  # fmt: skip
        return [Command(argv, env={"PYTHONPATH": str(sources), SERVER_VARIABLE: "off"})]

    label = f"mdrun `run` before ({reference[:7]})"
    return Contender(Tool("mdrun before", label, "plain", "doc.md", "doc.md", "each block (store)",
                          commands))  # fmt: skip


def is_mdrun(contender: Contender) -> bool:
    return contender.name.startswith("mdrun")


# -- the store on disk -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreSize:
    """A store's files as the disk holds them: a hard-linked file counted once."""

    bytes: int
    """The sum of the distinct files' sizes."""
    files: int
    """Distinct files (inodes)."""
    largest: tuple[int, ...]
    """The five largest distinct files' sizes, largest first."""


def store_size(folder: Path) -> StoreSize:
    seen: dict[tuple[int, int], int] = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            try:
                status = os.lstat(os.path.join(directory, name))
            except FileNotFoundError:
                continue
            seen[(status.st_dev, status.st_ino)] = status.st_size
    sizes = sorted(seen.values(), reverse=True)
    return StoreSize(sum(sizes), len(sizes), tuple(sizes[:5]))
