"""The app page's second slice in a real browser (Playwright driving Debian's chromium) against a real paasd: the
log of a push made during the test, followed live from the app page while the push runs; the Redeploy button
taking the browser to the new deploy's log until it succeeds; the metrics graphs after some requests through
nginx (paasd sampling every second), screenshot to tests/artifacts/metrics.png; no console errors."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from tests.browserkit import chromium, watched_page
from tests.e2e.test_dashboard import ACTION_TIMEOUT_MS, APPS, ARTIFACTS, log_in
from tests.platformkit import running_platform


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform"), config="metrics:\n  interval_s: 1\n") as p:
        yield p


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def deployed(platform):
    """The dockerfile sample, pushed as v1, and its repo (for later pushes); the admin's dashboard password."""
    app = f"dd-{secrets.token_hex(3)}"
    repo = platform.repo_from(APPS / "dockerfile", app)
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output
    password = platform.paas("users:passwd", "admin", "--generate").stdout.strip()
    return app, repo, password


@pytest.fixture
def page(browser, platform):
    with watched_page(browser, f"http://127.0.0.1:{platform.api_port}", ACTION_TIMEOUT_MS) as tab:
        yield tab


def test_a_running_push_is_followed_live_from_the_app_page(platform, deployed, page):
    """A push whose build takes a while (a RUN step printing, sleeping, printing): the app page, open when the push
    starts, opens the running deploy's log by itself; the log shows the first build line while git push still runs,
    then the next ones without a reload, then the deploy's end."""
    from playwright.sync_api import expect

    app, repo, password = deployed
    dockerfile = repo / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(
        "COPY server.py ./", "COPY server.py ./\nRUN echo slow-step-begins && sleep 8 && echo slow-step-ends"))
    platform.git(repo, "commit", "-q", "-am", "a slow build step")
    result = {}
    pusher = threading.Thread(target=lambda: result.update(pushed=platform.push(repo, app)), daemon=True)
    log_in(page, "admin", password)
    pusher.start()
    try:
        page.goto(f"{page.base}/apps/{app}")  # no reload, no click: the page notices the deploy
        page.wait_for_url(f"**/apps/{app}/deploys/*", timeout=60_000)
        assert pusher.is_alive(), result
        expect(page.locator("#deploy-live")).to_have_text("following")
        expect(page.locator("#deploy-log")).to_contain_text("slow-step-begins", timeout=60_000)
        assert pusher.is_alive()  # the build's lines arrive while git push still runs
        expect(page.locator("#deploy-log")).to_contain_text("slow-step-ends", timeout=60_000)
        expect(page.locator("#deploy-status")).to_have_text("succeeded", timeout=ACTION_TIMEOUT_MS)
        expect(page.locator("#deploy-log")).to_contain_text(f"Deployed {app} v2")
        expect(page.locator("#deploy-live")).to_have_text("finished: succeeded")
    finally:
        pusher.join(ACTION_TIMEOUT_MS / 1000)
    assert result["pushed"].returncode == 0, result["pushed"].output
    page.screenshot(path=str(ARTIFACTS / "dashboard-deploy-log.png"), full_page=True)
    assert page.problems == []


def test_redeploy_takes_the_browser_to_the_new_deploys_log(platform, deployed, page):
    from playwright.sync_api import expect

    app, _, password = deployed
    log_in(page, "admin", password)
    page.goto(f"{page.base}/apps/{app}")
    active = page.inner_text("#active-release").strip()
    page.click("#redeploy-form button[type=submit]")
    assert f"/apps/{app}/deploys/" in page.url  # at once, while the build runs in paasd
    expect(page.locator("#deploy-status")).to_have_text("succeeded", timeout=ACTION_TIMEOUT_MS)
    expect(page.locator("#deploy-log")).to_contain_text("Building")
    page.click("#back-to-app")
    assert page.inner_text("#active-release").strip() == f"v{int(active[1:]) + 1}"
    row = page.locator("tr.deploy-row").first
    assert "redeploy" in row.inner_text() and "admin" in row.inner_text() and "succeeded" in row.inner_text()

    # restart web: a new release, again followed in its deploy's log
    page.select_option("#restart-form select[name=type]", "web")
    page.click("#restart-form button[type=submit]")
    assert "/deploys/" in page.url
    expect(page.locator("#deploy-status")).to_have_text("succeeded", timeout=ACTION_TIMEOUT_MS)
    assert platform.get(app)[0] == 200
    assert page.problems == []


def test_metrics_graphs_after_some_requests(platform, deployed, page):
    app, _, password = deployed
    ARTIFACTS.mkdir(exist_ok=True)
    for i in range(30):
        assert platform.get(app, f"/metrics-{i}")[0] == 200
    log_in(page, "admin", password)
    page.goto(f"{page.base}/apps/{app}")
    deadline = time.monotonic() + 60  # paasd samples every second; the page shows what is stored
    while page.locator("#chart-latency path.series").count() < 2 or page.locator("#chart-cpu path.series").count() == 0:
        assert time.monotonic() < deadline, page.inner_text("#metrics")
        time.sleep(1)
        page.reload()
    for chart in ("cpu", "memory", "requests", "latency", "errors"):
        figure = page.locator(f"#chart-{chart}")
        assert figure.is_visible() and figure.locator("svg text.tick").count() >= 4, chart
    assert "p95" in page.inner_text("#chart-latency figcaption")
    cpu = page.locator("tr.process .cpu").first.inner_text()
    memory = page.locator("tr.process .memory").first.inner_text()
    assert "MiB" in memory and cpu != "", (cpu, memory)
    page.locator("#metrics").screenshot(path=str(ARTIFACTS / "metrics.png"))
    page.click("#metrics nav a:text('24h')")
    assert "range=24h" in page.url and page.locator("#metrics svg").count() == 5
    page.goto(f"{page.base}/")
    assert "MiB" in page.locator(f"tr.app-row[data-app='{app}'] .memory").inner_text()
    assert page.problems == []
