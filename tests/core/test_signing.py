"""Signatures of realizations: keys made by keygen, signatures that verify only for the key,
the realization and the manifest they were made for."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mdrun.core.refs import RRef
from mdrun.core.signing import (
    SigningKey,
    generate_key_pair,
    parse_public_key,
    signers,
)
from mdrun.errors import ConfigError, FileAccessError

RREF = RRef("rref:" + "a" * 32 + "-" + "b" * 32 + "-block")
OTHER = RRef("rref:" + "a" * 32 + "-" + "c" * 32 + "-block")
MANIFEST = b"file outputs.json " + b"0" * 64 + b"\n"


def test_keygen_writes_a_private_key_only_its_owner_reads_and_a_public_key_line(
    tmp_path: Path,
) -> None:
    public = generate_key_pair(tmp_path / "ci.key")
    assert stat.S_IMODE((tmp_path / "ci.key").stat().st_mode) == 0o600
    text = (tmp_path / "ci.key.pub").read_text().strip()
    assert parse_public_key(text) == public
    assert SigningKey.load(tmp_path / "ci.key").public_key == public


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    generate_key_pair(tmp_path / "ci.key")
    before = (tmp_path / "ci.key").read_bytes()
    with pytest.raises(FileAccessError, match="never overwrites"):
        generate_key_pair(tmp_path / "ci.key")
    assert (tmp_path / "ci.key").read_bytes() == before


def test_a_signature_verifies_for_its_key_realization_and_manifest_only(tmp_path: Path) -> None:
    generate_key_pair(tmp_path / "one.key")
    generate_key_pair(tmp_path / "two.key")
    one = SigningKey.load(tmp_path / "one.key")
    two = SigningKey.load(tmp_path / "two.key")
    line = (one.signature_line(RREF, MANIFEST) + "\n").encode()
    assert signers(line, RREF, MANIFEST, [one.public_key]) == [one.public_key]
    assert signers(line, RREF, MANIFEST, [two.public_key]) == []
    assert signers(line, OTHER, MANIFEST, [one.public_key]) == []
    assert signers(line, RREF, MANIFEST.replace(b"0", b"1"), [one.public_key]) == []
    assert signers(None, RREF, MANIFEST, [one.public_key]) == []


def test_a_signature_line_claiming_a_trusted_key_id_but_made_by_another_key_is_refused(
    tmp_path: Path,
) -> None:
    generate_key_pair(tmp_path / "one.key")
    generate_key_pair(tmp_path / "two.key")
    one = SigningKey.load(tmp_path / "one.key")
    two = SigningKey.load(tmp_path / "two.key")
    line = two.signature_line(RREF, MANIFEST)
    forged = line.replace(two.public_key.key_id, one.public_key.key_id)
    assert signers(forged.encode(), RREF, MANIFEST, [one.public_key]) == []
    assert signers(b"garbage\n" + forged.encode(), RREF, MANIFEST, [one.public_key]) == []


@pytest.mark.parametrize(
    "text",
    ["ssh-ed25519 AAAA", "mdrun-ed25519:not base64!", "mdrun-ed25519:" + "QUJD"],
)
def test_a_malformed_public_key_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigError, match="not an mdrun public key"):
        parse_public_key(text)


def test_a_signing_key_that_is_not_one_is_refused_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "bad.key").write_text("hello")
    with pytest.raises(ConfigError, match=r"bad\.key"):
        SigningKey.load(tmp_path / "bad.key")
