"""A spare kernel started in one folder serves a run in another (the server's spares are started
where it was used last), as if it had been started there; where that may not hold, it refuses
and the run starts a kernel of its own."""

from __future__ import annotations

import shutil
import types
from pathlib import Path

import pytest

from mdrun.core.store import Store
from mdrun.document.kernel_folder import obstacle
from mdrun.document.pipeline import run
from mdrun.document.warm_executors import WarmExecutors
from tests.document.test_watch import wait_for

WHERE = (
    "# Where\n\n```python\nimport os\nprint(os.getcwd())\nprint(_dh)\n"
    "print(open('only-here.txt').read())\nopen('made.txt', 'w').write('made')\n```\n"
)
"""A block that shows the folder it runs in, reads a file of it and writes one into it."""


def _folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "doc.md").write_text(WHERE, encoding="utf-8")
    (folder / "only-here.txt").write_text(f"in {name}", encoding="utf-8")
    return folder


def _fresh_text(folder: Path, store: Path) -> str:
    """The document as a run with a kernel of its own writes it."""
    (folder / "doc.md").write_text(WHERE, encoding="utf-8")
    (folder / "made.txt").unlink()
    run(str(folder / "doc.md"), Store.initialize(store))
    return (folder / "doc.md").read_text(encoding="utf-8")


def _run_after_a_spare_elsewhere(tmp_path: Path, second: Path) -> tuple[int, str]:
    """Run the document in `first` with a pool, wait for the spare (started there), run it in
    `second`: how many spares the second run took, and what it wrote."""
    first = _folder(tmp_path, "first")
    with WarmExecutors() as pool:
        run(str(first / "doc.md"), Store.initialize(tmp_path / "s1"), executor_factory=pool.factory)
        wait_for(lambda: pool.kernels.ready == 1, "the spare kernel")
        store = Store.initialize(tmp_path / "s2")
        run(str(second / "doc.md"), store, executor_factory=pool.factory)
        taken = pool.counts().spares_taken
    return taken, (second / "doc.md").read_text(encoding="utf-8")


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_a_spare_started_in_another_folder_runs_as_if_started_in_the_documents(
    tmp_path: Path,
) -> None:
    second = _folder(tmp_path, "second")
    taken, text = _run_after_a_spare_elsewhere(tmp_path, second)
    assert taken == 1
    assert (second / "made.txt").read_text(encoding="utf-8") == "made"
    assert f"{second}\n[PosixPath('{second}')]\nin second\n" in text
    assert text == _fresh_text(second, tmp_path / "s3")


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_a_spare_is_not_moved_to_a_folder_with_an_ipython_configuration(tmp_path: Path) -> None:
    second = _folder(tmp_path, "second")
    (second / "ipython_kernel_config.py").write_text("", encoding="utf-8")
    taken, text = _run_after_a_spare_elsewhere(tmp_path, second)
    assert taken == 0
    assert f"{second}\n" in text
    assert text == _fresh_text(second, tmp_path / "s3")


def _module(name: str, path: str | None) -> types.ModuleType:
    module = types.ModuleType(name)
    if path is not None:
        module.__file__ = path
    return module


def test_a_kernel_may_move_when_nothing_it_loaded_depends_on_either_folder() -> None:
    modules = {"numpy": _module("numpy", "/site/numpy/__init__.py"), "sys": _module("sys", None)}
    assert obstacle("/a", "/b", modules, ["doc.md"], ["doc.md", "data", "notes.txt"]) == ""


@pytest.mark.parametrize(
    ("old_names", "new_names", "path", "said"),
    [
        ([], ["numpy.py"], "/site/numpy/__init__.py", "/b/numpy.py has the name of a module"),
        ([], ["numpy"], "/site/numpy/__init__.py", "/b/numpy has the name of a module"),
        ([], [], "/a/helpers.py", "the module numpy was loaded from /a"),
        (["ipython_config.py"], [], "/site/numpy/__init__.py", "/a/ipython_config.py may"),
        ([], ["ipython_kernel_config.json"], "/site/x.py", "/b/ipython_kernel_config.json may"),
    ],
)
def test_a_kernel_refuses_to_move_when_a_kernel_started_there_could_differ(
    old_names: list[str], new_names: list[str], path: str, said: str
) -> None:
    reason = obstacle("/a", "/b", {"numpy": _module("numpy", path)}, old_names, new_names)
    assert reason.startswith(said)


LISTING = "# Listing\n\n```python\nimport os\nprint(sorted(os.listdir('.')))\n```\n"


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_no_kernel_of_a_folder_removed_since_serves_the_folder_made_again(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    with WarmExecutors() as pool:
        for version, extra in enumerate(("first.txt", "second.txt")):
            if folder.exists():
                shutil.rmtree(folder)  # as `rm -rf project && git clone ... project` does
            folder.mkdir()
            (folder / "doc.md").write_text(LISTING, encoding="utf-8")
            (folder / extra).write_text("", encoding="utf-8")
            store = Store.initialize(tmp_path / f"store-{version}")
            run(str(folder / "doc.md"), store, executor_factory=pool.factory)
            wait_for(lambda: pool.kernels.ready == 1, "the spare kernel")
    assert "['doc.md', 'second.txt']" in (folder / "doc.md").read_text(encoding="utf-8")
    # The block's state was digested, as in any kernel in its folder.
    assert list((tmp_path / "store-1").glob("store/*/*/_state.json"))
