"""The corpus runner's pure parts: the manifest, the digest check, safe unpacking and the verdict.

No network and no kernel: the archives are written by the tests themselves.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile
from pathlib import Path

import pytest

from tests.corpus.checks import Outcome, Step, inserts_only, judge
from tests.corpus.manifest import Document, ManifestError, Package, load_manifest, parse_manifest
from tests.corpus.results import Row, render_results
from tests.corpus.sdist import SdistError, extract, sha256_of, verify

MANIFEST = """
[environment]
requirements = ["attrs==26.1.0"]

[[package]]
name = "demo"
version = "1.0"
sdist = "demo-1.0.tar.gz"
sha256 = "{sha}"

[[package.document]]
member = "demo-1.0/README.md"
format = "Markdown README"
blocks = 2
expected_failures = ["b2"]
"""
SHA = "0" * 64


def test_the_shipped_manifest_is_valid() -> None:
    manifest = load_manifest()
    assert len(manifest.documents()) >= 20
    assert all(package.requirement.count("==") == 1 for package in manifest.packages)


def test_manifest_values() -> None:
    manifest = parse_manifest(MANIFEST.format(sha=SHA))
    [(package, document)] = manifest.documents()
    assert (package.requirement, document.name) == ("demo==1.0", "README.md")
    assert document.expected_failures == ("b2",)
    assert document.reruns == ""  # strict unless the manifest says why it re-runs
    text = MANIFEST.format(sha=SHA).replace("blocks = 2", 'blocks = 2\nreruns = "a logger"')
    assert parse_manifest(text).packages[0].documents[0].reruns == "a logger"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (f'sha256 = "{SHA}"', 'sha256 = "abc"', "sha256"),
        ('member = "demo-1.0/README.md"', 'member = "demo-1.0/../x.md"', "member"),
        ('member = "demo-1.0/README.md"', 'member = "other/README.md"', "member"),
        ('sdist = "demo-1.0.tar.gz"', 'sdist = "demo-1.0.zip"', "sdist"),
        ("blocks = 2", 'blocks = "2"', "blocks"),
        ("blocks = 2", 'blocks = 2\nreruns = ""', "reruns"),
        ("blocks = 2", "blocks = 2\nreruns = true", "reruns"),
    ],
)
def test_manifest_errors_name_the_field(old: str, new: str, message: str) -> None:
    text = MANIFEST.format(sha=SHA).replace(old, new)
    with pytest.raises(ManifestError, match=message):
        parse_manifest(text)


def _archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as bundle:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return path


def test_a_digest_that_differs_is_refused(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "demo-1.0.tar.gz", {"demo-1.0/README.md": b"# demo\n"})
    manifest = parse_manifest(MANIFEST.format(sha=sha256_of(archive)))
    verify(archive, manifest.packages[0])
    archive.write_bytes(archive.read_bytes() + b"\0")
    with pytest.raises(SdistError, match="sha256"):
        verify(archive, manifest.packages[0])


def test_extract_gives_the_top_folder(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "demo-1.0.tar.gz", {"demo-1.0/docs/a.md": b"text\n"})
    top = extract(archive, tmp_path / "out")
    assert (top / "docs" / "a.md").read_text() == "text\n"


def test_extract_refuses_paths_out_of_the_folder(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "evil.tar.gz", {"../outside.md": b"x"})
    with pytest.raises(SdistError, match="cannot unpack"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "outside.md").exists()


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("a\nb\nc\n", True),
        ("a\nout 1\nb\nout 2\nc\nend\n", True),
        ("a\nc\n", False),
        ("a\nB\nc\n", False),
        ("b\na\nc\n", False),
        ("a\nb\nc", False),
    ],
)
def test_inserts_only(rendered: str, expected: bool) -> None:
    assert inserts_only("a\nb\nc\n", rendered) is expected


def _document(failures: tuple[str, ...] = ()) -> Document:
    document = parse_manifest(MANIFEST.format(sha=SHA)).packages[0].documents[0]
    return dataclasses.replace(document, expected_failures=failures)


def _records(*statuses: str) -> tuple[dict[str, object], ...]:
    return tuple(
        {"id": f"b{index}", "status": status, "seconds": 0.1 if status != "cached" else 0.0}
        for index, status in enumerate(statuses, start=1)
    )


def test_a_good_outcome_passes() -> None:
    original, rendered = "```python\n1\n```\n", "```python\n1\n```\nout\n"
    outcome = Outcome(
        original,
        Step(0, "", "", _records("executed", "executed")),
        rendered,
        Step(0, "", "", _records("cached", "cached")),
        rendered,
        Step(0, "", ""),
    )
    verdict = judge(_document(), outcome)
    assert verdict.passed, verdict.problems


def test_an_mdrun_error_fails_and_a_second_run_that_executes_is_not_idempotent() -> None:
    refused = Outcome("a\n", Step(2, "", "x.md:1: not an option"), "a\n")
    verdict = judge(_document(), refused)
    assert "mdrun error: exit 2" in verdict.problems[0]
    assert verdict.idempotent is None and verdict.check_passed is None
    rerun = Outcome(
        "a\n",
        Step(0, "", "", _records("executed", "executed")),
        "a\nout\n",
        Step(0, "", "", _records("executed", "cached")),
        "a\nout\n",
        Step(0, "", ""),
    )
    verdict = judge(_document(), rerun)
    assert verdict.idempotent is False
    assert "the second run executed b1" in verdict.problems


def test_expected_failures_allow_exit_1_only_for_those_blocks() -> None:
    outcome = Outcome(
        "a\n",
        Step(1, "", "", _records("executed", "failed")),
        "a\nout\n",
        Step(1, "", "", _records("cached", "failed")),
        "a\nout\n",
        Step(1, "", ""),
    )
    assert judge(_document(("b2",)), outcome).passed
    verdict = judge(_document(("b1",)), outcome)
    assert any("failed blocks" in problem for problem in verdict.problems)


def _declaring(reruns: str = "", failures: tuple[str, ...] = ("b2",)) -> Document:
    return dataclasses.replace(_document(failures), blocks=3, reruns=reruns)


def _rerun_outcome(check_exit: int = 1, changed: bool = True) -> Outcome:
    """b2 fails each time, b3 after it runs again and, with `changed`, writes other output."""
    return Outcome(
        "a\n",
        Step(1, "", "", _records("executed", "failed", "executed")),
        "a\nout 1\n",
        Step(1, "", "", _records("cached", "failed", "executed")),
        "a\nout 2\n" if changed else "a\nout 1\n",
        Step(check_exit, "-out 2\n+out 3\n" if changed else "", ""),
    )


def test_declared_reruns_accept_the_second_run_and_the_diff_only() -> None:
    strict = judge(_declaring(), _rerun_outcome())
    assert not strict.passed
    assert "the second run changed the document" in strict.problems
    assert "check printed a diff" in strict.problems
    declared = _declaring("a logger")
    verdict = judge(declared, _rerun_outcome())
    assert verdict.passed, verdict.problems
    # The table still says what happened: not idempotent, check not clean.
    assert verdict.idempotent is False and verdict.check_passed is False
    assert verdict.accepted == (
        "the second run changed the document",
        "the second run executed b3",
        "check printed a diff",
    )
    # A wrong exit code, or a block that fails unexpectedly, is never accepted.
    assert "check exit 0, expected 1" in judge(declared, _rerun_outcome(check_exit=0)).problems
    unexpected = _declaring("a logger", failures=())
    assert any(
        "failed blocks" in problem for problem in judge(unexpected, _rerun_outcome()).problems
    )


def test_declared_reruns_that_no_longer_happen_fail() -> None:
    declared = _declaring("a logger")
    outcome = dataclasses.replace(
        _rerun_outcome(changed=False),
        second=Step(1, "", "", _records("cached", "failed", "cached")),
    )
    verdict = judge(declared, outcome)
    assert verdict.problems == ("declares re-runs, but the second run re-ran and changed nothing",)


def test_the_table_shows_declared_reruns_apart_from_plain_passes() -> None:
    declared = _declaring("a logger")
    package = Package("demo", "1.0", "demo-1.0.tar.gz", SHA, (declared,))
    rows = [Row(package, declared, judge(declared, _rerun_outcome(changed=False)), 1.0)]
    text = render_results(rows, "heading\n")
    assert "1 of 1 documents pass, 1 of them with declared re-runs." in text
    assert "| pass (re-runs: a logger): the second run executed b3 |" in text
    assert "| **no** | yes | 1 |" in text  # idempotent: no; check: yes; exit 1
