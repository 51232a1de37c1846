"""The test helper that runs tools side by side leaves nothing running behind a failed test."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from conftest import run_at_once


def _alive(pid: int, grace_s: float = 5.0) -> bool:
    """Still running after ``grace_s``: a killed process's exit takes the kernel a moment."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.05)
    return True


def _sleeper_recording_its_child(pid_file) -> list[str]:
    """A command that forks a grandchild (as `autograder grade` starts workers) and records its PID."""
    code = ("import subprocess, time; p = subprocess.Popen(['sleep', '60']);"
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    return [sys.executable, "-c", code]


def _recorded_pid(pid_file) -> int:
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the sleeper never started its child"
        time.sleep(0.05)
    return int(pid_file.read_text())


def test_a_timeout_bounds_all_commands_and_kills_them_with_their_children(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    began = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_at_once([_sleeper_recording_its_child(pid_file), ["sleep", "60"]], timeout=2)
    assert time.monotonic() - began < 10, "the timeout is for all commands together, not each"
    assert not _alive(_recorded_pid(pid_file)), "the command's own child outlived the timeout"


def test_a_failing_command_stops_the_others(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    with pytest.raises(AssertionError, match="false failed"):
        run_at_once([["sh", "-c", f"while [ ! -s {pid_file} ]; do sleep 0.05; done; false"],
                     _sleeper_recording_its_child(pid_file)], timeout=30)
    assert not _alive(_recorded_pid(pid_file)), "a command outlived the failure of another"
