"""nginx's per-app access logs (`<root>/nginx/logs/<app>.access.log`, log_format `paas` in nginx/nginx.conf.j2):
parsing one line (pure) and reading what was appended since the last read (LogTail).

A line looks like
    10.0.0.1 - - [06/Dec/2024:13:27:01 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8" rt=0.003 upstream=... urt=0.002
nginx escapes `"` and `\\` inside variables (as \\xHH), so the quoted request holds no quote.
"""

from __future__ import annotations

import calendar
import os
import re
from dataclasses import dataclass

_LINE_RE = re.compile(rb'\[(\d\d/\w\w\w/\d{4}:\d\d:\d\d):\d\d ([+-]\d{4})\] "[^"]*" (\d{3}) ')
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                       "Dec"), start=1)}
_minute_cache: dict[tuple[bytes, bytes], int] = {}


def _minute(stamp: bytes, zone: bytes) -> int:
    """'06/Dec/2024:13:27' and '+0100' -> minutes since the epoch (UTC)."""
    key = (stamp, zone)
    cached = _minute_cache.get(key)
    if cached is not None:
        return cached
    text = stamp.decode()
    day, month, rest = text.split("/")
    year, hour, minute = rest.split(":")
    seconds = calendar.timegm((int(year), _MONTHS[month], int(day), int(hour), int(minute), 0))
    offset = (int(zone[1:3]) * 60 + int(zone[3:5])) * (1 if zone[:1] == b"+" else -1)
    value = seconds // 60 - offset
    if len(_minute_cache) > 4096:
        _minute_cache.clear()
    _minute_cache[key] = value
    return value


def parse_line(line: bytes) -> tuple[int, int, float | None] | None:
    """One access-log line -> (minute since the epoch, HTTP status, response time in ms or None); None for a line
    that is not in our format."""
    match = _LINE_RE.search(line)
    if match is None:
        return None
    try:
        minute = _minute(match.group(1), match.group(2))
    except (ValueError, KeyError):
        return None
    ms = None
    at = line.rfind(b" rt=")  # the user agent before it is quoted and escaped; urt= has no space before rt=
    if at > match.end():
        end = line.find(b" ", at + 4)
        raw = line[at + 4:end if end != -1 else len(line)].strip()
        try:
            ms = float(raw) * 1000
        except ValueError:
            ms = None
    return minute, int(match.group(3)), ms


@dataclass
class Position:
    inode: int
    offset: int


class LogTail:
    """Reads the complete lines appended to one file since the last call.

    Keeps the file open between reads, so a log renamed away (rotation) is read to its end before the new file at
    the path is opened from its start; a file shorter than the offset (truncated) is read again from its start.
    An unfinished last line waits for the next read. `position` (inode, offset of the next unread byte) can be
    stored and given back after a restart: the same inode resumes there, another file starts at its beginning.
    A file first seen without a position is read from at most `first_read_max` bytes before its end.
    """

    def __init__(self, path: str | os.PathLike, position: Position | None = None, *,
                 max_read: int = 16 << 20, first_read_max: int = 8 << 20):
        self.path = os.fspath(path)
        self.fd: int | None = None
        self.inode: int | None = None
        self.offset = 0
        self.max_read = max_read
        self.first_read_max = first_read_max
        self._resume = position

    @property
    def position(self) -> Position | None:
        if self.inode is None:
            return self._resume
        return Position(self.inode, self.offset)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.fd = None

    def read_lines(self) -> list[bytes]:
        lines: list[bytes] = []
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if self.fd is not None and (st is None or st.st_ino != self.inode):
            lines += self._read_available()  # rotated: the rest of the old file first
            self.close()
            self.inode = None
            self._resume = None
            if st is None:
                return lines
        if st is None:
            return lines
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return lines
            st = os.fstat(self.fd)
            self.inode = st.st_ino
            resume = self._resume
            if resume is not None and resume.inode == st.st_ino and resume.offset <= st.st_size:
                self.offset = resume.offset
            elif resume is None and st.st_size > self.first_read_max:
                self.offset = self._next_line_start(st.st_size - self.first_read_max)
            else:
                self.offset = 0
            self._resume = None
        elif st.st_size < self.offset:
            self.offset = 0  # truncated (copytruncate rotation)
        return lines + self._read_available()

    def _next_line_start(self, at: int) -> int:
        chunk = os.pread(self.fd, 65536, at)
        newline = chunk.find(b"\n")
        return at + newline + 1 if newline != -1 else at

    def _read_available(self) -> list[bytes]:
        data = os.pread(self.fd, self.max_read, self.offset)
        end = data.rfind(b"\n")
        if end == -1:
            return []
        self.offset += end + 1
        return data[:end].split(b"\n")
