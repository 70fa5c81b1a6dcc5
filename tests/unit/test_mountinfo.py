"""paas.linux's one mountinfo parser: fields, unescaped paths, and which mounts lie below a directory."""

from __future__ import annotations

from paas import linux

TABLE = "\n".join([
    "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard",
    "40 22 0:5 / /tmp/x/rootfs/dev rw,nosuid shared:4 master:1 - tmpfs tmpfs rw,mode=755",
    "41 40 0:6 / /tmp/x/rootfs/dev/pts rw - devpts devpts rw",
    "42 22 0:7 / /tmp/x/rootfs/proc rw - proc proc rw",
    "43 22 0:8 / /tmp/x/rootfs2/proc rw - proc proc rw",
    r"44 22 254:0 /srv/a\040b /tmp/data\040root/binds/c\011d\134e ro,nosuid - ext4 /dev/my\040disk rw",
    "45 42 0:9 / /tmp/x/rootfs/proc rw - tmpfs tmpfs rw",  # stacked on 42
    "garbage line",
    "1 2 3",
])


def test_fields_and_unescaped_paths():
    mounts = linux.parse_mountinfo(TABLE)
    assert len(mounts) == 7  # the two lines that are not mountinfo are skipped
    bind = mounts[5]
    assert bind == linux.Mount(mount_point="/tmp/data root/binds/c\td\\e", root="/srv/a b", fstype="ext4",
                               source="/dev/my disk", options=("ro", "nosuid"), super_options=("rw",))
    assert mounts[1].options == ("rw", "nosuid") and mounts[1].super_options == ("rw", "mode=755")


def test_mounts_under_deepest_first_and_the_top_of_a_stack_first():
    table = linux.parse_mountinfo(TABLE)
    assert linux.mounts_under("/tmp/x/rootfs", table) == [
        "/tmp/x/rootfs/dev/pts", "/tmp/x/rootfs/dev", "/tmp/x/rootfs/proc", "/tmp/x/rootfs/proc"]
    assert linux.mounts_under("/tmp/data root/", table) == ["/tmp/data root/binds/c\td\\e"]
    assert linux.mounts_under("/tmp/data", table) == []  # a prefix of a name is not a parent
    assert linux.mounts_under("/elsewhere", table) == []


def test_this_process_sees_its_root_mounted():
    assert linux.is_mount_point("/")
    assert any(m.mount_point == "/proc" and m.fstype == "proc" for m in linux.mounts())
