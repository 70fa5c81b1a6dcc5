"""The dashboard in a real browser (Playwright driving Debian's chromium) against a real paasd: log in, see the
pushed app running with its release, change a config value with the form and get it back from the app through
nginx, scale web to 2, roll back, watch a request's log line arrive live, all without JavaScript console errors;
a config value holding a script tag is shown as text (no dialog). Screenshots of the overview and the app page go
to tests/artifacts/."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from tests.browserkit import chromium, watched_page
from tests.platformkit import running_platform

APPS = Path(__file__).resolve().parents[1] / "apps"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
XSS = "<script>alert(1)</script>"
ACTION_TIMEOUT_MS = 180_000  # a config change or rollback is a deploy: start, health check, switch


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform")) as p:
        yield p


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def deployed(platform):
    """An app answering with $GREETING (the dockerfile sample, changed in this test's copy), pushed as v1; the
    admin's dashboard password."""
    app = f"dash-{secrets.token_hex(3)}"
    repo = platform.repo_from(APPS / "dockerfile", app)
    platform.commit_change(repo, "server.py", 'body = b"hello from dockerfile\\n"',
                           'body = (os.environ.get("GREETING", "hello from v1") + "\\n").encode()')
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    assert platform.get(app) == (200, "hello from v1\n")
    password = platform.paas("users:passwd", "admin", "--generate").stdout.strip()
    return app, password


@pytest.fixture
def page(browser, platform):
    """A fresh browser context (no cookies) whose console errors, page errors and dialogs are collected."""
    with watched_page(browser, f"http://127.0.0.1:{platform.api_port}", ACTION_TIMEOUT_MS) as tab:
        yield tab


def log_in(page, user: str, password: str) -> None:
    page.goto(page.base + "/")
    assert "/login" in page.url
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def follow_deploy_to_the_end(page) -> None:
    """On a deploy's log page (where an action that starts a deploy leads): wait for it to succeed, then back to
    the app page."""
    from playwright.sync_api import expect

    assert "/deploys/" in page.url
    expect(page.locator("#deploy-status")).to_have_text("succeeded", timeout=ACTION_TIMEOUT_MS)
    page.click("#back-to-app")


def active_release(page) -> str:
    return page.inner_text("#active-release").strip()


def test_log_in_change_config_scale_and_roll_back(platform, deployed, page):
    app, password = deployed
    ARTIFACTS.mkdir(exist_ok=True)
    log_in(page, "admin", password)

    # the overview: the app running with its release and commit
    row = page.locator(f"tr.app-row[data-app='{app}']")
    assert row.locator(".state").inner_text() == "running"
    assert "v1" in row.inner_text() and "web 1/1" in row.inner_text()
    page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.screenshot(path=str(ARTIFACTS / "dashboard-overview-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1200, "height": 900})

    page.click(f"tr.app-row[data-app='{app}'] a")
    assert active_release(page) == "v1"
    assert page.locator("tr.process").count() == 1 and page.locator("tr.process .state").inner_text() == "running"

    # config: a value holding a script tag, set with the form; the app restarts as v2 and answers with it
    page.fill("#config-form input[name=key]", "GREETING")
    page.fill("#config-form input[name=value]", XSS)
    page.click("#config-form button[type=submit]")
    assert "set GREETING: deploying v2" in page.inner_text(".flash.info")  # its deploy's log, followed
    follow_deploy_to_the_end(page)
    assert active_release(page) == "v2"
    assert platform.get(app) == (200, XSS + "\n")
    assert page.locator("tr.config-row[data-key=GREETING] .value").inner_text() == "********"
    page.click("#reveal-config")
    assert page.locator("tr.config-row[data-key=GREETING] .value").inner_text() == XSS  # shown as text

    # scale web to 2: two processes, both running
    page.fill("#scale-form input[name=web]", "2")
    page.click("#scale-form button[type=submit]")
    assert "scaled: web=2" in page.inner_text(".flash.info")
    assert page.locator("tr.process").count() == 2
    assert page.locator("tr.process .state").all_inner_texts() == ["running", "running"]

    # roll back to v1 (with a confirm step): v1's image and config run again as v3
    page.click("tr.release-row[data-version='1'] a")
    assert "Roll back" in page.inner_text("h1") and "/rollback" in page.url
    page.click("button.danger")
    assert "rollback to v1: deploying v3" in page.inner_text(".flash.info")
    follow_deploy_to_the_end(page)
    assert active_release(page) == "v3"
    assert platform.get(app) == (200, "hello from v1\n")
    assert page.locator("tr.process").count() == 2  # the formation is kept

    # live logs: a request through nginx shows up in the page without a reload (SSE)
    from playwright.sync_api import expect

    expect(page.locator("#logs-live")).to_have_text("live")
    assert platform.get(app, "/seen-live")[0] == 200
    expect(page.locator("#log-lines")).to_contain_text("GET /seen-live", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "dashboard-app.png"), full_page=True)

    events = page.inner_text("#events")
    assert all(action in events for action in ("config.set", "scale", "rollback"))
    assert page.dialogs == [] and page.problems == []


def test_another_users_app_is_not_found_and_a_wrong_password_refused(platform, deployed, page):
    app, _ = deployed
    platform.paas("users:add", "bob")
    platform.paas("users:passwd", "bob", "--generate")  # a password bob does not know
    log_in(page, "bob", "not-bobs-password")
    assert "/login" in page.url and "wrong user name or password" in page.inner_text(".flash.error")
    made = platform.paas("users:passwd", "bob", "--generate").stdout.strip()
    log_in(page, "bob", made)
    assert page.locator("tr.app-row").count() == 0
    response = page.goto(f"{page.base}/apps/{app}")
    assert response.status == 404 and f"no app named {app}" in page.inner_text("main")
    page.problems[:] = [p for p in page.problems if not re.search(r"status of 40[14]", p)]  # the refusals above
    assert page.dialogs == [] and page.problems == []
    failed = platform.paas("events", "--json").stdout
    assert '"login.failed"' in failed and "not-bobs-password" not in failed
