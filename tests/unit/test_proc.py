"""The one subprocess runner: argv logged with secrets masked, failures typed with their output."""

from __future__ import annotations

import logging

import pytest

from paas import proc
from paas.errors import CommandFailed, UserError


def test_success_returns_output():
    result = proc.run(["sh", "-c", "echo out; echo err >&2"], desc="echo")
    assert result.stdout == b"out\n" and result.stderr == b"err\n"


def test_failure_raises_with_exit_code_and_tail():
    with pytest.raises(CommandFailed) as info:
        proc.run(["sh", "-c", "echo first >&2; echo 'the real reason' >&2; exit 3"], desc="failing step")
    err = info.value
    assert err.exit_code_of_command == 3
    assert "the real reason" in err.output_tail
    assert err.one_line() == "failing step failed with exit code 3: the real reason"


def test_check_false_returns_the_failure():
    assert proc.run(["false"], check=False).returncode == 1


def test_missing_command_is_a_user_error():
    with pytest.raises(UserError, match="command not found: no-such-tool-xyz"):
        proc.run(["no-such-tool-xyz"], desc="tool")


def test_timeout_is_reported():
    with pytest.raises(CommandFailed, match="timed out"):
        proc.run(["sleep", "5"], desc="sleeper", timeout=0.2)


def test_secrets_are_masked_in_logs_and_errors(caplog):
    caplog.set_level(logging.DEBUG, logger="paas.proc")
    with pytest.raises(CommandFailed) as info:
        proc.run(["sh", "-c", "echo token=hunter2 >&2; exit 1", "hunter2"], desc="login", secrets=["hunter2"])
    assert "hunter2" not in caplog.text and "****" in caplog.text
    assert "hunter2" not in info.value.output_tail and "token=****" in info.value.output_tail


def test_argv_must_not_go_through_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    proc.run(["echo", f"; touch {marker}"])
    assert not marker.exists()
