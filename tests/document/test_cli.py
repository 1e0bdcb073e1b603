"""The `mdrun` command end to end: each command, each option, each way of naming input and output,
and the errors a user can make. Block semantics (sessions, failures, options) are in
test_evaluate.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from mdrun.core.refs import RRef
from mdrun.core.store import Store
from tests.document.conftest import DEMO, Mdrun, Report, installed_mdrun, no_kernel_starts


@dataclass(frozen=True, slots=True)
class DemoRun:
    """The demo document after one run, and its store."""

    mdrun: Mdrun
    first_report: Report
    first_err: str
    rendered: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo document run once (one kernel for the whole module's read-only tests)."""
    folder = tmp_path_factory.mktemp("demo")
    runner = Mdrun(folder / "doc", folder / "store")
    runner.write("demo.md", DEMO)
    completed, report = runner.run_reported("run", "demo.md")
    assert completed.code == 0, completed.err
    return DemoRun(runner, report, completed.err, runner.read("demo.md"))


def copy_of(demo: DemoRun, folder: Path) -> Mdrun:
    """A runner on copies of the demo's document and store (for tests that change them)."""
    shutil.copytree(demo.mdrun.store, folder / "store", symlinks=True)
    # The copy's GC roots are those of the demo's own document, which is not this one.
    shutil.rmtree(folder / "store" / "roots")
    runner = Mdrun(folder / "doc", folder / "store")
    runner.write("demo.md", demo.rendered)
    with no_kernel_starts():  # as a user's earlier run would, records the run for `status`
        assert runner("run", "demo.md").code == 0
    return runner


# -- the demo: first run, second run ----------------------------------------------------------


@pytest.mark.kernel
def test_demo_runs_and_shows_its_outputs(demo: DemoRun) -> None:
    # Each output goes right after its block; a definition prints nothing and gets no region.
    assert demo.rendered == DEMO.replace(
        'print("Hello from mdrun")\n```\n',
        'print("Hello from mdrun")\n```\n<!-- mdrun:output id=b1 -->\n'
        "``` text\nHello from mdrun\n```\n<!-- mdrun:end -->\n",
    ).replace(
        "print(square(5))\n```\n",
        "print(square(5))\n```\n<!-- mdrun:output id=b3 -->\n``` text\n25\n```\n"
        "<!-- mdrun:end -->\n",
    )
    assert demo.first_report.statuses == {"b1": "executed", "b2": "executed", "b3": "executed"}
    assert "3 blocks, 3 executed, 0 cached, 0 failed" in demo.first_err


@pytest.mark.kernel
def test_report_has_id_line_status_seconds_and_rref(demo: DemoRun) -> None:
    records = demo.first_report.records
    store = Store.initialize(demo.mdrun.store)
    assert [record["line"] for record in records] == [3, 7, 12]
    for record in records:
        assert set(record) >= {"id", "line", "status", "seconds", "rref"}
        seconds = record["seconds"]
        assert isinstance(seconds, float) and 0 < seconds < 60
        rref = record["rref"]
        assert isinstance(rref, str) and rref.startswith("rref:")
        # The realization named is in the store.
        assert store.realization_path(RRef(rref)).is_dir()


@pytest.mark.kernel
def test_second_run_executes_nothing_and_changes_nothing(demo: DemoRun) -> None:
    path = demo.mdrun.path("demo.md")
    mtime = path.stat().st_mtime_ns
    with no_kernel_starts():
        completed, report = demo.mdrun.run_reported("run", "demo.md")
    assert completed.code == 0
    assert set(report.statuses.values()) == {"cached"}
    assert all(record["seconds"] == 0 for record in report.records)
    assert [r["rref"] for r in report.records] == [r["rref"] for r in demo.first_report.records]
    assert demo.mdrun.read("demo.md") == demo.rendered
    assert path.stat().st_mtime_ns == mtime, "an up-to-date document is not rewritten"
    assert "0 executed, 3 cached" in completed.err


@pytest.mark.kernel
def test_cached_run_does_not_even_import_jupyter(demo: DemoRun) -> None:
    """A user's second run pays neither for a kernel nor for importing jupyter_client and zmq."""
    wrapper = textwrap.dedent(
        """
        import sys
        from mdrun.cli import main
        code = main(sys.argv[1:])
        print(code, "jupyter_client" in sys.modules, "zmq" in sys.modules)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", wrapper, "--store", str(demo.mdrun.store), "run", "demo.md"],
        cwd=demo.mdrun.folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.stdout.split() == ["0", "False", "False"], completed.stderr
    assert demo.mdrun.read("demo.md") == demo.rendered


@pytest.mark.kernel
def test_installed_script_with_store_from_environment(demo: DemoRun) -> None:
    """`MDRUN_STORE` names the store when `--store` is absent; the console script exits 0."""
    completed = installed_mdrun(
        ["run", "demo.md"], demo.mdrun.folder, env={"MDRUN_STORE": str(demo.mdrun.store)}
    )
    assert completed.returncode == 0, completed.stderr
    assert "0 executed, 3 cached" in completed.stderr
    assert completed.stdout == ""


@pytest.mark.kernel
def test_store_option_wins_over_environment(
    demo: DemoRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MDRUN_STORE", str(demo.mdrun.store))
    from_environment = demo.mdrun("status", "demo.md", store=False)
    assert from_environment.out.count(": cached") == 3
    elsewhere = demo.mdrun("status", "demo.md", store=tmp_path / "empty-store")
    assert elsewhere.code == 0
    assert elsewhere.out.splitlines() == [
        "demo.md:3: b1: stale (never run)",
        "demo.md:12: b2: stale (never run)",
        "demo.md:17: b3: stale (never run)",
    ]


# -- input and output ---------------------------------------------------------------------------


@pytest.mark.kernel
def test_run_to_another_file_leaves_the_input_alone(demo: DemoRun, tmp_path: Path) -> None:
    runner = copy_of(demo, tmp_path)
    runner.write("plain.md", DEMO)
    with no_kernel_starts():
        completed = runner("run", "plain.md", "-o", "out.md")
    assert completed.code == 0
    assert runner.read("plain.md") == DEMO
    assert runner.read("out.md") == demo.rendered


@pytest.mark.kernel
def test_dash_reads_stdin_and_writes_stdout(demo: DemoRun, tmp_path: Path) -> None:
    runner = copy_of(demo, tmp_path)
    with no_kernel_starts():
        to_stdout = runner("run", "-", stdin=DEMO.encode())
        to_dash = runner("run", "-", "-o", "-", stdin=DEMO.encode())
        to_file = runner("run", "-", "-o", "out.md", stdin=DEMO.encode())
    assert to_stdout.code == to_dash.code == to_file.code == 0
    assert to_stdout.out == to_dash.out == demo.rendered
    assert to_file.out == ""
    assert runner.read("out.md") == demo.rendered
    assert sorted(p.name for p in runner.folder.iterdir()) == ["demo.md", "out.md"]


# -- check and status ---------------------------------------------------------------------------


@pytest.mark.kernel
def test_check_passes_on_an_up_to_date_document(demo: DemoRun) -> None:
    with no_kernel_starts():
        completed = demo.mdrun("check", "demo.md")
    assert (completed.code, completed.out) == (0, "")
    assert demo.mdrun.read("demo.md") == demo.rendered


@pytest.mark.kernel
def test_check_prints_a_diff_and_fails_on_a_stale_document(demo: DemoRun, tmp_path: Path) -> None:
    runner = copy_of(demo, tmp_path)
    edited = demo.rendered.replace("square(5)", "square(6)")
    runner.write("demo.md", edited)
    status = runner("status", "demo.md")
    assert status.out.splitlines() == [
        "demo.md:3: b1: cached",
        "demo.md:12: b2: cached",
        "demo.md:17: b3: stale (its code changed)",
    ]
    completed = runner("check", "demo.md")
    assert completed.code == 1
    assert "demo.md is not up to date" in completed.err
    assert completed.out.startswith("--- demo.md (now)\n+++ demo.md (after mdrun run)\n@@ ")
    changed = [line for line in completed.out.splitlines() if line[:1] in "+-"][2:]
    assert changed == ["-25", "+36"]
    assert runner.read("demo.md") == edited, "check never writes"


@pytest.mark.kernel
def test_status_says_why_each_block_is_stale(mdrun: Mdrun) -> None:
    document = textwrap.dedent(
        """\
        ```python inputs=data.txt
        data = open("data.txt").read().strip()
        ```

        ```python
        words = data.split()
        ```

        ```python
        print(len(words), "words")
        ```
        """
    )
    mdrun.write("data.txt", "one two\n")
    mdrun.write("doc.md", document)
    assert mdrun("status", "doc.md").out.splitlines() == [
        "doc.md:1: b1: stale (never run)",
        "doc.md:5: b2: stale (never run)",
        "doc.md:9: b3: stale (never run)",
    ]
    assert mdrun("run", "doc.md").code == 0
    assert "2 words" in mdrun.read("doc.md")
    rendered = mdrun.read("doc.md")

    mdrun.write("doc.md", rendered.replace("data.split()", "data.split() * 2"))
    assert mdrun("status", "doc.md").out.splitlines() == [
        "doc.md:1: b1: cached",
        "doc.md:5: b2: stale (its code changed)",
        "doc.md:9: b3: stale (an upstream block changed: b2)",
    ]

    mdrun.write("doc.md", rendered)
    mdrun.write("data.txt", "one two three\n")
    assert mdrun("status", "doc.md").out.splitlines() == [
        "doc.md:1: b1: stale (an input file changed)",
        "doc.md:5: b2: stale (an upstream block changed: b1)",
        "doc.md:9: b3: stale (an upstream block changed: b2)",
    ]
    # Editing the data file re-runs the block that declares it, and what follows.
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0
    assert set(report.statuses.values()) == {"executed"}
    assert "3 words" in mdrun.read("doc.md")


# -- gc -----------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_gc_frees_what_no_document_uses_and_keeps_the_rest(demo: DemoRun, tmp_path: Path) -> None:
    runner = copy_of(demo, tmp_path)
    runner.write("demo.md", demo.rendered.replace("square(5)", "square(7)"))
    assert runner("run", "demo.md").code == 0  # the store now holds b3 for 5 and for 7
    dry = runner("gc", "--dry-run", "demo.md")
    assert dry.code == 0
    assert "would free" in dry.err and "1 realizations" in dry.err
    assert "kept 3 realizations in use" in dry.err

    completed = runner("gc", "demo.md")
    assert completed.code == 0
    assert "freed" in completed.err and "1 realizations" in completed.err
    assert " 0 B" not in completed.err
    with no_kernel_starts():
        _, report = runner.run_reported("run", "demo.md")
    assert set(report.statuses.values()) == {"cached"}, "gc removed a result in use"

    # The old version's result was the one freed: running it again executes b3.
    runner.write("old.md", demo.rendered)
    assert runner("status", "old.md").out.splitlines() == [
        "old.md:3: b1: cached",
        "old.md:12: b2: cached",
        "old.md:17: b3: stale (never run)",
    ]

    # With no document named, gc keeps what the recorded documents used at their last run.
    recorded = runner("gc")
    assert recorded.code == 0 and "freed 0 B: 0 realizations" in recorded.err
    everything = runner("gc", "--all")
    assert "freed" in everything.err and "3 realizations" in everything.err
    assert all("stale" in line for line in runner("status", "demo.md").out.splitlines())


@pytest.mark.kernel
def test_gc_keeps_recorded_documents_and_releases_deleted_ones(
    demo: DemoRun, tmp_path: Path
) -> None:
    runner = copy_of(demo, tmp_path)  # its run recorded demo.md's roots
    records = sorted((tmp_path / "store" / "roots").iterdir())
    assert len(records) == 1
    assert str(tmp_path / "doc" / "demo.md") in records[0].read_text()
    runner.write("other.md", demo.rendered.replace("square(5)", "square(6)"))
    assert runner("run", "other.md").code == 0
    assert len(list((tmp_path / "store" / "roots").iterdir())) == 2

    kept = runner("gc")  # no document named: both recorded documents still exist
    assert "freed 0 B: 0 realizations" in kept.err
    with no_kernel_starts():
        _, report = runner.run_reported("run", "demo.md")
    assert set(report.statuses.values()) == {"cached"}

    (tmp_path / "doc" / "other.md").unlink()
    released = runner("gc")  # other.md is gone: its record goes, and its one own result
    assert "freed" in released.err and "1 realizations" in released.err
    assert len(list((tmp_path / "store" / "roots").iterdir())) == 1
    with no_kernel_starts():
        _, report = runner.run_reported("run", "demo.md")
    assert set(report.statuses.values()) == {"cached"}, "gc removed a result in use"


# -- --force --------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_force_reruns_every_block_or_the_named_one(demo: DemoRun, tmp_path: Path) -> None:
    runner = copy_of(demo, tmp_path)
    completed, report = runner.run_reported("run", "demo.md", "--force")
    assert completed.code == 0
    assert set(report.statuses.values()) == {"executed"}
    assert runner.read("demo.md") == demo.rendered

    completed, report = runner.run_reported("run", "demo.md", "--force", "b2")
    assert completed.code == 0
    # b2 runs again and gives the same result, so b3 can be read from the store.
    assert report.statuses == {"b1": "cached", "b2": "executed", "b3": "cached"}

    unknown = runner("run", "demo.md", "--force", "nope")
    assert unknown.code == 2
    assert "no block with id nope" in unknown.err


# -- errors of the user ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "line", "words"),
    [
        ("python colour=red", 3, ["unknown option `colour`"]),
        ("python timeout=soon", 3, ["bad value `soon`", "timeout"]),
        ("python eval=maybe", 3, ["bad value `maybe`", "eval"]),
        ("python session=a/b", 3, ["bad value `a/b`", "session"]),
        ("python bare", 3, ["`bare` is not an option"]),
    ],
)
def test_a_bad_option_is_a_usage_error_naming_file_and_line(
    mdrun: Mdrun, info: str, line: int, words: list[str]
) -> None:
    document = f"# Title\n\n```{info}\nprint(1)\n```\n"
    mdrun.write("bad.md", document)
    for command in ("run", "check", "status"):
        completed = mdrun(command, "bad.md")
        assert completed.code == 2
        assert completed.err.startswith(f"mdrun: error: bad.md:{line}: ")
        assert all(word in completed.err for word in words)
        assert len(completed.err.splitlines()) == 1
    assert mdrun.read("bad.md") == document
    assert not mdrun.store.exists() or not any(mdrun.store.rglob("outputs.json"))


def test_a_bad_front_matter_default_names_its_line(mdrun: Mdrun) -> None:
    document = "---\ntitle: x\nmdrun.timeout: soon\n---\n\n```python\nprint(1)\n```\n"
    mdrun.write("bad.md", document)
    completed = mdrun("run", "bad.md")
    assert completed.code == 2
    assert completed.err.startswith("mdrun: error: bad.md:3: ")
    assert mdrun.read("bad.md") == document


def test_a_non_utf8_document_is_refused_with_its_line(mdrun: Mdrun) -> None:
    data = b"# Title\n\ncaf\xe9\n\n```python\nprint(1)\n```\n"
    mdrun.path("latin1.md").write_bytes(data)
    for command in ("run", "check", "status"):
        completed = mdrun(command, "latin1.md")
        assert completed.code == 2
        assert completed.err.startswith("mdrun: error: latin1.md:3: not UTF-8")
    stdin = mdrun("run", "-", stdin=data)
    assert stdin.code == 2
    assert "<stdin>:3" in stdin.err
    assert stdin.out == ""
    assert mdrun.path("latin1.md").read_bytes() == data


def test_a_language_asked_for_without_kernel_is_a_usage_error(mdrun: Mdrun) -> None:
    document = "Intro\n\n```python\nprint(1)\n```\n\n```cobol\nDISPLAY 'HI'.\n```\n"
    mdrun.write("doc.md", document)
    for asked in (("--languages", "cobol"), ("--languages", "bash, cobol")):
        completed = mdrun("run", "doc.md", *asked)
        assert completed.code == 2
        assert completed.err.startswith("mdrun: error: doc.md:7: block b2: ")
        assert "no Jupyter kernel for language 'cobol'" in completed.err
        assert mdrun.read("doc.md") == document, "nothing runs when the plan is invalid"
    front = "---\nmdrun.languages: [cobol]\n---\n" + document
    mdrun.write("front.md", front)
    completed = mdrun("run", "front.md")
    assert completed.code == 2
    assert completed.err.startswith("mdrun: error: front.md:10: block b2: ")
    assert mdrun("run", "doc.md", "--languages", "bash,,r").code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "a command is needed"),
        (["run"], "the following arguments are required"),
        (["run", "missing.md"], "missing.md: no such file"),
        (["status", "missing.md"], "missing.md: no such file"),
        (["gc", "missing.md"], "missing.md: no such file"),
        (["frobnicate"], "invalid choice"),
        (["run", "doc.md", "--frobnicate", "3"], "unrecognized arguments"),
    ],
)
def test_command_line_mistakes_exit_2(mdrun: Mdrun, args: list[str], message: str) -> None:
    mdrun.write("doc.md", "```python\nprint(1)\n```\n")
    completed = mdrun(*args)
    assert completed.code == 2
    assert message in completed.err
    assert mdrun.read("doc.md") == "```python\nprint(1)\n```\n"


@pytest.mark.kernel
def test_an_unclosed_fence_warns_with_its_line_and_still_runs(mdrun: Mdrun) -> None:
    document = 'Intro\n\n```python\nopen("ran.txt", "w").write("yes")\n'
    mdrun.write("doc.md", document)
    completed, report = mdrun.run_reported("run", "doc.md")
    assert completed.code == 0
    assert "mdrun: warning: doc.md:3: this code fence is never closed" in completed.err
    assert report.statuses == {"b1": "executed"}
    assert mdrun.path("ran.txt").read_text() == "yes"
    assert mdrun.read("doc.md") == document, "a region after it would read as more code"


@pytest.mark.kernel
def test_crlf_document_keeps_crlf(mdrun: Mdrun) -> None:
    document = "# Title\r\n\r\n```python\r\nprint('a')\r\nprint('b')\r\n```\r\n\r\nEnd\r\n"
    mdrun.write("doc.md", document)
    assert mdrun("run", "doc.md").code == 0
    data = mdrun.path("doc.md").read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n")
    assert data == (
        b"# Title\r\n\r\n```python\r\nprint('a')\r\nprint('b')\r\n```\r\n"
        b"<!-- mdrun:output id=b1 -->\r\n``` text\r\na\r\nb\r\n```\r\n<!-- mdrun:end -->\r\n"
        b"\r\nEnd\r\n"
    )
    with no_kernel_starts():
        assert mdrun("check", "doc.md").code == 0


def test_installed_script_reports_usage_errors(tmp_path: Path) -> None:
    document = "```python nonsense=1\nx\n```\n"
    (tmp_path / "bad.md").write_text(document)
    completed = installed_mdrun(
        ["run", "bad.md"], tmp_path, env={"MDRUN_STORE": str(tmp_path / "s")}
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("mdrun: error: bad.md:1: ")
    assert "Traceback" not in completed.stderr
    assert (tmp_path / "bad.md").read_text() == document


@pytest.mark.kernel
def test_an_edit_made_during_a_run_is_not_overwritten(mdrun: Mdrun) -> None:
    document = mdrun.path("doc.md")
    # The block itself stands for the user: it saves the document while mdrun runs it.
    edited = "```python\nprint('edited')\n```\n"
    code = f"from pathlib import Path\nPath({str(document)!r}).write_text({edited!r})\nprint(1)\n"
    mdrun.write("doc.md", f"```python\n{code}```\n")
    completed = mdrun("run", "doc.md")
    assert completed.code == 1
    assert "was edited while its blocks ran" in completed.err
    assert mdrun.read("doc.md") == edited
    assert mdrun("run", "doc.md").code == 0
    assert "edited\n" in mdrun.read("doc.md")
