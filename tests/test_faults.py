"""Faults: the grader is killed mid-batch (SIGKILL, no chance to clean up) and run again.

Every submission must then have exactly one correct result: none lost, none
duplicated, no half-written results.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from autograder.build.samples import blank_submission, reference_submission, with_cell_source
from autograder.gradebook import open_gradebook
from conftest import available_sandbox, write_notebook

KILL_AFTER = [1, 3, 5]  # results on disk when each SIGKILL lands


@pytest.fixture
def batch(toy_assignment, tmp_path):
    folder = tmp_path / "subs"
    folder.mkdir()
    reference = reference_submission(toy_assignment)
    expected = {}
    for i in range(4):
        write_notebook(folder / f"ref{i}.ipynb", reference)
        expected[f"ref{i}"] = 10
        write_notebook(folder / f"blank{i}.ipynb", blank_submission(toy_assignment))
        expected[f"blank{i}"] = 0
    write_notebook(folder / "slow.ipynb", with_cell_source(
        reference, "softmax", "import time\ndef softmax(x):\n    time.sleep(1)\n    return x.softmax(-1)\n"))
    expected["slow"] = 10
    return folder, expected


def command(toy_layout, folder, out):
    cmd = [sys.executable, "-m", "autograder", "--root", str(toy_layout.root), "grade", "0.1", str(folder),
           "--out", str(out), "--db", str(out / "book.sqlite")]
    return cmd + (["--no-sandbox"] if available_sandbox() == "none" else [])


def finished(out):
    return sorted(p.parent.name for p in out.glob("*/results.json"))


@pytest.mark.slow
def test_sigkill_mid_batch_then_rerun_loses_and_duplicates_nothing(toy_layout, batch, tmp_path):
    folder, expected = batch
    out = tmp_path / "out"
    cmd = command(toy_layout, folder, out)
    injected = 0
    for target in KILL_AFTER:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 300
        while len(finished(out)) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the grader and everything it started, mid-submission
            injected += 1
        proc.wait()
    assert injected >= 2, "the batch finished before the faults could be injected"
    assert subprocess.run(cmd, capture_output=True).returncode == 0

    results = {name: json.loads((out / name / "results.json").read_text()) for name in finished(out)}
    assert {name: r["score"] for name, r in results.items()} == expected
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"], "half-written files left"
    with open_gradebook(str(out / "book.sqlite")).connect() as db:
        rows = db.execute(text("select submission, score from submissions")).all()
    assert sorted(rows) == sorted(expected.items())
