"""Signed realizations: ed25519 keys that vouch for what a remote cache holds.

A snapshot is a pickle, that is code: one that came from a remote cache is loaded only when its
realization is signed by a key the user trusts, as Nix signs binary caches. A signature covers
the realization's reference and the SHA-256 of its manifest, so it vouches for every entry the
manifest lists, and cannot be moved to another derivation. Keys are kept as text: a private key
as PKCS#8 PEM (a file only its owner can read), a public key as one line
`mdrun-ed25519:<base64 of the 32 raw bytes>`; a key id is the start of the public key's SHA-256.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mdrun.core.hashing import sha256_hex
from mdrun.core.refs import RRef
from mdrun.errors import ConfigError, FileAccessError, Location

PUBLIC_KEY_PREFIX = "mdrun-ed25519:"
_MESSAGE_HEADER = b"mdrun realization signature 1\n"


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A key whose signatures a user may trust."""

    raw: bytes
    """The 32 bytes of an ed25519 public key."""

    @property
    def key_id(self) -> str:
        """A short name for the key, written beside each signature it made."""
        return sha256_hex(self.raw)[:16]

    @property
    def text(self) -> str:
        """The key as users write it in their configuration."""
        return PUBLIC_KEY_PREFIX + base64.b64encode(self.raw).decode("ascii")

    def verifies(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is this key's signature of `message`."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def parse_public_key(text: str) -> PublicKey:
    """A public key from its text form; ConfigError when it is not one."""
    value = text.strip()
    if not value.startswith(PUBLIC_KEY_PREFIX):
        raise ConfigError(f"not an mdrun public key (expected {PUBLIC_KEY_PREFIX}...): {value!r}")
    try:
        raw = base64.b64decode(value[len(PUBLIC_KEY_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"not an mdrun public key (bad base64): {value!r}") from None
    if len(raw) != 32:
        raise ConfigError(f"not an mdrun public key (an ed25519 key has 32 bytes): {value!r}")
    return PublicKey(raw)


def parse_public_keys(texts: Iterable[str]) -> list[PublicKey]:
    """Several public keys (blank entries skipped)."""
    return [parse_public_key(text) for text in texts if text.strip()]


def signed_message(rref: RRef, manifest: bytes) -> bytes:
    """What a signature of a realization covers."""
    return _MESSAGE_HEADER + f"{rref}\n{sha256_hex(manifest)}\n".encode("ascii")


class SigningKey:
    """A private key, loaded from its file, that signs realizations on push."""

    def __init__(self, private_bytes: bytes, path: str = "<key>") -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            PublicFormat,
            load_pem_private_key,
        )

        try:
            key = load_pem_private_key(private_bytes, password=None)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{path}: not an unencrypted PEM private key ({err})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path}: not an ed25519 key (make one with `mdrun cache keygen`)")
        self._key = key
        self.public_key = PublicKey(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Read a private key file."""
        try:
            data = path.read_bytes()
        except OSError as err:
            raise FileAccessError(
                f"cannot read the signing key: {err.strerror}", Location(str(path))
            ) from err
        return cls(data, str(path))

    def signature_line(self, rref: RRef, manifest: bytes) -> str:
        """`<key id> <base64 signature>`: one line of a realization's signatures."""
        signature = self._key.sign(signed_message(rref, manifest))
        return f"{self.public_key.key_id} {base64.b64encode(signature).decode('ascii')}"


def generate_key_pair(path: Path) -> PublicKey:
    """Write a new private key to `path` (mode 0600, never over an existing file) and its
    public key to `path.pub`; return the public key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    public = PublicKey(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    public_path = path.with_name(path.name + ".pub")
    for target in (path, public_path):
        if os.path.lexists(target):
            raise FileAccessError("a file is already there: keygen never overwrites a key",
                                  Location(str(target)))  # fmt: skip
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(private)
        public_path.write_text(public.text + "\n", encoding="ascii")
    except OSError as err:
        raise FileAccessError(f"cannot write the key: {err.strerror}", Location(str(path))) from err
    return public


def signers(
    signatures: bytes | None, rref: RRef, manifest: bytes, trusted: Sequence[PublicKey]
) -> list[PublicKey]:
    """The trusted keys that signed this realization (lines that do not verify are ignored)."""
    if not signatures or not trusted:
        return []
    by_id = {key.key_id: key for key in trusted}
    message = signed_message(rref, manifest)
    found = []
    for line in signatures.decode("ascii", "replace").splitlines():
        key_id, _, encoded = line.strip().partition(" ")
        key = by_id.get(key_id)
        if key is None or key in found:
            continue
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if key.verifies(message, signature):
            found.append(key)
    return found
