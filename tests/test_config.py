"""Settings: production refuses anything unsafe and names the variable; development makes its secrets once."""

from __future__ import annotations

import json
import secrets
import stat
from pathlib import Path

import pytest
from flask import Flask

from portal import create_app
from portal.config import DEV_SECRETS_FILE, UnsafeConfiguration
from portal.crypto.keyring import LocalKeyring
from portal.extensions import db
from portal.models import Role
from tests.support import Factory, sign_in

PRODUCTION_KEY = secrets.token_urlsafe(48)
PRODUCTION_KEYRING = LocalKeyring.generate_spec("prod-1")


def production_environ(instance: Path) -> dict[str, str]:
    """A complete, safe production environment (nothing here is contacted at start-up)."""
    return {
        "PORTAL_ENV": "production",
        "PORTAL_INSTANCE_PATH": str(instance),
        "PORTAL_SECRET_KEY": PRODUCTION_KEY,
        "PORTAL_KEYRING": PRODUCTION_KEYRING,
        "PORTAL_DATABASE_URL": "postgresql+psycopg://handover:pw@db.internal:5432/handover",
        "PORTAL_PUBLIC_BASE_URL": "https://handover.example.org",
        "PORTAL_RATELIMIT_STORAGE_URL": "redis://redis.internal:6379/0",
        "PORTAL_SMTP_URL": "smtp+starttls://mailer:pw@smtp.example.org:587",
        "PORTAL_TRUSTED_PROXY_COUNT": "1",
    }


def test_a_complete_safe_production_environment_starts(tmp_path):
    app = create_app(production_environ(tmp_path / "instance"))

    assert app.debug is False
    assert app.config["TESTING"] is False
    assert app.config["SECRET_KEY"] == PRODUCTION_KEY
    assert app.config["SESSION_COOKIE_NAME"] == "__Host-handover"
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["PREFERRED_URL_SCHEME"] == "https"
    assert not (tmp_path / "instance" / DEV_SECRETS_FILE).exists()


UNSAFE_PRODUCTION = {
    "secret key missing": ({"PORTAL_SECRET_KEY": None}, "PORTAL_SECRET_KEY"),
    "secret key blank": ({"PORTAL_SECRET_KEY": "   "}, "PORTAL_SECRET_KEY"),
    "secret key short": ({"PORTAL_SECRET_KEY": "only-31-characters-long-0123456"}, "PORTAL_SECRET_KEY"),
    "old secret key short": ({"PORTAL_SECRET_KEY_FALLBACKS": "changeme"}, "PORTAL_SECRET_KEY_FALLBACKS"),
    "debug on": ({"PORTAL_DEBUG": "true"}, "PORTAL_DEBUG"),
    "http public address": (
        {"PORTAL_PUBLIC_BASE_URL": "http://handover.example.org"},
        "PORTAL_PUBLIC_BASE_URL",
    ),
    "keyring missing": ({"PORTAL_KEYRING": None}, "PORTAL_KEYRING"),
    "keyring not base64": ({"PORTAL_KEYRING": "prod-1:not base64!"}, "PORTAL_KEYRING"),
    "database missing (SQLite default)": ({"PORTAL_DATABASE_URL": None}, "PORTAL_DATABASE_URL"),
    "SQLite database": ({"PORTAL_DATABASE_URL": "sqlite:////srv/handover.sqlite3"}, "PORTAL_DATABASE_URL"),
    "rate limits in memory (default)": (
        {"PORTAL_RATELIMIT_STORAGE_URL": None},
        "PORTAL_RATELIMIT_STORAGE_URL",
    ),
    "rate limits in memory": ({"PORTAL_RATELIMIT_STORAGE_URL": "memory://"}, "PORTAL_RATELIMIT_STORAGE_URL"),
    "mail to the outbox (default)": ({"PORTAL_SMTP_URL": None}, "PORTAL_SMTP_URL"),
    "mail to an outbox": ({"PORTAL_SMTP_URL": "outbox:///tmp/outbox"}, "PORTAL_SMTP_URL"),
    "mail in clear text to another machine": (
        {"PORTAL_SMTP_URL": "smtp://mailer:pw@smtp.example.org:25"},
        "PORTAL_SMTP_URL",
    ),
    "argon2 memory weak": ({"PORTAL_ARGON2_MEMORY_KIB": "8192"}, "PORTAL_ARGON2_MEMORY_KIB"),
    "argon2 time cost weak": ({"PORTAL_ARGON2_TIME_COST": "1"}, "PORTAL_ARGON2_TIME_COST"),
}
ALL_VARIABLES = sorted({variable for _, variable in UNSAFE_PRODUCTION.values()}, key=len, reverse=True)


@pytest.mark.parametrize(("change", "variable"), UNSAFE_PRODUCTION.values(), ids=UNSAFE_PRODUCTION.keys())
def test_production_refuses_to_start_with_an_unsafe_setting_and_names_it(tmp_path, change, variable):
    environ = production_environ(tmp_path / "instance")
    for name, value in change.items():
        if value is None:
            environ.pop(name)
        else:
            environ[name] = value

    with pytest.raises(UnsafeConfiguration) as refused:
        create_app(environ)

    message = str(refused.value)
    assert variable in message
    # Only the variable at fault is named (longer names first, so PORTAL_SECRET_KEY_FALLBACKS
    # is not mistaken for PORTAL_SECRET_KEY).
    for other in ALL_VARIABLES:
        if other != variable:
            assert other not in message.replace(variable, ""), message
    # A refusal never generates development secrets in a production instance folder.
    assert not (tmp_path / "instance" / DEV_SECRETS_FILE).exists()


KEY_MATERIAL = PRODUCTION_KEYRING.split(":")[1]
MISWRITTEN_KEYRINGS = {
    "id and key swapped": f"{KEY_MATERIAL}:prod-1",
    "key without its id": KEY_MATERIAL,
    "truncated key": f"prod-1:{KEY_MATERIAL[:-4]}",
}


@pytest.mark.parametrize("keyring", MISWRITTEN_KEYRINGS.values(), ids=MISWRITTEN_KEYRINGS.keys())
def test_a_refused_keyring_is_not_echoed_in_the_message(tmp_path, keyring):
    environ = production_environ(tmp_path / "instance") | {"PORTAL_KEYRING": keyring}

    with pytest.raises(UnsafeConfiguration) as refused:
        create_app(environ)

    message = str(refused.value)
    assert "PORTAL_KEYRING" in message
    assert KEY_MATERIAL[:12] not in message
    assert KEY_MATERIAL[-16:-4] not in message


def test_a_mail_relay_on_the_same_machine_may_be_used_without_tls_in_production(tmp_path):
    environ = production_environ(tmp_path / "instance") | {"PORTAL_SMTP_URL": "smtp://127.0.0.1:25"}

    assert create_app(environ).config["SETTINGS"].smtp_url == "smtp://127.0.0.1:25"


@pytest.mark.parametrize("environment", ["development", "production"])
def test_a_mail_address_of_an_unknown_kind_is_refused_at_start_not_at_first_invitation(tmp_path, environment):
    environ = production_environ(tmp_path / "instance") | {
        "PORTAL_ENV": environment,
        "PORTAL_SMTP_URL": "smpt+starttls://mailer:secret-pw@smtp.example.org:587",
    }

    with pytest.raises(UnsafeConfiguration) as refused:
        create_app(environ)

    assert "PORTAL_SMTP_URL" in str(refused.value)
    assert "secret-pw" not in str(refused.value)


def test_an_unknown_environment_name_is_refused(tmp_path):
    environ = production_environ(tmp_path / "instance") | {"PORTAL_ENV": "prod"}

    with pytest.raises(UnsafeConfiguration, match="PORTAL_ENV"):
        create_app(environ)


def _development_environ(instance: Path) -> dict[str, str]:
    return {
        "PORTAL_ENV": "development",
        "PORTAL_INSTANCE_PATH": str(instance),
        "PORTAL_DATABASE_URL": f"sqlite:///{instance.parent / 'dev.sqlite3'}",
        "PORTAL_ARGON2_MEMORY_KIB": "64",
        "PORTAL_ARGON2_TIME_COST": "1",
    }


def test_development_generates_its_secrets_once_into_an_owner_only_file(tmp_path):
    instance = tmp_path / "instance"

    first = create_app(_development_environ(instance))
    secrets_file = instance / DEV_SECRETS_FILE
    written = secrets_file.read_bytes()
    second = create_app(_development_environ(instance))

    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert secrets_file.read_bytes() == written
    stored = json.loads(written)
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == stored["secret_key"]
    assert len(stored["secret_key"]) >= 32
    assert (
        first.config["SETTINGS"].keyring_spec == second.config["SETTINGS"].keyring_spec == stored["keyring"]
    )
    assert first.config["SETTINGS"].secret_key_generated is True


def test_development_uses_explicit_secrets_when_given(tmp_path):
    instance = tmp_path / "instance"
    environ = _development_environ(instance) | {
        "PORTAL_SECRET_KEY": PRODUCTION_KEY,
        "PORTAL_KEYRING": PRODUCTION_KEYRING,
    }

    app = create_app(environ)

    assert app.config["SECRET_KEY"] == PRODUCTION_KEY
    assert not (instance / DEV_SECRETS_FILE).exists()


def _session_cookie(client) -> str:
    cookie = client.get_cookie("handover")
    assert cookie is not None
    return str(cookie.value)


def _is_signed_in(app: Flask, cookie: str) -> bool:
    client = app.test_client()
    client.set_cookie("handover", cookie)
    return client.get("/").status_code == 200


def test_rotating_the_secret_key_keeps_sessions_and_signs_new_cookies_with_the_new_key(environ):
    old_key, new_key = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    before = create_app(environ | {"PORTAL_SECRET_KEY": old_key})
    rotating = create_app(environ | {"PORTAL_SECRET_KEY": new_key, "PORTAL_SECRET_KEY_FALLBACKS": old_key})
    after = create_app(environ | {"PORTAL_SECRET_KEY": new_key})
    factory = Factory(before)
    account = factory.account(factory.school(), Role.SCHOOL_STAFF)
    old_client = before.test_client()
    sign_in(old_client, account)
    old_cookie = _session_cookie(old_client)

    new_client = rotating.test_client()
    sign_in(new_client, account)
    new_cookie = _session_cookie(new_client)

    # During the rotation both work; once the old key is dropped only the new cookie does.
    assert _is_signed_in(rotating, old_cookie)
    assert _is_signed_in(rotating, new_cookie)
    assert _is_signed_in(after, new_cookie)
    assert not _is_signed_in(after, old_cookie)
    for app in (before, rotating, after):
        with app.app_context():
            db.engine.dispose()
