"""The tools a user would use instead of mdrun, each in its own virtual environment.

Every peer is installed from PyPI into `tests/bench/.envs/<name>/` (git-ignored), created by the
benchmark itself on first use. A `Tool` says, for one scenario, which commands make one run: the
run's wall time is the sum of those commands' wall times.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .corpus import Dialect

ENVS_DIRECTORY = Path(__file__).resolve().parent / ".envs"
REPOSITORY = Path(__file__).resolve().parents[2]
STAMP = ".bench-installed"


@dataclass(frozen=True, slots=True)
class Environment:
    """A virtual environment of its own, with these PyPI packages."""

    name: str
    packages: tuple[str, ...]

    @property
    def path(self) -> Path:
        return ENVS_DIRECTORY / self.name

    def bin(self, program: str) -> str:
        return str(self.path / "bin" / program)

    def ensure(self) -> None:
        """Create the environment and install its packages unless already done."""
        wanted = " ".join(self.packages) + "\n"
        stamp = self.path / STAMP
        if stamp.is_file() and stamp.read_text() == wanted:
            return
        print(f"  installing {self.name}: {' '.join(self.packages)}", flush=True)
        if not (self.path / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(self.path)], check=True)
        subprocess.run(
            [self.bin("python"), "-m", "pip", "install", "--quiet", *self.packages], check=True
        )
        stamp.write_text(wanted)

    def versions(self) -> dict[str, str]:
        """The installed versions of this environment's packages."""
        code = (
            "import sys, json\nfrom importlib import metadata\n"
            "print(json.dumps({n: metadata.version(n) for n in sys.argv[1:]}))"
        )
        names = [package.split("[")[0].split("=")[0] for package in self.packages]
        done = subprocess.run(
            [self.bin("python"), "-c", code, *names], capture_output=True, text=True, check=True
        )
        import json

        versions = json.loads(done.stdout)
        assert isinstance(versions, dict)
        return {str(k): str(v) for k, v in versions.items()}


# numpy: the edit benchmark's array document needs it in every peer's kernel.
NBCLIENT = Environment("nbclient", ("jupytext", "nbclient", "ipykernel", "numpy"))
JUPYTER_CACHE = Environment("jupyter-cache", ("jupyter-cache", "jupytext", "ipykernel"))
PAPERMILL = Environment("papermill", ("papermill", "jupytext", "ipykernel"))
CODEBRAID = Environment("codebraid", ("codebraid", "pypandoc-binary", "numpy"))
MARKDOWN_EXEC = Environment(
    "markdown-exec", ("markdown-exec", "pymdown-extensions", "markdown", "numpy")
)
ENVIRONMENTS = (NBCLIENT, JUPYTER_CACHE, PAPERMILL, CODEBRAID, MARKDOWN_EXEC)


@dataclass(frozen=True, slots=True)
class Command:
    """One process of a run."""

    argv: list[str]
    stdin: str = ""
    env: dict[str, str] = field(default_factory=dict)
    """Added to the benchmark's environment."""


@dataclass(frozen=True, slots=True)
class Tool:
    """How one tool runs a document: its input form, and its commands per scenario."""

    name: str
    label: str
    dialect: Dialect
    input_name: str
    """The document's file name in the run's work folder."""
    output_name: str
    """The file the run writes; checked for the last block's output ("" for none)."""
    caches: str
    """What it keeps between runs, in one phrase."""
    commands: Callable[[Path, bool], list[Command]]
    """(work folder, first run in this folder) -> the commands of one run."""
    environment: Environment | None = None


def _mdrun(work: Path, first: bool) -> list[Command]:
    del first
    mdrun = str(Path(sys.executable).parent / "mdrun")
    return [
        Command(
            [mdrun, "--store", str(work / "store"), "run", "doc.md", "--report", "report.json"]
        )
    ]


JUPYTEXT_ARGUMENTS = ("--quiet", "--to", "ipynb", "doc.md", "-o")
PAPERMILL_ARGUMENTS = ("--no-progress-bar", "-k", "python3")


def _nbclient(work: Path, first: bool) -> list[Command]:
    del work, first
    return [
        Command([NBCLIENT.bin("jupytext"), *JUPYTEXT_ARGUMENTS, "doc.ipynb"]),
        Command([NBCLIENT.bin("jupyter"), "execute", "--inplace", "doc.ipynb"]),
    ]


def _jupyter_cache(work: Path, first: bool) -> list[Command]:
    environment = {"JUPYTERCACHE": str(work / "jupyter_cache")}
    execute = Command([JUPYTER_CACHE.bin("jcache"), "project", "execute"], env=environment)
    if not first:
        return [execute]
    # The first run creates the cache (it asks: answer y) and adds the document to the project.
    add = [JUPYTER_CACHE.bin("jcache"), "notebook", "add", "--reader", "jupytext", "doc.md"]
    return [Command(add, stdin="y\n", env=environment), execute]


def _papermill(work: Path, first: bool) -> list[Command]:
    del work, first
    return [
        Command([PAPERMILL.bin("jupytext"), *JUPYTEXT_ARGUMENTS, "in.ipynb"]),
        Command([PAPERMILL.bin("papermill"), *PAPERMILL_ARGUMENTS, "in.ipynb", "out.ipynb"]),
    ]


def codebraid_path() -> str:
    """PATH for codebraid: its environment (its python) and the pandoc of pypandoc-binary."""
    pandoc_folder = ENVS_DIRECTORY / "codebraid-pandoc"
    if not (pandoc_folder / "pandoc").exists():
        found = subprocess.run(
            [CODEBRAID.bin("python"), "-c", "import pypandoc; print(pypandoc.get_pandoc_path())"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        pandoc_folder.mkdir(parents=True, exist_ok=True)
        (pandoc_folder / "pandoc").symlink_to(found)
    return os.pathsep.join([str(pandoc_folder), str(CODEBRAID.path / "bin"), os.environ["PATH"]])


def _codebraid(work: Path, first: bool) -> list[Command]:
    del work, first
    argv = [CODEBRAID.bin("codebraid"), "pandoc", "--from", "markdown", "--to", "markdown",
            "--overwrite", "-o", "out.md", "doc.md"]  # fmt: skip
    return [Command(argv, env={"PATH": codebraid_path()})]


MARKDOWN_EXEC_DRIVER = Path(__file__).resolve().parent / "markdown_exec_driver.py"


def _markdown_exec(work: Path, first: bool) -> list[Command]:
    del work, first
    return [Command([MARKDOWN_EXEC.bin("python"), str(MARKDOWN_EXEC_DRIVER), "doc.md", "out.html"])]


def _floor(work: Path, first: bool) -> list[Command]:
    del first
    return [Command([sys.executable, "-c", (work / "doc.py").read_text()])]


MDRUN = Tool(
    "mdrun", "mdrun", "plain", "doc.md", "doc.md", "each block (store)", _mdrun
)
TOOLS: tuple[Tool, ...] = (
    MDRUN,
    Tool("nbclient", "jupytext + nbclient", "plain", "doc.md", "doc.ipynb", "nothing",
         _nbclient, NBCLIENT),
    Tool("jupyter-cache", "jupyter-cache", "plain", "doc.md", "", "the whole notebook",
         _jupyter_cache, JUPYTER_CACHE),
    Tool("papermill", "jupytext + papermill", "plain", "doc.md", "out.ipynb", "nothing",
         _papermill, PAPERMILL),
    Tool("codebraid", "codebraid", "codebraid", "doc.md", "out.md", "the whole session",
         _codebraid, CODEBRAID),
    Tool("markdown-exec", "markdown-exec", "markdown_exec", "doc.md", "out.html", "nothing",
         _markdown_exec, MARKDOWN_EXEC),
    Tool("floor", "python -c (floor)", "plain", "doc.md", "", "nothing", _floor),
)  # fmt: skip
"""mdrun first: the ratios divide every other tool's time by mdrun's."""
