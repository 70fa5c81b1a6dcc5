"""The dashboard and the HTTP API published by nginx at paas.DOMAIN against a real paasd: the login page and
/api/v1/me answer through nginx with `Host: paas.paas.localhost` (waitress sees nginx's forwarded headers), the
log stream route is not buffered, and an admin logs in through nginx in chromium and uses the admin pages."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from tests.browserkit import chromium, watched_page
from tests.platformkit import running_platform

HOST = "paas.paas.localhost"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform")) as p:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # paasd starts its HTTP listener after SSH
            try:
                socket.create_connection(("127.0.0.1", p.api_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield p


def through_nginx(platform, method: str, path: str, headers: dict[str, str] | None = None, body: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", platform.http_port, timeout=20)
    try:
        conn.request(method, path, body=body, headers={"Host": HOST, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.headers, response.read().decode(errors="replace")
    finally:
        conn.close()


def test_the_nginx_config_has_the_dashboard_server_and_passes_nginx_t(platform):
    conf = platform.root / "nginx" / "conf.d" / "paas.conf"
    text = conf.read_text()
    assert f"server 127.0.0.1:{platform.api_port};" in text and f"server_name {HOST};" in text
    import subprocess

    nginx_dir = platform.root / "nginx"
    result = subprocess.run(["nginx", "-t", "-q", "-p", f"{nginx_dir}/", "-c", str(nginx_dir / "nginx.conf"),
                             "-e", str(nginx_dir / "logs" / "error.log")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_login_page_answers_through_nginx(platform):
    status, headers, body = through_nginx(platform, "GET", "/")
    assert status == 302 and headers["Location"].startswith("/login")
    status, headers, body = through_nginx(platform, "GET", "/login")
    assert status == 200 and 'name="csrf_token"' in body and 'name="password"' in body
    cookie = headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "Secure" not in cookie  # plain http: nginx forwards X-Forwarded-Proto http
    # another Host is not the dashboard
    conn = http.client.HTTPConnection("127.0.0.1", platform.http_port, timeout=20)
    conn.request("GET", "/login", headers={"Host": "nothing.paas.localhost"})
    assert conn.getresponse().status == 404
    conn.close()


def test_api_me_answers_through_nginx(platform):
    status, _, body = through_nginx(platform, "GET", "/api/v1/me")
    assert status == 401 and "a valid API token is required" in json.loads(body)["error"]
    token = platform.paas("tokens:create", "e2e-nginx", "--scope", "read", "--user", "admin").stdout.strip()
    status, _, body = through_nginx(platform, "GET", "/api/v1/me", {"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body)["name"] == "admin"


def test_a_failed_login_through_nginx_is_recorded_with_the_client_address(platform):
    status, headers, body = through_nginx(platform, "GET", "/login")
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    status, _, _ = through_nginx(platform, "POST", "/login", {
        "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
        f"username=nobody-e2e&password=wrong-password&csrf_token={token}")
    assert status == 401
    events = json.loads(platform.paas("events", "--json", "-n", "20").stdout)
    failed = [e for e in events if e["action"] == "login.failed" and e["detail"].get("user") == "nobody-e2e"]
    assert failed and failed[0]["detail"]["peer"] == "127.0.0.1"  # from X-Forwarded-For, not the proxy's socket


def test_an_admin_uses_the_admin_pages_through_nginx_in_chromium(platform):
    password = platform.paas("users:passwd", "admin", "--generate").stdout.strip()
    base = f"http://{HOST}:{platform.http_port}"
    with chromium(f"--host-resolver-rules=MAP {HOST} 127.0.0.1") as browser, watched_page(browser, base) as page:
        page.goto(f"{base}/admin/users")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/admin/users")
        page.fill("#add-user-form input[name=name]", "e2e-member")
        page.click("#add-user-form button[type=submit]")
        page.wait_for_selector('tr[data-user="e2e-member"]')
        page.goto(f"{base}/tokens")
        page.fill("#create-token-form input[name=name]", "from-browser")
        page.click("#create-token-form button[type=submit]")
        token = page.text_content("#token-text").strip()
        assert token.startswith("paas_")
        page.goto(f"{base}/admin/host")
        assert "state database" in page.text_content("#checks")
        assert not page.problems, page.problems
    status, _, body = through_nginx(platform, "GET", "/api/v1/me", {"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body)["name"] == "admin"
