"""paas.runtime.logs: reading the shim's `<RFC3339Nano> <stream> <F|P> <text>` logs, rotated as
container.log.N … container.log.1, container.log (oldest first); --since, --tail and follow."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path

import pytest

from paas.errors import UserError
from paas.runtime import logs
from paas.runtime.logs import LogLine, follow, log_files, parse_line, parse_since, read_lines

NOW = dt.datetime(2026, 1, 1, 10, 0, 0, tzinfo=dt.UTC)


def ts(second: int, nanos: int = 0) -> str:
    return (NOW + dt.timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def entry(second: int, text: str, stream: str = "stdout", partial: bool = False) -> str:
    return f"{ts(second)} {stream} {'P' if partial else 'F'} {text}\n"


def texts(lines) -> list[str]:
    return [line.text for line in lines]


# --------------------------------------------------------------------------------------------------
# parse_line
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("2026-01-01T10:00:00.123456789Z stdout F hello world\n",
     LogLine("2026-01-01T10:00:00.123456789Z", "stdout", "hello world", False)),
    ("2026-01-01T10:00:00.000000000Z stderr P part of a long line",
     LogLine("2026-01-01T10:00:00.000000000Z", "stderr", "part of a long line", True)),
    ("2026-01-01T10:00:00.000000000Z shim F exited with code 1; restart 1 in 100 ms (policy always)\n",
     LogLine("2026-01-01T10:00:00.000000000Z", "shim", "exited with code 1; restart 1 in 100 ms (policy always)")),
    ("T stdout F   indented: a\tb  \n", LogLine("T", "stdout", "  indented: a\tb  ")),   # whitespace kept
    ("T stdout F \n", LogLine("T", "stdout", "")),                                       # an empty line
    ("T stdout F\n", LogLine("T", "stdout", "")),
    ("T stdout F F P stderr\n", LogLine("T", "stdout", "F P stderr")),
])
def test_parse_line(raw, expected):
    assert parse_line(raw) == expected


@pytest.mark.parametrize("raw", ["", "\n", "garbage", "2026-01-01T10:00:00Z", "T stdin F text", "T stdout X text",
                                 "T STDOUT F text", " stdout F text", "T  stdout F text", "T stdout"])
def test_parse_line_rejects(raw):
    assert parse_line(raw) is None


def test_as_dict():
    assert parse_line("T stderr P x").as_dict() == {"time": "T", "stream": "stderr", "text": "x", "partial": True}


# --------------------------------------------------------------------------------------------------
# parse_since
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("30s", "2026-01-01T09:59:30.000000000Z"),
    ("10m", "2026-01-01T09:50:00.000000000Z"),
    ("2h", "2026-01-01T08:00:00.000000000Z"),
    ("1d", "2025-12-31T10:00:00.000000000Z"),
    (" 5m ", "2026-01-01T09:55:00.000000000Z"),
    ("0s", "2026-01-01T10:00:00.000000000Z"),
    ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00.000000000Z"),
    ("2026-01-01T12:30:00+02:00", "2026-01-01T10:30:00.000000000Z"),
    ("2025-12-31T23:00:00-05:00", "2026-01-01T04:00:00.000000000Z"),
    ("2026-01-01T10:00:00", "2026-01-01T10:00:00.000000000Z"),                 # naive: UTC
    ("2026-01-01T10:00:00.5Z", "2026-01-01T10:00:00.500000000Z"),
    ("2026-01-01T10:00:00.123456Z", "2026-01-01T10:00:00.123456000Z"),
    ("2026-01-01", "2026-01-01T00:00:00.000000000Z"),
])
def test_parse_since(text, expected):
    assert parse_since(text, now=NOW) == expected


def test_parse_since_is_comparable_with_shim_timestamps():
    since = parse_since("10m", now=NOW)
    assert len(since) == len(ts(0)) and since.endswith("Z")
    assert ts(-601) < since <= ts(-600) < ts(0)
    assert ts(-600, 1) > since


def test_parse_since_defaults_to_now():
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10, seconds=1)
    since = dt.datetime.fromisoformat(parse_since("10m").replace("Z", "+00:00"))
    assert before <= since <= dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)


@pytest.mark.parametrize("text", ["", "yesterday", "10x", "-5m", "5 m", "1w", "2026-13-01T00:00:00Z", "10:00"])
def test_parse_since_rejects(text):
    with pytest.raises(UserError, match="--since") as err:
        parse_since(text, now=NOW)
    assert repr(text) in err.value.message


# --------------------------------------------------------------------------------------------------
# read_lines
# --------------------------------------------------------------------------------------------------

@pytest.fixture
def rotated(tmp_path) -> Path:
    """container.log.2 (oldest), .1, container.log, with shim notes and a garbage line."""
    log = tmp_path / "container.log"
    (tmp_path / "container.log.2").write_text(entry(1, "one") + entry(2, "two", "stderr"))
    (tmp_path / "container.log.1").write_text(entry(3, "three") + "not a log line\n" + entry(4, "restart", "shim"))
    log.write_text(entry(5, "fi", partial=True) + entry(5, "ve") + entry(6, "six", "stderr"))
    (tmp_path / "container.log.tmp").write_text(entry(0, "not a rotation"))
    (tmp_path / "container.log.gz").write_text(entry(0, "not a rotation"))
    (tmp_path / "other.log.1").write_text(entry(0, "another container"))
    return log


def test_read_lines_across_rotations_oldest_first(rotated):
    lines = read_lines(rotated)
    assert texts(lines) == ["one", "two", "three", "fi", "ve", "six"]
    assert [line.stream for line in lines] == ["stdout", "stderr", "stdout", "stdout", "stdout", "stderr"]
    assert [line.partial for line in lines] == [False, False, False, True, False, False]
    assert texts(read_lines(rotated, include_shim=True)) == ["one", "two", "three", "restart", "fi", "ve", "six"]


def test_log_files_sort_numerically(tmp_path):
    log = tmp_path / "container.log"
    for n in (1, 2, 10, 3):
        (tmp_path / f"container.log.{n}").write_text(entry(100 - n, f"from .{n}"))
    assert [p.name for p in log_files(log)] == ["container.log.10", "container.log.3", "container.log.2",
                                                "container.log.1"]  # no current file yet
    log.write_text(entry(100, "current"))
    assert log_files(log)[-1] == log
    assert texts(read_lines(log)) == ["from .10", "from .3", "from .2", "from .1", "current"]


def test_read_lines_without_files(tmp_path):
    assert read_lines(tmp_path / "container.log") == []
    assert read_lines(tmp_path / "missing-dir" / "container.log") == []


def test_since_and_tail(rotated):
    assert texts(read_lines(rotated, since=ts(3))) == ["three", "fi", "ve", "six"]
    assert texts(read_lines(rotated, since=ts(4), include_shim=True)) == ["restart", "fi", "ve", "six"]
    assert texts(read_lines(rotated, since=ts(7))) == []
    assert texts(read_lines(rotated, tail=2)) == ["ve", "six"]
    assert texts(read_lines(rotated, tail=4)) == ["three", "fi", "ve", "six"]  # across files
    assert texts(read_lines(rotated, tail=100)) == texts(read_lines(rotated))
    assert texts(read_lines(rotated, tail=None)) == texts(read_lines(rotated, tail=-1)) == texts(read_lines(rotated))
    assert read_lines(rotated, tail=0) == []                                   # as `docker logs --tail 0`
    assert texts(read_lines(rotated, since=ts(1), tail=3, include_shim=True)) == ["fi", "ve", "six"]
    assert texts(read_lines(rotated, since=parse_since("1s", now=NOW + dt.timedelta(seconds=6)))) == ["fi", "ve",
                                                                                                      "six"]


def test_undecodable_bytes_do_not_break_reading(tmp_path):
    log = tmp_path / "container.log"
    log.write_bytes(entry(1, "before").encode() + f"{ts(2)} stdout F bad \xff\xfe bytes\n".encode("latin-1")
                    + entry(3, "after").encode())
    assert texts(read_lines(log)) == ["before", "bad \ufffd\ufffd bytes", "after"]


# --------------------------------------------------------------------------------------------------
# follow
# --------------------------------------------------------------------------------------------------

class Writer(threading.Thread):
    """Appends to the log from another thread, like the shim; `running` turns False when it is done."""

    def __init__(self, steps, delay: float = 0.03):
        super().__init__(daemon=True)
        self.steps, self.delay = steps, delay
        self.done = threading.Event()
        self.deadline = time.monotonic() + 20  # never hang the suite

    def run(self):
        try:
            for step in self.steps:
                time.sleep(self.delay)
                step()
        finally:
            self.done.set()

    def running(self) -> bool:
        return not self.done.is_set() and time.monotonic() < self.deadline


def append(path: Path, text: str):
    def step():
        with open(path, "a") as fh:
            fh.write(text)
    return step


def collect(gen, writer: Writer | None = None) -> list[LogLine]:
    if writer:
        writer.start()
    try:
        return list(gen)
    finally:
        gen.close()
        if writer:
            writer.join(timeout=20)
            assert time.monotonic() < writer.deadline, "follow did not stop"


def test_follow_yields_backlog_then_new_lines_until_stopped(tmp_path):
    log = tmp_path / "container.log"
    log.write_text(entry(1, "old one") + entry(2, "old two", "stderr") + entry(3, "note", "shim"))
    writer = Writer([
        append(log, entry(4, "new one")),
        append(log, f"{ts(5)} stdout F half"),          # a line written in two pieces
        append(log, " and half\n"),
        append(log, entry(6, "new two", "stderr") + entry(7, "note", "shim") + "garbage\n"),
    ])
    lines = collect(follow(log, writer.running, poll=0.01), writer)
    assert texts(lines) == ["old one", "old two", "new one", "half and half", "new two"]
    assert [line.stream for line in lines] == ["stdout", "stderr", "stdout", "stdout", "stderr"]


def test_follow_tail_since_and_shim_lines(tmp_path):
    log = tmp_path / "container.log"
    (tmp_path / "container.log.1").write_text(entry(1, "a") + entry(2, "b"))
    log.write_text(entry(3, "c") + entry(4, "note", "shim") + entry(5, "d"))
    writer = Writer([append(log, entry(6, "e") + entry(7, "note 2", "shim")), append(log, entry(8, "f"))])
    lines = collect(follow(log, writer.running, tail=2, include_shim=True, poll=0.01), writer)
    assert texts(lines) == ["note", "d", "e", "note 2", "f"]  # tail limits the backlog only
    stopped = lambda: False  # noqa: E731
    assert texts(collect(follow(log, stopped, since=ts(2)))) == ["b", "c", "d", "e", "f"]
    assert texts(collect(follow(log, stopped, tail=0))) == []
    assert texts(collect(follow(log, stopped, tail=3))) == ["d", "e", "f"]


def test_follow_continues_across_a_rotation(tmp_path):
    log = tmp_path / "container.log"
    log.write_text(entry(1, "one"))

    def rotate():
        # what the shim does: the last line goes to the old file, which is renamed; a new file takes over
        append(log, entry(3, "three"))()
        os.rename(log, tmp_path / "container.log.1")
        log.write_text(entry(4, "four"))

    writer = Writer([append(log, entry(2, "two")), rotate, append(log, entry(5, "five"))], delay=0.05)
    lines = collect(follow(log, writer.running, poll=0.01), writer)
    assert texts(lines) == ["one", "two", "three", "four", "five"]


def test_follow_reads_lines_written_just_before_the_stop(tmp_path):
    """The container writes its last words and exits between follow's read and its status check."""
    log = tmp_path / "container.log"
    log.write_text(entry(1, "first"))
    checks = []

    def still_running() -> bool:
        checks.append(1)
        if len(checks) == 2:
            append(log, entry(2, "last words"))()
            return False
        return len(checks) < 2

    assert texts(collect(follow(log, still_running, poll=0.01))) == ["first", "last words"]


def test_follow_waits_for_the_log_to_appear(tmp_path):
    log = tmp_path / "container.log"
    assert collect(follow(log, lambda: False, poll=0.01)) == []  # never started: nothing, no hang
    writer = Writer([append(log, entry(1, "hello")), append(log, entry(2, "bye"))])
    assert texts(collect(follow(log, writer.running, poll=0.01), writer)) == ["hello", "bye"]


def test_follow_closes_its_file(tmp_path):
    log = tmp_path / "container.log"
    log.write_text(entry(1, "one") + entry(2, "two"))
    fds = len(os.listdir("/proc/self/fd"))
    gen = follow(log, lambda: True, poll=0.01)
    assert next(gen).text == "one"
    gen.close()  # e.g. the client of `logs -f` went away
    assert len(os.listdir("/proc/self/fd")) == fds
    assert logs.read_lines(log, tail=1)[0].text == "two"
