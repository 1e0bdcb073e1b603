"""A remote cache shared between stores: CI runs and pushes, a fresh store reads.

Each test has two stores (two machines) and one cache folder; the cache is checked on the way
in (a flipped byte is refused, the block built here), and a session snapshot from it is loaded
only when it is needed and its realization is signed by a trusted key.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mdrun.core.signing import generate_key_pair
from tests.core.remote_servers import http_server, s3_server
from tests.document.conftest import Mdrun, no_kernel_starts

DOCUMENT = """\
# Shared

```python snapshot=true
numbers = [n * n for n in range(10)]
print(sum(numbers))
```

```python
print(max(numbers))
```
"""

EDITED = DOCUMENT.replace("print(max(numbers))", "print(min(numbers), max(numbers))")

pytestmark = pytest.mark.kernel


def downloads(stderr: str) -> tuple[int, int]:
    """(bytes of outputs and records, bytes of snapshots) a command said it fetched."""
    found = re.search(r"(\d+) bytes of outputs and records, (\d+) bytes of snapshots", stderr)
    assert found is not None, stderr
    return int(found.group(1)), int(found.group(2))


@pytest.fixture
def ci(tmp_path: Path) -> Mdrun:
    """The machine that runs the document first and pushes."""
    return Mdrun(tmp_path / "ci", tmp_path / "ci-store")


@pytest.fixture
def laptop(tmp_path: Path) -> Mdrun:
    """A machine with an empty store that reads the cache."""
    return Mdrun(tmp_path / "laptop", tmp_path / "laptop-store")


def pushed(ci: Mdrun, cache: Path, *extra: str) -> str:
    """Run the document on CI with --push; the document it wrote."""
    ci.write("doc.md", DOCUMENT)
    completed = ci("run", "doc.md", "--cache", str(cache), "--push", *extra)
    assert completed.code == 0, completed.err
    assert "realizations pushed to" in completed.err
    return ci.read("doc.md")


def test_a_fresh_store_runs_all_cached_from_the_cache_fetching_no_snapshot(
    ci: Mdrun, laptop: Mdrun, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    expected = pushed(ci, cache)
    snapshots = list((tmp_path / "ci-store").rglob("_snapshot.*"))
    assert snapshots, "the document must leave a snapshot for this test to mean anything"
    laptop.write("doc.md", DOCUMENT)
    with no_kernel_starts():
        completed, report = laptop.run_reported("run", "doc.md", "--cache", str(cache))
    assert completed.code == 0, completed.err
    assert report.with_status("cached") == ["b1", "b2"]
    assert laptop.read("doc.md") == expected
    outputs, snapshot_bytes = downloads(completed.err)
    assert outputs > 0 and snapshot_bytes == 0
    assert not list((tmp_path / "laptop-store").rglob("_snapshot.*"))


def test_a_flipped_byte_in_a_cached_blob_is_refused_and_the_block_built_here(
    ci: Mdrun, laptop: Mdrun, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    expected = pushed(ci, cache)
    outputs = [
        path
        for path in (cache / "blobs").iterdir()
        if b'"outputs"' in (head := path.read_bytes()[:2000]) and b'"285\\n"' in head
    ]
    assert len(outputs) == 1  # the first block's outputs.json (it prints 285)
    data = bytearray(outputs[0].read_bytes())
    data[data.index(b'"285\\n"') + 1] ^= 1
    outputs[0].write_bytes(bytes(data))
    laptop.write("doc.md", DOCUMENT)
    completed, report = laptop.run_reported("run", "doc.md", "--cache", str(cache))
    assert completed.code == 0, completed.err
    assert f"damaged realization: {cache}" in completed.err
    assert "outputs.json: changed" in completed.err
    # Left on the cache on purpose.
    assert not re.search(r"_snapshot\.\S*: missing", completed.err)
    assert report.statuses["b1"] == "executed"
    assert laptop.read("doc.md") == expected


@pytest.mark.parametrize("signing", ["unsigned", "signed by an untrusted key"])
def test_an_untrusted_snapshot_is_not_loaded_the_session_replays_and_says_so_once(
    ci: Mdrun, laptop: Mdrun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signing: str
) -> None:
    cache = tmp_path / "cache"
    trusted = generate_key_pair(tmp_path / "trusted.key")
    extra: tuple[str, ...] = ()
    if signing != "unsigned":
        generate_key_pair(tmp_path / "other.key")
        extra = ("--sign-with", str(tmp_path / "other.key"))
    pushed(ci, cache, *extra)
    monkeypatch.setenv("MDRUN_TRUSTED_KEYS", trusted.text)
    laptop.write("doc.md", EDITED)
    completed, report = laptop.run_reported("run", "doc.md", "--cache", str(cache))
    assert completed.code == 0, completed.err
    assert report.statuses == {"b1": "cached", "b2": "executed"}
    assert completed.err.count("snapshots from the cache") == 1
    assert "restored from snapshots" not in completed.err
    assert downloads(completed.err)[1] == 0
    fresh = Mdrun(tmp_path / "fresh", tmp_path / "fresh-store")
    fresh.write("doc.md", EDITED)
    assert fresh("run", "doc.md").code == 0
    assert laptop.read("doc.md") == fresh.read("doc.md")


def test_a_snapshot_signed_by_a_trusted_key_is_fetched_when_needed_and_loaded(
    ci: Mdrun, laptop: Mdrun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    key = generate_key_pair(tmp_path / "ci.key")
    pushed(ci, cache, "--sign-with", str(tmp_path / "ci.key"))
    monkeypatch.setenv("MDRUN_TRUSTED_KEYS", key.text)
    laptop.write("doc.md", EDITED)
    completed, report = laptop.run_reported("run", "doc.md", "--cache", str(cache))
    assert completed.code == 0, completed.err
    assert report.statuses == {"b1": "cached", "b2": "executed"}
    assert "snapshots from the cache" not in completed.err
    assert "1 state restored from snapshots" in completed.err
    assert downloads(completed.err)[1] > 0
    assert list((tmp_path / "laptop-store").rglob("_snapshot.*"))
    assert "0 81" in laptop.read("doc.md")


def test_a_flipped_byte_in_a_signed_snapshot_is_refused_and_the_session_replays(
    ci: Mdrun, laptop: Mdrun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    key = generate_key_pair(tmp_path / "ci.key")
    pushed(ci, cache, "--sign-with", str(tmp_path / "ci.key"))
    # A file of variables (the index lists it with its digest, and the manifest covers both).
    snapshot = next((tmp_path / "ci-store").rglob("_snapshot.*.pickle")).read_bytes()
    blob = next(path for path in (cache / "blobs").iterdir() if path.read_bytes() == snapshot)
    blob.write_bytes(snapshot[:-1] + bytes([snapshot[-1] ^ 1]))
    monkeypatch.setenv("MDRUN_TRUSTED_KEYS", key.text)
    laptop.write("doc.md", EDITED)
    completed, report = laptop.run_reported("run", "doc.md", "--cache", str(cache))
    assert completed.code == 0, completed.err
    assert f"damaged realization: {cache}: " in completed.err
    assert re.search(r"_snapshot\.[0-9a-f]{32}\.pickle: its content does not match", completed.err)
    assert "restored from snapshots" not in completed.err
    assert report.statuses == {"b1": "cached", "b2": "executed"}
    assert "0 81" in laptop.read("doc.md")


def test_a_cache_on_a_real_s3_server_is_pushed_to_and_read_from(
    ci: Mdrun, laptop: Mdrun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with s3_server(monkeypatch) as server:
        cache = server.make_bucket("team") + "/mdrun"
        ci.write("doc.md", DOCUMENT)
        assert ci("run", "doc.md", "--cache", cache, "--push").code == 0
        laptop.write("doc.md", DOCUMENT)
        with no_kernel_starts():
            completed, report = laptop.run_reported("run", "doc.md", "--cache", cache)
    assert completed.code == 0, completed.err
    assert report.with_status("cached") == ["b1", "b2"]
    assert f"from the cache {cache}" in completed.err
    assert laptop.read("doc.md") == ci.read("doc.md")


def test_an_http_cache_is_read_and_refuses_a_push(
    ci: Mdrun, laptop: Mdrun, tmp_path: Path
) -> None:
    expected = pushed(ci, tmp_path / "cache")
    laptop.write("doc.md", DOCUMENT)
    with http_server(tmp_path / "cache") as url:
        with no_kernel_starts():
            completed, report = laptop.run_reported("run", "doc.md", "--cache", url)
        assert completed.code == 0, completed.err
        assert report.with_status("cached") == ["b1", "b2"]
        assert laptop.read("doc.md") == expected
        refused = laptop("cache", "push", "doc.md", "--cache", url)
    assert refused.code == 2
    assert f"the cache {url} is read-only" in refused.err


def test_cache_push_uploads_what_the_document_uses_signed_once(
    ci: Mdrun, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    ci.write("doc.md", DOCUMENT)
    assert ci("run", "doc.md").code == 0
    key = generate_key_pair(tmp_path / "ci.key")
    key_file = str(tmp_path / "ci.key")
    push = ("cache", "push", "doc.md", "--cache", str(cache), "--sign-with", key_file)
    first = ci(*push)
    assert first.code == 0, first.err
    assert f"2 realizations pushed to {cache}, 2 signatures added by key {key.key_id}" in first.err
    again = ci(*push)
    assert "0 realizations pushed" in again.err and "(2 already there), 0 signatures" in again.err
    signatures = list(cache.rglob("*.signatures"))
    assert len(signatures) == 2
    assert all(path.read_text().startswith(key.key_id) for path in signatures)


def test_a_cache_that_cannot_be_reached_is_said_once_and_the_blocks_run_here(
    laptop: Mdrun,
) -> None:
    laptop.write("doc.md", DOCUMENT)
    completed = laptop("run", "doc.md", "--cache", "http://127.0.0.1:9/cache")
    assert completed.code == 0, completed.err
    assert completed.err.count("mdrun: warning: http://127.0.0.1:9/cache: cannot read") == 1
    assert "blocks are run here instead" in completed.err
    assert "2 executed" in completed.err
