"""Static sites served by nginx inside the image: the `Staticfile` (Cloud Foundry's and Heroku's staticfile
buildpack format) read into a `StaticSite`, and the nginx configuration for it.

Pure: `read_staticfile` reads through an AppDir (the trust boundary); `nginx_conf` and `start_script` return text.

Staticfile keys (YAML, `key: value`), as the staticfile buildpack reads them:
  root: DIR                       the directory served (default: the app root; a built site's output directory)
  directory: visible              a listing for directories without index.html
  pushstate: enabled              unknown paths get /index.html (client-side routing)
  gzip: off                       no gzip (default on; a file's .gz twin is sent when present)
  ssi: enabled                    server-side includes
  host_dot_files: true            serve dotfiles (default: 404)
  location_include: FILE          nginx lines from nginx/conf/FILE (may be a glob) inside `location /`; needs root
  status_codes: {404: /404.html}  error pages
  http_strict_transport_security: true (+ _include_subdomains, _preload)
  force_https: true               a 301 to https when the proxy says the request came over http
`Staticfile.auth` (htpasswd lines, `user:hash`) turns on basic auth for the whole site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

import yaml

from ..errors import UserError
from .appdir import AppDir

STATICFILE = "Staticfile"
STATICFILE_AUTH = "Staticfile.auth"
INCLUDE_DIR = "nginx/conf"              # location_include is relative to it (as on Cloud Foundry)

SITE_DIR = "/app"                       # the files served, in the image
CONF_DIR = "/etc/nginx/paas"            # nginx.conf, htpasswd, include/ (the app's nginx/conf)
RUN_DIR = "/tmp/nginx"                  # pid, temp files, the listen line: writable by the app user
START_SCRIPT = "/usr/local/bin/start-nginx"
WEB_COMMAND = "start-nginx"

# platform files never served when the site root is the app root
INTERNAL_FILES = (STATICFILE, STATICFILE_AUTH, "Procfile", "app.json", "manifest.yml")

ENABLED = {"enabled", "true", "yes", "on", "visible"}
DISABLED = {"disabled", "false", "no", "off", "hidden"}
SAFE_PATH = re.compile(r"[A-Za-z0-9._@+-]+(/[A-Za-z0-9._@+-]+)*/?")
SAFE_GLOB = re.compile(r"[A-Za-z0-9._*@+-]+(/[A-Za-z0-9._*@+-]+)*")
ERROR_PAGE = re.compile(r"/[A-Za-z0-9._~/@+-]*")
HTPASSWD_LINE = re.compile(r"[^:\s#][^:\s]*:\S+")
FLAGS = {
    "directory": "directory", "pushstate": "pushstate", "gzip": "gzip", "ssi": "ssi",
    "host_dot_files": "host_dot_files", "force_https": "force_https", "http_strict_transport_security": "hsts",
    "http_strict_transport_security_include_subdomains": "hsts_subdomains",
    "http_strict_transport_security_preload": "hsts_preload",
}
KNOWN_KEYS = ("root", "location_include", "status_codes", *FLAGS)


@dataclass(frozen=True)
class StaticSite:
    """How a static site is served: what the Staticfile says, with the defaults filled in."""

    root: str = "."                       # relative to the app (plain sites) or the build (built sites)
    directory: bool = False
    pushstate: bool = False
    gzip: bool = True
    ssi: bool = False
    host_dot_files: bool = False
    force_https: bool = False
    hsts: bool = False
    hsts_subdomains: bool = False
    hsts_preload: bool = False
    location_include: str | None = None
    status_codes: tuple[tuple[int, str], ...] = ()
    basic_auth: bool = False
    root_given: bool = False              # whether the Staticfile names the root
    hidden: tuple[str, ...] = ()          # platform files at the root of the served directory (404)
    features: tuple[str, ...] = field(default=(), compare=False)   # in words, for the reasons
    warnings: tuple[str, ...] = field(default=(), compare=False)


def _flag(key: str, value: Any) -> bool:
    word = str(value).strip().lower() if not isinstance(value, bool) else ("true" if value else "false")
    if word in ENABLED:
        return True
    if word in DISABLED or word in ("", "none", "null"):
        return False
    raise UserError(f"{STATICFILE}: {key}: {value!r} is not enabled or disabled",
                    f"write `{key}: enabled` or `{key}: disabled`")


def _relative(key: str, value: Any, pattern: re.Pattern[str]) -> str:
    text = str(value).strip() if value is not None else ""
    parts = PurePosixPath(text).parts
    if not text or not pattern.fullmatch(text) or ".." in parts or text.startswith("/"):
        raise UserError(f"{STATICFILE}: {key}: {text!r} is not a directory inside the app",
                        f"write a relative path such as `{key}: dist`")
    return str(PurePosixPath(text))


def _status_codes(value: Any) -> tuple[tuple[int, str], ...]:
    if not isinstance(value, dict):
        raise UserError(f"{STATICFILE}: status_codes must map status codes to pages",
                        "e.g. `status_codes:` then an indented line `404: /404.html`")
    pages = []
    for code, page in value.items():
        number = int(code) if str(code).isdigit() else 0
        if not 400 <= number <= 599 or not isinstance(page, str) or not ERROR_PAGE.fullmatch(page):
            raise UserError(f"{STATICFILE}: status_codes: {code}: {page!r} is not an error code and a page path",
                            "e.g. `404: /404.html` (a code from 400 to 599, a path starting with /)")
        pages.append((number, page))
    return tuple(sorted(pages))


def parse_staticfile(text: str) -> dict[str, Any]:
    """The Staticfile's keys (an empty file: none)."""
    try:
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
            # `*name` repeats a node without copying it: nine short lines make a billion, which str() then
            # spells out (a hang). Plain `key: value` lines never need one.
            raise UserError(f"{STATICFILE}: YAML aliases (*name) are not supported", "write each value out")
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{STATICFILE}:{mark.line + 1}" if mark else STATICFILE
        raise UserError(f"{where}: cannot read it as `key: value` lines", "see the keys in `paas help buildpacks`"
                        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{STATICFILE}: must hold `key: value` lines", "e.g. `root: dist` and `pushstate: enabled`")
    return {str(k).strip().lower(): v for k, v in data.items()}


def read_staticfile(app: AppDir, *, built: bool = False, default_root: str = ".") -> StaticSite:
    """The app's StaticSite: its Staticfile and Staticfile.auth (defaults when it has neither).

    built: the root is a build's output (it need not exist in the repo); default_root: served when the Staticfile
    names no root."""
    text = app.text(STATICFILE)
    data = parse_staticfile(text) if text is not None else {}
    values: dict[str, Any] = {}
    warnings: list[str] = []
    unknown = sorted(set(data) - set(KNOWN_KEYS))
    if unknown:
        warnings.append(f"{STATICFILE}: {', '.join(unknown)} ignored (we read {', '.join(KNOWN_KEYS)})")
    for key, name in FLAGS.items():
        if key in data:
            values[name] = _flag(key, data[key])
    # the HSTS variants imply the plain header, as in the staticfile buildpack
    if values.get("hsts_preload"):
        values["hsts_subdomains"] = True
    if values.get("hsts_subdomains"):
        values["hsts"] = True
    root = default_root
    if data.get("root") is not None:
        root = _relative("root", data["root"], SAFE_PATH)
        values["root_given"] = True
        if not built and not app.is_dir(root):
            raise UserError(f"{STATICFILE}: root: {root} is not a directory in the app",
                            f"commit {root}/ or point root at the directory that holds index.html")
    if data.get("location_include") is not None:
        include = _relative("location_include", data["location_include"], SAFE_GLOB)
        if root == ".":
            warnings.append(f"{STATICFILE}: location_include is ignored without root (the include file would "
                            "be served with the site); add `root: DIR`")
        elif "*" not in include and not app.is_file(f"{INCLUDE_DIR}/{include}"):
            raise UserError(f"{STATICFILE}: location_include: {INCLUDE_DIR}/{include} does not exist",
                            f"commit {INCLUDE_DIR}/{include} (nginx lines for `location /`) or remove the key")
        else:
            values["location_include"] = include
    if data.get("status_codes") is not None:
        values["status_codes"] = _status_codes(data["status_codes"])
    auth = app.text(STATICFILE_AUTH)
    if auth is not None:
        lines = [line.strip() for line in auth.splitlines() if line.strip() and not line.startswith("#")]
        bad = next((n for n, line in enumerate(auth.splitlines(), 1)
                    if line.strip() and not line.startswith("#") and not HTPASSWD_LINE.fullmatch(line.strip())), None)
        if bad is not None or not lines:
            where = f"{STATICFILE_AUTH}:{bad}" if bad else STATICFILE_AUTH
            raise UserError(f"{where}: not an htpasswd line (user:hash)",
                            "make the lines with `htpasswd -nB USER` (or `openssl passwd -apr1`)")
        values["basic_auth"] = True
    hidden = tuple(f for f in INTERNAL_FILES if root == "." and not built and app.is_file(f))

    site = StaticSite(root=root, hidden=hidden, **values)
    words = [w for w, on in (("directory listings", site.directory), ("pushstate (unknown paths get /index.html)",
                                                                     site.pushstate),
                             ("no gzip", not site.gzip), ("server-side includes", site.ssi),
                             ("dotfiles served", site.host_dot_files), ("HTTPS redirect", site.force_https),
                             ("HSTS", site.hsts), (f"nginx/conf/{site.location_include} included",
                                                   bool(site.location_include)),
                             ("basic auth from Staticfile.auth", site.basic_auth)) if on]
    words += [f"{code} -> {page}" for code, page in site.status_codes]
    return replace(site, features=tuple(words), warnings=tuple(warnings))


# -- nginx -------------------------------------------------------------------------------------------------------

GZIP_TYPES = ("text/plain text/css text/xml text/javascript application/javascript application/json "
              "application/xml application/rss+xml application/atom+xml image/svg+xml application/wasm")


def nginx_conf(site: StaticSite, *, site_dir: str = SITE_DIR, conf_dir: str = CONF_DIR, run_dir: str = RUN_DIR,
               mime_types: str = "/etc/nginx/mime.types") -> str:
    """nginx.conf serving `site_dir` as the site: nginx as the user that starts it (no `user`), in the foreground,
    pid and temp files in run_dir, access log to stdout, errors to stderr, `listen` from run_dir/listen.conf (the
    start script writes it from $PORT). The paths are parameters so that a host nginx can run it in tests."""
    lines = [
        "# Generated by paas from the Staticfile (or the defaults): nginx serves the site as the app user.",
        "worker_processes 1;",
        "daemon off;",
        f"pid {run_dir}/nginx.pid;",
        "error_log stderr;",
        "events { worker_connections 1024; }",
        "",
        "http {",
        f"    include {mime_types};",
        "    default_type application/octet-stream;",
        "    charset utf-8;",
        "    log_format paas '$http_x_forwarded_for \"$request\" $status $body_bytes_sent \"$http_referer\" '",
        "                    '\"$http_user_agent\" $request_time';",
        f"    access_log {run_dir}/access.log paas;  # a FIFO the start script relays to stdout",
        "    sendfile on;",
        "    tcp_nopush on;",
        "    keepalive_timeout 30;",
        "    server_tokens off;",
        "    # redirects (a directory without its slash) keep the host and port the browser used",
        "    absolute_redirect off;",
        *(f"    {kind}_temp_path {run_dir}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
    ]
    if site.gzip:
        lines += ["    gzip on;", "    gzip_static on;", "    gzip_vary on;", "    gzip_proxied any;",
                  "    gzip_min_length 1024;", f"    gzip_types {GZIP_TYPES};"]
    lines += ["", "    server {", f"        include {run_dir}/listen.conf;", f"        root {site_dir};",
              "        index index.html index.htm;"]
    if site.directory:
        lines.append("        autoindex on;")
    if site.ssi:
        lines.append("        ssi on;")
    if site.basic_auth:
        lines += ['        auth_basic "Restricted";', f"        auth_basic_user_file {conf_dir}/htpasswd;"]
    if site.force_https:
        lines += ['        if ($http_x_forwarded_proto = "http") {',
                  "            return 301 https://$host$request_uri;", "        }"]
    if site.hsts:
        value = "max-age=31536000" + ("; includeSubDomains" if site.hsts_subdomains else "") + (
            "; preload" if site.hsts_preload else "")
        lines.append(f'        add_header Strict-Transport-Security "{value}" always;')
    lines += [f"        error_page {code} {page};" for code, page in site.status_codes]
    if not site.host_dot_files:
        lines += ["        location ~ /\\. {", "            return 404;", "        }"]
    lines += [f"        location = /{name} {{ return 404; }}" for name in site.hidden]
    location = (["            try_files $uri $uri/ /index.html;"] if site.pushstate else []) + (
        [f"            include {conf_dir}/include/{site.location_include};"] if site.location_include else [])
    if location:
        lines += ["        location / {", *location, "        }"]
    lines += ["    }", "}"]
    return "\n".join(lines) + "\n"


def start_script(*, conf_dir: str = CONF_DIR, run_dir: str = RUN_DIR) -> str:
    """The web process. nginx reads no environment, so the listen line for $PORT is written where the config
    includes it. nginx opens its access log by name, and /dev/stdout (a pipe of the root-owned supervisor) is
    not the app user's to open: the log is a FIFO that `cat` relays to stdout. Then nginx replaces the shell, so
    signals reach it (cat ends when nginx closes the FIFO)."""
    return (
        "#!/bin/sh\n"
        "set -e\n"
        f"mkdir -p {run_dir}\n"
        f'echo "listen ${{PORT:-5000}};" > {run_dir}/listen.conf\n'
        f"rm -f {run_dir}/access.log && mkfifo {run_dir}/access.log\n"
        f"cat {run_dir}/access.log &\n"
        f"exec nginx -e stderr -c {conf_dir}/nginx.conf\n"
    )
