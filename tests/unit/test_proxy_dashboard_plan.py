"""The nginx server publishing the dashboard and the HTTP API at paas.DOMAIN: rendered from api.listen/api.port,
forwarded headers for waitress's trusted proxy, no buffering on the log streams, absent when paasd serves no HTTP;
and waitress trusting those headers from loopback only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from paas.config import DEFAULTS, Config, _merge
from paas.errors import ConfigError
from paas.proxy import ProxySettings, proxy_settings
from paas.proxy.plan import dashboard_hostname, dashboard_upstream, plan_dashboard_conf
from tests.unit.test_proxy_plan import NGINX_DIR, directives

SETTINGS = ProxySettings(domain="example.org", listen="127.0.0.1", http_port=8080, api_port=2280)


def block(lines: list[str], opening: str) -> list[str]:
    """The directives inside the block that opens with `opening` (nested blocks included)."""
    start, depth = lines.index(opening), 0
    for end in range(start, len(lines)):
        depth += lines[end].endswith("{") - (lines[end] == "}")
        if depth == 0:
            return lines[start + 1:end]
    raise AssertionError(f"{opening} is not closed")


def test_the_dashboard_server_proxies_paas_domain_to_paasd_with_forwarded_headers():
    lines = directives(plan_dashboard_conf(NGINX_DIR, SETTINGS))
    assert block(lines, "upstream paasd {")[0] == "server 127.0.0.1:2280;"
    server = block(lines, "server {")
    assert {"listen 127.0.0.1:8080;", "server_name paas.example.org;", "proxy_http_version 1.1;",
            "proxy_set_header Host $host;", "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "proxy_set_header X-Forwarded-Proto $scheme;", "proxy_set_header X-Forwarded-Host $host;",
            "proxy_set_header X-Forwarded-Port $server_port;",
            "access_log /var/lib/paas/nginx/logs/dashboard.access.log paas;"} <= set(server)
    assert block(server, "location / {") == ["proxy_pass http://paasd;"]
    assert "proxy_buffering off;" not in block(server, "location / {")


def test_log_streams_are_not_buffered():
    server = block(directives(plan_dashboard_conf(NGINX_DIR, SETTINGS)), "server {")
    stream = block(server, "location ~ /logs/stream$ {")
    assert {"proxy_pass http://paasd;", "proxy_buffering off;", "proxy_read_timeout 1h;"} <= set(stream)
    for path in ("/api/v1/apps/shop/logs/stream", "/apps/shop/logs/stream"):
        assert re.search(r"/logs/stream$", path)
    assert not re.search(r"/logs/stream$", "/api/v1/apps/shop/logs")


def test_no_http_api_no_server():
    assert plan_dashboard_conf(NGINX_DIR, ProxySettings(api_port=0)) is None
    assert plan_dashboard_conf(NGINX_DIR, ProxySettings()) is not None  # the default, as api.port's


@pytest.mark.parametrize("listen, upstream", [("127.0.0.1", "127.0.0.1:2280"), ("0.0.0.0", "127.0.0.1:2280"),
                                               ("10.1.2.3", "10.1.2.3:2280"), ("::", "[::1]:2280"),
                                               ("::1", "[::1]:2280")])
def test_a_wildcard_listen_address_is_reached_over_loopback(listen, upstream):
    assert dashboard_upstream(ProxySettings(api_listen=listen, api_port=2280)) == upstream


def test_settings_come_from_api_listen_and_port():
    settings = proxy_settings(Config(_merge(DEFAULTS, {"domain": "example.org", "api": {"port": "2999"}})))
    assert (settings.api_listen, settings.api_port) == ("127.0.0.1", 2999)
    assert dashboard_hostname(settings) == "paas.example.org"
    assert proxy_settings(Config(_merge(DEFAULTS, {"api": {"port": 0}}))).api_port == 0
    assert proxy_settings(Config(DEFAULTS)).api_port == 2280


@pytest.mark.parametrize("override", [{"api": {"listen": "127.0.0.1; evil"}}, {"api": {"listen": "localhost"}},
                                      {"api": {"port": 70000}}, {"api": {"port": "80; evil"}}])
def test_bad_api_settings_are_config_errors(override):
    with pytest.raises(ConfigError, match=r"api\.(listen|port)"):
        proxy_settings(Config(_merge(DEFAULTS, override)))


def test_the_reserved_app_name_paas_cannot_take_the_dashboard_host():
    from paas.apps import RESERVED_NAMES

    assert "paas" in RESERVED_NAMES


def test_the_template_is_shipped_next_to_the_others():
    from paas.proxy.plan import templates_dir

    assert (Path(templates_dir()) / "dashboard.conf.j2").is_file()


def test_waitress_trusts_forwarded_headers_from_loopback_only(ctx):
    """Through a real waitress: X-Forwarded-Proto https from 127.0.0.1 makes the session cookie Secure and the
    client address the forwarded one."""
    import http.client

    from paas.context import open_context
    from paas.web.server import ApiServer

    server = ApiServer(lambda: open_context(ctx.paths.root), "127.0.0.1", 0, threads=2)
    server.start()
    try:
        def get(path, headers):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            return response

        forwarded = {"Host": "paas.example.org", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9",
                     "X-Forwarded-Host": "paas.example.org", "X-Forwarded-Port": "443"}
        secure = get("/login", forwarded)
        cookies = secure.headers.get_all("Set-Cookie") or []
        assert secure.status == 200 and any("Secure" in c for c in cookies if c.startswith("paas_session="))
        plain = get("/login", {"Host": "paas.example.org"})
        assert not any("Secure" in c for c in plain.headers.get_all("Set-Cookie") or [])
    finally:
        server.stop()
