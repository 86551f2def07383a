"""Every task works with JavaScript off: sending (including a refused upload), downloading and
confirming receipt, with the plain forms the pages are built from."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.browser.support import LiveServer, Screenshots, Visitor, signs_in, starts_transfer
from tests.support import Factory
from tests.transfers.helpers import make_world

pytestmark = pytest.mark.browser

NewContext = Callable[..., BrowserContext]
TRANSFER = re.compile(r"Transfer HO-[A-Z0-9]{4}-[A-Z0-9]{4}")
PLAN = b"%PDF-1.7\n" + b"Personal Education Plan, spring term.\n" * 500 + b"%%EOF\n"
TOO_BIG = b"%PDF-1.7\n" + b"x" * (3 * 1000 * 1000 + 10_000)


def test_records_are_sent_downloaded_and_confirmed_with_javascript_off(
    live_server: LiveServer, factory: Factory, new_context: NewContext, screenshots: Screenshots
) -> None:
    world = make_world(factory)
    sender = Visitor.open(new_context(java_script_enabled=False), "sender", live_server, screenshots)
    signs_in(sender, world.sender)
    draft = starts_transfer(sender, world.receiving.id)

    sender.field("Upload a file").set_input_files(
        {"name": "too-big.pdf", "mimeType": "application/pdf", "buffer": TOO_BIG}
    )
    sender.press("Upload")
    sender.check("file too large", title="The file is too large", status=413)
    expect(sender.page.get_by_text("The largest file you can upload is 3.0 MB")).to_be_visible()
    sender.goto(draft)
    sender.check("back to the documents", title="Add the documents")
    sender.field("What is this document?").select_option(label="Personal Education Plan (PEP)")
    sender.field("Upload a file").set_input_files(
        {"name": "plan.pdf", "mimeType": "application/pdf", "buffer": PLAN}
    )
    sender.press("Upload")
    sender.check("document added", title="Add the documents")
    expect(sender.page.get_by_text("plan.pdf has been uploaded and encrypted.")).to_be_visible()
    sender.press("Continue to check and send")
    sender.check("check answers", title="Check your answers before sending")
    sender.press("Send records")
    sender.check("sent", title=TRANSFER)

    teacher = Visitor.open(new_context(java_script_enabled=False), "teacher", live_server, screenshots)
    signs_in(teacher, world.teacher)
    teacher.goto(draft)
    teacher.check("transfer", title=TRANSFER)
    with teacher.page.expect_download() as started:
        teacher.press("Download plan.pdf")
    assert Path(started.value.path()).read_bytes() == PLAN
    teacher.press("Confirm receipt")
    teacher.check("receipt confirmed", title=TRANSFER)
    expect(teacher.page.get_by_text("Thank you. The sending school can now see")).to_be_visible()
