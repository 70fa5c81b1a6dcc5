"""paas.proxy without nginx: settings from the config, the rendered config text, and refusal of any value
that could end a directive or open a block."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from paas.config import DEFAULTS, Config, _merge, load_config, paths_from_env
from paas.errors import ConfigError, UserError
from paas.proxy import (
    Backend,
    ProxySettings,
    Route,
    app_hostname,
    plan_app_conf,
    plan_default_conf,
    plan_main_conf,
    proxy_settings,
)
from paas.proxy.nginx import workers_reach
from paas.proxy.plan import (
    Tls,
    check_nginx_dir,
    nginx_problem,
    plan_control_conf,
    route_of,
    templates_dir,
)

NGINX_DIR = Path("/var/lib/paas/nginx")
SETTINGS = ProxySettings(domain="paas.localhost", listen="127.0.0.1", http_port=8080,
                         client_max_body_size="25m", proxy_read_timeout_s=90)
ROUTE = Route("web", ("web.paas.localhost", "www.example.com"), (Backend("10.88.0.5", 5000),))


def directives(text: str) -> list[str]:
    """Each directive as one whitespace-normalised line, comments dropped."""
    lines = (re.sub(r"\s+", " ", line.split("#", 1)[0]).strip() for line in text.splitlines())
    return [line for line in lines if line]


# -- settings ------------------------------------------------------------------------------------------

def test_settings_defaults_come_from_the_default_config():
    settings = proxy_settings(Config(DEFAULTS))
    assert settings == ProxySettings(domain="paas.localhost", listen="", http_port=80, client_max_body_size="100m",
                                     proxy_read_timeout_s=60, worker_processes=1)
    assert settings.listen_address == "80"


def test_settings_from_a_merged_config():
    config = Config(_merge(DEFAULTS, {"domain": "apps.example.com",
                                      "proxy": {"listen": "127.0.0.1", "http_port": 8080, "proxy_read_timeout_s": 5}}))
    settings = proxy_settings(config)
    assert (settings.domain, settings.listen_address, settings.proxy_read_timeout_s) == \
        ("apps.example.com", "127.0.0.1:8080", 5)
    assert settings.client_max_body_size == "100m"
    assert app_hostname("web", settings) == "web.apps.example.com"


def test_settings_from_the_config_file(isolated_env):
    paths = paths_from_env()
    paths.root.mkdir()
    paths.config_file.write_text("domain: example.org\nproxy:\n  listen: '::1'\n  http_port: '8081'\n"
                                 "  client_max_body_size: 1g\n")
    settings = proxy_settings(load_config(paths))
    assert settings.listen_address == "[::1]:8081"
    assert settings.client_max_body_size == "1g"
    assert settings.domain == "example.org"


@pytest.mark.parametrize("override, key", [
    ({"proxy": {"http_port": 0}}, "proxy.http_port"),
    ({"proxy": {"http_port": "80; evil"}}, "proxy.http_port"),
    ({"proxy": {"http_port": True}}, "proxy.http_port"),
    ({"proxy": {"listen": "0.0.0.0:80; include /etc/passwd"}}, "proxy.listen"),
    ({"proxy": {"listen": "example.com"}}, "proxy.listen"),
    ({"proxy": {"client_max_body_size": "1m; evil"}}, "proxy.client_max_body_size"),
    ({"proxy": {"proxy_read_timeout_s": "60s"}}, "proxy.proxy_read_timeout_s"),
    ({"proxy": {"proxy_read_timeout_s": 0}}, "proxy.proxy_read_timeout_s"),
    ({"domain": "paas.localhost }"}, "domain"),
    ({"domain": "*.example.com"}, "domain"),
])
def test_bad_settings_are_config_errors_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        proxy_settings(Config(_merge(DEFAULTS, override)))


# -- main config, default server, control server --------------------------------------------------------

def test_main_conf_keeps_everything_nginx_writes_under_its_directory():
    text = plan_main_conf(NGINX_DIR, SETTINGS)
    lines = directives(text)
    assert "daemon on;" in lines
    assert "worker_processes 1;" in lines
    assert "pid /var/lib/paas/nginx/run/nginx.pid;" in lines
    assert "error_log /var/lib/paas/nginx/logs/error.log notice;" in lines
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert any(re.fullmatch(rf"{kind}_temp_path /var/lib/paas/nginx/temp/{kind};", line) for line in lines), kind
    assert "access_log /var/lib/paas/nginx/logs/access.log paas;" in lines
    assert "/var/log/nginx" not in text and "/var/lib/nginx" not in text and "/etc/nginx" not in text
    assert not any(line.startswith("user ") for line in lines)
    assert "client_max_body_size 25m;" in lines


def test_main_conf_maps_upgrade_for_websockets_and_includes_the_tree_relative_to_itself():
    lines = directives(plan_main_conf(NGINX_DIR, SETTINGS))
    start = lines.index("map $http_upgrade $connection_upgrade {")
    assert lines[start + 1:start + 4] == ["default upgrade;", "'' '';", "}"]
    assert lines.index("include conf.d/*.conf;") < lines.index("include apps/*.conf;")


def test_main_conf_without_disk_buffering_streams_bodies():
    buffered = directives(plan_main_conf(NGINX_DIR, SETTINGS))
    unbuffered = directives(plan_main_conf(NGINX_DIR, SETTINGS, disk_buffering=False))
    assert "proxy_request_buffering off;" not in buffered
    assert {"proxy_request_buffering off;", "proxy_max_temp_file_size 0;"} <= set(unbuffered)


def test_default_server_answers_404_with_a_short_text():
    lines = directives(plan_default_conf(NGINX_DIR, SETTINGS))
    assert "listen 127.0.0.1:8080 default_server;" in lines
    assert "server_name _;" in lines
    assert 'return 404 "no app is configured for this host name\\n";' in lines
    assert "default_type text/plain;" in lines


def test_default_server_listens_on_all_addresses_when_listen_is_empty():
    lines = directives(plan_default_conf(NGINX_DIR, ProxySettings(http_port=80)))
    assert "listen 80 default_server;" in lines


def test_control_server_answers_its_generation_on_a_unix_socket():
    lines = directives(plan_control_conf(NGINX_DIR, "1700000000.0a1b2c3d"))
    assert "listen unix:/var/lib/paas/nginx/run/control.sock;" in lines
    assert 'return 200 "1700000000.0a1b2c3d";' in lines
    with pytest.raises(ValueError):
        plan_control_conf(NGINX_DIR, 'x"; evil')


# -- app config -------------------------------------------------------------------------------------------

def test_app_conf_has_one_upstream_and_one_server():
    text = plan_app_conf(ROUTE, SETTINGS, NGINX_DIR)
    lines = directives(text)
    assert lines[:6] == ["upstream app-web {", "server 10.88.0.5:5000;", "keepalive 16;", "keepalive_time 1s;",
                         "keepalive_timeout 1s;", "}"]
    assert "listen 127.0.0.1:8080;" in lines
    assert "server_name web.paas.localhost www.example.com;" in lines
    assert "proxy_pass http://app-web;" in lines
    assert "access_log /var/lib/paas/nginx/logs/web.access.log paas;" in lines
    assert "error_log /var/lib/paas/nginx/logs/web.error.log;" in lines
    assert "client_max_body_size 25m;" in lines
    assert lines.count("server {") == 1 and lines.count("upstream app-web {") == 1


def test_app_conf_forwards_client_facts_and_websockets():
    lines = directives(plan_app_conf(ROUTE, SETTINGS, NGINX_DIR))
    for header in ("Host $host", "X-Real-IP $remote_addr", "X-Forwarded-For $proxy_add_x_forwarded_for",
                   "X-Forwarded-Proto $scheme", "X-Forwarded-Host $host", "X-Forwarded-Port $server_port",
                   "Upgrade $http_upgrade", "Connection $connection_upgrade"):
        assert f"proxy_set_header {header};" in lines, header
    assert "proxy_http_version 1.1;" in lines


def test_app_conf_timeouts_and_retries():
    lines = directives(plan_app_conf(ROUTE, SETTINGS, NGINX_DIR))
    assert "proxy_connect_timeout 5s;" in lines
    assert "proxy_read_timeout 90s;" in lines
    assert "proxy_send_timeout 90s;" in lines
    assert "proxy_next_upstream error timeout;" in lines


def test_several_backends_are_several_upstream_servers():
    route = Route("api", ("api.paas.localhost",),
                  (Backend("10.88.0.5", 5000), Backend("10.88.0.6", 5000), Backend("fd00::7", 8080)))
    lines = directives(plan_app_conf(route, SETTINGS, NGINX_DIR))
    upstream = lines[:lines.index("}")]
    assert upstream == ["upstream app-api {", "server 10.88.0.5:5000;", "server 10.88.0.6:5000;",
                        "server [fd00::7]:8080;", "keepalive 16;", "keepalive_time 1s;", "keepalive_timeout 1s;"]


def test_app_conf_listens_on_ipv6():
    settings = ProxySettings(listen="::", http_port=80)
    assert "listen [::]:80;" in directives(plan_app_conf(ROUTE, settings, NGINX_DIR))


def test_wildcard_hostname_is_allowed():
    route = Route("web", ("*.example.com",), ROUTE.backends)
    # one label, as in a certificate (nginx's own *.example.com would match any depth)
    assert r"server_name ~^[^.]+\.example\.com$;" in directives(plan_app_conf(route, SETTINGS, NGINX_DIR))


def test_the_route_is_kept_in_its_file_and_read_back():
    route = Route("api", ("api.paas.localhost", "www.example.com"),
                  (Backend("10.88.0.5", 5000), Backend("fd00::7", 8080)))
    text = plan_app_conf(route, SETTINGS, NGINX_DIR)
    assert ["# route app api", "# route hostname api.paas.localhost", "# route hostname www.example.com",
            "# route backend 10.88.0.5 5000", "# route backend fd00::7 8080"] == \
        [line for line in text.splitlines() if line.startswith("# route ")]
    assert route_of(text) == route
    assert route_of("server { }\n") is None
    assert route_of("# route app web\n# route hostname x;y\n# route backend 10.0.0.1 80\n") is None
    assert route_of("# route app web\n# route hostname x.com\n# route backend 10.0.0.1 port\n") is None


def test_many_long_hostnames_stay_within_nginx_token_limits():
    hostnames = tuple(f"h{i}.{'c' * 60}.{'d' * 60}.{'e' * 60}.com" for i in range(300))
    text = plan_app_conf(Route("web", hostnames, ROUTE.backends), SETTINGS, NGINX_DIR)
    assert max(len(line) for line in text.splitlines() if line.lstrip().startswith("#")) < 4096
    assert route_of(text).hostnames == hostnames


# -- refusals ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("app", ["", "Web", "web;", "web }", "-web", "web-", "a" * 64, "web app", "web\n", "we_b",
                                 "../web", 7])
def test_bad_app_names_are_refused(app):
    with pytest.raises(UserError, match="invalid app name"):
        plan_app_conf(Route(app, ("web.paas.localhost",), ROUTE.backends), SETTINGS, NGINX_DIR)


@pytest.mark.parametrize("hostname", [
    "", "web.paas.localhost;", "web.paas.localhost }", "a b.com", "web.paas.localhost\nlisten 81",
    "Web.Example.com", "web..com", ".web.com", "web.com.", "-web.com", "ex$ample.com", "ex\"ample.com",
    "we_b.com", "web.*.com", "x" * 64 + ".com", ("a" * 60 + ".") * 5 + "com",
])
def test_bad_hostnames_are_refused(hostname):
    with pytest.raises(UserError, match="invalid hostname"):
        plan_app_conf(Route("web", ("web.paas.localhost", hostname), ROUTE.backends), SETTINGS, NGINX_DIR)


@pytest.mark.parametrize("backend, message", [
    (Backend("10.88.0.5; evil", 5000), "not an IP address"),
    (Backend("backend.internal", 5000), "not an IP address"),
    (Backend("10.88.0.5", 0), "not a port"),
    (Backend("10.88.0.5", 70000), "not a port"),
    (Backend("10.88.0.5", "5000;"), "not a port"),
])
def test_bad_backends_are_refused(backend, message):
    with pytest.raises(UserError, match=message):
        plan_app_conf(Route("web", ("web.paas.localhost",), (backend,)), SETTINGS, NGINX_DIR)


def test_a_route_needs_hostnames_and_backends():
    with pytest.raises(UserError, match="no hostname"):
        plan_app_conf(Route("web", (), ROUTE.backends), SETTINGS, NGINX_DIR)
    with pytest.raises(UserError, match="no backend"):
        plan_app_conf(Route("web", ("web.paas.localhost",), ()), SETTINGS, NGINX_DIR)


def test_app_hostname_refuses_a_bad_app():
    with pytest.raises(UserError):
        app_hostname("web;", SETTINGS)


@pytest.mark.parametrize("path", ["/var/lib/my paas/nginx", "/srv/pa;as/nginx", "/srv/{x}/nginx", "relative/nginx",
                                  "/srv/$root/nginx", "/srv/pa\"as/nginx"])
def test_nginx_dir_that_nginx_would_misread_is_refused(path):
    with pytest.raises(UserError, match="cannot be written into nginx config"):
        plan_main_conf(Path(path), SETTINGS)


def test_nginx_dir_too_long_for_the_control_socket_is_refused():
    check_nginx_dir(Path("/" + "d" * 89))
    with pytest.raises(UserError, match="too long"):
        check_nginx_dir(Path("/" + "d" * 90))


# -- helpers ----------------------------------------------------------------------------------------------

def test_templates_live_in_the_top_level_nginx_folder():
    assert templates_dir() == Path(__file__).resolve().parents[2] / "nginx"
    assert {"nginx.conf.j2", "app.conf.j2", "default.conf.j2", "control.conf.j2"} <= \
        {path.name for path in templates_dir().iterdir()}


def test_nginx_problem_picks_the_line_that_says_what_is_wrong():
    stderr = ('nginx: [warn] the "user" directive makes sense only if the master process runs as root\n'
              'nginx: [emerg] unknown directive "garbage" in /x/.stage-1/apps/web.conf:3\n'
              "nginx: configuration file /x/.stage-1/nginx.conf test failed\n")
    assert nginx_problem(stderr) == 'unknown directive "garbage" in /x/.stage-1/apps/web.conf:3'
    log = ("2026/01/01 00:00:00 [notice] 10#10: signal 1 (SIGHUP) received, reconfiguring\n"
           "2026/01/01 00:00:00 [emerg] 10#10: bind() to 127.0.0.1:80 failed (98: Address already in use)\n")
    assert nginx_problem(log) == "bind() to 127.0.0.1:80 failed (98: Address already in use)"
    assert nginx_problem("") == "no output"


def test_workers_reach_needs_search_permission_on_every_parent(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    assert workers_reach(private / "nginx" / "temp", euid=1000)  # not root: workers run as us
    assert not workers_reach(private / "nginx" / "temp", euid=0)
    assert workers_reach(Path("/usr/share/no-such-dir/temp"), euid=0)


# -- HTTPS ------------------------------------------------------------------------------------------------

TLS = Tls("/var/lib/paas/nginx/certs/web.crt", "/var/lib/paas/nginx/certs/web.key", ("www.example.com",))


def test_app_conf_without_certificate_serves_http_and_acme_answers():
    lines = directives(plan_app_conf(ROUTE, SETTINGS, NGINX_DIR, Path("/run/paas/acme/x")))
    assert "location ^~ /.well-known/acme-challenge/ {" in lines
    assert "alias /run/paas/acme/x/;" in lines
    assert not any("ssl" in line for line in lines)
    assert lines.count("server {") == 1


def test_app_conf_with_certificate_redirects_http_and_serves_https():
    route = Route("web", ROUTE.hostnames, ROUTE.backends, tls=TLS, hsts=31536000)
    text = plan_app_conf(route, ProxySettings(listen="127.0.0.1", http_port=8080, https_port=8443), NGINX_DIR)
    plain, http, https = text.split("server {")[1:]
    # the name the certificate does not cover stays on plain HTTP
    assert "server_name web.paas.localhost;" in plain and "proxy_pass http://app-web;" in plain
    assert "server_name www.example.com;" in http and "server_name www.example.com;" in https
    assert "location ^~ /.well-known/acme-challenge/" in http  # answered over HTTP, before the redirect
    assert "return 308 https://$host:8443$request_uri;" in http and "proxy_pass" not in http
    assert "listen 127.0.0.1:8443 ssl http2;" in https
    assert f"ssl_certificate {TLS.cert}$tls_reload_free;" in https  # read at each handshake: renewals need no reload
    assert f"ssl_certificate_key {TLS.key}$tls_reload_free;" in https
    assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in https
    assert "proxy_pass http://app-web;" in https
    assert route_of(text) == route  # read back for re-rendering


def test_https_on_443_redirects_without_a_port():
    route = Route("web", ROUTE.hostnames, ROUTE.backends, tls=TLS)
    text = plan_app_conf(route, ProxySettings(), NGINX_DIR)
    assert "return 308 https://$host$request_uri;" in text
    assert "Strict-Transport-Security" not in text


@pytest.mark.parametrize("tls, hsts", [(Tls("/x y/c.pem", "/k.pem", TLS.names), 0),
                                       (Tls("/c.pem", "/k;.pem", TLS.names), 0), (TLS, -1), (TLS, "1"),
                                       (Tls(TLS.cert, TLS.key, ()), 0), (Tls(TLS.cert, TLS.key, ("x.example",)), 0)])
def test_bad_tls_values_are_refused(tls, hsts):
    with pytest.raises(UserError):
        plan_app_conf(Route("web", ROUTE.hostnames, ROUTE.backends, tls=tls, hsts=hsts), SETTINGS, NGINX_DIR)


def test_default_server_refuses_unknown_names_over_https_only_when_https_is_used():
    assert "ssl_reject_handshake on;" not in plan_default_conf(NGINX_DIR, SETTINGS)
    text = plan_default_conf(NGINX_DIR, ProxySettings(https_port=8443), https=True)
    assert "listen 8443 ssl http2 default_server;" in text and "ssl_reject_handshake on;" in text


def test_https_port_must_differ_from_http_port():
    with pytest.raises(ConfigError, match="https_port"):
        ProxySettings(http_port=8080, https_port=8080)
