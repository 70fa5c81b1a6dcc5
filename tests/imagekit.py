"""Helpers to make small test images and layer tars (busybox-static in a scratch image)."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")


def busybox_rootfs(dest: Path) -> Path:
    """A minimal rootfs: busybox-static plus a few applet links and files with distinct metadata."""
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    for applet in ("sh", "ls", "cat", "echo"):
        os.symlink("busybox", dest / "bin" / applet)
    (dest / "etc").mkdir()
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (dest / "etc" / "motd").write_text("hello from a scratch image\n")
    (dest / "tmp").mkdir()
    os.chmod(dest / "tmp", 0o1777)
    (dest / "var" / "lib" / "data").mkdir(parents=True)
    (dest / "var" / "lib" / "data" / "a.txt").write_text("a\n")
    (dest / "var" / "lib" / "data" / "b.txt").write_text("b\n")
    os.link(dest / "etc" / "motd", dest / "etc" / "motd.hardlink")
    (dest / "usr" / "bin").mkdir(parents=True)
    (dest / "usr" / "bin" / "setuid-tool").write_text("#!/bin/sh\n")
    os.chmod(dest / "usr" / "bin" / "setuid-tool", 0o4755)
    if os.geteuid() == 0:
        os.chown(dest / "var" / "lib" / "data" / "b.txt", 1000, 1000)
    return dest


def make_tar(entries: list[tuple], path: Path | None = None) -> bytes:
    """Build a tar from (name, type, extra...) tuples for hostile-input tests.

    ("file", name, content) | ("dir", name) | ("symlink", name, target) | ("hardlink", name, target)
    | ("chardev", name, major, minor)
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            kind, name = entry[0], entry[1]
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if kind == "file":
                data = entry[2]
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, entry[2]
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, entry[2]
            elif kind == "chardev":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, entry[2], entry[3]
            tar.addfile(info)
    data = buf.getvalue()
    if path:
        path.write_bytes(data)
    return data


def tree(root: Path, *, owners: bool = True) -> dict[str, tuple]:
    """Names, types, modes, owners, link targets and contents of a tree (mtimes ignored)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = os.lstat(path)
            owner = (st.st_uid, st.st_gid) if owners else None
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path), owner)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), owner)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", stat.S_IMODE(st.st_mode), owner, path.read_bytes())
            else:
                out[rel] = ("special", stat.S_IFMT(st.st_mode), st.st_rdev, owner)
    return out


def applets() -> list[str]:
    import subprocess

    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout
    return [a for a in out.split() if a and "/" not in a and a not in ("busybox", "[", "[[")]


def runnable_rootfs(dest: Path) -> Path:
    """busybox-static with every applet linked in /bin, passwd/group with root and nobody, /tmp."""
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    for applet in applets():
        os.symlink("busybox", dest / "bin" / applet)
    (dest / "etc").mkdir()
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "app:x:1000:1000:app:/home/app:/bin/sh\n"
                                         "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n")
    for directory in ("tmp", "root", "home/app", "srv"):
        (dest / directory).mkdir(parents=True)
    os.chmod(dest / "tmp", 0o1777)
    if os.geteuid() == 0:
        os.chown(dest / "home" / "app", 1000, 1000)
    (dest / "srv" / "keep.txt").write_text("keep\n")
    (dest / "srv" / "delete-me.txt").write_text("bye\n")
    return dest


def static_binary(source: str, dest: Path) -> Path:
    """Compile a small static C program for use inside busybox containers."""
    import subprocess

    src = dest.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["cc", "-static", "-O1", "-o", str(dest), str(src)], check=True, capture_output=True)
    src.unlink()
    return dest
