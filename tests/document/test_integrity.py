"""A damaged store, through the command line: what a realization holds is checked when it is
read; a damaged one is reported with its path and rebuilt, never used; a snapshot that does not
match its recorded digest is never unpickled; `mdrun store verify` finds the rest."""

from __future__ import annotations

import pickle
import shutil
import subprocess
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
def test_a_garbage_context_is_not_used_and_verify_repairs_it(
    rendered: Rendered, tmp_path: Path
) -> None:
    # The realization's manifest records what its context was: the garbage file is never
    # read, so the block is not run again (on every run, as it was); verify finds it.
    runner = copy_of(rendered, tmp_path)
    context = realization_file(runner, "context.json")
    context.write_bytes(b"\x00garbage")
    touch_text(runner)
    completed, report = runner.run_reported("run", "doc.md")
    assert completed.code == 0, completed.err
    assert report.statuses == {"b1": "cached"}
    assert runner.read("doc.md") == rendered.text + "\nA new paragraph.\n"
    completed = runner("store", "verify", "--repair")
    assert completed.code == 1
    assert completed.out == f"{context.parent}: damaged: context.json: changed\n"
    touch_text(runner)
    completed, report = runner.run_reported("run", "doc.md")
    assert report.statuses == {"b1": "executed"}
    touch_text(runner)
    completed, report = runner.run_reported("run", "doc.md")
    assert report.statuses == {"b1": "cached"} and "warning" not in completed.err


@pytest.mark.kernel
def test_a_damaged_manifest_is_reported_and_rebuilt_once(
    rendered: Rendered, tmp_path: Path
) -> None:
    runner = copy_of(rendered, tmp_path)
    manifest = realization_file(runner, "__manifest__.txt")
    manifest.write_bytes(manifest.read_bytes().replace(b"file ", b"exec ", 1))
    touch_text(runner)
    completed, report = runner.run_reported("run", "doc.md")
    assert completed.code == 0, completed.err
    assert f"mdrun: warning: damaged realization: {manifest}: " in completed.err
    assert report.statuses == {"b1": "executed"}
    touch_text(runner)
    completed, report = runner.run_reported("run", "doc.md")
    assert report.statuses == {"b1": "cached"} and "warning" not in completed.err


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
    """Creates a file when unpickled, in any process: proof that a snapshot's code ran."""

    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.proof)!r}, 'w').write('the payload ran')",))


@pytest.mark.kernel
def test_a_replaced_snapshot_is_never_loaded(tmp_path: Path) -> None:
    rendered = first_run(tmp_path / "first", SNAPSHOT_DOCUMENT)
    runner = rendered.mdrun
    snapshot = realization_file(runner, "_snapshot.json")
    proof = tmp_path / "payload-ran"
    # The index still matches its manifest; the file of variables it lists does not.
    (variables,) = snapshot.parent.glob("_snapshot.*.pickle")
    variables.write_bytes(pickle.dumps(Payload(proof)))
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


# -- a full disk --------------------------------------------------------------------------------

BIG_OUTPUT = """\
```python
print("x" * 600_000)
```

```python session=other
print("small")
```
"""
"""A block whose stored outputs do not fit, and one in another session that does."""


def _limit_file_size() -> None:
    """In the child: files may not grow past 256 KiB, and going past fails the write (EFBIG)
    instead of killing the process, as on a disk whose quota is reached."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))


def shown(document: Path) -> str:
    """A document's text as a reader sees it: the failure note's Markdown escapes removed."""
    return document.read_text(encoding="utf-8").replace("\\", "")


def _assert_the_block_failed_cleanly(folder: Path, store: Path, code: int, err: str) -> None:
    assert code == 1, err
    assert "internal error" not in err
    text = shown(folder / "doc.md")
    assert f"**failed**: cannot store the block's result: {store}/tmp/build-" in text
    assert "/outputs.json: " in text and "(free some space and run again)" in text
    assert "small" in text  # the other session ran and was written
    assert list((store / "tmp").iterdir()) == []  # no partial build keeps the disk full


def _run_with_file_size_limit(folder: Path, store: Path) -> subprocess.CompletedProcess[str]:
    """`mdrun run doc.md` in `folder`, in a process that cannot write files past the limit."""
    from tests.document.conftest import INSTALLED_MDRUN

    return subprocess.run(
        [str(INSTALLED_MDRUN), "--store", str(store), "run", "doc.md"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_limit_file_size,
    )


@pytest.mark.kernel
def test_a_file_size_limit_fails_the_block_naming_the_path(tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_text(BIG_OUTPUT, encoding="utf-8")
    store = tmp_path / "store"
    done = _run_with_file_size_limit(tmp_path, store)
    _assert_the_block_failed_cleanly(tmp_path, store, done.returncode, done.stderr)
    assert "File too large" in (tmp_path / "doc.md").read_text(encoding="utf-8")


AFTER_BIG_OUTPUT = """\
```python
print("x" * 600_000)
```

```python
print("after" + "wards")
```

```python session=other
print("small")
```
"""
"""As `BIG_OUTPUT`, with a block after the one that cannot be stored, in its session."""


@pytest.mark.kernel
def test_a_result_that_fails_to_publish_while_the_next_block_runs_stops_its_session(
    tmp_path: Path,
) -> None:
    # A result is published in the background while the kernel runs the next block: a failure
    # found then fails the block, and the block after it does not count as run (nothing of it
    # stored or shown), as when each result is published before the next block starts.
    (tmp_path / "doc.md").write_text(AFTER_BIG_OUTPUT, encoding="utf-8")
    store = tmp_path / "store"
    done = _run_with_file_size_limit(tmp_path, store)
    _assert_the_block_failed_cleanly(tmp_path, store, done.returncode, done.stderr)
    text = shown(tmp_path / "doc.md")
    assert "afterwards" not in text and "this block did not run" in text
    outputs = [path.read_text() for path in (store / "store").rglob("outputs.json")]
    assert len(outputs) == 1 and "small" in outputs[0]  # only the other session's block


def _can_mount_a_tmpfs() -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt 2>/dev/null"],
        capture_output=True,
        check=False,
        timeout=30,
    )
    return probe.returncode == 0


@pytest.mark.kernel
@pytest.mark.skipif(not _can_mount_a_tmpfs(), reason="needs `unshare -rm` to mount a tmpfs")
def test_a_full_disk_fails_the_block_naming_the_path(tmp_path: Path) -> None:
    """A real full disk: a 1 MiB tmpfs (mounted in a namespace of our own) holding the store,
    filled but for about 150 KiB: the block's outputs do not fit; a store that cannot even be
    created is an error naming it (exit 2), nothing having run."""
    from tests.document.conftest import INSTALLED_MDRUN

    (tmp_path / "doc.md").write_text(BIG_OUTPUT, encoding="utf-8")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f"""
        set -u
        mount -t tmpfs -o size=1m none {disk}
        {INSTALLED_MDRUN} --store {disk}/store status doc.md > /dev/null
        head -c 870000 /dev/zero > {disk}/filler
        {INSTALLED_MDRUN} --store {disk}/store run doc.md
        echo "run: $?"
        ls -A {disk}/store/tmp
        head -c 200000 /dev/zero > {disk}/filler2
        {INSTALLED_MDRUN} --store {disk}/new-store run doc.md
        echo "new store: $?"
        ls -A {disk}
    """
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert "run: 1\n" in done.stdout, done.stdout + done.stderr
    assert "internal error" not in done.stderr
    text = shown(tmp_path / "doc.md")
    assert f"**failed**: cannot store the block's result: {disk}/store/tmp/build-" in text
    assert "No space left on device" in text and "small" in text
    assert "new store: 2\n" in done.stdout
    assert f"mdrun: error: cannot create the store: {disk}/new-store: No space left" in done.stderr
    listing = done.stdout.split("run: 1\n")[1].split("new store")[0]
    assert listing.split() == []  # nothing in the store's tmp/ after the failed build
    assert done.stdout.split("new store: 2\n")[1].split() == ["filler", "filler2", "store"]
