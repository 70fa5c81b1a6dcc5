"""The nginx executor: one nginx master per data root, its whole config tree under one directory.

    nginx.conf              main config (plan_main_conf)
    conf.d/default.conf     default server: 404 for a Host no app answers to
    conf.d/control.conf     control server on run/control.sock: answers the generation of the loaded config
    conf.d/paas.conf        the dashboard and HTTP API at paas.DOMAIN, proxied to paasd (plan_dashboard_conf)
    apps/<app>.conf         one app's upstream and server (plan_app_conf)
    logs/  run/  temp/      error and access logs; pid file and control socket; request/response buffers
    .lock                   flock: installs (parallel deploys) happen one at a time

A change is made on a copy of the whole tree (a stage directory), checked there with `nginx -t`, and only
then renamed into place, with a fresh generation in control.conf; after SIGHUP we wait until the control
socket answers that generation and no worker of the old config still accepts connections. A failure
before the rename changes nothing; a failure after it puts the previous files back.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .. import failpoints, locks, proc
from ..errors import PaasError
from . import procfs
from .plan import (
    CONTROL_SOCKET,
    ProxySettings,
    Route,
    check_app,
    check_nginx_dir,
    nginx_problem,
    plan_app_conf,
    plan_control_conf,
    plan_dashboard_conf,
    plan_default_conf,
    plan_main_conf,
    route_of,
)

log = logging.getLogger("paas.proxy")

MAIN = "nginx.conf"
DEFAULT = "conf.d/default.conf"
CONTROL = "conf.d/control.conf"
DASHBOARD = "conf.d/paas.conf"
INCLUDED = ("conf.d", "apps")  # the folders nginx.conf includes *.conf from
LIVE_TIMEOUT_S = 10.0
LOCK_TIMEOUT_S = 120.0
STOP_STEPS = ((signal.SIGQUIT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))


class Nginx:
    def __init__(self, nginx_dir: Path, settings: ProxySettings, *, binary: str = "nginx"):
        self.dir = Path(nginx_dir).absolute()
        self.settings = settings
        self.binary = binary

    @property
    def conf(self) -> Path:
        return self.dir / MAIN

    @property
    def error_log(self) -> Path:
        return self.dir / "logs" / "error.log"

    @property
    def pid_file(self) -> Path:
        return self.dir / "run" / "nginx.pid"

    @property
    def control_socket(self) -> Path:
        return self.dir / CONTROL_SOCKET

    @property
    def acme_dir(self) -> Path:
        """Where HTTP-01 answers go (files named by token), served at /.well-known/acme-challenge/."""
        return acme_challenge_dir(self.dir)

    @property
    def tls_dir(self) -> Path:
        """Where the certificates served are copied for the workers (paas.proxy.routes.publish_certificate)."""
        return tls_dir(self.dir)

    # -- the API -------------------------------------------------------------------------------------------

    def ensure_running(self) -> None:
        """Current main config and default server installed, and a master serving them."""
        live = self._read_tree()
        rendered = self._rendered(live)
        if self.is_running() and CONTROL in live and live.items() >= rendered.items() and \
                (DASHBOARD in rendered or DASHBOARD not in live) and self._serves(live):
            return
        self._install({}, start=True)

    def apply_route(self, route: Route) -> None:
        """Route the app's hostnames to its backends; returns once the new config answers requests."""
        text = plan_app_conf(route, self.settings, self.dir, self.acme_dir)
        self._install({f"apps/{route.app}.conf": text}, start=True)

    def remove_route(self, app: str) -> None:
        name = f"apps/{check_app(app)}.conf"
        if (self.dir / name).exists():
            self._install({name: None}, start=False)

    def routes(self) -> list[str]:
        return sorted(path.stem for path in (self.dir / "apps").glob("*.conf"))

    def route(self, app: str) -> Route | None:
        """The route installed for app (None: no route)."""
        try:
            return route_of((self.dir / "apps" / f"{check_app(app)}.conf").read_text())
        except FileNotFoundError:
            return None

    def is_running(self) -> bool:
        return self.master_pid() is not None

    def reload(self) -> None:
        """Re-read the installed config (checked first) and wait until it answers."""
        if not self.is_running():
            raise PaasError("nginx is not running", "start it with `paasd` (Nginx.ensure_running)")
        self._install({}, start=False, force=True)

    def reopen_logs(self) -> None:
        """After log rotation: nginx reopens its log files (SIGUSR1)."""
        master = self.master_pid()
        if master is not None:
            os.kill(master, signal.SIGUSR1)

    def stop(self) -> None:
        """Quit the master and its workers (gracefully, then harder) and wait until they are gone."""
        if self.master_pid() is None:
            return
        with self._locked():  # not in the middle of another process's reload
            master = self.master_pid()
            if master is None:
                return
            group = {master, *procfs.children(master)}
            for sig, wait in STOP_STEPS:
                for pid in group if sig == signal.SIGKILL else {master}:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                if procfs.wait_gone(group, wait):
                    return
                log.warning("nginx (pid %d) still running after %s", master, signal.Signals(sig).name)
            raise PaasError(f"nginx (pid {master}) did not stop", f"kill it by hand; its config is {self.conf}")

    # -- installing ------------------------------------------------------------------------------------------

    def _install(self, changes: dict[str, str | None], *, start: bool, force: bool = False) -> None:
        """Apply changes (relative path -> text, None to delete) to the tree, then make nginx serve it:
        reload a running master, start one when `start`, else only install the files."""
        with self._locked():
            live = self._read_tree()
            candidate = dict(live)
            for name, text in changes.items():
                if text is None:
                    candidate.pop(name, None)
                else:
                    candidate[name] = text
            rendered = self._rendered(candidate)  # the default server depends on the apps (any HTTPS?)
            wanted = {**candidate, **rendered}
            if DASHBOARD not in rendered:
                wanted.pop(DASHBOARD, None)  # api.port 0: nothing to publish
            changed = sorted(name for name in wanted.keys() | live.keys()
                             if name != CONTROL and wanted.get(name) != live.get(name))
            master = self.master_pid()
            if not changed and not force:
                if master is not None and CONTROL in live and self._serves(live):
                    return  # already serving exactly these files
                if master is None and not start:
                    return  # nothing to install, nothing to start
            generation = f"{int(time.time())}.{secrets.token_hex(4)}"
            wanted[CONTROL] = plan_control_conf(self.dir, generation)
            changed.append(CONTROL)
            stage = self._stage(wanted)
            try:
                self._check(stage, changed)
                try:
                    for name in changed:
                        if name in wanted:
                            os.replace(stage / name, self.dir / name)
                        else:
                            (self.dir / name).unlink(missing_ok=True)
                    failpoints.hit("nginx.reload")
                    if master is not None:
                        self._reload(master, generation)
                    elif start:
                        self._start(generation)
                except BaseException:
                    self._restore({name: live.get(name) for name in changed})
                    if master is not None and procfs.alive(master):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(master, signal.SIGHUP)  # back to the previous files, had it loaded ours
                    raise
            finally:
                shutil.rmtree(stage, ignore_errors=True)

    def _rendered(self, live: dict[str, str]) -> dict[str, str]:
        """The files rendered for the current settings: main config, default server, and every installed app
        again from the route kept in its file (a changed port or body size reaches all apps at once)."""
        files = {
            MAIN: plan_main_conf(self.dir, self.settings, disk_buffering=workers_reach(self.dir / "temp"),
                                 user=ensure_worker_user()),
        }
        dashboard = plan_dashboard_conf(self.dir, self.settings)
        if dashboard is not None:
            files[DASHBOARD] = dashboard
        https = False
        for name, text in live.items():
            route = route_of(text) if name.startswith("apps/") else None
            if route is not None and name == f"apps/{route.app}.conf":
                files[name] = plan_app_conf(route, self.settings, self.dir, self.acme_dir)
                https = https or route.tls is not None
        files[DEFAULT] = plan_default_conf(self.dir, self.settings, https=https)
        return files

    def _read_tree(self) -> dict[str, str]:
        """The installed files nginx reads: nginx.conf and the *.conf it includes."""
        files = {}
        if self.conf.exists():
            files[MAIN] = self.conf.read_text()
        for folder in INCLUDED:
            for path in sorted((self.dir / folder).glob("*.conf")):
                files[f"{folder}/{path.name}"] = path.read_text()
        return files

    def _stage(self, files: dict[str, str]) -> Path:
        """A candidate copy of the tree, next to the live one (so files rename into place)."""
        stage = Path(tempfile.mkdtemp(prefix=".stage-", dir=self.dir))
        for folder in INCLUDED:
            (stage / folder).mkdir()
        for name, text in files.items():
            (stage / name).write_text(text)
        return stage

    def _check(self, stage: Path, changed: list[str] | None = None) -> None:
        """`nginx -t` on the candidate: its nginx.conf includes the candidate's own conf.d/ and apps/. A problem in
        a file this change did not write (one edited or added by hand) is named as such, with the fix."""
        result = proc.run(self._argv(stage / MAIN, "-t", "-q"), desc="nginx -t", check=False, timeout=60)
        if result.returncode != 0:
            problem = nginx_problem(result.stderr.decode(errors="replace")).replace(f"{stage}/", "")
            where = re.search(r" in (\S+):\d+$", problem)
            if where and changed is not None and where.group(1) not in changed:
                raise PaasError(f"nginx's config is broken outside this change: {problem}",
                                f"fix or remove {self.dir / where.group(1)} (not written by paas: edited by hand?), "
                                "then try again; the running nginx keeps its config")
            raise PaasError(f"nginx rejected the new config: {problem}",
                            "nothing was changed: the running config and its files are as before")

    def _restore(self, previous: dict[str, str | None]) -> None:
        for name, text in previous.items():
            path = self.dir / name
            if text is None:
                path.unlink(missing_ok=True)
            else:
                temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                temporary.write_text(text)
                os.replace(temporary, path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive use of the tree; also creates its folders and drops stages a crashed process left."""
        check_nginx_dir(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        busy = PaasError(f"nginx config is locked by another process for {LOCK_TIMEOUT_S:g}s",
                         f"is a deploy stuck? (lock: {self.dir / '.lock'})")
        with locks.exclusive(self.dir / ".lock", wait_s=LOCK_TIMEOUT_S, what="the nginx config", busy=lambda: busy,
                             poll_s=0.02, mode=0o600):
            for folder in (*INCLUDED, "logs", "run", "temp"):
                (self.dir / folder).mkdir(exist_ok=True)
            for stale in self.dir.glob(".stage-*"):
                shutil.rmtree(stale, ignore_errors=True)
            yield

    # -- the master --------------------------------------------------------------------------------------

    def _argv(self, conf: Path, *flags: str) -> list[str]:
        # -e: errors before nginx.conf is read go here, not to the compiled-in /var/log/nginx/error.log
        return [self.binary, *flags, "-p", f"{self.dir}/", "-c", str(conf), "-e", str(self.error_log)]

    def master_pid(self) -> int | None:
        """The pid of the master running on our nginx.conf (pid file first, then a /proc scan)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None and self._is_master(pid):
            return pid
        return next((pid for pid in procfs.pids() if self._is_master(pid)), None)

    def _is_master(self, pid: int) -> bool:
        words = procfs.cmdline(pid).split()
        try:
            conf = words[words.index("-c") + 1]
        except (ValueError, IndexError):
            return False
        if conf != str(self.conf) or "-t" in words or "-s" in words or not procfs.alive(pid):
            return False
        # "nginx: master process <argv>" once running; its plain argv just after the fork
        return words[:3] == ["nginx:", "master", "process"] or os.path.basename(words[0]) == Path(self.binary).name

    def _start(self, generation: str) -> None:
        self.control_socket.unlink(missing_ok=True)  # left by a killed master: bind() would fail on it
        offset = _size(self.error_log)
        result = proc.run(self._argv(self.conf), desc="start nginx", check=False, timeout=60)
        if result.returncode != 0:
            problem = nginx_problem(result.stderr.decode(errors="replace"))
            raise PaasError(f"nginx did not start: {problem}", f"is another server on port {self.settings.http_port}?"
                            if "bind()" in problem else f"see {self.error_log}")
        self._wait_live(generation, set(), offset)

    def _reload(self, master: int, generation: str) -> None:
        started = time.monotonic()
        old = {pid for pid in procfs.children(master) if _accepting(pid)}
        offset = _size(self.error_log)
        os.kill(master, signal.SIGHUP)
        # the master waits 100 ms after starting new workers before it tells the old ones to quit
        self._wait_live(generation, old, offset)
        log.debug("nginx reloaded: generation %s live after %.0f ms", generation, (time.monotonic() - started) * 1000)

    def _wait_live(self, generation: str, old_workers: set[int], offset: int) -> None:
        """Until the control socket answers `generation` and no old worker still accepts connections
        (one that got the quit signal says so in its title before closing its listening sockets)."""
        deadline = time.monotonic() + LIVE_TIMEOUT_S
        while True:
            if self._generation() == generation:
                old_workers = {pid for pid in old_workers if _accepting(pid)}
                if not old_workers:
                    return
            problem = _new_emerg(self.error_log, offset)
            if problem:
                raise PaasError(f"nginx did not load the new config: {problem}", f"see {self.error_log}")
            if self.master_pid() is None:
                raise PaasError("nginx exited while loading the new config", f"see {self.error_log}")
            if time.monotonic() >= deadline:
                raise PaasError(f"nginx did not load the new config within {LIVE_TIMEOUT_S:g}s",
                                f"is it running? see {self.error_log}")
            time.sleep(0.01)

    def _serves(self, live: dict[str, str]) -> bool:
        """nginx has loaded the installed files: it answers the generation in control.conf (a process killed
        between installing files and its reload left them installed and not loaded)."""
        installed = re.search(r'return 200 "([^"]*)"', live.get(CONTROL, ""))
        return installed is not None and self._generation() == installed.group(1)

    def _generation(self) -> str | None:
        """What the control server answers (None: not listening yet, or no answer)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.control_socket))
                sock.sendall(b"GET /generation HTTP/1.0\r\nHost: control\r\n\r\n")
                chunks = []
                while chunk := sock.recv(4096):
                    chunks.append(chunk)
        except OSError:
            return None
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        if head.split(b"\r\n", 1)[0].split()[1:2] != [b"200"]:
            return None
        return body.decode(errors="replace")


def _accepting(pid: int) -> bool:
    """A worker that has not been told to quit (nginx retitles it `worker process is shutting down`)."""
    title = procfs.cmdline(pid)
    return procfs.alive(pid) and "worker process" in title and "shutting down" not in title


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _new_emerg(path: Path, offset: int) -> str | None:
    """What an [emerg] line logged since offset says (a reload nginx refused logs one and keeps the old config)."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            text = file.read().decode(errors="replace")
    except OSError:
        return None
    return nginx_problem(text) if "[emerg] " in text else None


def acme_challenge_dir(nginx_dir: Path) -> Path:
    """Where paasd writes HTTP-01 answers and nginx serves them from (/.well-known/acme-challenge/TOKEN)."""
    return _worker_readable(nginx_dir, "acme")


def tls_dir(nginx_dir: Path) -> Path:
    """Where the certificates nginx serves are copied for its workers, which read them at each handshake."""
    return _worker_readable(nginx_dir, "tls")


def _worker_readable(nginx_dir: Path, name: str) -> Path:
    """nginx_dir/name when nginx's workers can reach it; under a private data root (mode 700) they cannot, and a
    folder under /run/paas/<name>/ named after the data root is used instead."""
    inside = Path(nginx_dir) / name
    if workers_reach(inside):
        return inside
    digest = hashlib.sha256(str(Path(nginx_dir).absolute()).encode()).hexdigest()[:16]
    return Path("/run/paas") / name / digest


WORKER_USER = "paas-proxy"  # nginx's workers when the master runs as root: they read the certificates' keys


def ensure_worker_user() -> str | None:
    """The system user nginx's workers run as (made once per host, as nginx's own package makes www-data), so the
    private keys they load at each TLS handshake are readable by them alone; None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(WORKER_USER)
        return WORKER_USER
    except KeyError:
        pass
    done = proc.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                     "--shell", "/usr/sbin/nologin", "--comment", "paas nginx workers", WORKER_USER],
                    desc=f"useradd {WORKER_USER}", check=False)
    if done.returncode not in (0, 9):  # 9: made meanwhile by another process
        log.warning("cannot create user %s (nginx workers run as nobody): %s", WORKER_USER,
                    (done.stderr or b"").decode(errors="replace").strip())
        return None
    return WORKER_USER


def worker_ids() -> tuple[int, int]:
    """uid and gid of nginx's workers (the worker user, else nobody)."""
    for name in (WORKER_USER, "nobody"):
        try:
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            continue
    return 65534, 65534


def workers_reach(path: Path, euid: int | None = None) -> bool:
    """Can nginx's workers open files under path? Started as root, they run as the worker user, which needs
    search permission on every parent folder: a private data root (mode 700) denies it."""
    if (os.geteuid() if euid is None else euid) != 0:
        return True
    worker = worker_ids()[0]
    for folder in [path, *path.parents]:
        try:
            info = folder.stat()
        except FileNotFoundError:
            continue  # created later by us or by nginx (owned by the worker user)
        if info.st_mode & stat.S_IXOTH or (info.st_uid == worker and info.st_mode & stat.S_IXUSR):
            continue
        return False
    return True
