"""The Hugging Face access token (for gated and private repositories): in the OS keyring
(macOS Keychain, Windows Credential Locker, Secret Service on Linux) through `keyring`,
never in settings.json.

Without a keyring backend (a headless Linux, a minimal desktop without Secret Service) the
token goes to a file only the user can read (mode 0600) in the config folder. That is how
huggingface_hub itself keeps a token (`hf auth login` writes ~/.cache/huggingface/token),
so it adds no new kind of exposure; keeping it only in memory would lose it at every
restart, and a paused download of a gated model could then not resume."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors
from keyring.backends import fail

from kobold_gui.core.paths import config_dir

SERVICE = "kobold-gui"
USERNAME = "huggingface-token"
FILE_NAME = "hf_token"


class TokenStore:
    def __init__(
        self, backend: keyring.backend.KeyringBackend | None = None, folder: Path | None = None
    ) -> None:
        self._backend = backend
        self._folder = folder

    @property
    def file(self) -> Path:
        return (self._folder or config_dir()) / FILE_NAME

    def _keyring(self) -> keyring.backend.KeyringBackend | None:
        backend = self._backend or keyring.get_keyring()
        if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
            return None
        return backend

    def where(self) -> str:
        """Where a saved token is kept, in words for the token field's note."""
        backend = self._keyring()
        if backend is not None:
            return f"the system keyring ({type(backend).__name__})"
        return f"{self.file} (readable only by you: this system has no keyring)"

    def load(self) -> str | None:
        backend = self._keyring()
        if backend is not None:
            try:
                token = backend.get_password(SERVICE, USERNAME)
                if token:
                    return token
            except keyring.errors.KeyringError:
                pass  # a locked or broken keyring: the file, if any
        try:
            return self.file.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def save(self, token: str) -> str:
        """Keep the token; returns where it went (in words)."""
        token = token.strip()
        backend = self._keyring()
        if backend is not None:
            try:
                backend.set_password(SERVICE, USERNAME, token)
                self.file.unlink(missing_ok=True)  # no second copy in a file
                return self.where()
            except keyring.errors.KeyringError:
                pass
        _write_private(self.file, token)
        return f"{self.file} (readable only by you)"

    def clear(self) -> None:
        backend = self._keyring()
        if backend is not None:
            with contextlib.suppress(keyring.errors.KeyringError):
                backend.delete_password(SERVICE, USERNAME)
        self.file.unlink(missing_ok=True)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    os.replace(tmp, path)
