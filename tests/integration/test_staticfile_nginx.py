"""The nginx config and start script the static buildpack puts in images, run by this host's nginx as an
unprivileged user (nobody, as the app user in a container): every Staticfile key answers as the staticfile
buildpack's does, the access log reaches stdout through the FIFO, and a non-root nginx needs nothing outside
its run directory.

Each test serves a site from its own world-readable temporary directory on a free port and stops nginx (then
kills it, if need be) whatever the outcome.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from paas.detect.appdir import AppDir
from paas.detect.staticfile import nginx_conf, read_staticfile, start_script
from tests.conftest import need_root, need_tool
from tests.services import free_port

NOBODY = 65534
# "tester:s3cret" (openssl passwd -apr1 -salt paastest s3cret)
HTPASSWD = "tester:$apr1$paastest$2pBHARDhNNzjWF.LUx01/0\n"
AUTH = "Basic dGVzdGVyOnMzY3JldA=="


@dataclass
class Served:
    port: int
    process: subprocess.Popen

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode(errors="replace")
        finally:
            conn.close()


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@contextlib.contextmanager
def serve(files: dict[str, str]) -> Iterator[Served]:
    """The app `files` served as the image would serve it: config from its Staticfile, nginx run by the start
    script as nobody."""
    need_root()
    need_tool("nginx")
    need_tool("setpriv")
    base = Path(tempfile.mkdtemp(prefix="paas-staticfile-"))
    process = None
    try:
        os.chmod(base, 0o755)
        app = base / "app"
        write(app, files)
        for path in [app, *app.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        site = read_staticfile(AppDir(app))
        conf, tmp = base / "conf", base / "tmp"
        conf.mkdir()
        tmp.mkdir(mode=0o1777)
        os.chmod(tmp, 0o1777)
        run_dir = str(tmp / "nginx")
        (conf / "nginx.conf").write_text(nginx_conf(site, site_dir=str(app / site.root), conf_dir=str(conf),
                                                    run_dir=run_dir))
        if site.basic_auth:
            shutil.copy(app / "Staticfile.auth", conf / "htpasswd")
        if site.location_include:
            shutil.copytree(app / "nginx" / "conf", conf / "include")
        (base / "start").write_text(start_script(conf_dir=str(conf), run_dir=run_dir))
        for path in [conf, *conf.rglob("*"), base / "start"]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        port = free_port()
        process = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                                    "sh", str(base / "start")], env={**os.environ, "PORT": str(port)},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise AssertionError(f"nginx exited {process.returncode}: {process.stderr.read().decode()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline, "nginx did not listen"
            time.sleep(0.05)
        yield Served(port, process)
    finally:
        if process is not None:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGQUIT)
                try:
                    process.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.communicate(timeout=10)
            for pipe in (process.stdout, process.stderr):
                pipe.close()
        shutil.rmtree(base, ignore_errors=True)


def test_defaults_serve_the_root_without_dotfiles_or_platform_files_and_log_to_stdout():
    css = "body { color: black; }\n" * 100
    with serve({"index.html": "home\n", "style.css": css, ".env": "SECRET=1\n", "Procfile": "web: x\n",
                "Staticfile": "", "sub/index.html": "sub\n"}) as s:
        assert s.get("/")[::2] == (200, "home\n")
        assert s.get("/.env")[0] == 404
        assert s.get("/Procfile")[0] == 404 and s.get("/Staticfile")[0] == 404
        status, headers, _ = s.get("/sub")
        assert status == 301 and headers["location"] == "/sub/"  # relative: the proxy's host and port stay
        assert s.get("/sub/")[::2] == (200, "sub\n")
        status, headers, _ = s.get("/style.css", {"Accept-Encoding": "gzip"})
        assert status == 200 and headers.get("content-encoding") == "gzip"
        assert s.get("/nothing")[0] == 404
        os.killpg(s.process.pid, signal.SIGQUIT)
        out, err = s.process.communicate(timeout=10)
    log = out.decode()
    assert '"GET /sub/ HTTP/1.1" 200' in log, (log, err.decode())
    assert "[emerg]" not in err.decode() and "Permission denied" not in err.decode()


def test_root_pushstate_status_codes_hsts_and_basic_auth():
    files = {"Staticfile": "root: dist\npushstate: enabled\nhttp_strict_transport_security_preload: true\n"
                           "status_codes:\n  404: /missing.html\n",
             "Staticfile.auth": HTPASSWD, "README.md": "not served\n",
             "dist/index.html": "app shell\n", "dist/missing.html": "custom 404\n", "dist/.hidden": "x\n"}
    with serve(files) as s:
        status, headers, _ = s.get("/")
        assert status == 401 and headers["www-authenticate"].startswith("Basic")
        auth = {"Authorization": AUTH}
        status, headers, body = s.get("/", auth)
        assert (status, body) == (200, "app shell\n")
        assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
        assert s.get("/some/client/route", auth)[::2] == (200, "app shell\n")
        assert s.get("/.hidden", auth)[::2] == (404, "custom 404\n")
        assert s.get("/README.md", auth)[::2] == (200, "app shell\n")  # outside the root: the pushstate fallback
        assert s.get("/", {"Authorization": "Basic dGVzdGVyOndyb25n"})[0] == 401


def test_directory_listing_ssi_dotfiles_https_redirect_and_location_include():
    files = {"Staticfile": "root: public\ndirectory: visible\nssi: enabled\nhost_dot_files: true\n"
                           "force_https: true\nlocation_include: includes/*.conf\n",
             "nginx/conf/includes/headers.conf": 'add_header X-Included "yes";\n',
             "public/files/a.txt": "a\n", "public/.well-known/thing": "dot\n",
             "public/index.html": 'start <!--# include file="part.html" --> end\n', "public/part.html": "PART"}
    with serve(files) as s:
        https = {"X-Forwarded-Proto": "https"}
        status, headers, body = s.get("/", https)
        assert (status, body) == (200, "start PART end\n") and headers["x-included"] == "yes"
        status, _, body = s.get("/files/", https)
        assert status == 200 and 'href="a.txt"' in body
        assert s.get("/.well-known/thing", https)[::2] == (200, "dot\n")
        status, headers, _ = s.get("/files/a.txt", {"X-Forwarded-Proto": "http", "Host": "site.example"})
        assert status == 301 and headers["location"] == "https://site.example/files/a.txt"


def test_gzip_off_sends_files_as_they_are():
    with serve({"Staticfile": "gzip: off\n", "index.html": "x" * 4096}) as s:
        status, headers, body = s.get("/", {"Accept-Encoding": "gzip"})
        assert status == 200 and "content-encoding" not in headers and body == "x" * 4096


@pytest.mark.parametrize("staticfile, message", [
    ("root: ../etc\n", "Staticfile: root: '../etc' is not a directory inside the app"),
    ("root: nowhere\n", "Staticfile: root: nowhere is not a directory in the app"),
    ("pushstate: maybe\n", "Staticfile: pushstate: 'maybe' is not enabled or disabled"),
])
def test_a_bad_staticfile_is_one_line_naming_the_key(tmp_path, staticfile, message):
    from paas.errors import UserError

    write(tmp_path, {"Staticfile": staticfile, "index.html": "x"})
    with pytest.raises(UserError) as caught:
        read_staticfile(AppDir(tmp_path))
    assert caught.value.message == message
