"""Per-app service objects (built once in ``create_app``), for views to reach without globals."""

from __future__ import annotations

from flask import Flask, current_app

from portal.auth.passwords import PasswordHashing
from portal.config import Settings
from portal.crypto.keyring import LocalKeyring


def init_app(app: Flask, settings: Settings) -> None:
    """Build the service objects for this app."""
    app.extensions["portal.password_hashing"] = PasswordHashing(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
    )
    app.extensions["portal.keyring"] = settings.keyring()


def settings() -> Settings:
    """This app's validated settings."""
    value: Settings = current_app.config["SETTINGS"]
    return value


def password_hashing() -> PasswordHashing:
    """The argon2id hasher with this app's cost parameters."""
    value: PasswordHashing = current_app.extensions["portal.password_hashing"]
    return value


def keyring() -> LocalKeyring:
    """The key-encryption keys."""
    value: LocalKeyring = current_app.extensions["portal.keyring"]
    return value
