"""Settings read from ``PORTAL_*`` environment variables, with safe embedded defaults for a laptop.

In production the portal refuses to start with a generated secret, debug on, an ``http://``
public address or no key-encryption key, and names the setting at fault.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from portal.crypto.keyring import KeyringError, LocalKeyring

ENVIRONMENTS = ("development", "testing", "production")
MAIL_SCHEMES = ("outbox://", "smtp://", "smtp+starttls://", "smtps://")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
DEV_SECRETS_FILE = "dev-secrets.json"

# OWASP's floor for argon2id (m=19 MiB, t=2); production may only go above it.
MIN_PRODUCTION_ARGON2_MEMORY_KIB = 19 * 1024
MIN_PRODUCTION_ARGON2_TIME_COST = 2


class UnsafeConfiguration(Exception):
    """A setting is missing, malformed or unsafe for the chosen environment."""


@dataclass(frozen=True)
class Settings:
    """Everything the portal reads from its environment, already validated."""

    environment: str
    instance_path: Path
    secret_key: str
    secret_key_fallbacks: tuple[str, ...]
    secret_key_generated: bool
    database_url: str
    storage_url: str
    keyring_spec: str
    keyring_generated: bool
    key_wrapping: str
    smtp_url: str
    mail_from: str
    public_base_url: str
    ratelimit_storage_url: str
    trusted_proxy_count: int
    debug: bool
    session_idle_minutes: int
    session_absolute_hours: int
    invitation_valid_hours: int
    ig_training_valid_days: int
    argon2_memory_kib: int
    argon2_time_cost: int
    argon2_parallelism: int
    upload_limit_bytes: int
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        """True when the portal serves real users."""
        return self.environment == "production"

    @property
    def uses_https(self) -> bool:
        """Whether the public address is https (cookies then get ``Secure`` and ``__Host-``)."""
        return self.public_base_url.startswith("https://")

    def keyring(self) -> LocalKeyring:
        """The local keyring of key-encryption keys."""
        return LocalKeyring.from_spec(self.keyring_spec)


def load_settings(environ: Mapping[str, str], instance_path: Path) -> Settings:
    """Read and validate settings; raise :class:`UnsafeConfiguration` naming the bad variable."""
    env = _Reader(environ)
    environment = env.text("ENV", "development")
    if environment not in ENVIRONMENTS:
        raise UnsafeConfiguration(f"PORTAL_ENV must be one of {', '.join(ENVIRONMENTS)}")
    production = environment == "production"

    dev_secrets: dict[str, str] = {}
    if not production and (not env.has("SECRET_KEY") or not env.has("KEYRING")):
        dev_secrets = _load_or_create_dev_secrets(instance_path)

    settings = Settings(
        environment=environment,
        instance_path=instance_path,
        secret_key=env.text("SECRET_KEY", dev_secrets.get("secret_key", "")),
        secret_key_fallbacks=tuple(s for s in env.text("SECRET_KEY_FALLBACKS", "").split(",") if s),
        secret_key_generated=not env.has("SECRET_KEY"),
        database_url=env.text("DATABASE_URL", f"sqlite:///{instance_path / 'handover.sqlite3'}"),
        storage_url=env.text("STORAGE_URL", (instance_path / "objects").as_uri()),
        keyring_spec=env.text("KEYRING", dev_secrets.get("keyring", "")),
        keyring_generated=not env.has("KEYRING"),
        key_wrapping=env.text("KEY_WRAPPING", "local"),
        smtp_url=env.text("SMTP_URL", f"outbox://{instance_path / 'outbox'}"),
        mail_from=env.text("MAIL_FROM", "Handover <no-reply@handover.invalid>"),
        public_base_url=env.text("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
        ratelimit_storage_url=env.text("RATELIMIT_STORAGE_URL", "memory://"),
        trusted_proxy_count=env.integer("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=5),
        debug=env.boolean("DEBUG", False),
        session_idle_minutes=env.integer("SESSION_IDLE_MINUTES", 30, minimum=1, maximum=120),
        session_absolute_hours=env.integer("SESSION_ABSOLUTE_HOURS", 12, minimum=1, maximum=24),
        invitation_valid_hours=env.integer("INVITATION_VALID_HOURS", 72, minimum=1, maximum=24 * 14),
        ig_training_valid_days=env.integer("IG_TRAINING_VALID_DAYS", 3 * 365, minimum=30),
        argon2_memory_kib=env.integer("ARGON2_MEMORY_KIB", 64 * 1024, minimum=8),
        argon2_time_cost=env.integer("ARGON2_TIME_COST", 3, minimum=1),
        argon2_parallelism=env.integer("ARGON2_PARALLELISM", 4, minimum=1, maximum=16),
        upload_limit_bytes=env.integer("UPLOAD_LIMIT_BYTES", 2 * 1024**3, minimum=1024),
    )
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    if not settings.secret_key:
        raise UnsafeConfiguration("PORTAL_SECRET_KEY must be set in production")
    try:
        settings.keyring()
    except KeyringError as exc:
        detail = _withhold_key_material(str(exc), settings.keyring_spec)
        raise UnsafeConfiguration(f"PORTAL_KEYRING is unusable: {detail}") from None
    if settings.key_wrapping != "local" and not settings.key_wrapping.startswith("aws-kms:"):
        raise UnsafeConfiguration("PORTAL_KEY_WRAPPING must be 'local' or 'aws-kms:?key_id=...'")
    if urlsplit(settings.public_base_url).scheme not in ("http", "https"):
        raise UnsafeConfiguration("PORTAL_PUBLIC_BASE_URL must be an http(s) address")
    mail_url = urlsplit(settings.smtp_url)
    if f"{mail_url.scheme}://" not in MAIL_SCHEMES:
        # Found now rather than when the first invitation silently fails to go out.
        raise UnsafeConfiguration(f"PORTAL_SMTP_URL must start with one of {', '.join(MAIL_SCHEMES)}")
    if not settings.is_production:
        return
    problems = []
    if settings.secret_key_generated or len(settings.secret_key) < 32:
        problems.append("PORTAL_SECRET_KEY must be set to at least 32 random characters in production")
    if any(len(old) < 32 for old in settings.secret_key_fallbacks):
        # Old keys still verify cookies while rotating: a weak one lets anyone forge a session.
        problems.append("PORTAL_SECRET_KEY_FALLBACKS must hold only keys of at least 32 random characters")
    if settings.keyring_generated:
        problems.append("PORTAL_KEYRING must hold your key-encryption keys in production")
    if settings.debug:
        problems.append("PORTAL_DEBUG must be off in production")
    if not settings.uses_https:
        problems.append("PORTAL_PUBLIC_BASE_URL must start with https:// in production")
    if settings.database_url.startswith("sqlite"):
        problems.append("PORTAL_DATABASE_URL must name a PostgreSQL database in production")
    if settings.ratelimit_storage_url.startswith("memory"):
        problems.append("PORTAL_RATELIMIT_STORAGE_URL must be shared storage (redis://) in production")
    if mail_url.scheme == "outbox":
        problems.append("PORTAL_SMTP_URL must name an SMTP server in production")
    elif mail_url.scheme == "smtp" and mail_url.hostname not in LOOPBACK_HOSTS:
        # Invitation links are credentials: they may cross a network only inside TLS.
        problems.append(
            "PORTAL_SMTP_URL must use smtps:// or smtp+starttls:// unless the server is on this machine"
        )
    if settings.argon2_memory_kib < MIN_PRODUCTION_ARGON2_MEMORY_KIB:
        problems.append(
            f"PORTAL_ARGON2_MEMORY_KIB must be at least {MIN_PRODUCTION_ARGON2_MEMORY_KIB} (OWASP's minimum)"
        )
    if settings.argon2_time_cost < MIN_PRODUCTION_ARGON2_TIME_COST:
        problems.append(
            f"PORTAL_ARGON2_TIME_COST must be at least {MIN_PRODUCTION_ARGON2_TIME_COST} (OWASP's minimum)"
        )
    if problems:
        raise UnsafeConfiguration("; ".join(problems))


def _withhold_key_material(message: str, keyring_spec: str) -> str:
    """The keyring's complaint, unless it quotes part of the spec that may be a key.

    An entry written the wrong way round (``KEY:ID``) makes the key show up where an id is
    quoted; a start-up error must not put key material into logs.
    """
    fragments = (part.strip() for entry in keyring_spec.split(",") for part in entry.split(":"))
    if any(len(fragment) >= 20 and fragment in message for fragment in fragments):
        return (
            "an entry is malformed; each must read KEY_ID:BASE64_KEY (details withheld: they quote the key)"
        )
    return message


def _load_or_create_dev_secrets(instance_path: Path) -> dict[str, str]:
    """Development secrets are generated once and kept in the instance folder, readable by us only."""
    path = instance_path / DEV_SECRETS_FILE
    if path.exists():
        loaded: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return loaded
    instance_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    values = {"secret_key": secrets.token_urlsafe(48), "keyring": LocalKeyring.generate_spec("dev-1")}
    # O_EXCL: two processes starting together must not both write (and disagree on) the secrets.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return existing
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(values, handle)
    return values


class _Reader:
    """Typed access to ``PORTAL_*`` variables with error messages that name the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def has(self, name: str) -> bool:
        return bool(self._environ.get(f"PORTAL_{name}"))

    def text(self, name: str, default: str) -> str:
        value = self._environ.get(f"PORTAL_{name}")
        return value.strip() if value else default

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        raw = self._environ.get(f"PORTAL_{name}")
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise UnsafeConfiguration(f"PORTAL_{name} must be a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise UnsafeConfiguration(f"PORTAL_{name} must be at least {minimum}{upper}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._environ.get(f"PORTAL_{name}")
        if not raw:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise UnsafeConfiguration(f"PORTAL_{name} must be true or false")
