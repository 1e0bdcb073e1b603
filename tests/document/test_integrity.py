"""A damaged store, through the command line: what a realization holds is checked when it is
read; a damaged one is reported with its path and rebuilt, never used; a snapshot that does not
match its recorded digest is never unpickled; `mdrun store verify` finds the rest."""

from __future__ import annotations

import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from mdrun.core.store import Store, make_writable
from tests.document.conftest import Mdrun

DOCUMENT = """\
# Damage

```python
print(42)
```
"""

SNAPSHOT_DOCUMENT = """\
```python snapshot=true
x = 41
```

```python
print(x + 1)
```
"""


@dataclass(frozen=True, slots=True)
class Rendered:
    """A document run once, its store, and what it rendered."""

    mdrun: Mdrun
    text: str


def first_run(folder: Path, text: str) -> Rendered:
    runner = Mdrun(folder / "doc", folder / "store")
    runner.write("doc.md", text)
    completed = runner("run", "doc.md")
    assert completed.code == 0, completed.err
    return Rendered(runner, runner.read("doc.md"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return first_run(tmp_path_factory.mktemp("damage"), DOCUMENT)


def copy_of(rendered: Rendered, folder: Path) -> Mdrun:
    """The rendered document and its store, copied for a test that damages them."""
    shutil.copytree(rendered.mdrun.store, folder / "store", symlinks=True)
    runner = Mdrun(folder / "doc", folder / "store")
    runner.write("doc.md", rendered.text)
    return runner


def realization_file(runner: Mdrun, name: str, block: str = "b1") -> Path:
    """The one file `name` of a block's realization in the runner's store."""
    store = Store.initialize(runner.store)
    (path,) = [
        store.realization_path(rref) / name
        for rref in store.all_realizations()
        if rref.endswith(f"-{block}") and (store.realization_path(rref) / name).exists()
    ]
    make_writable(path.parent)  # published realizations are read-only, as for any intruder
    return path


def touch_text(runner: Mdrun) -> None:
    """Edit the document outside its blocks, so the run reads its results from the store."""
    runner.write("doc.md", runner.read("doc.md") + "\nA new paragraph.\n")


DAMAGE = {
    "edited": lambda path: path.write_bytes(path.read_bytes().replace(b"42", b"666")),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[:20]),
    "deleted": lambda path: path.unlink(),
    "malformed": lambda path: path.write_bytes(
        b'{"key": "k", "outputs": [{"output_type": "stream"}], "status": "ok"}'
    ),
}


@pytest.mark.kernel
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_outputs_record_is_reported_and_rebuilt(
    rendered: Rendered, tmp_path: Path, damage: str
) -> None:
    runner = copy_of(rendered, tmp_path)
    outputs = realization_file(runner, "outputs.json")
    DAMAGE[damage](outputs)
    touch_text(runner)
    completed, report = runner.run_reported("run", "doc.md")
    assert completed.code == 0, completed.err
    assert f"mdrun: warning: damaged realization: {outputs}: " in completed.err
    assert report.statuses == {"b1": "executed"}
    assert runner.read("doc.md") == rendered.text + "\nA new paragraph.\n"
    assert runner("check", "doc.md").code == 0
    touch_text(runner)
    completed, report = runner.run_reported("run", "doc.md")
    assert report.statuses == {"b1": "cached"} and "warning" not in completed.err


@pytest.mark.kernel
def test_a_garbage_context_is_rebuilt_once_not_on_every_run(
    rendered: Rendered, tmp_path: Path
) -> None:
    runner = copy_of(rendered, tmp_path)
    context = realization_file(runner, "context.json")
    context.write_bytes(b"\x00garbage")
    touch_text(runner)
    completed, report = runner.run_reported("run", "doc.md")
    assert completed.code == 0, completed.err
    assert f"mdrun: warning: damaged realization: {context}: " in completed.err
    assert report.statuses == {"b1": "executed"}
    touch_text(runner)
    completed, report = runner.run_reported("run", "doc.md")
    assert report.statuses == {"b1": "cached"} and "warning" not in completed.err
    assert not context.exists()  # the damaged realization is gone, a sound one replaced it


@pytest.mark.kernel
def test_verify_reports_damage_and_repair_removes_it(rendered: Rendered, tmp_path: Path) -> None:
    runner = copy_of(rendered, tmp_path)
    assert runner("store", "verify").code == 0
    assert runner("store", "verify", "doc.md").code == 0
    outputs = realization_file(runner, "outputs.json")
    DAMAGE["edited"](outputs)
    for arguments in (("store", "verify"), ("store", "verify", "doc.md")):
        completed = runner(*arguments)
        assert completed.code == 1
        assert completed.out == f"{outputs.parent}: damaged: outputs.json: changed\n"
        assert "1 damaged (--repair removes them)" in completed.err
    repaired = runner("store", "verify", "--repair")
    assert repaired.code == 1 and "1 removed (the next run builds them again)" in repaired.err
    assert not outputs.parent.exists()
    assert runner("store", "verify").code == 0
    completed, report = runner.run_reported("run", "doc.md")
    assert report.statuses == {"b1": "executed"}
    assert runner.read("doc.md") == rendered.text


def test_verify_of_a_missing_document_is_a_usage_error(mdrun: Mdrun) -> None:
    completed = mdrun("store", "verify", "missing.md")
    assert completed.code == 2 and "missing.md: no such file" in completed.err
    assert mdrun("store").code == 2


class Payload:
    """Creates a file when unpickled: proof that a snapshot's code ran."""

    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (_write_proof, (str(self.proof), "the payload ran"))


def _write_proof(path: str, text: str) -> None:
    Path(path).write_text(text)


@pytest.mark.kernel
def test_a_replaced_snapshot_is_never_loaded(tmp_path: Path) -> None:
    rendered = first_run(tmp_path / "first", SNAPSHOT_DOCUMENT)
    runner = rendered.mdrun
    snapshot = realization_file(runner, "_snapshot.pickle")
    proof = tmp_path / "payload-ran"
    snapshot.write_bytes(pickle.dumps(Payload(proof)))
    edited = rendered.text.replace("x + 1", "x + 2")
    runner.write("doc.md", edited)
    completed = runner("run", "doc.md")
    assert completed.code == 0, completed.err
    assert not proof.exists()
    assert f"mdrun: warning: damaged realization: {snapshot}: " in completed.err
    assert "it was not loaded" in completed.err
    fresh = Mdrun(tmp_path / "fresh", tmp_path / "fresh-store")
    fresh.write("doc.md", edited)
    assert fresh("run", "doc.md").code == 0
    assert runner.read("doc.md") == fresh.read("doc.md")
    assert "43" in fresh.read("doc.md")
