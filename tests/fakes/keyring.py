"""A FAKE OS keyring (in memory), for the token store's keyring path: the real backends
(Secret Service, Keychain, Credential Locker) are not on this test machine."""

from __future__ import annotations

from keyring.backend import KeyringBackend


class FakeKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.secrets.pop((service, username), None)
