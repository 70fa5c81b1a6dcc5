"""paasd's SSH server (paramiko): public-key logins against the ssh_keys table, `git push`/`git fetch`
through paas.receive, and paas CLI commands (`ssh -p 2222 paas@HOST apps:list`).

    server.py     listener, one thread per connection and per session, stop()
    interface.py  authentication and which SSH requests are allowed (paramiko callbacks)
    session.py    one command: git service (with the per-app lock) or CLI, exit status
    commands.py   parse the exec string (pure)
    pump.py       run a child with the channel as stdin/stdout/stderr; stop it when the client leaves
"""

from __future__ import annotations

from .server import SSHServer, ensure_host_key

__all__ = ["SSHServer", "ensure_host_key"]
