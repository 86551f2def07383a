"""What the browser tests share: the captured mail, a person's browser tab that checks every page it
reaches (status, title, script errors, axe-core, a screenshot), and the sign-in and enrolment steps."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

from flask import Flask
from playwright.sync_api import BrowserContext, ConsoleMessage, Locator, Page, Response, expect
from sqlalchemy import select

from portal.extensions import db
from portal.models import User
from tests.support import Account

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
AXE_SOURCE_PATH = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA. wcag21a matters: without it axe skips
# label-content-name-mismatch (WCAG 2.5.3).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
_AXE_RUN = """tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
  .then(result => result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(' ') + ' -- ' + n.failureSummary)})))"""
_LINK = re.compile(r"https?://\S+")


@dataclass
class LiveServer:
    """The portal served on 127.0.0.1, and the mail it sends."""

    url: str
    app: Flask
    mail: MailCatcher


class MailCatcher:
    """An aiosmtpd handler keeping every message it is given (the SMTP server runs in its own thread)."""

    def __init__(self) -> None:
        self.port = 0
        self.messages: list[EmailMessage] = []
        self._arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, to: str, subject: str, timeout: float = 10) -> EmailMessage:
        """The first message to ``to`` whose subject contains ``subject``, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for message in self.messages:
                    if to in str(message["To"]) and subject in str(message["Subject"]):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(str(m["To"]), str(m["Subject"])) for m in self.messages]
                    raise AssertionError(f"no e-mail to {to} about {subject!r}; the server got {seen}")
                self._arrived.wait(remaining)


def body_of(message: EmailMessage) -> str:
    """The plain-text body."""
    part = message.get_body(("plain",))
    assert part is not None, "the e-mail has no plain-text body"
    return str(cast(EmailMessage, part).get_content())


def link_in(message: EmailMessage, base_url: str) -> str:
    """The one link into the portal that an e-mail carries."""
    links: list[str] = [link for link in _LINK.findall(body_of(message)) if link.startswith(base_url)]
    assert len(links) == 1, f"expected one link to {base_url} in the e-mail, found {links}"
    return links[0]


class Screenshots:
    """Numbered full-page screenshots of one test's steps."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken = 0

    def take(self, page: Page, label: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.taken += 1
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
        path = self.folder / f"{self.taken:02d}-{slug}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@dataclass
class Visitor:
    """One person's browser tab. ``check`` is called on every page reached: it asserts the page loaded
    with the expected status and a proper title, that no script was refused or failed, and that axe-core
    finds no WCAG 2.2 AA violation; then it takes a screenshot."""

    page: Page
    who: str
    server: LiveServer
    shots: Screenshots
    statuses: list[int] = field(default_factory=list)
    script_problems: list[str] = field(default_factory=list)
    loads: int = 0
    loads_checked: int = 0

    @classmethod
    def open(cls, context: BrowserContext, who: str, server: LiveServer, shots: Screenshots) -> Visitor:
        visitor = cls(context.new_page(), who, server, shots)
        visitor.page.set_default_timeout(15_000)
        visitor.page.on("response", visitor._on_response)
        visitor.page.on("load", visitor._on_load)
        visitor.page.on("console", visitor._on_console)
        visitor.page.on("pageerror", lambda error: visitor.script_problems.append(f"page error: {error}"))
        return visitor

    def _on_response(self, response: Response) -> None:
        if response.request.is_navigation_request() and response.frame == self.page.main_frame:
            self.statuses.append(response.status)

    def _on_load(self, _: Page) -> None:
        self.loads += 1

    def _on_console(self, message: ConsoleMessage) -> None:
        # A refused inline script or style shows up here: the CSP must never have to refuse anything.
        if message.type == "error" and "Content Security Policy" in message.text:
            self.script_problems.append(message.text)

    def goto(self, path_or_url: str) -> None:
        url = path_or_url if path_or_url.startswith("http") else self.server.url + path_or_url
        self.page.goto(url)

    def check(self, step: str, *, title: str | re.Pattern[str], status: int = 200) -> None:
        """Assert the page is the one expected and sound; then screenshot it as ``step``.

        ``title`` is the page title before " – Handover" (a pattern must match all of it)."""
        page = self.page
        # Each step is a new page: wait for it, or a key press that has only started a navigation
        # would have the old page checked.
        if self.loads == self.loads_checked:
            page.wait_for_event("load")
        self.loads_checked = self.loads
        assert self.statuses, f"{step}: no page was loaded"
        assert self.statuses[-1] == status, f"{step}: the page answered {self.statuses[-1]}, not {status}"
        wanted = title.pattern if isinstance(title, re.Pattern) else re.escape(title)
        expect(page).to_have_title(re.compile(rf"^(?:{wanted}) – Handover$"))
        assert page.locator("h1").count() == 1, f"{step}: a page has exactly one main heading"
        assert not self.script_problems, f"{step}: {self.script_problems}"
        violations = axe_violations(page)
        assert not violations, f"{step}: axe found {len(violations)} WCAG violations:\n" + "\n".join(
            f"- {v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in violations
        )
        self.shots.take(page, f"{self.who} {step}")

    def field(self, label: str) -> Locator:
        """A form field by its exact label (``Password`` must not also match ``Confirm your password``)."""
        return self.page.get_by_label(label, exact=True)

    def press(self, button: str) -> None:
        """Click a button by its exact accessible name."""
        self.page.get_by_role("button", name=button, exact=True).click()

    def follow(self, link: str) -> None:
        """Click a link by its exact accessible name."""
        self.page.get_by_role("link", name=link, exact=True).click()


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG A/AA violations on the current page (injected by evaluate: the CSP refuses tags)."""
    if not page.evaluate("() => document.body.classList.contains('js-enabled')"):
        return _axe_violations_of_static_page(page)
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE_PATH.read_text(encoding="utf-8"))
    return cast(list[dict[str, Any]], page.evaluate(_AXE_RUN, AXE_TAGS))


def _axe_violations_of_static_page(page: Page) -> list[dict[str, Any]]:
    """With JavaScript off, axe (which needs timers) cannot run in the page itself: check the same
    document, scripts removed, at the same address in a scratch tab that runs JavaScript."""
    browser = page.context.browser
    assert browser is not None
    html = re.sub(r"<script\b.*?</script>", "", page.content(), flags=re.S)
    scratch = browser.new_context()
    try:
        tab = scratch.new_page()
        tab.route(page.url, lambda route: route.fulfill(status=200, content_type="text/html", body=html))
        tab.goto(page.url)
        tab.evaluate(AXE_SOURCE_PATH.read_text(encoding="utf-8"))
        return cast(list[dict[str, Any]], tab.evaluate(_AXE_RUN, AXE_TAGS))
    finally:
        scratch.close()


def account_for(server: LiveServer, email_address: str, password: str, secret: str) -> Account:
    """What a person who enrolled in the browser knows, as the factory's accounts hold it."""
    with server.app.app_context():
        user = db.session.scalar(select(User).where(User.email == email_address))
        assert user is not None, f"no user {email_address}"
        return Account(user.id, user.email, password, secret, user.organisation_id)


def sign_in(visitor: Visitor, account: Account) -> None:
    """Fill in and send the sign-in form (the visitor is on it)."""
    visitor.field("Email address").fill(account.email)
    visitor.field("Password").fill(account.password)
    visitor.field("Security code").fill(account.code())
    visitor.press("Sign in")


def accept_invitation(visitor: Visitor, invitation: EmailMessage, password: str) -> Account:
    """Follow the e-mailed link, choose a password, add the key shown as text to an 'app' (pyotp),
    confirm with a code and see the recovery codes. Returns what the person now knows."""
    visitor.goto(link_in(invitation, visitor.server.url))
    visitor.check("create a password", title="Create a password")
    visitor.field("Create a password").fill(password)
    visitor.field("Confirm your password").fill(password)
    visitor.press("Continue")
    visitor.check("set up authenticator", title="Set up your authenticator app")
    expect(visitor.page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    key = visitor.page.locator("#totp-key").inner_text()
    assert re.fullmatch(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", key.strip()), key
    account = account_for(visitor.server, str(invitation["To"]), password, key.replace(" ", "").strip())
    visitor.field("Security code").fill(account.code())
    visitor.press("Confirm")
    visitor.check("recovery codes", title="Your recovery codes")
    expect(visitor.page.locator("#recovery-codes li")).to_have_count(10)
    return account


# What has keyboard focus, and whether it is visibly marked. GOV.UK Frontend marks focus with a yellow
# outline or background and a black box-shadow; its checkboxes and radios hide the real input and mark
# the label's ::before instead.
_FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const shows = (style) => (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0)
    || style.boxShadow !== 'none';
  let visible = shows(getComputedStyle(el));
  if (!visible && el.labels && el.labels[0]) visible = shows(getComputedStyle(el.labels[0], '::before'));
  // Tab from a date field's year goes to the browser's own calendar button, inside the field: the field
  // itself then no longer matches :focus, and Chromium draws that button's focus ring.
  if (!visible && el.type === 'date' && !el.matches(':focus')) visible = true;
  const label = el.labels && el.labels[0] ? el.labels[0].innerText
    : (el.getAttribute('aria-label') || el.innerText || '');
  return {tag: el.tagName.toLowerCase(), type: el.type || '', label: label.replace(/\\s+/g, ' ').trim(),
          visible: visible, html: el.outerHTML.slice(0, 120)};
}"""


@dataclass(frozen=True)
class Focused:
    """The element with keyboard focus."""

    tag: str
    type: str
    label: str
    visible: bool
    html: str


def focused(page: Page) -> Focused | None:
    """What has keyboard focus now (None: nothing, or the page itself)."""
    found = page.evaluate(_FOCUSED)
    return None if found is None else Focused(**found)


def tab_to(page: Page, label: str, *, tag: str | None = None, most: int = 40) -> Focused:
    """Press Tab until the element labelled ``label`` (exactly) has focus, as a keyboard user would,
    asserting that every element passed on the way shows where the focus is (WCAG 2.4.7)."""
    passed = []
    for _ in range(most):
        page.keyboard.press("Tab")
        now = focused(page)
        if now is None:
            continue
        assert now.visible, f"keyboard focus is not visible on {now.html}"
        passed.append(now.label)
        if now.label == label and (tag is None or now.tag == tag):
            return now
    raise AssertionError(f"{label!r} was not reached in {most} presses of Tab; passed {passed}")


def signs_in(visitor: Visitor, account: Account) -> None:
    """From a new browser: the start page sends them to sign in; they land on their home page."""
    visitor.goto("/")
    visitor.check("sign in", title="Sign in")
    sign_in(visitor, account)
    visitor.check("home", title="Home")


def starts_transfer(visitor: Visitor, school_id: int, initials: str = "JS") -> str:
    """Fill in the child's details for a transfer to ``school_id``; returns the draft's path."""
    visitor.goto(f"/transfers/new?school={school_id}")
    visitor.check("about the child", title="About the child")
    visitor.field("Child's initials").fill(initials)
    visitor.field("Date of birth").fill("2015-04-01")
    visitor.field("Date the child left your school").fill("2026-09-01")
    visitor.press("Continue")
    visitor.check("add documents", title="Add the documents")
    found = re.search(r"/transfers/\d+$", visitor.page.url)
    assert found, visitor.page.url
    return found.group(0)


def throttle_uploads(context: BrowserContext, page: Page, bytes_per_second: int) -> None:
    """Make the page's uploads as slow as a poor school connection (-1: no limit)."""
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": bytes_per_second},
    )
