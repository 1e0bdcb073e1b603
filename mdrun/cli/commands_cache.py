"""The command line's remote cache: `--cache`, `--push`, `--sign-with`, `mdrun cache ...`.

A command's store reads through the cache after its own folder (a substituter); `--push` and
`mdrun cache push` upload what documents use, signed with `--sign-with`; `mdrun cache keygen`
makes a signing key. Kept apart from `cli` so that the rest of the command line does not change
with it; `cli` registers these options and calls `attach_cache` and `after_command`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdrun.errors import UsageError

if TYPE_CHECKING:
    from mdrun.core.remote import FsspecBackend
    from mdrun.core.store import Store
    from mdrun.document.cache_settings import CacheSettings
    from mdrun.document.remote_cache import CacheTier, PushReport

EXIT_OK = 0


def add_cache_option(parser: argparse.ArgumentParser, default: object) -> None:
    """`--cache URL`, taken by every command (before or after its name)."""
    parser.add_argument(
        "--cache",
        metavar="URL",
        default=default,
        help="a remote cache to read results from before running blocks: a folder, s3://, "
        "gs:// or http(s):// (read-only) (default: $MDRUN_CACHE, else [tool.mdrun] cache in "
        "pyproject.toml; '' for none)",
    )


def add_push_options(parser: argparse.ArgumentParser) -> None:
    """`--push` and `--sign-with` for the commands that run blocks."""
    parser.add_argument(
        "--push",
        action="store_true",
        help="after the run, upload the results the document uses to the remote cache",
    )
    _add_sign_with(parser)


def _add_sign_with(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sign-with",
        metavar="KEYFILE",
        help="sign what is pushed with this private key (from `mdrun cache keygen`), so that "
        "readers who trust its public key load its session snapshots",
    )


def add_cache_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """`mdrun cache push` and `mdrun cache keygen`."""
    from mdrun.cli.common import add_reading_options

    cache_parser = subparsers.add_parser(
        "cache", help="share results through a remote cache: push, keygen"
    )
    commands = cache_parser.add_subparsers(
        dest="cache_command", metavar="CACHE_COMMAND", parser_class=type(cache_parser)
    )
    push_parser = commands.add_parser(
        "push", help="upload the results these documents use to the remote cache (--cache)"
    )
    push_parser.add_argument(
        "documents", nargs="+", metavar="document", help="documents, or folders to search"
    )
    _add_sign_with(push_parser)
    add_reading_options(push_parser)
    keygen_parser = commands.add_parser(
        "keygen", help="write a new signing key (KEYFILE, mode 0600) and its public key"
    )
    keygen_parser.add_argument("keyfile", help="where to write the private key (KEYFILE.pub: "
                               "the public key)")  # fmt: skip
    cache_parser.set_defaults(handler=command_cache)


def command_cache(arguments: argparse.Namespace) -> int:
    """`mdrun cache push|keygen`."""
    if arguments.cache_command == "keygen":
        return _command_keygen(Path(arguments.keyfile))
    if arguments.cache_command != "push":
        raise UsageError("cache: a command is needed: push or keygen (see mdrun cache --help)")
    from mdrun.cli.common import open_store
    from mdrun.document.batch import find_documents

    documents = find_documents(arguments.documents)
    store = open_store(arguments)
    backend = _cache_of(arguments)
    if backend is None:
        raise UsageError("cache push: no cache is configured (--cache URL, $MDRUN_CACHE, or "
                         "[tool.mdrun] cache in pyproject.toml)")  # fmt: skip
    _push(arguments, store, backend, documents)
    return EXIT_OK


def _command_keygen(path: Path) -> int:
    from mdrun.core.signing import generate_key_pair

    public = generate_key_pair(path)
    print(public.text)
    print(
        f"mdrun: wrote the private key {path} (keep it secret: sign with --sign-with {path}) and "
        f"the public key {path}.pub; readers trust it with MDRUN_TRUSTED_KEYS or "
        "[tool.mdrun] trusted-keys",
        file=sys.stderr,
    )
    return EXIT_OK


def attach_cache(store: Store, arguments: argparse.Namespace) -> None:
    """Make the configured remote cache the store's substituter (nothing when none is); one
    cache object per command, however many stores it opens. What `--push` and `--sign-with`
    need is checked here, before anything runs."""
    backend: CacheTier | None = getattr(arguments, "cache_backend", None)
    if backend is not None:
        from mdrun.document.remote_cache import attach

        attach(store, backend)
        return
    settings = _settings(arguments)
    if settings.url is not None:
        # Imported only with a cache: an up-to-date document is reported without parsing.
        from mdrun.document.remote_cache import open_cache

        backend = arguments.cache_backend = open_cache(store, settings, _print_notice)
    _check_push_options(arguments, backend)


def _check_push_options(arguments: argparse.Namespace, backend: CacheTier | None) -> None:
    from mdrun.core.signing import SigningKey

    push: bool | None = getattr(arguments, "push", None)  # None: `cache push`, which pushes
    sign_with: str | None = getattr(arguments, "sign_with", None)
    if sign_with and push is False:
        raise UsageError("--sign-with signs what --push uploads: add --push")
    if push is True and backend is None:
        raise UsageError("--push: no cache is configured (--cache URL, $MDRUN_CACHE, or "
                         "[tool.mdrun] cache in pyproject.toml)")  # fmt: skip
    if push is not False and backend is not None and not backend.writable:
        raise UsageError(f"the cache {backend.location} is read-only: nothing can be pushed to it")
    arguments.signing_key = SigningKey.load(Path(sign_with)) if sign_with else None


def _print_notice(message: str) -> None:
    print(f"mdrun: {message}", file=sys.stderr)


def after_command(arguments: argparse.Namespace, code: int) -> int:
    """After `run`, `check` or `export`: say what came from the cache; push with `--push`."""
    backend: CacheTier | None = getattr(arguments, "cache_backend", None)
    if backend is not None and backend.downloads:
        from mdrun.document.remote_cache import download_summary

        print(f"mdrun: {download_summary(backend)}", file=sys.stderr)
    if getattr(arguments, "push", False) and backend is not None:
        from mdrun.cli.common import open_store
        from mdrun.document.batch import find_documents

        documents = find_documents(getattr(arguments, "documents", None) or [arguments.document])
        _push(arguments, open_store(arguments), backend, documents)
    return code


def _push(
    arguments: argparse.Namespace, store: Store, backend: FsspecBackend, documents: list[str]
) -> PushReport:
    from mdrun.cli.common import reading_settings
    from mdrun.document.remote_cache import push_documents

    key = getattr(arguments, "signing_key", None)
    report = push_documents(documents, store, backend, reading_settings(arguments), key)
    print(f"mdrun: cache push: {report.summary()}", file=sys.stderr)
    return report


def _settings(arguments: argparse.Namespace) -> CacheSettings:
    from mdrun.document.cache_settings import cache_settings

    return cache_settings(getattr(arguments, "cache", None))


def _cache_of(arguments: argparse.Namespace) -> FsspecBackend | None:
    backend: FsspecBackend | None = getattr(arguments, "cache_backend", None)
    return backend
