"""nft scripts run through libnftables (the library behind nft(8), shipped with it) in-process.

Forking nft costs ~5 ms a call and a container start needs a few; the library call takes ~0.2 ms. The
input is exactly what `nft -f -` reads, so behaviour and errors match the command line. When the
library cannot be loaded we run nft(8) instead.

One context (and so one netlink socket) serves every call of a process. A transaction that deletes
anything (a rule, a set element, a chain, or re-adds an existing chain) leaves the kernel objects to be
freed after an RCU grace period by a work queue; the commit itself returns at once, but closing any
nftables netlink socket while such work is pending waits for it (the kernel flushes the work on
NETLINK_URELEASE): 7-12 ms here. A context per call closed its socket right after each deletion and so
paid that wait every time; the shared one is never closed (a forked child makes its own).
"""

from __future__ import annotations

import ctypes
import functools
import os
import socket
import threading
from dataclasses import dataclass

from .. import proc
from ..errors import CommandFailed

OUTPUT_HANDLE = 1 << 3  # NFT_CTX_OUTPUT_HANDLE: `nft -a`
NETLINK_NETFILTER = 12
_lock = threading.Lock()  # one script at a time per process, like one nft(8) at a time
_context: tuple[int, int] | None = None  # (pid, nft_ctx pointer): the process's context, made on first use


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    def last_line(self) -> str:
        """nft's "Error: ..." line (the lines after it only point at the column), else the last line."""
        lines = (self.stderr + self.stdout).strip().splitlines()
        errors = [line for line in lines if line.startswith("Error:")]
        return (errors or lines or [f"exit code {self.returncode}"])[0 if errors else -1]


@functools.cache
def _library() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL("libnftables.so.1")
    except OSError:
        return None
    vp = ctypes.c_void_p
    lib.nft_ctx_new.restype = vp
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [vp]
    lib.nft_ctx_buffer_output.argtypes = [vp]
    lib.nft_ctx_buffer_error.argtypes = [vp]
    lib.nft_ctx_get_output_buffer.argtypes = [vp]
    lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [vp]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_output_set_flags.argtypes = [vp, ctypes.c_uint]
    lib.nft_ctx_set_dry_run.argtypes = [vp, ctypes.c_bool]
    lib.nft_run_cmd_from_buffer.argtypes = [vp, ctypes.c_char_p]
    return lib


def run(script: str, *, desc: str, handles: bool = False, dry_run: bool = False, check: bool = True) -> Result:
    """Run an nft script (one transaction). handles: print rule handles; dry_run: `nft --check`."""
    lib = _library()
    if lib is None:
        result = _run_command(script, desc=desc, handles=handles, dry_run=dry_run)
    else:
        with _lock:
            ctx = _shared_context(lib)
            lib.nft_ctx_output_set_flags(ctx, OUTPUT_HANDLE if handles else 0)
            lib.nft_ctx_set_dry_run(ctx, dry_run)
            code = lib.nft_run_cmd_from_buffer(ctx, script.encode())
            # reading a buffer empties it for the next call
            out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
            err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        result = Result(1 if code else 0, out, err)
    if check and result.returncode != 0:
        raise CommandFailed(desc, result.returncode, result.last_line())
    return result


def _shared_context(lib: ctypes.CDLL) -> int:
    """This process's nft context (called under _lock). A child forked from a process that had one makes
    its own: two processes talking over one netlink socket would read each other's answers."""
    global _context
    if _context is not None and _context[0] == os.getpid():
        return _context[1]
    ctx = lib.nft_ctx_new(0)
    if not ctx:
        raise MemoryError("nft_ctx_new")
    _no_inherit_netfilter_sockets()  # its netlink socket: not for the programs we exec (libmnl sets no CLOEXEC)
    lib.nft_ctx_buffer_output(ctx)
    lib.nft_ctx_buffer_error(ctx)
    _context = (os.getpid(), ctx)
    return ctx


def _no_inherit_netfilter_sockets() -> None:
    """Mark this process's NETLINK_NETFILTER sockets close-on-exec (Python's own sockets are already)."""
    for name in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            with socket.socket(fileno=os.dup(int(name))) as sock:
                if sock.family == socket.AF_NETLINK and sock.proto == NETLINK_NETFILTER:
                    os.set_inheritable(int(name), False)
        except OSError:  # closed meanwhile (the listing's own fd)
            continue


def _run_command(script: str, *, desc: str, handles: bool, dry_run: bool) -> Result:
    argv = ["nft"] + (["-a"] if handles else []) + (["--check"] if dry_run else []) + ["-f", "-"]
    done = proc.run(argv, input=script.encode(), desc=desc, check=False)
    return Result(done.returncode, (done.stdout or b"").decode(errors="replace"),
                  (done.stderr or b"").decode(errors="replace"))
