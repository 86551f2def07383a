"""Per-app service objects (built once in ``create_app``), for views to reach without globals."""

from __future__ import annotations

from flask import Flask, current_app

from portal.auth.passwords import PasswordHashing
from portal.config import Settings
from portal.crypto.keyring import LocalKeyring
from portal.crypto.wrapping import KeyWrapper, key_wrapper_from_spec
from portal.storage import ObjectStore, store_from_url


def init_app(app: Flask, settings: Settings) -> None:
    """Build the service objects for this app."""
    app.extensions["portal.password_hashing"] = PasswordHashing(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
    )
    keyring = settings.keyring()
    app.extensions["portal.keyring"] = keyring
    app.extensions["portal.key_wrapper"] = key_wrapper_from_spec(settings.key_wrapping, keyring=keyring)
    app.extensions["portal.object_store"] = store_from_url(settings.storage_url)


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


def key_wrapper() -> KeyWrapper:
    """What wraps document data keys: the local keyring or AWS KMS."""
    value: KeyWrapper = current_app.extensions["portal.key_wrapper"]
    return value


def object_store() -> ObjectStore:
    """Where encrypted documents are kept."""
    value: ObjectStore = current_app.extensions["portal.object_store"]
    return value
