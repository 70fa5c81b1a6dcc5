"""nft scripts through libnftables in-process give what nft(8) gives."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess

import pytest

from paas import proc
from paas.errors import CommandFailed
from paas.network import nftlib


@pytest.fixture
def table():
    name = f"paastest{secrets.token_hex(4)}"
    yield name
    subprocess.run(["nft", "delete", "table", "ip", name], capture_output=True)


def test_library_and_command_line_agree(table, monkeypatch):
    assert nftlib._library() is not None  # shipped with the nftables package
    nftlib.run(f"add table ip {table}\nadd chain ip {table} post {{ type nat hook postrouting priority 100 ; }}\n"
               f'add rule ip {table} post ip saddr 10.1.2.0/24 masquerade comment "paas:test"\n', desc="add")
    listed = nftlib.run(f"list table ip {table}\n", desc="list", handles=True).stdout
    command = subprocess.run(["nft", "-a", "list", "table", "ip", table], capture_output=True, text=True, check=True)
    assert listed == command.stdout and '"paas:test" # handle' in listed

    monkeypatch.setattr(nftlib, "_library", lambda: None)  # the fallback runs nft(8) with the same script
    assert nftlib.run(f"list table ip {table}\n", desc="list", handles=True).stdout == listed


def test_errors_and_dry_run(table):
    with pytest.raises(CommandFailed, match="no such file|No such file"):
        nftlib.run(f"add rule ip {table} nochain accept\n", desc="bad rule")
    checked = nftlib.run(f"add table ip {table}\n", desc="check", dry_run=True)
    assert checked.returncode == 0
    assert subprocess.run(["nft", "list", "table", "ip", table], capture_output=True).returncode != 0  # not made


def test_one_context_per_process_whose_socket_programs_do_not_inherit(table):
    """Closing an nftables socket after a deletion waits for the kernel's RCU grace period (see nftlib): every
    call shares one context, its netlink socket is close-on-exec, and a forked child makes its own."""
    nftlib.run(f"add table ip {table}\nadd chain ip {table} c\n", desc="add")
    first = nftlib._context
    assert first is not None and first[0] == os.getpid()
    nftlib.run(f"add rule ip {table} c accept\n", desc="add rule")
    listed = nftlib.run(f"list chain ip {table} c\n", desc="list", handles=True).stdout
    handle = listed.split("# handle ")[-1].split()[0]
    nftlib.run(f"delete rule ip {table} c handle {handle}\n", desc="delete rule")
    assert nftlib._context == first
    netlink = [fd for fd in map(int, os.listdir("/proc/self/fd")) if _is_netfilter_socket(fd)]
    assert netlink and not any(os.get_inheritable(fd) for fd in netlink)
    assert proc.forked(lambda: nftlib.run(f"list table ip {table}\n", desc="list in child").stdout.encode()
                       + str(nftlib._context[0] == os.getpid()).encode(), desc="child").endswith(b"True")
    assert nftlib._context == first


def _is_netfilter_socket(fd: int) -> bool:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return False
    with sock:
        return sock.family == socket.AF_NETLINK and sock.proto == 12  # NETLINK_NETFILTER
