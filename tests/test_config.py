import pytest

from qa.config import Settings
from qa.errors import SettingsError


def test_invalid_settings_name_the_argument():
    with pytest.raises(SettingsError, match="chunk_tokens"):
        Settings(chunk_tokens=0)
    with pytest.raises(SettingsError, match="min_confidence"):
        Settings(min_confidence=2)
    with pytest.raises(SettingsError, match="backend must be one of torch, onnx"):
        Settings(backend="tensorflow")


def test_environment_overrides_defaults(monkeypatch):
    monkeypatch.setenv("QA_CHUNK_TOKENS", "120")
    assert Settings.from_env().chunk_tokens == 120
    monkeypatch.setenv("QA_CHUNK_TOKENS", "many")
    with pytest.raises(SettingsError, match="QA_CHUNK_TOKENS"):
        Settings.from_env()
