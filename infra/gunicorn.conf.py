"""Gunicorn settings for Handover in production.

    gunicorn -c infra/gunicorn.conf.py 'portal:create_app()'

Every number comes from a ``HANDOVER_*`` environment variable (the portal's own settings are the
``PORTAL_*`` ones, see README.md); the defaults suit one instance of a two-instance pair behind
nginx on one server. The systemd unit (``infra/systemd/handover@.service``) and the compose file
set ``HANDOVER_BIND`` per instance.

Why these choices:

* **gthread workers.** A teacher uploading a 2 GiB file over a school's uplink keeps one request
  open for tens of minutes. A ``sync`` worker would be one process per such request, and its
  ``timeout`` is a per-request kill switch: it must either cut legitimate uploads or be so long
  that a wedged process goes unnoticed for hours. In a ``gthread`` worker the main thread keeps
  heartbeating while request threads stream, so ``timeout`` detects a frozen *process* within a
  minute whatever the requests are doing, and a few processes with many threads hold many slow
  transfers in little memory (the work is mostly socket and S3 I/O, and argon2 hashing releases
  the GIL).
* **A per-request deadline of our own** (``HANDOVER_REQUEST_DEADLINE``, default 2 h). Neither
  gthread nor nginx bounds a request's *total* time: nginx only bounds the gaps between reads.
  A watchdog thread per worker shuts down the socket of any request older than the deadline, so
  the app's next read or write fails and the thread comes back. Two hours carries 2 GiB at about
  2.4 Mbit/s, below the upload speed of any school broadband line we expect.
* **Forwarded headers only from the proxy.** gunicorn already ignores ``X-Forwarded-Proto`` from
  peers outside ``forwarded_allow_ips``; ``pre_request`` below also deletes every ``X-Forwarded-*``,
  ``X-Real-IP`` and ``X-Request-ID`` header such a peer sends, because the app's ProxyFix
  (``PORTAL_TRUSTED_PROXY_COUNT``) and request ids trust them by position, not by source.
* **Logs without secrets.** Download and invitation links carry their token in the path
  (``/transfers/download/<token>``, ``/invitation/<token>``). The access log has no query strings,
  no referrer, and those path segments masked; the same masking is applied to the error log and to
  the app's own log handlers (Flask logs "Exception on <path>").
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import socket
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from gunicorn import glogging

# --- helpers -------------------------------------------------------------------------------------


def _env_int(name: str, default: int, *, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = int(raw)  # a typo must stop the start-up, not fall back silently
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    return value


def _default_workers() -> int:
    # Two processes at least, so a crashing worker never takes the instance down; beyond four,
    # more threads are cheaper than more processes (each process holds its own app and pools).
    return max(2, min(4, os.cpu_count() or 1))


# --- server socket -------------------------------------------------------------------------------

# Loopback by default: only nginx on this host may talk to the app. On a multi-server deployment
# bind a private address and firewall it to the proxy (see infra/README.md).
bind = [os.environ.get("HANDOVER_BIND", "127.0.0.1:8001")]
backlog = 256

# --- workers -------------------------------------------------------------------------------------

worker_class = "gthread"
workers = _env_int("HANDOVER_WORKERS", _default_workers())
# Simultaneous requests per worker. Peak memory is roughly workers x (app ~120 MB + threads x the
# argon2 memory cost while sign-ins hash concurrently); 16 keeps that under 2 GB with the defaults.
threads = _env_int("HANDOVER_THREADS", 16)
# Connections a worker holds at once (queued ones wait in its poller, not in a thread).
worker_connections = _env_int("HANDOVER_WORKER_CONNECTIONS", 200)

# Heartbeat: a worker process whose main loop has not run for this long is killed and replaced.
# Not a request timeout (see the module docstring).
timeout = _env_int("HANDOVER_WORKER_TIMEOUT", 60)
# On restart (deploy, max_requests, SIGTERM from systemd) in-flight transfers get this long to
# finish before the worker is killed. systemd's TimeoutStopSec must exceed it.
graceful_timeout = _env_int("HANDOVER_GRACEFUL_TIMEOUT", 300)
# nginx opens a connection per request (no upstream keepalive), so this only covers other clients.
keepalive = 5

# Recycle workers now and then so memory fragmentation from large streams cannot grow without
# bound; the jitter keeps the workers of both instances from restarting at the same moment.
max_requests = _env_int("HANDOVER_MAX_REQUESTS", 5000, minimum=0)
max_requests_jitter = _env_int("HANDOVER_MAX_REQUESTS_JITTER", 500, minimum=0)

REQUEST_DEADLINE_SECONDS = _env_int("HANDOVER_REQUEST_DEADLINE", 2 * 3600)

# Two instances on one host must not share gunicorn's default control socket
# ($HOME/.gunicorn/gunicorn.ctl); systemd drives restarts with signals, so none is needed at all.
control_socket_disable = True
# The heartbeat file is fchmod-ed every second: keep it off disk (/dev/shm is tmpfs on Debian).
# gunicorn creates it with mkstemp (unique name, mode 0600), so a shared directory is safe.
_SHM = Path("/dev/shm")  # noqa: S108
worker_tmp_dir = os.environ.get("HANDOVER_WORKER_TMP_DIR") or (str(_SHM) if _SHM.is_dir() else None)

# --- proxy ---------------------------------------------------------------------------------------

# The proxy's address(es): only these may say "this request came over https" or name the client.
forwarded_allow_ips = os.environ.get("HANDOVER_FORWARDED_ALLOW_IPS", "127.0.0.1")

UNTRUSTED_FORWARDING_HEADERS = frozenset(
    {"X-FORWARDED-FOR", "X-FORWARDED-PROTO", "X-FORWARDED-HOST", "X-FORWARDED-PORT",
     "X-FORWARDED-PREFIX", "X-FORWARDED-PROTOCOL", "X-FORWARDED-SSL", "FORWARDED", "X-REAL-IP",
     "X-REQUEST-ID"}
)  # fmt: skip

# --- logging -------------------------------------------------------------------------------------

# To stdout/stderr: systemd's journal (or docker's log driver) stores and rotates them.
accesslog = os.environ.get("HANDOVER_ACCESS_LOG", "-")
errorlog = os.environ.get("HANDOVER_ERROR_LOG", "-")
loglevel = os.environ.get("HANDOVER_LOG_LEVEL", "info")
# Client address (set by ProxyFix from nginx's header), nginx's request id for correlation, the
# path with no query string and tokens masked, status, bytes, duration. No referrer, no cookies.
access_log_format = '%(h)s %({x-request-id}i)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'

# Path segments that are secrets: the token after these prefixes is replaced in every log line.
_TOKEN_IN_PATH = re.compile(r"(/transfers/download/|/invitation/)[^/?#\s\"']+")
_MASK = r"\1[token]"


def mask_tokens(text: str) -> str:
    """``text`` with the token of every download or invitation path replaced by ``[token]``."""
    return _TOKEN_IN_PATH.sub(_MASK, text)


class TokenMaskingFilter(logging.Filter):
    """Masks link tokens in a record's message and traceback before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return True
        masked = mask_tokens(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Formatter reuses exc_text when set, so the traceback is written masked too.
            record.exc_text = mask_tokens("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return True


# Atoms that would put secrets or the raw request target into the access log whatever the format.
_DROPPED_ATOMS = (
    "{cookie}i", "{authorization}i", "{referer}i", "{x-csrftoken}i",
    "{http_cookie}e", "{http_authorization}e", "{http_referer}e", "{raw_uri}e", "{query_string}e",
    "{request_uri}e", "{path_info}e",
)  # fmt: skip


class HandoverLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger with no query strings, no referrer and masked link tokens."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, TokenMaskingFilter) for f in log.filters):
                log.addFilter(TokenMaskingFilter())

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        path = mask_tokens(str(environ.get("PATH_INFO") or "-"))
        atoms["U"] = path
        atoms["r"] = f"{environ.get('REQUEST_METHOD', '-')} {path} {environ.get('SERVER_PROTOCOL', '-')}"
        atoms["q"] = "-"
        atoms["f"] = "-"
        for name in _DROPPED_ATOMS:
            atoms.pop(name, None)
        return atoms


logger_class = HandoverLogger


# --- request deadline ----------------------------------------------------------------------------


class RequestDeadlines:
    """Open requests of one worker and when each must end; a watchdog thread enforces them."""

    def __init__(self, limit_seconds: float, log: logging.Logger | Any) -> None:
        self.limit_seconds = limit_seconds
        self._log = log
        self._lock = threading.Lock()
        self._open: dict[int, tuple[float, socket.socket, str]] = {}
        self._stopped = threading.Event()

    def start(self, req: Any) -> None:
        sock = getattr(getattr(req, "unreader", None), "sock", None)
        if not isinstance(sock, socket.socket):
            return  # not a plain socket connection (never the case behind nginx)
        path = mask_tokens(str(getattr(req, "path", "") or ""))
        with self._lock:
            self._open[id(req)] = (time.monotonic() + self.limit_seconds, sock, path)

    def finish(self, req: Any) -> None:
        with self._lock:
            self._open.pop(id(req), None)

    def enforce(self, now: float | None = None) -> int:
        """Cut off every request past its deadline; returns how many were cut."""
        now = time.monotonic() if now is None else now
        with self._lock:
            overdue = [(key, entry) for key, entry in self._open.items() if entry[0] <= now]
            for key, _entry in overdue:
                del self._open[key]
        for _key, (_deadline, sock, path) in overdue:
            self._log.warning(
                "request to %s exceeded the %d s deadline: closing its connection", path, self.limit_seconds
            )
            # shutdown, not close: the handling thread still owns the descriptor; its next recv
            # returns end-of-file and its next send fails, so it unwinds normally.
            with contextlib.suppress(OSError):  # already gone
                sock.shutdown(socket.SHUT_RDWR)
        return len(overdue)

    def run_watchdog(self) -> None:
        interval = max(0.05, min(30.0, self.limit_seconds / 10))
        while not self._stopped.wait(interval):
            try:
                self.enforce()
            except Exception:  # the watchdog must outlive any surprise
                self._log.exception("request deadline watchdog failed")

    def stop(self) -> None:
        self._stopped.set()


def _peer_is_proxy(peer: Any, allowed: list[str]) -> bool:
    if not isinstance(peer, tuple):
        return True  # a unix socket: only local processes with file access can connect
    if "*" in allowed:
        return True
    try:
        address = ipaddress.ip_address(peer[0])
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(entry, strict=False) for entry in allowed)


# --- server hooks --------------------------------------------------------------------------------


def post_worker_init(worker: Any) -> None:
    """Start this worker's deadline watchdog; mask tokens in the app's own log handlers too."""
    deadlines = RequestDeadlines(REQUEST_DEADLINE_SECONDS, worker.log)
    worker.handover_deadlines = deadlines
    threading.Thread(target=deadlines.run_watchdog, name="request-deadlines", daemon=True).start()
    # The app (loaded before this hook) logs through the root logger's handlers: Flask's
    # "Exception on /transfers/download/<token> [GET]" must not reach the journal unmasked.
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, TokenMaskingFilter) for f in handler.filters):
            handler.addFilter(TokenMaskingFilter())


def worker_exit(server: Any, worker: Any) -> None:
    deadlines = getattr(worker, "handover_deadlines", None)
    if deadlines is not None:
        deadlines.stop()


def pre_request(worker: Any, req: Any) -> None:
    """Drop forwarding headers a non-proxy peer sent; start the request's deadline."""
    if not _peer_is_proxy(getattr(req, "peer_addr", None), list(worker.cfg.forwarded_allow_ips)):
        req.headers = [
            (name, value) for name, value in req.headers if name.upper() not in UNTRUSTED_FORWARDING_HEADERS
        ]
    deadlines = getattr(worker, "handover_deadlines", None)
    if deadlines is not None:
        deadlines.start(req)


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    deadlines = getattr(worker, "handover_deadlines", None)
    if deadlines is not None:
        deadlines.finish(req)
