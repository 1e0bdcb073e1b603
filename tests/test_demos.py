"""The demos in `demos/` are real documents: a fresh run must reproduce them byte for byte.

Each demo is copied with the files it needs to a temporary folder and checked with `mdrun check`
against an empty store: every block is stale, so `check` executes the whole document and
compares the result with the committed one (it writes nothing). Images are compared through
their links, which name the image's content hash; the committed image files must exist and hold
that content. The generator scripts beside the demos must still make the shipped data.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from jupyter_client.kernelspec import KernelSpecManager

DEMOS = Path(__file__).resolve().parent.parent / "demos"
MDRUN = Path(sys.executable).parent / "mdrun"
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


def _has_bash_kernel() -> bool:
    for folder in KernelSpecManager().find_kernel_specs().values():
        spec = json.loads((Path(folder) / "kernel.json").read_text(encoding="utf-8"))
        if str(spec.get("language", "")).lower() == "bash":
            return True
    return False


def _missing_build_tools() -> bool:
    return shutil.which("cc") is None or shutil.which("make") is None


def _load_script(name: str) -> ModuleType:
    """Import a script of demos/ (not a package) by its path."""
    spec = importlib.util.spec_from_file_location(f"demo_{name}", DEMOS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check(document: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`mdrun check` on a copy of demos/ (its data, tarball, images) with an empty store."""
    folder = tmp_path / "demos"
    shutil.copytree(DEMOS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return subprocess.run(
        [str(MDRUN), "--store", str(tmp_path / "store"), "check", document],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


DOCUMENTS = [
    pytest.param("hello.md", id="hello"),
    pytest.param("data-tutorial.md", id="data-tutorial"),
    pytest.param(
        "store-examples.md",
        id="store-examples",
        marks=pytest.mark.skipif(_missing_build_tools(), reason="needs a C compiler and make"),
    ),
    pytest.param(
        "two-languages.md",
        id="two-languages",
        marks=pytest.mark.skipif(
            not _has_bash_kernel(),
            reason="needs bash_kernel (python -m bash_kernel.install --sys-prefix)",
        ),
    ),
]


@pytest.mark.kernel
@pytest.mark.parametrize("document", DOCUMENTS)
def test_demo_is_what_a_fresh_run_writes(document: str, tmp_path: Path) -> None:
    completed = _check(document, tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert " 0 failed" in completed.stderr
    assert " 0 cached" in completed.stderr  # the store was empty: everything ran


@pytest.mark.parametrize("document", ["hello.md", "data-tutorial.md", "store-examples.md",
                                      "two-languages.md"])  # fmt: skip
def test_demo_images_are_committed(document: str) -> None:
    text = (DEMOS / document).read_text(encoding="utf-8")
    links = IMAGE_LINK.findall(text)
    folder = DEMOS / f"{Path(document).stem}_files"
    for link in links:
        image = DEMOS / link
        assert image.is_file(), f"{document} links {link}, which is not in demos/"
        assert image.name.startswith(hashlib.sha256(image.read_bytes()).hexdigest()[:16])
    on_disk = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    assert on_disk == sorted(Path(link).name for link in links), "stale images beside the demo"


def test_data_tutorial_has_a_figure() -> None:
    text = (DEMOS / "data-tutorial.md").read_text(encoding="utf-8")
    assert IMAGE_LINK.findall(text) != []


def test_hello_md_is_the_original_demo_rendered() -> None:
    source = (DEMOS / "hello.md.in").read_text(encoding="utf-8")
    rendered = (DEMOS / "hello.md").read_text(encoding="utf-8")
    without_regions = re.sub(r"<!-- mdrun:output [^>]*-->\n.*?<!-- mdrun:end -->\n?", "",
                             rendered, flags=re.S)  # fmt: skip
    assert without_regions.rstrip("\n") == source.rstrip("\n")


def test_the_tarball_is_what_its_script_makes() -> None:
    script = _load_script("make_hello_tarball")
    made: bytes = script.tarball_bytes()
    shipped = (DEMOS / "hello-2.10.tar.gz").read_bytes()
    assert gzip.decompress(made) == gzip.decompress(shipped)
    sha256 = hashlib.sha256(shipped).hexdigest()
    assert f'hello_sha256 = "{sha256}"' in (DEMOS / "store-examples.md").read_text()


def test_the_csv_is_what_its_script_makes() -> None:
    script = _load_script("make_weather_csv")
    rows: list[tuple[int, float, float]] = script.rows()
    lines = (DEMOS / "weather.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "day,temperature,rain"
    assert lines[1:] == [f"{d},{t:.1f},{r:.1f}" for d, t, r in rows]
