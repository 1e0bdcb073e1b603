"""`mdrun cache keygen` and the remote cache's usage errors (no kernel)."""

from __future__ import annotations

import stat
from pathlib import Path

from mdrun.core.signing import SigningKey, parse_public_key
from tests.document.conftest import Mdrun, no_kernel_starts


def test_keygen_writes_a_private_key_for_its_owner_and_prints_the_public_key(
    mdrun: Mdrun,
) -> None:
    completed = mdrun("cache", "keygen", "ci.key")
    assert completed.code == 0, completed.err
    private = mdrun.path("ci.key")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    public = parse_public_key(completed.out)
    assert SigningKey.load(private).public_key == public
    assert mdrun.path("ci.key.pub").read_text().strip() == public.text
    assert "MDRUN_TRUSTED_KEYS" in completed.err


def test_keygen_never_overwrites_a_key(mdrun: Mdrun) -> None:
    mdrun.write("ci.key", "precious")
    completed = mdrun("cache", "keygen", "ci.key")
    assert completed.code == 2
    assert "ci.key: a file is already there" in completed.err
    assert mdrun.read("ci.key") == "precious"


def test_push_without_a_cache_is_a_usage_error(mdrun: Mdrun) -> None:
    mdrun.write("doc.md", "# Nothing to run\n")
    completed = mdrun("cache", "push", "doc.md")
    assert completed.code == 2
    assert "no cache is configured" in completed.err


def test_cache_needs_a_command(mdrun: Mdrun) -> None:
    completed = mdrun("cache")
    assert completed.code == 2 and "push or keygen" in completed.err


def test_a_cache_named_in_pyproject_is_used(mdrun: Mdrun, tmp_path: Path) -> None:
    mdrun.write("pyproject.toml", '[tool.mdrun]\ncache = "shared"\n')
    mdrun.write("doc.md", "# Text only\n")
    completed = mdrun("cache", "push", "doc.md")
    assert completed.code == 0, completed.err
    assert f"0 realizations pushed to {mdrun.path('shared')}" in completed.err


def test_a_bad_signing_key_is_refused_before_anything_is_pushed(mdrun: Mdrun) -> None:
    mdrun.write("doc.md", "# Text only\n")
    mdrun.write("bad.key", "not a key")
    completed = mdrun("cache", "push", "doc.md", "--cache", "cache", "--sign-with", "bad.key")
    assert completed.code == 2
    assert "bad.key: not an unencrypted PEM private key" in completed.err
    assert not mdrun.path("cache").exists()


def test_push_options_are_checked_before_anything_runs(mdrun: Mdrun) -> None:
    mdrun.write("doc.md", "```python\nprint(1)\n```\n")
    mdrun.write("bad.key", "not a key")
    for arguments, message in [
        (("--push",), "--push: no cache is configured"),
        (("--sign-with", "bad.key", "--cache", "cache"), "--sign-with signs what --push uploads"),
        (("--push", "--cache", "cache", "--sign-with", "bad.key"), "not an unencrypted PEM"),
        (("--push", "--cache", "http://127.0.0.1:9/cache"), "is read-only"),
    ]:
        with no_kernel_starts():
            completed = mdrun("run", "doc.md", *arguments)
        assert completed.code == 2, arguments
        assert message in completed.err
    assert "mdrun:output" not in mdrun.read("doc.md")


def test_the_snapshot_fetched_on_demand_is_the_one_blocks_store() -> None:
    from fnmatch import fnmatchcase

    from mdrun.document import record_files, remote_cache

    def on_demand(name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in remote_cache.FETCHED_ON_DEMAND)

    assert on_demand(record_files.SNAPSHOT_FILE)
    assert on_demand("_snapshot." + "0" * 32 + ".pickle")
    assert not on_demand("outputs.json") and not on_demand(record_files.STATE_FILE)
