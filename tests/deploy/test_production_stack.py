"""Smoke test of the production stack: Debian's nginx with TLS in front of two gunicorn instances in
production mode, PostgreSQL, Redis and an S3 server, all on 127.0.0.1 (see tests/deploy/stack.py).

It drives the whole journey over HTTPS as browsers would, shows that the two instances behave as
one (sessions, throttles, single-use links), and kills an instance with SIGKILL in the middle of
a download. Run with ``HANDOVER_DEPLOY_SMOKE=1 pytest -p no:xdist -m deploy tests/deploy``.

"Recorded as downloaded", precisely: the link is used up when it is redeemed
(``download_links.used_at``, committed first), and the download is recorded (the
``document.download`` audit event, ``transfers.first_downloaded_at``, the move to status
"downloaded") once the first chunk has been decrypted and verified, just before the first byte is
sent. Nothing is recorded when the last byte has gone. So a download cut off mid-way is, in the
database, indistinguishable from a complete one; the test asserts that honestly, and that the
cut-off left no *completion* trace anywhere (the instance never logged the request, nginx logged
fewer bytes than the document has). Recording completion needs an audit event or a column written
after the last chunk: a change to the portal, not to infra.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import requests

from portal.models.base import ENGLAND
from tests.deploy.conftest import smoke_requested
from tests.deploy.stack import (
    MIB,
    REPO_ROOT,
    Account,
    Browser,
    Instance,
    ProductionStack,
    StackUnavailable,
    download_link,
    iter_source_addresses,
    page_problem,
    pdf,
    send_transfer,
    sha256,
)

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(600)]

REDIS_DB = 12  # this test's own Redis database (flushed at start); the bench uses 13
LARGE_DOCUMENT_BYTES = 50 * 1000 * 1000
RESTORE_CHECK = REPO_ROOT / "infra" / "scripts" / "restore_check.py"
SECURITY_HEADERS = (
    "Strict-Transport-Security",
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "X-Frame-Options",
    "Cross-Origin-Opener-Policy",
    "Cross-Origin-Resource-Policy",
    "Permissions-Policy",
    "Cache-Control",
)
_NONCE = re.compile(r"'nonce-[^']+'")


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProductionStack]:
    production = ProductionStack(tmp_path_factory.mktemp("stack"), redis_db=REDIS_DB)
    try:
        production.start()
    except StackUnavailable as missing:
        production.stop()
        if smoke_requested() or os.environ.get("CI") == "true":
            pytest.fail(f"the smoke test was asked for but cannot run here: {missing}")
        pytest.skip(str(missing))
    except BaseException:
        production.stop()
        raise
    try:
        yield production
    finally:
        production.stop()


@dataclass
class People:
    """Who takes part, each signed in once (each sign-in spends a TOTP step: see Account.code)."""

    authority_id: int
    sending_id: int
    receiving_id: int
    sender: Account
    teacher: Account
    sender_browser: Browser
    teacher_browser: Browser
    teacher_address: str
    teacher_sign_in: requests.Response


@pytest.fixture(scope="module")
def addresses() -> Iterator[str]:
    """A new loopback client address whenever one is asked for."""
    return iter_source_addresses()


@pytest.fixture(scope="module")
def people(stack: ProductionStack, addresses: Iterator[str]) -> People:
    """An authority and two schools; each school's first admin comes from the CLI, then invites
    its member of staff through the web pages, and the invitation arrives by SMTP."""
    authority = stack.create_org(
        "--kind", "local_authority", "--name", "Smoke County Council", "--la-code", "901"
    )
    schools = [
        stack.create_org(
            "--kind", "school", "--name", name, "--urn", urn, "--la-code", "901",
            "--establishment-number", number, "--local-authority-id", str(authority),
        )
        for name, urn, number in (("Oak Primary (smoke)", "990001", "2001"), ("River Academy (smoke)", "990002", "4001"))
    ]  # fmt: skip
    staff = []
    for school, role, email in zip(
        schools,
        ("school_staff", "designated_teacher"),
        ("sender@oak-primary.example.org", "teacher@river-academy.example.org"),
        strict=True,
    ):
        admin_email = f"admin-{school}@schools.example.org"
        admin_address = next(addresses)
        admin = stack.enrol(stack.invite(school, admin_email, "org_admin"), admin_email, admin_address)
        browser = stack.browser(admin_address)
        assert browser.sign_in(admin).status_code == 302
        page = browser.get("/admin/users/invite")
        invited = browser.submit(
            page,
            "/admin/users/invite",
            {"display_name": email.split("@")[0], "email": email, "role": role},
            allow_redirects=False,
        )
        assert invited.status_code == 302, page_problem(invited)
        user_path = invited.headers["Location"]
        body = stack.mailbox.wait_for(to=email, subject="invitation")
        link = next(
            line.strip()
            for line in body.splitlines()
            if line.strip().startswith(f"{stack.base_url}/invitation/")
        )
        address = next(addresses)
        account = stack.enrol(link, email, address)
        # Without current information-governance training nobody may send or download.
        page = browser.get(user_path)
        recorded = browser.submit(
            page, f"{user_path}/ig-training", {"completed_on": datetime.now(ENGLAND).date().isoformat()}
        )
        assert recorded.status_code == 200, page_problem(recorded)
        staff.append((account, address))
    (sender, sender_address), (teacher, teacher_address) = staff
    sender_browser, teacher_browser = stack.browser(sender_address), stack.browser(teacher_address)
    assert sender_browser.sign_in(sender).status_code == 302
    teacher_sign_in = teacher_browser.sign_in(teacher)
    assert teacher_sign_in.status_code == 302
    return People(
        authority,
        schools[0],
        schools[1],
        sender,
        teacher,
        sender_browser,
        teacher_browser,
        teacher_address,
        teacher_sign_in,
    )


def create_transfer(
    stack: ProductionStack,
    people: People,
    sender: Browser,
    documents: list[tuple[str, bytes]],
    *,
    send: bool = True,
) -> int:
    """Draft, upload each document (streamed through nginx), send; checks what the database says."""
    transfer_id = send_transfer(
        sender,
        receiving_id=people.receiving_id,
        authority_id=people.authority_id,
        documents=documents,
        send=send,
    )
    stored = stack.sql(
        "SELECT count(*) FROM documents WHERE transfer_id = %(t)s AND stored_at IS NOT NULL", t=transfer_id
    )
    assert stored == [(len(documents),)]
    assert transfer_status(stack, transfer_id) == ("sent" if send else "draft")
    return transfer_id


def transfer_status(stack: ProductionStack, transfer_id: int) -> str:
    """The status column as the enum's value (SQLAlchemy stores the member's name)."""
    [(status,)] = stack.sql("SELECT status FROM transfers WHERE id = %(t)s", t=transfer_id)
    return str(status).lower()


def document_ids(stack: ProductionStack, transfer_id: int) -> dict[str, int]:
    rows = stack.sql("SELECT display_filename, id FROM documents WHERE transfer_id = %(t)s", t=transfer_id)
    return {str(name): int(doc_id) for name, doc_id in rows}


def served_by(stack: ProductionStack, response: requests.Response) -> str:
    """Which instance answered: nginx's request id, echoed by the app, is in exactly one access log.

    gunicorn writes the line just after the last byte goes out, so it may lag the client a little.
    """
    request_id = response.headers.get("X-Request-ID", "")
    deadline = time.monotonic() + 5
    while True:
        owners = [instance.name for instance in stack.instances if request_id in instance.request_ids()]
        if owners or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(owners) == 1, (request_id, owners)
    return owners[0]


@pytest.fixture(scope="module")
def delivered(stack: ProductionStack, people: People) -> tuple[int, dict[str, int], dict[str, bytes]]:
    """A transfer sent to the teacher's school with a small and a 50 MB document."""
    contents = {"small.pdf": pdf(300_000, b"small"), "large.pdf": pdf(LARGE_DOCUMENT_BYTES, b"large")}
    transfer_id = create_transfer(stack, people, people.sender_browser, list(contents.items()))
    return transfer_id, document_ids(stack, transfer_id), contents


# --- the proxy -----------------------------------------------------------------------------------


def _handshake(port: int, ca: Path, *, version: ssl.TLSVersion, ciphers: str | None = None) -> str:
    """Negotiated cipher name, or raise ssl.SSLError if the server refuses."""
    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = context.maximum_version = version
    if ciphers:
        context.set_ciphers(ciphers)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        return cipher[0]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_the_proxy_speaks_modern_tls_only_and_redirects_plain_http(stack):
    assert _handshake(stack.https_port, stack.ca_path, version=ssl.TLSVersion.TLSv1_3)
    assert "GCM" in _handshake(stack.https_port, stack.ca_path, version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError):  # CBC, no AEAD: refused even on TLS 1.2
        _handshake(
            stack.https_port,
            stack.ca_path,
            version=ssl.TLSVersion.TLSv1_2,
            ciphers="ECDHE-ECDSA-AES128-SHA256",
        )
    with pytest.raises(ssl.SSLError):  # TLS 1.1 (the client has to lower its own floor to even offer it)
        _handshake(
            stack.https_port, stack.ca_path, version=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT:@SECLEVEL=0"
        )

    plain = requests.get(
        f"http://127.0.0.1:{stack.http_port}/sign-in?next=/x", allow_redirects=False, timeout=10
    )
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"{stack.base_url}/sign-in?next=/x"

    browser = stack.browser()
    assert browser.get("/healthz").text == "ok\n"
    assert browser.get("/readyz").text == "ready\n"


def _headers_once(getlist: Callable[[str], list[str]]) -> dict[str, str]:
    """The security headers of a response, failing if any is sent twice (by app and nginx both)."""
    values = {}
    for name in SECURITY_HEADERS:
        sent = getlist(name)
        assert len(sent) == 1, f"{name} sent {len(sent)} times: {sent}"
        values[name] = _NONCE.sub("'nonce-X'", sent[0])
    return values


def _raw_request(stack: ProductionStack, head: str) -> tuple[int, Callable[[str], list[str]]]:
    """Send a bare request head over TLS (a body announced but not sent) and read nginx's answer."""
    context = ssl.create_default_context(cafile=str(stack.ca_path))
    with (
        socket.create_connection(("127.0.0.1", stack.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(head.replace("\n", "\r\n").encode("ascii") + b"\r\n")
        response = http.client.HTTPResponse(tls)
        response.begin()
        headers = response.getheaders()
    return response.status, lambda name: [value for key, value in headers if key.lower() == name.lower()]


def test_responses_carry_the_apps_security_headers_once_even_when_nginx_answers(stack):
    through_proxy = stack.browser().get("/sign-in", stream=True)
    direct = requests.get(f"http://127.0.0.1:{stack.instances[0].port}/sign-in", stream=True, timeout=10)

    assert _headers_once(through_proxy.raw.headers.getlist) == _headers_once(direct.raw.headers.getlist)
    assert "nginx/" not in through_proxy.headers.get("Server", "")
    assert "Content-Encoding" not in through_proxy.headers, "no compression over TLS (BREACH)"
    through_proxy.close()
    direct.close()

    # nginx answers these itself: a form body over 2 MiB, an upload over the portal's limit.
    host = f"Host: 127.0.0.1:{stack.https_port}"
    for path, length in (
        ("/sign-in", 3 * MIB),
        ("/transfers/1/documents", stack.upload_limit_bytes + 2 * MIB),
    ):
        status, getlist = _raw_request(
            stack, f"POST {path} HTTP/1.1\n{host}\nContent-Length: {length}\nConnection: close\n"
        )
        assert status == 413, path
        headers = _headers_once(getlist)
        assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] and headers["X-Frame-Options"] == "DENY"


# --- two instances as one ------------------------------------------------------------------------


def test_send_download_confirm_over_https_with_both_instances_sharing_the_session(stack, people):
    content = pdf(1_500_000, b"journey")
    transfer_id = create_transfer(stack, people, people.sender_browser, [("journey.pdf", content)])

    notice = stack.mailbox.wait_for(to=people.teacher.email, subject="Records have arrived")
    assert f"{stack.base_url}/transfers/incoming" in notice

    teacher, signing_in = people.teacher_browser, people.teacher_sign_in
    incoming = teacher.get("/transfers/incoming")
    assert f'href="/transfers/{transfer_id}"' in incoming.text
    pages = [teacher.get(f"/transfers/{transfer_id}") for _ in range(4)] + [
        teacher.get("/") for _ in range(2)
    ]
    assert all(page.status_code == 200 and not page.url.endswith("/sign-in") for page in pages)
    # Signed in through one instance, served by both: the session lives in PostgreSQL.
    assert {served_by(stack, page) for page in [incoming, *pages]} == {"a", "b"}

    document_id = document_ids(stack, transfer_id)["journey.pdf"]
    download = teacher.get(download_link(teacher, transfer_id, document_id))
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert sha256(download.content) == sha256(content)

    page = teacher.get(f"/transfers/{transfer_id}")
    confirmed = teacher.submit(
        page, f"/transfers/{transfer_id}/confirm-receipt", {"comment": "All here"}, allow_redirects=False
    )
    assert confirmed.status_code == 302
    assert transfer_status(stack, transfer_id) == "receipt_confirmed"
    assert stack.mailbox.wait_for(to=people.sender.email, subject="Receipt confirmed")

    # The audit trail names the real client address and nginx's request id (forwarded headers
    # trusted from the proxy only), and the hash chain is intact across both writers.
    sign_in_events = stack.sql(
        "SELECT client_address, request_id FROM audit_events WHERE action = 'auth.sign_in' AND outcome = 'success' "
        "AND request_id = %(rid)s",
        rid=signing_in.headers["X-Request-ID"],
    )
    assert sign_in_events == [(people.teacher_address, signing_in.headers["X-Request-ID"])]
    assert "intact" in stack.flask("audit", "verify")


def test_a_browser_that_honours_the_portals_referrer_policy_can_submit_forms(stack, addresses):
    browser = Browser(stack.base_url, stack.ca_path, next(addresses), send_referer=False)
    page = browser.get("/sign-in")
    assert page.headers["Referrer-Policy"] == "no-referrer"

    response = browser.submit(
        page, "/sign-in", {"email": "nobody@example.org", "password": "wrong password 123", "code": "000000"}
    )

    assert response.status_code == 200, page_problem(response)


def test_a_throttle_counts_across_both_instances(stack, addresses):
    browser = stack.browser(next(addresses))
    page = browser.get("/sign-in")
    attempts = [
        browser.submit(
            page,
            "/sign-in",
            {"email": "nobody@example.org", "password": "wrong password 123", "code": "000000"},
        )
        for _ in range(6)
    ]

    assert [response.status_code for response in attempts] == [200] * 5 + [429]
    # The five counted failures were spread over both instances: the counter is shared (Redis).
    assert {served_by(stack, response) for response in attempts[:5]} == {"a", "b"}
    assert any("auth.sign_in" in key for key in stack.redis_keys())


def test_a_single_use_link_works_once_across_both_instances(stack, people, delivered):
    transfer_id, documents, contents = delivered
    teacher = people.teacher_browser
    link = download_link(teacher, transfer_id, documents["small.pdf"])

    first = teacher.get(link)
    assert first.status_code == 200 and sha256(first.content) == sha256(contents["small.pdf"])
    again = [teacher.get(link) for _ in range(4)]

    assert [response.status_code for response in again] == [410] * 4
    assert {served_by(stack, response) for response in again} - {served_by(stack, first)}, (
        "no second attempt reached the other instance"
    )
    # One success (the first request) and a refusal for each retry, whichever instance took it.
    outcomes = {
        response.headers["X-Request-ID"]: stack.sql(
            "SELECT outcome, details FROM audit_events WHERE action = 'document.download' AND request_id = %(rid)s",
            rid=response.headers["X-Request-ID"],
        )
        for response in [first, *again]
    }
    assert [rows[0][0] for rows in outcomes.values()] == ["success"] + ["denied"] * 4
    assert all("already_used" in str(rows[0][1]) for rows in list(outcomes.values())[1:])


def test_a_restored_backup_reads_every_kept_document_and_no_shredded_one(stack, people, delivered, tmp_path):
    """Backups and a tested restore (infra/README.md): dump, restore into a new database, verify."""
    sender = people.sender_browser
    draft = create_transfer(stack, people, sender, [("shred-me.pdf", pdf(200_000, b"shred"))], send=False)
    shred_id = document_ids(stack, draft)["shred-me.pdf"]
    [(object_key,)] = stack.sql("SELECT object_key FROM documents WHERE id = %(d)s", d=shred_id)
    before = stack.pg_dump(tmp_path / "before.dump")

    page = sender.get(f"/transfers/{draft}")
    removed = sender.submit(
        page, f"/transfers/{draft}/documents/{shred_id}/remove", {}, allow_redirects=False
    )
    assert removed.status_code == 302
    assert stack.sql("SELECT wrapped_key IS NULL FROM documents WHERE id = %(d)s", d=shred_id) == [(True,)]
    after = stack.pg_dump(tmp_path / "after.dump")
    kept = {
        int(row[0])
        for row in stack.sql("SELECT id FROM documents WHERE stored_at IS NOT NULL AND shredded_at IS NULL")
    }
    assert len(kept) >= 3

    # The restore of the later backup: audit chain intact, every kept document decrypts in full,
    # and the shredded one is unreadable because its wrapped key is not in this dump at all.
    restored = stack.restore(after)
    assert "intact" in stack.flask("audit", "verify", database_url=restored)
    check = json.loads(stack.run([sys.executable, str(RESTORE_CHECK), "--json"], database_url=restored))
    verdicts = {int(k): v for k, v in check["documents"].items()}
    assert {i for i, v in verdicts.items() if v == "readable"} == kept
    assert verdicts[shred_id] == "shredded"

    # The window: a backup taken before the shred still holds the key, and the versioned bucket
    # still holds the object's old version until its lifecycle rule expires it. Together they
    # could read the document again; infra/README.md says how long that window lasts.
    old = json.loads(
        stack.run(
            [sys.executable, str(RESTORE_CHECK), "--json", "--allow-missing"],
            database_url=stack.restore(before),
        )
    )
    assert old["documents"][str(shred_id)] == "missing"  # key present, current object deleted
    versions = stack.s3_client().list_object_versions(Bucket=stack.bucket, Prefix=f"documents/{object_key}")
    assert versions.get("Versions") and versions.get("DeleteMarkers")


def _serving_instance(stack: ProductionStack, timeout: float = 10) -> Instance:
    """The instance holding a connection from nginx (there is one request in flight: ours)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [instance for instance in stack.instances if instance.alive and instance.open_connections()]
        if len(busy) == 1:
            return busy[0]
        time.sleep(0.05)
    raise AssertionError("could not tell which instance is serving the download")


def test_killing_the_serving_instance_mid_download(stack, people, delivered):
    transfer_id, documents, contents = delivered
    document_id, expected = documents["large.pdf"], contents["large.pdf"]
    teacher = people.teacher_browser
    link = download_link(teacher, transfer_id, document_id)
    used_before = stack.sql(
        "SELECT count(*) FROM download_links WHERE document_id = %(d)s AND used_at IS NOT NULL", d=document_id
    )

    response = teacher.get(link, stream=True)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(expected)
    request_id = response.headers["X-Request-ID"]
    received = bytearray()
    chunks = response.iter_content(chunk_size=64 * 1024)
    while len(received) < 2 * MIB:  # a slow reader: the rest stays on the server side
        received += next(chunks)
        time.sleep(0.01)
    victim = _serving_instance(stack)
    survivor = next(instance for instance in stack.instances if instance is not victim)

    victim.kill()
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        for chunk in chunks:
            received += chunk
    response.close()

    # The client got an error and an incomplete body...
    assert len(received) < len(expected)
    assert bytes(received) == expected[: len(received)]
    # ...and nothing recorded that the document was received. The link was redeemed, exactly once,
    # and the download recorded as started (the only download record the portal keeps; see the
    # module docstring):
    used_after = stack.sql(
        "SELECT count(*) FROM download_links WHERE document_id = %(d)s AND used_at IS NOT NULL", d=document_id
    )
    assert used_after[0][0] == used_before[0][0] + 1
    redeemed = stack.sql(
        "SELECT outcome FROM audit_events WHERE action = 'document.download' AND request_id = %(rid)s",
        rid=request_id,
    )
    assert redeemed == [("success",)]
    completed = stack.sql(
        "SELECT count(*) FROM audit_events WHERE action = 'document.download_complete' AND request_id = %(rid)s",
        rid=request_id,
    )
    assert completed == [(0,)]
    # No completion anywhere: the killed instance never logged the request, and nginx logged
    # fewer bytes sent than the document holds.
    assert request_id not in victim.request_ids()
    nginx_line = next(
        line
        for line in (stack.nginx_dir / "access.log").read_text().splitlines()
        if f"rid={request_id}" in line
    )
    bytes_sent = int(nginx_line.split('" ', 1)[1].split()[1])
    assert bytes_sent < len(expected)
    assert "/transfers/download/[token]" in nginx_line and link.rsplit("/", 1)[1] not in nginx_line

    # The next request through the proxy succeeds, on the other instance; so does a fresh download.
    page = teacher.get(f"/transfers/{transfer_id}")
    assert page.status_code == 200
    assert served_by(stack, page) == survivor.name
    retry = teacher.get(download_link(teacher, transfer_id, document_id))
    assert retry.status_code == 200 and sha256(retry.content) == sha256(expected)
    assert stack.sql(
        "SELECT count(*) FROM audit_events WHERE action = 'document.download_complete' AND request_id = %(rid)s",
        rid=retry.headers["X-Request-ID"],
    ) == [(1,)]
    assert served_by(stack, retry) == survivor.name
    assert teacher.get("/readyz").status_code == 200

    # Put the stack back as systemd's Restart=always would, for anything that runs after this.
    stack.restart_instance(stack.instances.index(victim))
