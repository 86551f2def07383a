"""The whole journey in a real browser: invitations, enrolment, sending, notification, download,
receipt and tracking, with every page checked by axe-core and photographed."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from portal.extensions import db
from portal.models import Role, User
from portal.models.base import today_in_england
from tests.browser.support import (
    LiveServer,
    Screenshots,
    Visitor,
    accept_invitation,
    link_in,
    sign_in,
    throttle_uploads,
)
from tests.support import Account, Factory, Org

pytestmark = pytest.mark.browser

NewContext = Callable[..., BrowserContext]
SENDER_PASSWORD = "plum orbit lantern seventy"
TEACHER_PASSWORD = "quiet harbour mosaic ninety"
# A PDF big enough for the progress bar to be seen on a throttled upload, and a plain-text chronology.
REPORT = b"%PDF-1.7\n" + os.urandom(600_000) + b"\n%%EOF\n"
TRANSFER = re.compile(r"Transfer HO-[A-Z0-9]{4}-[A-Z0-9]{4}")
CHRONOLOGY = "".join(f"2026-0{m}-01,Event {m},Attended review\n" for m in range(1, 10)).encode()


def named(server: LiveServer, account: Account, name: str) -> Account:
    """Give a factory-made account a person's name (the header shows it)."""
    with server.app.app_context():
        user = db.session.get(User, account.user_id)
        assert user is not None
        user.display_name = name
        db.session.commit()
    return account


def invite(visitor: Visitor, *, name: str, email: str, role: str) -> None:
    """An admin invites a person and records their information-governance training."""
    visitor.press("Invite a user")
    visitor.check("invite a user", title="Invite a user")
    visitor.field("Full name").fill(name)
    visitor.field("Work email address").fill(email)
    visitor.field("Role").select_option(label=role)
    visitor.press("Send invitation")
    visitor.check(f"invited {role}", title=name)
    expect(visitor.page.get_by_text(f"Invitation sent to {email}")).to_be_visible()
    visitor.field("Date training was completed").fill(today_in_england().isoformat())
    visitor.press("Record training")
    visitor.check(f"training recorded for {role}", title=name)


def admin_signs_in(visitor: Visitor, admin: Account, organisation: Org) -> None:
    visitor.goto("/")
    visitor.check("sign in", title="Sign in")
    sign_in(visitor, admin)
    visitor.check("home", title="Home")
    expect(visitor.page.get_by_role("heading", level=1)).to_contain_text("Welcome")
    visitor.follow("Users")
    visitor.check("users", title="Users")
    expect(visitor.page.get_by_text(organisation.name).first).to_be_visible()


def test_a_sender_sends_two_documents_that_the_designated_teacher_downloads_intact_and_confirms(
    live_server: LiveServer,
    factory: Factory,
    browser: Browser,
    new_context: NewContext,
    screenshots: Screenshots,
) -> None:
    server, mail = live_server, live_server.mail
    authority = factory.local_authority("Northshire County Council")
    oakfield = factory.school("Oakfield Primary School", authority)
    riverside = factory.school("Riverside Academy", authority)
    oakfield_admin = named(server, factory.account(oakfield, Role.ORG_ADMIN), "Alex Admin")
    riverside_admin = named(server, factory.account(riverside, Role.ORG_ADMIN), "Robin Admin")
    caseworker = named(server, factory.account(authority, Role.CASEWORKER), "Casey Worker")

    # Each school's administrator invites their person.
    admin = Visitor.open(new_context(), "oakfield admin", server, screenshots)
    admin_signs_in(admin, oakfield_admin, oakfield)
    invite(admin, name="Sam Sender", email="sam@oakfield.example", role="School staff")
    admin = Visitor.open(new_context(), "riverside admin", server, screenshots)
    admin_signs_in(admin, riverside_admin, riverside)
    invite(admin, name="Dana Teacher", email="dana@riverside.example", role="Designated teacher")

    # Each accepts the invitation from the e-mail the SMTP server caught, and enrols.
    teacher = Visitor.open(new_context(), "teacher", server, screenshots)
    dana = accept_invitation(teacher, mail.wait_for("dana@riverside.example", "invitation"), TEACHER_PASSWORD)
    sender_context = new_context()
    sender = Visitor.open(sender_context, "sender", server, screenshots)
    sam = accept_invitation(sender, mail.wait_for("sam@oakfield.example", "invitation"), SENDER_PASSWORD)

    # The sender signs in and sends two documents: child, school, documents, check, send.
    sender.press("I have saved them – sign in")
    sender.check("sign in", title="Sign in")
    sign_in(sender, sam)
    sender.check("home", title="Home")
    sender.follow("Send records")
    sender.check("choose school", title="Which school is the child moving to?")
    sender.field("Which school is the child moving to?").fill("Riverside")
    sender.press("Search")
    sender.check("school search results", title="Which school is the child moving to?")
    sender.follow("Riverside Academy")
    sender.check("about the child", title="About the child")
    sender.field("Child's initials").fill("JS")
    sender.field("Date of birth").fill("2015-04-01")
    sender.field("The child is looked after by a local authority").check()
    sender.field("Date the child left your school").fill(today_in_england().isoformat())
    sender.press("Continue")
    sender.check("add documents", title="Add the documents")
    found = re.search(r"/transfers/\d+$", sender.page.url)
    assert found, sender.page.url
    transfer_path = found.group(0)

    # A throttled connection: the progress bar shows bytes sent, percentage and time left.
    throttle_uploads(sender_context, sender.page, 300_000)
    sender.field("What is this document?").select_option(label="Personal Education Plan (PEP)")
    sender.field("Upload a file").set_input_files(
        {"name": "pep-summer-term.pdf", "mimeType": "application/pdf", "buffer": REPORT}
    )
    sender.press("Upload")
    status = sender.page.locator(".handover-upload-progress__status")
    expect(status).to_have_text(re.compile(r"of 600\.0 KB sent \(\d+%\), (about \d+ seconds? left|working)"))
    sender.shots.take(sender.page, "sender upload in progress")
    expect(sender.page.get_by_text("pep-summer-term.pdf has been uploaded and encrypted.")).to_be_visible(
        timeout=15_000
    )
    throttle_uploads(sender_context, sender.page, -1)
    sender.check("first document uploaded", title="Add the documents")
    sender.field("What is this document?").select_option(label="Chronology")
    sender.field("Upload a file").set_input_files(
        {"name": "chronology.csv", "mimeType": "text/csv", "buffer": CHRONOLOGY}
    )
    sender.press("Upload")
    expect(sender.page.get_by_text("chronology.csv has been uploaded and encrypted.")).to_be_visible()
    sender.check("second document uploaded", title="Add the documents")
    sender.press("Continue to check and send")
    sender.check("check answers", title="Check your answers before sending")
    sender.press("Send records")
    sender.check("sent", title=TRANSFER)
    expect(sender.page.get_by_text("The school's designated teachers have been told")).to_be_visible()

    # The designated teacher follows the notification, signs in, downloads both documents intact.
    notification = mail.wait_for("dana@riverside.example", "Records")
    teacher.goto(link_in(notification, server.url))
    teacher.check("sign in from notification", title="Sign in")
    sign_in(teacher, dana)
    teacher.check("records received", title="Records received")
    teacher.page.get_by_role("link", name=re.compile(r"^HO-")).first.click()
    teacher.check("transfer", title=TRANSFER)
    downloads: dict[str, str] = {}
    for filename, content in (("pep-summer-term.pdf", REPORT), ("chronology.csv", CHRONOLOGY)):
        with teacher.page.expect_download() as started:
            teacher.press(f"Download {filename}")
        download = started.value
        assert download.suggested_filename == filename
        assert Path(download.path()).read_bytes() == content, f"{filename} changed on its way"
        downloads[filename] = download.url
    teacher.goto(transfer_path)
    teacher.check("after downloading", title=TRANSFER)
    teacher.field("Comment (optional)").fill("Both documents received, thank you.")
    teacher.press("Confirm receipt")
    teacher.check("receipt confirmed", title=TRANSFER)
    expect(teacher.page.get_by_text("Thank you. The sending school can now see")).to_be_visible()

    # A download link works once.
    teacher.goto(downloads["chronology.csv"])
    teacher.check("used download link", title="This download link has already been used", status=410)

    # The caseworker sees the transfer confirmed, and its history.
    watcher = Visitor.open(new_context(), "caseworker", server, screenshots)
    watcher.goto("/")
    watcher.check("sign in", title="Sign in")
    sign_in(watcher, caseworker)
    watcher.check("home", title="Home")
    watcher.follow("Dashboard")
    watcher.check("dashboard", title="Dashboard")
    watcher.page.get_by_role("link", name=re.compile(r"^JS\b.*transfer HO-")).click()
    watcher.check("deadline and timeline", title=re.compile(TRANSFER.pattern + ": deadline and timeline"))
    timeline = watcher.page.get_by_role("table", name="What has happened to this transfer")
    for happened in ("Sent", "Opened", "Downloaded", "Receipt confirmed", "Dana Teacher"):
        expect(timeline).to_contain_text(happened)
    watcher.goto(transfer_path)
    watcher.check("confirmed transfer", title=TRANSFER)
    expect(watcher.page.get_by_text("Receipt confirmed").first).to_be_visible()
    assert browser.is_connected()
