"""A phone, or a laptop at 400 % zoom (1280 CSS pixels / 4 = 320): every page reflows into one column
without sideways scrolling (WCAG 1.4.10); only wide data tables scroll, inside their own box."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.support import LiveServer, Screenshots, Visitor, signs_in, starts_transfer
from tests.support import Factory
from tests.transfers.helpers import PDF_BYTES, make_world

pytestmark = pytest.mark.browser

NewContext = Callable[..., BrowserContext]
PHONE = {"width": 320, "height": 640}
# The elements sticking out past the right edge, outside any scrolling box.
_WIDEST = """() => [...document.querySelectorAll('body *')]
  .filter(el => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1
    && !el.closest('.handover-table-scroll'))
  .slice(0, 5).map(el => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))"""


def assert_reflows(page: Page) -> None:
    """Nothing but a data table's own scrolling box is wider than the screen."""
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    if overflow > 0:
        culprits = page.evaluate(_WIDEST)
        raise AssertionError(f"{page.url} scrolls sideways by {overflow}px at 320px wide: {culprits}")


def test_at_phone_width_or_400_percent_zoom_pages_reflow_and_the_menu_folds_away(
    live_server: LiveServer, factory: Factory, new_context: NewContext, screenshots: Screenshots
) -> None:
    world = make_world(factory)
    sender = Visitor.open(new_context(viewport=PHONE), "phone sender", live_server, screenshots)
    signs_in(sender, world.sender)
    assert_reflows(sender.page)

    menu = sender.page.get_by_role("button", name="Menu")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(sender.page.get_by_role("link", name="Records sent")).to_be_hidden()
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(sender.page.get_by_role("link", name="Records sent")).to_be_visible()
    sender.shots.take(sender.page, "phone sender menu open")

    starts_transfer(sender, world.receiving.id)
    assert_reflows(sender.page)
    sender.field("Upload a file").set_input_files(
        {
            "name": "a-document-with-a-long-file-name-from-the-school-scanner.pdf",
            "mimeType": "application/pdf",
            "buffer": PDF_BYTES,
        }
    )
    sender.press("Upload")
    expect(sender.page.get_by_text("has been uploaded and encrypted.")).to_be_visible()
    sender.check("document added", title="Add the documents")
    assert_reflows(sender.page)
    sender.press("Continue to check and send")
    sender.check("check answers", title="Check your answers before sending")
    assert_reflows(sender.page)
    sender.press("Send records")
    sender.check("sent", title=re.compile(r"Transfer HO-[A-Z0-9-]+"))
    assert_reflows(sender.page)
