"""The production stack on 127.0.0.1, for the smoke test and bench/load_production.py.

What runs, all on loopback and all torn down by :meth:`ProductionStack.stop`:

* a fresh PostgreSQL database in the local cluster (created, migrated with ``flask db upgrade``,
  dropped afterwards);
* the running Redis, on a database number of its own that is flushed first (rate-limit counters);
* moto's S3 server in this process (the object store), an aiosmtpd server in this process (mail);
* two gunicorn instances started exactly as in production (``gunicorn -c infra/gunicorn.conf.py
  'portal:create_app()'`` with ``PORTAL_ENV=production`` and a complete, safe environment), each in
  a process group of its own so one can be killed whole;
* Debian's nginx with ``infra/nginx/handover.conf`` rendered by ``infra/scripts/render_nginx_site.py``
  and a certificate signed by a throwaway CA made here, so clients verify TLS for real.

Clients (:class:`Browser`) can bind distinct loopback source addresses (127.0.0.0/8 is all
loopback on Linux), so simulated users come from different client addresses, as schools do.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import hashlib
import ipaddress
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyotp
import requests
from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    import psutil

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
GUNICORN_CONF = REPO_ROOT / "infra" / "gunicorn.conf.py"
RENDER_SCRIPT = REPO_ROOT / "infra" / "scripts" / "render_nginx_site.py"
POSTGRES_ADMIN_URL = os.environ.get(
    "HANDOVER_SMOKE_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("HANDOVER_SMOKE_REDIS_PORT", "6379"))
REGION = "eu-west-2"
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "smoke-access-key", "AWS_SECRET_ACCESS_KEY": "smoke-secret-key"}
PASSWORD = "granite lantern orchard 41"
MIB = 1024 * 1024
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_TOTP_KEY = re.compile(r'id="totp-key"[^>]*>([^<]+)<')
_ACCESS_LINE = re.compile(
    r'^\S+ (?P<rid>\S+) \[[^\]]+\] "(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) '
)


class StackUnavailable(Exception):
    """Something the stack needs is not on this machine (nginx, PostgreSQL, Redis)."""


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout: float) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s") from None
            time.sleep(0.1)


def nginx_binary() -> str | None:
    """Debian's nginx (in /usr/sbin, which is not on every user's PATH)."""
    return shutil.which("nginx") or next(
        (str(p) for p in (Path("/usr/sbin/nginx"), Path("/usr/local/sbin/nginx")) if p.exists()), None
    )


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run the stack; empty when everything is there."""
    problems = []
    if nginx_binary() is None:
        problems.append("nginx is not installed (apt-get install nginx-light)")
    try:
        import psycopg

        with psycopg.connect(_libpq_url(POSTGRES_ADMIN_URL), connect_timeout=3):
            pass
    except Exception as exc:
        problems.append(f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable ({type(exc).__name__})")
    try:
        import redis

        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=3).ping()
    except Exception as exc:
        problems.append(f"Redis at {REDIS_HOST}:{REDIS_PORT} is unreachable ({type(exc).__name__})")
    return problems


def _libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


# --- TLS -----------------------------------------------------------------------------------------


def make_certificates(directory: Path, hostname: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signed for ``hostname``: (ca, cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Handover smoke-test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        san = x509.DNSName(hostname)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return ca_path, cert_path, key_path


# --- the app instances ---------------------------------------------------------------------------


@dataclass
class Instance:
    """One gunicorn instance (a master and its workers, in a process group of their own)."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    access_log: Path
    error_log: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def processes(self) -> list[psutil.Process]:
        """The master and its workers (empty once it is gone)."""
        import psutil  # imported when used: only the stack needs it, not the quick tests

        try:
            master = psutil.Process(self.process.pid)
            return [master, *master.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_bytes(self) -> int:
        """Resident memory of the master and all workers now."""
        import psutil

        total = 0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def open_connections(self) -> int:
        """Established TCP connections to this instance's port (nginx opens one per request)."""
        import psutil

        count = 0
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_ESTABLISHED and conn.laddr and conn.laddr.port == self.port:
                count += 1
        return count

    def request_ids(self) -> dict[str, tuple[str, str, int]]:
        """Request id -> (method, path, status) for every request in this instance's access log."""
        found: dict[str, tuple[str, str, int]] = {}
        if not self.access_log.exists():
            return found
        for line in self.access_log.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _ACCESS_LINE.match(line)
            if match and match["rid"] != "-":
                found[match["rid"]] = (match["method"], match["path"], int(match["status"]))
        return found

    def kill(self) -> None:
        """SIGKILL the whole process group: master and workers die at once, with no clean-up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (graceful), then SIGKILL whatever is left of the group."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


# --- mail ----------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """Messages the portal handed to the SMTP server."""

    messages: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802  (aiosmtpd's name)
        self.messages.append(bytes(envelope.content))
        return "250 Message accepted"

    def wait_for(self, *, to: str, subject: str, timeout: float = 20) -> str:
        """The decoded body of the first message to ``to`` whose subject contains ``subject``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for raw in list(self.messages):
                message = email.message_from_bytes(raw, policy=email.policy.default)
                if message["To"] == to and subject in str(message["Subject"]):
                    body = message.get_body(preferencelist=("plain",))
                    assert body is not None, "a message with no text part"
                    return str(body.get_content())
            time.sleep(0.1)
        raise TimeoutError(f"no e-mail to {to} about {subject!r} within {timeout} s")


# --- the stack -----------------------------------------------------------------------------------


class ProductionStack:
    """Everything above, started by :meth:`start` and removed by :meth:`stop` (idempotent)."""

    def __init__(
        self,
        workdir: Path,
        *,
        redis_db: int,
        upload_limit_bytes: int = 64 * MIB,
        workers: int | None = 2,
        threads: int | None = 8,
        settings: dict[str, str] | None = None,
    ) -> None:
        """``workers``/``threads`` None: infra/gunicorn.conf.py's own defaults, as in production;
        ``settings``: ``PORTAL_*``/``HANDOVER_*`` values that replace the stack's own."""
        self.workdir = workdir
        self.redis_db = redis_db
        self.upload_limit_bytes = upload_limit_bytes
        self.workers = workers
        self.threads = threads
        self.settings = settings or {}
        self.database_name = f"handover_smoke_{uuid.uuid4().hex[:10]}"
        self.bucket = f"handover-smoke-{uuid.uuid4().hex[:10]}"
        self.instances: list[Instance] = []
        self.mailbox = Mailbox()
        self.https_port = free_port()
        self.base_url = f"https://127.0.0.1:{self.https_port}"
        self.http_port = free_port()
        self.nginx_dir = Path()
        self.ca_path = Path()
        self.environ: dict[str, str] = {}
        self._nginx: subprocess.Popen[bytes] | None = None
        self._moto: Any = None
        self._smtp: Any = None
        self._database_created = False
        self._cli_app: Any = None
        self._restored: list[str] = []
        self.moto_endpoint = ""
        self.timings: dict[str, float] = {}

    # -- life cycle --

    def __enter__(self) -> ProductionStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        problems = missing_prerequisites()
        if problems:
            raise StackUnavailable("; ".join(problems))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._timed("database", self._start_database)
        self._flush_redis()
        moto_endpoint = self._timed("moto", self._start_moto)
        smtp_port = self._timed("smtp", self._start_smtp)
        self.environ = self._app_environ(moto_endpoint, smtp_port)
        self._timed("migrate", lambda: self.flask("db", "upgrade"))
        # Both instances boot at once (as two systemd units would); each is waited for below.
        launched = [self._launch_instance(name, free_port()) for name in ("a", "b")]
        self.instances = self._timed("gunicorn", lambda: [self._await_instance(i) for i in launched])
        self._timed("nginx", self._start_nginx)
        self._timed("ready", self._wait_until_ready)

    def _timed(self, label: str, step: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            return step()
        finally:
            self.timings[label] = time.monotonic() - started

    def stop(self) -> None:
        """Stop every process this stack started and remove its database; safe to call twice."""
        if self._nginx is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._nginx.pid, signal.SIGTERM)
            try:
                self._nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._nginx.pid, signal.SIGKILL)
                self._nginx.wait(timeout=5)
            self._nginx = None
        for instance in self.instances:
            instance.stop(timeout=10)
        if self._smtp is not None:
            with contextlib.suppress(Exception):
                self._smtp.stop()
            self._smtp = None
        if self._moto is not None:
            with contextlib.suppress(Exception):
                self._moto.stop()
            self._moto = None
        if self._cli_app is not None:
            from portal.extensions import db

            with self._cli_app.app_context():
                db.engine.dispose()
            self._cli_app = None
        for name in self._restored:
            self._admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._restored.clear()
        if self._database_created:
            self._admin_sql(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')
            self._database_created = False
        with contextlib.suppress(Exception):
            self._redis().flushdb()

    # -- pieces --

    def _admin_sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(_libpq_url(POSTGRES_ADMIN_URL), autocommit=True) as connection:
            connection.execute(statement.encode())

    def _start_database(self) -> None:
        self._admin_sql(f'CREATE DATABASE "{self.database_name}"')
        self._database_created = True

    @property
    def database_url(self) -> str:
        return self._url_of(self.database_name)

    def _url_of(self, database: str) -> str:
        base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
        return f"{base}/{database}"

    def pg_dump(self, target: Path) -> Path:
        """A custom-format dump of the portal's database, as infra/scripts/backup-database.sh makes."""
        subprocess.run(
            ["pg_dump", "--format=custom", "--no-owner", f"--file={target}", _libpq_url(self.database_url)],
            check=True,
            capture_output=True,
        )
        return target

    def restore(self, dump: Path) -> str:
        """Restore ``dump`` into a new database (dropped with the stack); returns its URL."""
        name = f"{self.database_name}_r{len(self._restored)}"
        self._admin_sql(f'CREATE DATABASE "{name}"')
        self._restored.append(name)
        subprocess.run(
            [
                "pg_restore",
                "--no-owner",
                "--exit-on-error",
                f"--dbname={_libpq_url(self._url_of(name))}",
                str(dump),
            ],
            check=True,
            capture_output=True,
        )
        return self._url_of(name)

    def s3_client(self) -> Any:
        """A plain client for the stack's bucket, to look behind the portal's back."""
        import boto3

        return boto3.session.Session(
            aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        ).client("s3", endpoint_url=self.moto_endpoint)

    def sql(self, statement: str, **params: object) -> list[tuple[Any, ...]]:
        """Rows of a query against the portal's database (to check what it recorded)."""
        import psycopg

        with psycopg.connect(_libpq_url(self.database_url)) as connection:
            cursor = connection.execute(statement.encode(), params)
            return list(cursor.fetchall()) if cursor.description else []

    def _redis(self) -> Any:
        import redis

        return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.redis_db, socket_timeout=5)

    def _flush_redis(self) -> None:
        self._redis().flushdb()

    def redis_keys(self) -> list[str]:
        return sorted(key.decode() for key in self._redis().keys("*"))

    def _start_moto(self) -> str:
        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
        port = free_port()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._moto.start()
        endpoint = self.moto_endpoint = f"http://127.0.0.1:{port}"
        client = boto3.session.Session(
            aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        ).client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})  # type: ignore[typeddict-item]
        # As the Terraform bucket: versioned, so a deleted object leaves a version behind.
        client.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        return endpoint

    def _start_smtp(self) -> int:
        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command
        port = free_port()
        self._smtp = Controller(self.mailbox, hostname="127.0.0.1", port=port)
        self._smtp.start()
        return port

    def _app_environ(self, moto_endpoint: str, smtp_port: int) -> dict[str, str]:
        from portal.crypto.keyring import LocalKeyring

        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("PORTAL_", "HANDOVER_", "AWS_", "FLASK_", "GUNICORN_"))
        }
        storage = f"s3://{self.bucket}/documents?endpoint_url={moto_endpoint}&region={REGION}&addressing=path"
        return {
            **inherited,
            **FAKE_AWS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
            "PORTAL_ENV": "production",
            "PORTAL_INSTANCE_PATH": str(self.workdir / "instance"),
            "PORTAL_SECRET_KEY": secrets.token_urlsafe(48),
            "PORTAL_KEYRING": LocalKeyring.generate_spec("smoke-1"),
            "PORTAL_DATABASE_URL": self.database_url,
            "PORTAL_STORAGE_URL": storage,
            "PORTAL_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "PORTAL_MAIL_FROM": "Handover <no-reply@handover.test>",
            "PORTAL_PUBLIC_BASE_URL": self.base_url,
            "PORTAL_RATELIMIT_STORAGE_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.redis_db}",
            "PORTAL_TRUSTED_PROXY_COUNT": "1",
            # Production's floor (OWASP: 19 MiB, t=2), exactly: sign-ins stay quick.
            "PORTAL_ARGON2_MEMORY_KIB": str(19 * 1024),
            "PORTAL_ARGON2_TIME_COST": "2",
            "PORTAL_ARGON2_PARALLELISM": "1",
            "PORTAL_UPLOAD_LIMIT_BYTES": str(self.upload_limit_bytes),
            **({"HANDOVER_WORKERS": str(self.workers)} if self.workers else {}),
            **({"HANDOVER_THREADS": str(self.threads)} if self.threads else {}),
            # Short, so teardown is quick; production keeps in-flight transfers for 5 minutes.
            "HANDOVER_GRACEFUL_TIMEOUT": "5",
            "HANDOVER_FORWARDED_ALLOW_IPS": "127.0.0.1",
            **self.settings,
        }

    def flask(self, *args: str, database_url: str | None = None) -> str:
        """Run ``flask --app portal ARGS`` against the stack's (or another) database; returns its output."""
        return self.run([str(VENV_BIN / "flask"), "--app", "portal", *args], database_url=database_url)

    def run(self, command: list[str], *, database_url: str | None = None, check: bool = True) -> str:
        """Run a command in the portal's environment (as a job or an operator would)."""
        environ = {**self.environ, "PORTAL_DATABASE_URL": database_url or self.database_url}
        result = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def cli(self, *args: str) -> str:
        """A ``flask --app portal`` command run in this process against the stack (no start-up cost).

        The same click command an operator runs; ``flask`` (above) runs it in a subprocess instead.
        """
        if self._cli_app is None:
            from portal import create_app

            self._cli_app = create_app(self.environ)
        # `flask` (FlaskGroup) pushes an app context for every command; the test runner does not.
        with self._cli_app.app_context():
            result = self._cli_app.test_cli_runner().invoke(args=list(args))
        if result.exit_code != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed: {result.output} {result.exception!r}")
        return str(result.output)

    def _start_instance(self, name: str, port: int) -> Instance:
        return self._await_instance(self._launch_instance(name, port))

    def _launch_instance(self, name: str, port: int) -> Instance:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        access_log, error_log = logs / f"app-{name}.access.log", logs / f"app-{name}.error.log"
        environ = {
            **self.environ,
            "HANDOVER_BIND": f"127.0.0.1:{port}",
            "HANDOVER_ACCESS_LOG": str(access_log),
            "HANDOVER_ERROR_LOG": str(error_log),
        }
        with error_log.open("ab") as stderr:
            process = subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), "-c", str(GUNICORN_CONF), "portal:create_app()"],
                cwd=REPO_ROOT,
                env=environ,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own process group: killpg reaches master and workers
            )
        return Instance(name, port, process, access_log, error_log)

    def _await_instance(self, instance: Instance) -> Instance:
        try:
            wait_for_port(instance.port, timeout=60)
        except TimeoutError:
            instance.stop()
            raise RuntimeError(
                f"gunicorn {instance.name} did not start:\n{instance.error_log.read_text()[-4000:]}"
            ) from None
        return instance

    def restart_instance(self, index: int) -> Instance:
        """Start a killed instance again on its port (as systemd's Restart=always would)."""
        old = self.instances[index]
        old.stop()
        self.instances[index] = self._start_instance(old.name, old.port)
        return self.instances[index]

    def _start_nginx(self) -> None:
        binary = nginx_binary()
        assert binary is not None
        self.nginx_dir = self.workdir / "nginx"
        self.nginx_dir.mkdir(exist_ok=True)
        # nginx's workers run as "nobody" when the master is root: they must be able to enter here.
        for directory in (self.workdir, self.nginx_dir):
            directory.chmod(0o755)
        self.ca_path, cert, key = make_certificates(self.nginx_dir)
        (self.nginx_dir / "acme").mkdir(exist_ok=True)
        site_env = {
            **self.environ,
            "HANDOVER_APP_1": f"127.0.0.1:{self.instances[0].port}",
            "HANDOVER_APP_2": f"127.0.0.1:{self.instances[1].port}",
            "HANDOVER_HTTPS_LISTEN": f"127.0.0.1:{self.https_port}",
            "HANDOVER_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
            "HANDOVER_TLS_CERTIFICATE": str(cert),
            "HANDOVER_TLS_CERTIFICATE_KEY": str(key),
            "HANDOVER_ACCESS_LOG": str(self.nginx_dir / "access.log"),
            "HANDOVER_ACME_ROOT": str(self.nginx_dir / "acme"),
        }
        site = self.nginx_dir / "handover.conf"
        render_site(site_env, site)
        main_conf = self.nginx_dir / "nginx.conf"
        main_conf.write_text(nginx_main_conf(self.nginx_dir, site), encoding="utf-8")
        check = subprocess.run(
            [
                binary,
                "-t",
                "-q",
                "-p",
                str(self.nginx_dir),
                "-e",
                str(self.nginx_dir / "error.log"),
                "-c",
                str(main_conf),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the rendered site:\n{check.stderr}")
        self._nginx = subprocess.Popen(
            [
                binary,
                "-p",
                str(self.nginx_dir),
                "-e",
                str(self.nginx_dir / "error.log"),
                "-c",
                str(main_conf),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.https_port, timeout=20)

    def _wait_until_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if (
                    requests.get(f"{self.base_url}/readyz", verify=str(self.ca_path), timeout=5).status_code
                    == 200
                ):
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the stack did not become ready:\n" + self.diagnostics())
            time.sleep(0.2)

    def diagnostics(self) -> str:
        """The tail of every log, for a failure message."""
        parts = []
        for path in sorted((self.workdir / "logs").glob("*.log")) + sorted(self.nginx_dir.glob("*.log")):
            with contextlib.suppress(OSError):
                parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    # -- people --

    def create_org(self, *args: str) -> int:
        output = self.cli("create-org", *args)
        found = re.search(r"Created organisation (\d+)", output)
        assert found, output
        return int(found.group(1))

    def invite(self, org_id: int, email: str, role: str) -> str:
        """``create-user``'s invitation link."""
        output = self.cli(
            "create-user",
            "--org-id",
            str(org_id),
            "--email",
            email,
            "--name",
            email.split("@")[0],
            "--role",
            role,
        )
        links = [line.strip() for line in output.splitlines() if line.strip().startswith("https://")]
        assert links, output
        return links[-1]

    def enrolled_accounts(self, org_id: int, role: str, emails: list[str]) -> list[Account]:
        """Users set up directly through the app's code (password, confirmed authenticator,
        current IG training): what enrolment over HTTPS leaves behind, for many users at once."""
        from portal import services
        from portal.auth import totp
        from portal.extensions import db
        from portal.models import Role, User, utcnow
        from portal.models.base import today_in_england

        if self._cli_app is None:
            self.cli("--help")
        accounts = []
        with self._cli_app.app_context():
            password_hash = services.password_hashing().hash(PASSWORD)  # one hash: same password for all
            for email in emails:
                user = User(
                    email=email,
                    display_name=email.split("@")[0],
                    organisation_id=org_id,
                    role=Role(role),
                    password_hash=password_hash,
                    password_changed_at=utcnow(),
                    totp_enrolled_at=utcnow(),
                    ig_training_completed_on=today_in_england(),
                )
                db.session.add(user)
                db.session.flush()
                secret = totp.new_secret()
                user.totp_secret_sealed = totp.seal_secret(services.keyring(), user.id, secret)
                accounts.append(Account(secret=secret, email=email, password=PASSWORD))
            db.session.commit()
        return accounts

    def browser(self, source_address: str = "127.0.0.1") -> Browser:
        return Browser(self.base_url, self.ca_path, source_address)

    def enrol(self, invitation_link: str, email: str, source_address: str = "127.0.0.1") -> Account:
        """Follow an invitation over HTTPS: choose a password, read the key, confirm a code."""
        browser = self.browser(source_address)
        page = browser.get(invitation_link)
        assert page.url.endswith("/enrol/password"), page.url
        # "confirm" for the form as the web-interface work has it; ignored where the form has no such field.
        page = browser.submit(page, "/enrol/password", {"password": PASSWORD, "confirm": PASSWORD})
        assert page.url.endswith("/enrol/authenticator"), page_problem(page)
        found = _TOTP_KEY.search(page.text)
        assert found, "no key on the authenticator page"
        account = Account(secret=found.group(1).replace(" ", "").strip(), email=email, password=PASSWORD)
        done = browser.submit(page, "/enrol/authenticator", {"code": account.code()})
        assert done.status_code == 200 and "recovery" in done.text.lower(), page_problem(done)
        return account


def render_site(values: dict[str, str], output: Path) -> None:
    """Render the nginx site with the same script an operator runs."""
    subprocess.run(
        [sys.executable, str(RENDER_SCRIPT), "--output", str(output)],
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("HANDOVER_", "PORTAL_"))}, **values},
        check=True,
        capture_output=True,
        text=True,
    )


def nginx_main_conf(prefix: Path, site: Path) -> str:
    """A minimal nginx.conf around the site (Debian's own /etc/nginx/nginx.conf plays this part)."""
    return f"""
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    # As Debian's /etc/nginx/nginx.conf has them: the site must override both.
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    gzip on;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
"""


# --- clients -------------------------------------------------------------------------------------


@dataclass
class Account:
    """What an enrolled user knows."""

    secret: str
    email: str
    password: str
    last_step: int = 0

    def code(self) -> str:
        """A code never used before: the current step's, or the next one's if that was spent (the
        portal allows one step of drift). Waits for the clock if even that one is spent."""
        step = max(int(time.time() // 30), self.last_step + 1)
        while step > int(time.time() // 30) + 1:
            time.sleep(0.5)
        self.last_step = step
        return pyotp.TOTP(self.secret).at(step * 30)


class _SourceAddressAdapter(HTTPAdapter):
    """Connects from a chosen loopback address, so nginx sees a distinct client."""

    def __init__(self, source_address: str) -> None:
        self._source_address = source_address
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._source_address, 0)
        super().init_poolmanager(*args, **kwargs)


class Browser:
    """An HTTPS client that keeps cookies, verifies the stack's certificate and posts forms.

    Like a browser, it sends a ``Referer`` with each form it submits: the page the form was on.
    (``send_referer=False`` acts like a browser honouring ``Referrer-Policy: no-referrer``.)
    """

    def __init__(
        self, base_url: str, ca_path: Path, source_address: str = "127.0.0.1", *, send_referer: bool = True
    ) -> None:
        self.base_url = base_url
        self.send_referer = send_referer
        self.session = requests.Session()
        # Loopback only: no proxy, netrc or CA bundle from the environment (REQUESTS_CA_BUNDLE
        # would otherwise replace the stack's CA).
        self.session.trust_env = False
        self.session.verify = str(ca_path)
        self.session.mount("https://", _SourceAddressAdapter(source_address))
        self.session.headers["User-Agent"] = "handover-smoke-test"

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.base_url}{path}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url(path), timeout=kwargs.pop("timeout", 60), **kwargs)

    def submit(
        self,
        page: requests.Response,
        action: str,
        data: dict[str, str],
        *,
        files: Any = None,
        allow_redirects: bool = True,
    ) -> requests.Response:
        """POST a form found on ``page`` (its CSRF token included) to ``action``."""
        found = _CSRF.search(page.text)
        assert found, f"no CSRF token on {page.url}"
        headers = {"Referer": page.url} if self.send_referer else {}
        return self.session.post(
            self.url(action),
            data={"csrf_token": found.group(1), **data},
            files=files,
            headers=headers,
            allow_redirects=allow_redirects,
            timeout=300,
        )

    def sign_in(self, account: Account) -> requests.Response:
        page = self.get("/sign-in")
        return self.submit(
            page,
            "/sign-in",
            {"email": account.email, "password": account.password, "code": account.code()},
            allow_redirects=False,
        )


def page_problem(response: requests.Response) -> str:
    """What a page says went wrong (its error summary or messages), for assertion messages."""
    text = response.text
    start = min(
        (
            i
            for i in (text.find("error-summary"), text.find("notification-banner"), text.find("<main"))
            if i >= 0
        ),
        default=0,
    )
    plain = re.sub(r"<[^>]+>", " ", text[start : start + 4000])
    return f"{response.status_code} {response.url}: " + " ".join(plain.split())[:600]


def pdf(size: int, seed: bytes = b"") -> bytes:
    """A file the portal's content sniffing takes for a PDF, of exactly ``size`` bytes."""
    head, tail = b"%PDF-1.7\n" + seed + b"\n", b"\n%%EOF\n"
    filler = (b"Handover test document. " * 200)[:4096]
    body_size = size - len(head) - len(tail)
    body = (filler * (body_size // len(filler) + 1))[:body_size]
    return head + body + tail


def send_transfer(
    browser: Browser,
    *,
    receiving_id: int,
    authority_id: int,
    documents: list[tuple[str, bytes]],
    send: bool = True,
) -> int:
    """As a signed-in sender: draft a transfer, upload each document (streamed through nginx) and
    send it (unless ``send`` is false); returns the transfer's id."""
    path = f"/transfers/new?school={receiving_id}"
    created = browser.submit(
        browser.get(path),
        path,
        {
            "school_id": str(receiving_id),
            "child_initials": "JS",
            "child_date_of_birth": "2015-04-01",
            "child_upn": "",
            "looked_after": "y",
            "responsible_authority_id": str(authority_id),
            "left_on": "2026-10-01",
            "note": "",
        },
        allow_redirects=False,
    )
    assert created.status_code == 302, page_problem(created)
    found = re.search(r"/transfers/(\d+)$", created.headers["Location"])
    assert found, created.headers["Location"]
    transfer_id = int(found.group(1))
    for filename, content in documents:
        uploaded = browser.submit(
            browser.get(f"/transfers/{transfer_id}"),
            f"/transfers/{transfer_id}/documents",
            {"category": "pep"},
            files={"file": (filename, content, "application/pdf")},
            allow_redirects=False,
        )
        assert uploaded.status_code == 302, page_problem(uploaded)
    if send:
        page = browser.get(f"/transfers/{transfer_id}/send")
        sent = browser.submit(page, f"/transfers/{transfer_id}/send", {}, allow_redirects=False)
        assert sent.status_code == 302, page_problem(sent)
    return transfer_id


def download_link(browser: Browser, transfer_id: int, document_id: int) -> str:
    """Ask for a single-use link (the Download button on the transfer page); returns its path."""
    page = browser.get(f"/transfers/{transfer_id}")
    assert page.status_code == 200, page_problem(page)
    response = browser.submit(
        page, f"/transfers/{transfer_id}/documents/{document_id}/link", {}, allow_redirects=False
    )
    assert response.status_code == 302, page_problem(response)
    location = str(response.headers["Location"])
    assert "/transfers/download/" in location, location
    return location


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iter_source_addresses(start: int = 10) -> Iterator[str]:
    """127.0.0.10, 127.0.0.11, ...: distinct client addresses on loopback."""
    for n in range(start, 250):
        yield f"127.0.0.{n}"
