"""An administrator changes the token duration in a real headless browser."""

from __future__ import annotations

import os
import shutil

import pytest
import requests

from gitlab_core.models import ApplicationSettings, User
from tests_support.factories import make_token, make_user

# Playwright's sync API runs an event loop in this thread; the ORM calls around it are
# ordinary synchronous test code.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
LABEL = "Authorization token duration (minutes)"


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        message = "the browser tests need Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, live_server, transactional_db):
    make_user("root", admin=True, password="root-password-1")
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/admin/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("root-password-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")
    yield page
    context.close()


def open_settings(page) -> None:
    page.get_by_role("link", name="Application settings").first.click()
    page.wait_for_url("**/admin/gitlab_core/applicationsettings/1/change/")


def test_admin_changes_the_token_duration_and_the_api_reports_it(page, live_server):
    open_settings(page)
    assert "Lifetime of the tokens that /jwt/auth issues" in page.content()

    page.get_by_label(LABEL).fill("17")
    page.get_by_role("button", name="Save", exact=True).click()

    page.wait_for_selector(".messagelist .success")
    assert page.get_by_label(LABEL).input_value() == "17"
    assert ApplicationSettings.current().container_registry_token_expire_delay == 17
    root = User.objects.get(username="root")
    response = requests.get(
        f"{live_server.url}/api/v4/application/settings",
        headers={"PRIVATE-TOKEN": make_token(root, ["api"])},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["container_registry_token_expire_delay"] == 17


def test_an_invalid_token_duration_is_shown_on_the_page(page):
    open_settings(page)

    page.get_by_label(LABEL).fill("0")
    page.get_by_role("button", name="Save", exact=True).click()

    error = page.locator(".errornote")
    error.wait_for()
    assert "must be greater than 0" in page.locator(".field-container_registry_token_expire_delay").inner_text()
    assert ApplicationSettings.current().container_registry_token_expire_delay == 5
