"""The fsspec remote cache held to the backend contract, on memory://, a folder (file://) and
a real S3 server on 127.0.0.1 (moto's server mode, started here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdrun.core.backend import StoreBackend
from mdrun.core.remote import FsspecBackend
from tests.core.backend_contract import BackendContract
from tests.core.remote_servers import S3Server, s3_server


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with pytest.MonkeyPatch.context() as monkeypatch, s3_server(monkeypatch) as server:
        yield server


class TestMemoryCache(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> StoreBackend:
        return FsspecBackend(f"memory://contract-{uuid.uuid4().hex}")


class TestFolderCache(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> StoreBackend:
        return FsspecBackend((tmp_path / "cache").as_uri())


class TestS3Cache(BackendContract):
    @pytest.fixture
    def backend(self, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> StoreBackend:
        for name, value in s3.environment().items():
            monkeypatch.setenv(name, value)
        bucket = s3.make_bucket(f"contract-{uuid.uuid4().hex[:12]}")
        return FsspecBackend(f"{bucket}/cache")
