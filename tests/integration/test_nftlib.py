"""nft scripts through libnftables in-process give what nft(8) gives."""

from __future__ import annotations

import secrets
import subprocess

import pytest

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
