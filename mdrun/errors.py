"""The one exception hierarchy of mdrun.

Every error a user can cause derives from `MdrunError`, carries an optional source location and
formats itself as `path:line: message`. The command line maps each class to an exit code in one
place (`mdrun.cli`); nothing else decides how an error is shown.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """Where in a user's input an error was found."""

    path: str
    """The file, as the user named it (or `<stdin>`)."""
    line: int | None = None
    """1-based line number, when known."""
    block: str | None = None
    """The block's id, when the error concerns one block of a document."""

    def __str__(self) -> str:
        text = self.path if self.line is None else f"{self.path}:{self.line}"
        return text if self.block is None else f"{text}: block {self.block}"


class MdrunError(Exception):
    """Base of every error mdrun raises on purpose."""

    exit_code: int = 2

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return self.message if self.location is None else f"{self.location}: {self.message}"


class UsageError(MdrunError):
    """The command line was used wrongly (unknown option, missing file...)."""


class FileAccessError(MdrunError):
    """A file or folder the user named cannot be read or written: its folder is missing, it is
    read-only, or it is a file where a folder is needed (or the reverse)."""


class ParseError(MdrunError):
    """A document could not be read: not UTF-8, an invalid block option."""


class ConfigError(MdrunError):
    """A stage's configuration is not canonical JSON, or names something invalid."""


class ReferenceFormatError(ConfigError):
    """A string that should be a derivation or realization reference is malformed."""


class StoreError(MdrunError):
    """The store on disk is missing, of another version, or inconsistent with a request."""


class DamagedRealization(StoreError):
    """A file of a realization does not match what its reference recorded: never used."""

    def __init__(
        self,
        path: str,
        reason: str,
        rref: str | None = None,
        consequence: str = "it is not used, and is built again where needed",
    ) -> None:
        super().__init__(f"damaged realization: {path}: {reason}")
        self.path = path
        self.reason = reason
        self.rref = rref
        self.consequence = consequence
        """What mdrun does about it (for a warning)."""


class RegistryError(StoreError):
    """A derivation was used outside the registry that defines it, or registered wrongly."""


class MatcherError(StoreError):
    """A matcher cannot be satisfied (too many realizations, or none after a build)."""


class BuildError(StoreError):
    """A realizer raised: nothing of that build was stored."""

    def __init__(self, message: str, derivation: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.derivation = derivation
        self.cause = cause

    @property
    def dref(self) -> str:
        """The derivation that failed (the name the seeds use)."""
        return self.derivation

    @property
    def exception(self) -> BaseException | None:
        """The realizer's own exception (the name the seeds use)."""
        return self.cause


class PromiseError(BuildError):
    """A realizer finished without creating every path its config promised."""

    def __init__(self, message: str, derivation: str, missing: list[str]) -> None:
        super().__init__(message, derivation)
        self.missing = missing


class FetchError(BuildError):
    """A download failed, or its content did not have the declared hash."""


class NoSpaceError(MdrunError):
    """A write failed because the disk (or a quota, or a file size limit) is full."""


NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""A full disk, a full quota, a file size limit: the same remedy for the user."""


def os_error(err: OSError, path: object, doing: str) -> MdrunError:
    """An OSError as mdrun reports it: what it was doing, the path, why; a full disk says so.

    Full disks are NoSpaceError; the rest StoreError (the store is where mdrun writes)."""
    reason = err.strerror or str(err)
    if err.errno in NO_SPACE_ERRNOS:
        return NoSpaceError(f"{doing}: {path}: {reason} (free some space and run again)")
    return StoreError(f"{doing}: {path}: {reason}")


class InternalError(MdrunError):
    """mdrun broke one of its own rules (a bug): the message says which."""

    exit_code = 3


class ExportError(MdrunError):
    """pandoc or nbformat could not produce an exported document."""


class ExecutionError(MdrunError):
    """A block raised inside its kernel, was interrupted, or lost its kernel.

    Not raised: a failed block is a normal outcome of a run. It is the failure's description,
    built once from the kernel's error message (`block_result.execution_error`): `message` is
    the one line shown for it, `ename`, `evalue` and `traceback` what the kernel said."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        location: Location | None = None,
        *,
        ename: str = "",
        evalue: str = "",
        traceback: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, location)
        self.ename = ename
        """The exception's class name ("" when the kernel sent no error)."""
        self.evalue = evalue
        """The exception's value."""
        self.traceback = traceback
        """The traceback's lines, as the kernel sent them."""


class KernelError(MdrunError):
    """A kernel is missing, could not start, or died."""

    exit_code = 1


class KernelNotFound(KernelError):
    """No installed Jupyter kernel runs the requested language or name."""

    exit_code = 2


class KernelDied(KernelError):
    """The kernel process ended while a block was running."""


class KernelPortsTaken(KernelDied):
    """A kernel being started could not have the ports chosen for it: another process took them
    between their choice and the kernel's bind, so what answers there is not this kernel."""
