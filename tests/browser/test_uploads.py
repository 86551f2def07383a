"""Uploads with JavaScript: a large upload can be cancelled, and a refused one is explained in place."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.browser.support import (
    LiveServer,
    Screenshots,
    Visitor,
    focused,
    signs_in,
    starts_transfer,
    throttle_uploads,
)
from tests.support import Factory
from tests.transfers.helpers import make_world

pytestmark = pytest.mark.browser

NewContext = Callable[..., BrowserContext]
LIMIT = 3 * 1000 * 1000  # PORTAL_UPLOAD_LIMIT_BYTES in the browser tests' settings


def pdf_of(size: int) -> bytes:
    body = b"%PDF-1.7\n"
    return body + b"x" * (size - len(body))


def test_a_slow_upload_can_be_cancelled_and_nothing_is_kept(
    live_server: LiveServer, factory: Factory, new_context: NewContext, screenshots: Screenshots
) -> None:
    world = make_world(factory)
    context = new_context()
    sender = Visitor.open(context, "sender", live_server, screenshots)
    signs_in(sender, world.sender)
    draft = starts_transfer(sender, world.receiving.id)

    throttle_uploads(context, sender.page, 200_000)
    sender.field("Upload a file").set_input_files(
        {"name": "large-scan.pdf", "mimeType": "application/pdf", "buffer": pdf_of(2_500_000)}
    )
    sender.press("Upload")
    status = sender.page.locator(".handover-upload-progress__status")
    expect(status).to_have_text(
        re.compile(r"^[\d.]+ (KB|MB) of 2\.5 MB sent \([1-9]\d?%\), about \d+ seconds left$")
    )
    expect(sender.page.get_by_role("progressbar", name="Uploading large-scan.pdf")).to_be_visible()
    # The page stays usable while the file goes: its links still answer the keyboard and the mouse.
    expect(sender.page.get_by_role("link", name="Records sent")).to_be_enabled()
    sender.shots.take(sender.page, "sender slow upload under way")

    sender.press("Cancel upload")
    expect(status).to_have_text("Upload cancelled. Nothing was uploaded.")
    expect(sender.page.get_by_role("button", name="Cancel upload")).to_be_hidden()
    now = focused(sender.page)
    assert now is not None and now.label == "Upload a file", "focus goes back to choosing a file"
    sender.shots.take(sender.page, "sender upload cancelled")

    throttle_uploads(context, sender.page, -1)
    sender.goto(draft)
    sender.check("after cancelling", title="Add the documents")
    expect(sender.page.get_by_text("No documents yet.")).to_be_visible()


def test_a_file_over_the_limit_is_refused_in_place_and_a_good_one_then_goes(
    live_server: LiveServer, factory: Factory, new_context: NewContext, screenshots: Screenshots
) -> None:
    world = make_world(factory)
    sender = Visitor.open(new_context(), "sender", live_server, screenshots)
    signs_in(sender, world.sender)
    starts_transfer(sender, world.receiving.id)

    # Just over the limit: the portal reads the stream up to the limit, then refuses it.
    sender.field("Upload a file").set_input_files(
        {"name": "too-big.pdf", "mimeType": "application/pdf", "buffer": pdf_of(LIMIT + 10_000)}
    )
    sender.press("Upload")
    status = sender.page.locator(".handover-upload-progress__status")
    expect(status).to_have_text(
        re.compile(
            r"^(The file is too large\. The largest file you can upload is 3\.0 MB|The upload stopped)"
        )
    )
    expect(status).to_have_class(re.compile(r"govuk-error-message"))
    sender.shots.take(sender.page, "sender file too large")

    sender.field("Upload a file").set_input_files(
        {"name": "fine.pdf", "mimeType": "application/pdf", "buffer": pdf_of(50_000)}
    )
    sender.press("Upload")
    expect(sender.page.get_by_text("fine.pdf has been uploaded and encrypted.")).to_be_visible()
    sender.check("after a good upload", title="Add the documents")
    expect(sender.page.get_by_role("cell", name="too-big.pdf")).to_have_count(0)
