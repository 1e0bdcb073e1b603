"""Where the remote cache is configured: --cache, then $MDRUN_CACHE, then pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdrun.core.signing import generate_key_pair
from mdrun.document.cache_settings import cache_settings
from mdrun.errors import ConfigError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose pyproject.toml names a cache folder and a trusted key; cwd is below it."""
    key = generate_key_pair(tmp_path / "ci.key")
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "site"\n\n[tool.mdrun]\ncache = "shared-cache"\n'
        f'trusted-keys = ["{key.text}"]\n'
    )
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path / "docs")
    return tmp_path


def test_the_project_file_names_the_cache_relative_to_itself(project: Path) -> None:
    settings = cache_settings()
    assert settings.url == str(project / "shared-cache")
    assert settings.source == str(project / "pyproject.toml")
    assert len(settings.trusted_keys) == 1


def test_the_environment_beats_the_file_and_the_option_beats_both(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MDRUN_CACHE", "s3://bucket/cache")
    assert cache_settings().url == "s3://bucket/cache"
    assert cache_settings("https://example.org/cache").url == "https://example.org/cache"
    assert cache_settings("").url is None
    monkeypatch.setenv("MDRUN_CACHE", "")
    assert cache_settings().url is None


def test_trusted_keys_from_the_environment_add_to_the_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = generate_key_pair(project / "dev.key")
    monkeypatch.setenv("MDRUN_TRUSTED_KEYS", f" {other.text}, ")
    keys = cache_settings().trusted_keys
    assert len(keys) == 2 and other in keys


def test_no_configuration_means_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cache_settings().url is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("cache = 3", "cache: expected a URL or a folder"),
        ('trusted-keys = "mdrun-ed25519:x"', "trusted-keys: expected a list"),
        ('trusted-keys = ["ssh-rsa AAAA"]', "trusted-keys: not an mdrun public key"),
    ],
)
def test_a_wrong_setting_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, message: str
) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.mdrun]\n{table}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message) as raised:
        cache_settings()
    assert "pyproject.toml" in str(raised.value)


def test_a_wrong_key_in_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MDRUN_TRUSTED_KEYS", "nonsense")
    with pytest.raises(ConfigError, match=r"\$MDRUN_TRUSTED_KEYS"):
        cache_settings()
