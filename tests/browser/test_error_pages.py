"""The error pages people can meet: each says what happened in plain words, never shows a stack
trace, and is as accessible as the rest of the service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from playwright.sync_api import BrowserContext, expect

from portal.models import Role
from tests.browser.support import LiveServer, Screenshots, Visitor, sign_in, signs_in
from tests.support import Factory
from tests.transfers.helpers import make_world

pytestmark = pytest.mark.browser

NewContext = Callable[..., BrowserContext]


def test_error_pages_explain_themselves_and_show_no_stack_trace(
    live_server: LiveServer, factory: Factory, new_context: NewContext, screenshots: Screenshots
) -> None:
    def broken_page() -> str:
        raise ZeroDivisionError("a bug in a view")

    # Registered before the first request, as Flask requires.
    live_server.app.add_url_rule("/test-only/broken", "test_only_broken", broken_page)
    world = make_world(factory)
    untrained = factory.account(
        factory.school("Elm Primary"), Role.SCHOOL_STAFF, ig_training=date(2000, 1, 1)
    )

    stranger = Visitor.open(new_context(), "stranger", live_server, screenshots)
    stranger.goto("/invitation/not-a-real-invitation")
    stranger.check("unusable invitation", title="This invitation link cannot be used", status=410)

    person = Visitor.open(new_context(), "sender", live_server, screenshots)
    signs_in(person, world.sender)
    person.goto("/no-such-page")
    person.check("page not found", title="Page not found", status=404)
    person.goto("/admin/users")  # another role's page is "not found", so it says nothing about itself
    person.check("someone else's page", title="Page not found", status=404)
    person.goto("/test-only/broken")
    person.check("server error", title="Sorry, there is a problem with the service", status=500)
    page_text = person.page.locator("main").inner_text()
    assert "ZeroDivisionError" not in page_text and "Traceback" not in page_text
    expect(person.page.get_by_text("quote reference")).to_be_visible()

    # A form sent with mistakes: a summary first, each problem linked to its field and said again there.
    person.goto(f"/transfers/new?school={world.receiving.id}")
    person.check("about the child", title="About the child")
    person.field("Child's initials").fill("Jamie Smith")
    person.press("Continue")
    person.check("about the child with errors", title="Error: About the child")
    summary = person.page.get_by_role("alert")
    expect(summary).to_contain_text("There is a problem")
    expect(summary.get_by_role("link", name="This looks like a name")).to_be_visible()
    expect(person.page.locator("#child_initials-error")).to_contain_text("This looks like a name")
    expect(person.page.locator("#child_date_of_birth-error")).to_contain_text("Enter a real date of birth")
    summary.get_by_role("link", name="Enter a real date of birth").click()
    expect(person.field("Date of birth")).to_be_focused()

    lapsed = Visitor.open(new_context(), "untrained", live_server, screenshots)
    signs_in(lapsed, untrained)
    expect(lapsed.page.get_by_text("You cannot send or download records")).to_be_visible()
    lapsed.goto("/transfers/new")
    lapsed.check("training lapsed", title="You do not have access to this page", status=403)
    # The page says why: the training, and who can put it right.
    expect(
        lapsed.page.get_by_text("information-governance training is not recorded as current")
    ).to_be_visible()

    guesser = Visitor.open(new_context(), "guesser", live_server, screenshots)
    guesser.goto("/sign-in")
    guesser.check("sign in", title="Sign in")
    world.teacher.password = "not the password at all"
    for attempt in range(1, 6):
        sign_in(guesser, world.teacher)
        guesser.check(f"failed sign-in {attempt}", title="Error: Sign in")
        expect(guesser.page.get_by_role("alert")).to_contain_text("There is a problem")
    sign_in(guesser, world.teacher)
    guesser.check("too many attempts", title="Too many attempts", status=429)
