"""The access token: in the keyring where there is one, else in a file only the user can
read; never in settings.json."""

from __future__ import annotations

import stat
from pathlib import Path

from keyring.backends import fail

from kobold_gui.core.hub.token import TokenStore
from kobold_gui.core.paths import config_dir
from kobold_gui.core.settings import SettingsStore
from tests.fakes.keyring import FakeKeyring


def test_without_a_keyring_the_token_goes_to_a_private_file() -> None:
    store = TokenStore(backend=fail.Keyring())
    where = store.save("  hf_abc123  ")
    assert str(store.file) in where and "readable only by you" in where
    assert stat.S_IMODE(store.file.stat().st_mode) == 0o600
    assert store.load() == "hf_abc123"
    store.clear()
    assert store.load() is None and not store.file.exists()


def test_with_a_keyring_the_token_is_kept_there_and_nowhere_else() -> None:
    ring = FakeKeyring()
    store = TokenStore(backend=ring)
    store.file.write_text("hf_old\n")  # saved earlier, before a keyring existed
    assert "system keyring" in store.save("hf_new")
    assert list(ring.secrets.values()) == ["hf_new"]
    assert not store.file.exists()
    assert store.load() == "hf_new"
    store.clear()
    assert ring.secrets == {} and store.load() is None


def test_the_token_never_reaches_settings_json() -> None:
    TokenStore(backend=fail.Keyring()).save("hf_abc123")
    settings_store = SettingsStore()
    settings, _ = settings_store.load()
    settings_store.save(settings)
    text = Path(config_dir() / "settings.json").read_text()
    assert "hf_abc123" not in text
