"""The listener: accept TCP connections, run one paramiko transport per connection, one thread per session."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko

from .. import keys, proc
from .commands import cli_argv as default_cli_argv
from .interface import BANNER, Interface
from .session import Session

if TYPE_CHECKING:
    from ..context import Context

log = logging.getLogger("paas.sshd")

HOST_KEY_NAME = "ssh_host_ed25519_key"
POLL_S = 0.2  # how soon accept loops and waiting sessions notice stop() or a closed connection
REQUEST_TIMEOUT_S = 60.0  # a session channel that never asks for anything is closed after this
JOIN_TIMEOUT_S = 60.0  # a session whose client left may take GIT_TERM_GRACE_S to end
MAX_CONNECTIONS = 100  # config ssh.max_connections: more at once are closed as they arrive
LOGIN_GRACE_S = 120.0  # config ssh.login_grace_s: a connection not logged in by then is closed (OpenSSH's
# LoginGraceTime), so clients that never finish the handshake cannot hold connection slots


def ensure_host_key(ssh_dir: Path) -> Path:
    """<ssh_dir>/ssh_host_ed25519_key, made by ssh-keygen on first use (mode 0600)."""
    path = ssh_dir / HOST_KEY_NAME
    if path.exists():
        return path
    ssh_dir.mkdir(parents=True, exist_ok=True)
    tmp = ssh_dir / f".{HOST_KEY_NAME}.{os.getpid()}.{threading.get_ident()}"
    for leftover in (tmp, tmp.with_name(tmp.name + ".pub")):
        leftover.unlink(missing_ok=True)
    proc.run(["ssh-keygen", "-t", "ed25519", "-N", "", "-q", "-C", "paasd", "-f", str(tmp)],
             desc="ssh-keygen (paasd host key)", input=b"")
    os.chmod(tmp, 0o600)
    # the private key last: a host key without its .pub is still complete, never the reverse
    os.replace(tmp.with_name(tmp.name + ".pub"), path.with_name(path.name + ".pub"))
    os.replace(tmp, path)
    log.info("made SSH host key %s", path)
    return path


class SSHServer:
    """paasd's SSH front door: `git push` and paas CLI commands for registered keys.

    ctx_factory() returns a fresh paas Context; each use opens its own and closes it (sqlite connections
    stay in one thread). cli_argv and git_service are replaceable for tests.
    """

    def __init__(self, ctx_factory: Callable[[], Context], listen: str = "0.0.0.0", port: int = 2222, *,
                 cli_argv: Callable[[Sequence[str]], list[str]] = default_cli_argv,
                 git_service: Callable[..., Any] | None = None, banner: str | None = BANNER,
                 max_connections: int = MAX_CONNECTIONS, login_grace_s: float = LOGIN_GRACE_S):
        self.ctx_factory = ctx_factory
        self.max_connections = max_connections
        self.login_grace_s = login_grace_s
        self._connections = 0  # connections being served (counted from accept to close)
        self.listen = listen
        self.port = port
        self.cli_argv = cli_argv
        self.git_service = git_service
        self.banner = banner
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._host_key: paramiko.PKey | None = None
        self._root: Path | None = None
        self._transports: set[paramiko.Transport] = set()
        self._threads: set[threading.Thread] = set()

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind, listen, and accept in a background thread. Port 0 picks a free port (see .port)."""
        ctx = self.ctx_factory()
        try:
            self._root = ctx.paths.root
            self._host_key = paramiko.Ed25519Key(filename=str(ensure_host_key(ctx.paths.ssh)))
        finally:
            ctx.close()
        family = socket.AF_INET6 if ":" in self.listen else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.listen, self.port))
            sock.listen(64)
            sock.settimeout(POLL_S)  # so the accept loop notices stop()
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._spawn(self._accept_loop, "paas-sshd-accept")
        log.info("listening on %s port %d", self.listen, self.port)

    def serve_forever(self) -> None:
        """start() if needed, then block until stop() (or Ctrl-C, which stops)."""
        if self._sock is None:
            self.start()
        try:
            while not self._stopping.wait(1.0):
                pass
        except KeyboardInterrupt:
            self.stop()

    def stop(self) -> None:
        """Stop listening, drop every connection (their children are terminated), join all threads."""
        self._stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() now (close alone does not)
            self._sock.close()
        with self._lock:
            transports = list(self._transports)
        for transport in transports:
            transport.close()
        while True:
            with self._lock:
                threads = [t for t in self._threads if t is not threading.current_thread()]
            if not threads:
                break
            for thread in threads:
                thread.join(JOIN_TIMEOUT_S)
                if thread.is_alive():
                    log.warning("thread %s did not stop", thread.name)
                with self._lock:
                    self._threads.discard(thread)

    # -- connections ---------------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            finally:
                with self._lock:
                    self._threads.discard(thread)

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:  # stop() never sees a thread that is not started yet
            self._threads.add(thread)
            thread.start()
        return thread

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    return
                log.warning("accept failed: %s", exc)  # e.g. out of file descriptors: keep listening
                time.sleep(POLL_S)
                continue
            peer = f"{addr[0]}:{addr[1]}"
            with self._lock:
                full = self._connections >= self.max_connections
                if not full:
                    self._connections += 1
            if full:
                self._refuse(conn, peer)
                continue
            try:
                self._spawn(self._connection, f"paas-sshd-{peer}", conn, peer)
            except RuntimeError:  # no thread to be had: refuse this one, keep listening
                with self._lock:
                    self._connections -= 1
                self._refuse(conn, peer)

    def _refuse(self, conn: socket.socket, peer: str) -> None:
        """Over the cap: one line a human with `nc` can read (SSH clients skip lines before the version), close."""
        log.warning("refused connection from %s: %d connections already (ssh.max_connections)", peer,
                    self.max_connections)
        with contextlib.suppress(OSError):
            conn.setblocking(False)
            conn.send(b"paasd: too many connections, try again later\r\n")
        conn.close()

    def _connection(self, conn: socket.socket, peer: str) -> None:
        try:
            self._serve_connection(conn, peer)
        finally:
            with self._lock:
                self._connections -= 1

    def _lookup_key(self, key_type: str, blob: bytes) -> str | None:
        try:
            ctx = self.ctx_factory()
            try:
                return keys.key_name_for(ctx.conn, key_type, blob)
            finally:
                ctx.close()
        except Exception:  # noqa: BLE001 - refuse the key rather than kill paramiko's thread
            log.exception("looking up an SSH key failed")
            return None

    def _record_refusal(self, interface: Interface, peer: str) -> None:
        """One event per connection that offered only unregistered keys (not one per key or signature)."""
        try:
            from .. import events

            ctx = self.ctx_factory()
            try:
                fingerprints = sorted(interface.refused_keys)
                events.record(ctx.conn, f"key:{fingerprints[0]}", "login.refused", None, peer=peer,
                              keys=fingerprints)
            finally:
                ctx.close()
        except Exception:  # noqa: BLE001 - the log is not worth a failed connection teardown
            log.exception("recording a refused login failed")

    def _serve_connection(self, conn: socket.socket, peer: str) -> None:
        try:
            conn.settimeout(None)
            host = conn.getsockname()[0]
            transport = paramiko.Transport(conn)
        except (OSError, paramiko.SSHException) as exc:
            log.info("connection from %s ended: %s", peer, exc)
            conn.close()
            return
        transport.local_version = "SSH-2.0-paasd"
        transport.add_server_key(self._host_key)
        interface = Interface(self._lookup_key, peer, self.banner)
        with self._lock:
            if self._stopping.is_set():
                transport.close()
                return
            self._transports.add(transport)
        sessions: list[threading.Thread] = []
        try:
            transport.start_server(threading.Event(), server=interface)  # returns at once; the loop waits
            logged_in = False
            grace_ends = time.monotonic() + self.login_grace_s
            while transport.is_active() and not self._stopping.is_set():
                chan = transport.accept(POLL_S)
                if not logged_in and transport.is_authenticated():
                    logged_in = True
                    log.info("key %s (%s) logged in as %s from %s", interface.key_name,
                             interface.key_fingerprint, transport.get_username(), peer)
                elif not logged_in and time.monotonic() > grace_ends:
                    log.warning("closed connection from %s: not logged in after %gs (ssh.login_grace_s)", peer,
                                self.login_grace_s)
                    break
                if chan is not None:
                    sessions.append(self._spawn(self._serve_session, f"paas-sshd-session-{peer}",
                                                chan, interface, host))
            if not transport.is_active() and transport.get_exception() is not None:
                log.info("connection from %s ended: %s", peer, transport.get_exception())
        except (paramiko.SSHException, EOFError, OSError) as exc:
            log.info("connection from %s ended: %s", peer, exc or type(exc).__name__)
        except Exception:  # noqa: BLE001 - one connection must not take the server down
            log.exception("connection from %s failed", peer)
        finally:
            for thread in sessions:
                thread.join()
            if interface.refused_keys and not transport.is_authenticated():
                self._record_refusal(interface, peer)
            transport.close()
            with self._lock:
                self._transports.discard(transport)

    def _serve_session(self, chan: paramiko.Channel, interface: Interface, host: str) -> None:
        request = interface.sessions.get(chan.get_id())
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        # refused requests (sftp, x11, ...) leave the channel waiting until the client closes it
        while request is not None and not request.wait(POLL_S):
            if chan.closed or self._stopping.is_set() or time.monotonic() > deadline:
                request = None
        if request is None or interface.key_name is None:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                chan.close()
            return
        assert self._root is not None
        Session(chan, interface.key_name, self.ctx_factory, self._root, self.cli_argv, self.git_service,
                host, self.port, self._stopping, pty=request.pty).run(request.command)
