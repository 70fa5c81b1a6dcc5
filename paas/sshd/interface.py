"""Who may log in and which SSH requests we honour: public keys only, session channels only."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paramiko

from ..keys import fingerprint

log = logging.getLogger("paas.sshd")

BANNER = "paas: log in with a key registered by `paas ssh-keys:add` (no passwords)\n"


@dataclass
class PtyRequest:
    """A session's pty-req (`ssh -t`): the client's terminal type and size; window-change requests update the
    size and tell on_resize (set by whoever runs the command on a pty: paas.sshd.pump.run_on_pty)."""
    term: str = "xterm"
    rows: int = 24
    cols: int = 80
    on_resize: Callable[[int, int], None] | None = None

    def resize(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows or self.rows, cols or self.cols
        if self.on_resize is not None:
            self.on_resize(self.rows, self.cols)


class SessionRequest:
    """The one exec or shell request of a session channel, handed from paramiko's thread to ours."""

    def __init__(self) -> None:
        self.command: bytes | None = None
        self.pty: PtyRequest | None = None  # asked for before the command (OpenSSH's order)
        self._event = threading.Event()

    def set(self, command: bytes | None) -> bool:
        if self._event.is_set():
            return False  # one command per channel, as OpenSSH does
        self.command = command
        self._event.set()
        return True

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def asked(self) -> bool:
        return self._event.is_set()


class Interface(paramiko.ServerInterface):
    """paramiko's callbacks for one connection. `lookup_key(type, blob)` returns a key's name or None."""

    def __init__(self, lookup_key: Callable[[str, bytes], str | None], peer: str, banner: str | None = BANNER):
        self.lookup_key = lookup_key
        self.peer = peer
        self.banner = banner
        self.key_name: str | None = None
        self.key_fingerprint: str | None = None
        self.sessions: dict[int, SessionRequest] = {}
        self.refused_keys: set[str] = set()  # log each refused key once, not for the probe and the signature

    # -- authentication ------------------------------------------------------------------------------

    def get_banner(self) -> tuple[str | None, str | None]:
        return self.banner, "en-US"

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_password(self, username: str, password: str) -> int:
        log.warning("refused password login as %s from %s (keys only)", username, self.peer)
        return paramiko.AUTH_FAILED

    def check_auth_interactive(self, username: str, submethods: str):
        log.warning("refused keyboard-interactive login as %s from %s (keys only)", username, self.peer)
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        blob = key.asbytes()
        name = self.lookup_key(key.get_name(), blob)
        fp = fingerprint(blob)
        if name is None:
            if fp not in self.refused_keys:
                self.refused_keys.add(fp)
                log.warning("refused key %s (%s) as %s from %s: not registered", fp, key.get_name(), username,
                            self.peer)
            return paramiko.AUTH_FAILED
        # paramiko verifies the signature after this answer; the server logs the login once it is done
        self.key_name, self.key_fingerprint = name, fp
        return paramiko.AUTH_SUCCESSFUL

    # -- channels and requests -----------------------------------------------------------------------

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind != "session":
            log.warning("refused %s channel for key %s from %s", kind, self.key_name, self.peer)
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        self.sessions[chanid] = SessionRequest()
        return paramiko.OPEN_SUCCEEDED

    def check_channel_direct_tcpip_request(self, chanid: int, origin, destination) -> int:
        log.warning("refused port forwarding to %s for key %s from %s", destination, self.key_name, self.peer)
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_port_forward_request(self, address: str, port: int) -> bool:
        log.warning("refused remote port forwarding %s:%s for key %s from %s", address, port, self.key_name,
                    self.peer)
        return False

    def check_global_request(self, kind: str, msg) -> bool:
        return False

    def check_channel_x11_request(self, channel, single_connection, auth_protocol, auth_cookie, screen_number):
        return False

    def check_channel_forward_agent_request(self, channel) -> bool:
        return False

    def check_channel_subsystem_request(self, channel, name: str) -> bool:
        log.warning("refused subsystem %s for key %s from %s", name, self.key_name, self.peer)
        return False

    def check_channel_env_request(self, channel, name, value) -> bool:
        return False  # the command's environment is the server's, not the client's

    def check_channel_pty_request(self, channel, term, width, height, pixelwidth, pixelheight, modes) -> bool:
        """`ssh -t`: the command will run on a pty of this size (the client's terminal modes are not applied:
        a new pty's defaults are a sane cooked terminal, and interactive commands make it raw themselves)."""
        request = self.sessions.get(channel.get_id())
        if request is None or request.asked():
            return False  # only before the command, as OpenSSH's client sends it
        name = term.decode(errors="replace") if isinstance(term, bytes) else str(term)
        request.pty = PtyRequest(name or "xterm", height or 24, width or 80)
        return True

    def check_channel_window_change_request(self, channel, width, height, pixelwidth, pixelheight) -> bool:
        request = self.sessions.get(channel.get_id())
        if request is None or request.pty is None:
            return False
        request.pty.resize(height, width)
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        return self._request(channel, None)

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        return self._request(channel, command)

    def _request(self, channel: paramiko.Channel, command: bytes | None) -> bool:
        request = self.sessions.get(channel.get_id())
        return request is not None and request.set(command)
