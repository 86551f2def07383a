"""Signing in and sending a document with the keyboard alone (WCAG 2.1.1 and 2.4.7): every control is
reached with Tab, shows where the focus is, and is worked with Enter, Space and typing."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.browser.support import LiveServer, Screenshots, Visitor, focused, tab_to
from tests.support import Factory
from tests.transfers.helpers import make_world

pytestmark = pytest.mark.browser

NewContext = Callable[..., BrowserContext]
PLAN = b"%PDF-1.7\n" + b"Personal Education Plan, autumn term.\n" * 300 + b"%%EOF\n"


def test_a_sender_signs_in_and_sends_a_document_without_the_mouse(
    live_server: LiveServer, factory: Factory, new_context: NewContext, screenshots: Screenshots
) -> None:
    world = make_world(factory)
    person = Visitor.open(new_context(), "keyboard", live_server, screenshots)
    page, keys = person.page, person.page.keyboard

    person.goto("/")
    person.check("sign in", title="Sign in")
    # The first Tab reaches the skip link, which takes the focus past the header.
    keys.press("Tab")
    first = focused(page)
    assert first is not None and first.label == "Skip to main content" and first.visible
    keys.press("Enter")
    tab_to(page, "Email address")
    keys.type(world.sender.email)
    tab_to(page, "Password")
    keys.type(world.sender.password)
    tab_to(page, "Security code")
    keys.type(world.sender.code())
    keys.press("Enter")
    person.check("home", title="Home")

    tab_to(page, "Send records", tag="a")
    keys.press("Enter")
    person.check("choose school", title="Which school is the child moving to?")
    tab_to(page, "Which school is the child moving to?")
    keys.type("River")
    keys.press("Enter")
    person.check("search results", title="Which school is the child moving to?")
    tab_to(page, "River Academy")
    keys.press("Enter")
    person.check("about the child", title="About the child")
    tab_to(page, "Child's initials")
    keys.type("AB")
    tab_to(page, "Date of birth")
    keys.type("04012015")  # month first: Debian's Chromium has only the en-US locale
    tab_to(page, "The child is looked after by a local authority")
    keys.press("Space")
    tab_to(page, "Date the child left your school")
    keys.type("09012026")
    tab_to(page, "Continue")
    keys.press("Enter")
    person.check("add documents", title="Add the documents")

    tab_to(page, "Upload a file")
    with page.expect_file_chooser() as chooser:
        keys.press("Space")
    chooser.value.set_files({"name": "plan.pdf", "mimeType": "application/pdf", "buffer": PLAN})
    tab_to(page, "Upload")
    keys.press("Enter")
    expect(page.get_by_text("plan.pdf has been uploaded and encrypted.")).to_be_visible()
    person.check("document added", title="Add the documents")
    tab_to(page, "Continue to check and send")
    keys.press("Enter")
    person.check("check answers", title="Check your answers before sending")
    tab_to(page, "Send records", tag="button")
    keys.press("Enter")
    person.check("sent", title=re.compile(r"Transfer HO-[A-Z0-9-]+"))
    expect(page.get_by_text("The school's designated teachers have been told")).to_be_visible()
    expect(page.get_by_role("cell", name="plan.pdf", exact=True)).to_be_visible()
