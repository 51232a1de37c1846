"""Adversarial submissions: none may earn undeserved points, hide what happened,
or disturb the grader or the next submission.

Each attack replaces the toy assignment's ``softmax`` answer cell (the other
answer cells stay correct). ``expect`` is the score every exercise deserves;
``says`` is a phrase the student's feedback must contain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import pytest
import torch

from autograder.build.samples import reference_submission, with_cell_source
from conftest import write_notebook

FULL = {"softmax": 4.0, "scale": 3.0, "double_scale": 3.0}
ALL_ZERO = {"softmax": 0.0, "scale": 0.0, "double_scale": 0.0}
SOFTMAX_ZERO = {**FULL, "softmax": 0.0}


@dataclass(frozen=True)
class Attack:
    name: str
    code: str
    says: str
    expect: dict = field(default_factory=lambda: SOFTMAX_ZERO)


def body(code: str) -> str:
    """A softmax whose body is ``code`` (run when a test calls it)."""
    indented = "\n".join("    " + line for line in code.strip().splitlines())
    return f"import os, sys, signal, torch\n\ndef softmax(x):\n{indented}\n"


# Walks the whole filesystem view except the read-only system trees and the
# python installation (public code: a full walk there only burns the time limit).
WALK = (
    "def walk_for(*suffixes):\n"
    "    hits = []\n"
    "    for top, dirs, files in os.walk('/'):\n"
    "        if top == '/':\n"
    "            dirs[:] = [d for d in dirs if d not in ('usr', 'proc', 'sys', 'dev', 'lib', 'lib64', 'bin', 'sbin')]\n"
    "        dirs[:] = [d for d in dirs if d not in ('site-packages', '.venv', 'lib-dynload')]\n"
    "        hits += [os.path.join(top, n) for n in files + dirs if n.endswith(suffixes)]\n"
    "    return hits\n"
)

ATTACKS = [
    # --- tampering with comparisons and the framework (in the student's own process)
    Attack("patch torch comparisons", body("torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\nreturn x"), "values differ"),
    Attack("patch assert_close", body("torch.testing.assert_close = lambda *a, **k: None\nreturn x * 0"), "values differ"),
    Attack("patch numpy", "import numpy\nnumpy.allclose = lambda *a, **k: True\nnumpy.testing.assert_allclose = lambda *a, **k: None\ndef softmax(x):\n    return x\n", "values differ"),
    Attack("patch autograder.checks", "import autograder.checks as c\nc.assert_close = lambda *a, **k: None\nc.CheckFailed = Exception\ndef softmax(x):\n    return x\n", "values differ"),
    Attack("patch pytest", "import sys, types\nsys.modules['pytest'] = types.SimpleNamespace(fail=lambda *a: None)\ndef softmax(x):\n    return x\n", "values differ"),
    Attack("patch the worker's encoder", "import autograder.grade.wire as w\nw.Encoder.encode = lambda self, v, depth=0: {'$tensor': 0}\ndef softmax(x):\n    return x\n", "could not be run", ALL_ZERO),
    Attack("replace builtins", "import builtins\nbuiltins.isinstance = lambda *a: True\ndef softmax(x):\n    return x\n", "your", ALL_ZERO),
    # --- objects that lie about themselves
    Attack("tensor subclass with __eq__", body("class T(torch.Tensor):\n    def __eq__(self, o): return True\nreturn torch.zeros_like(x).as_subclass(T)"), "values differ"),
    Attack("__torch_function__ override", body(
        "class T(torch.Tensor):\n    @classmethod\n    def __torch_function__(cls, f, t, a=(), k=None):\n        return True\n"
        "return torch.zeros_like(x).as_subclass(T)"), "values differ"),
    Attack("object with __eq__", body("class Yes:\n    def __eq__(self, o): return True\nreturn Yes()"), "expected a torch.Tensor"),
    Attack("NaN output", body("return torch.full_like(x, float('nan'))"), "values differ"),
    Attack("inf output", body("return torch.full_like(x, float('inf'))"), "values differ"),
    Attack("wrong shape", body("return x.softmax(-1)[:, :2]"), "wrong shape"),
    Attack("wrong dtype", body("return x.softmax(-1).round().long()"), "values differ"),
    Attack("meta device", body("return torch.empty(x.shape, device='meta')"), "meta"),
    Attack("10 GB allocation", body("return torch.empty(10 * 1024**3, dtype=torch.uint8)"), "allocate"),
    # --- exiting, killing, stopping
    Attack("sys.exit(0)", body("sys.exit(0)"), "sys.exit"),
    Attack("os._exit(0)", body("os._exit(0)"), "exited or crashed"),
    Attack("kill the parent", body("os.kill(os.getppid(), 9)\nreturn x"), "values differ"),
    Attack("SIGSTOP itself", body("os.kill(os.getpid(), signal.SIGSTOP)\nreturn x"), "time limit"),
    Attack("delete own files", body("import shutil\nshutil.rmtree(os.path.expanduser('~'), ignore_errors=True)\nreturn x * 0"), "values differ"),
    Attack("exit at definition time", "import os\nos._exit(3)\n", "could not be run", ALL_ZERO),
    # --- resource exhaustion
    Attack("infinite loop", body("while True:\n    pass"), "time limit"),
    Attack("fork bomb", body("while True:\n    try:\n        os.fork()\n    except OSError:\n        pass"), "time limit"),
    Attack("memory bomb", body("blocks = []\nwhile True:\n    blocks.append(bytearray(100 * 1024**2))"), "MemoryError"),
    Attack("fill the disk", body("with open('big.bin', 'wb') as f:\n    while True:\n        f.write(b'0' * 1024**2)"), "File too large"),
    Attack("fill /tmp", body("with open('/tmp/big.bin', 'wb') as f:\n    while True:\n        f.write(b'0' * 1024**2)"), "Error"),
    # Printing is never the error: past 8 MB it is dropped (with a note), so a flood ends as the loop it is.
    Attack("flood stdout", body("while True:\n    print('spam' * 1000)"), "time limit"),
    Attack("print 20 MB, then answer", body("for _ in range(5000):\n    print('x' * 4000)\nreturn x.softmax(-1)"),
           "printed more than 8 MB", FULL),
    # --- reaching outside
    Attack("read hidden tests and reference", body(
        WALK + "found = walk_for('reference.py', 'test_toy.py', 'manifest.json')\n"
        "assert not found, found\nraise RuntimeError('nothing to read')"), "nothing to read"),
    Attack("read the gradebook and other submissions", body(
        WALK + "found = walk_for('.sqlite', '.ipynb')\n"
        "assert not found, found\nraise RuntimeError('nothing found')"), "nothing found"),
    Attack("read environment secrets", body("assert 'AUTOGRADER_TEST_SECRET' not in os.environ\nraise RuntimeError('no secrets')"), "no secrets"),
    Attack("forge results.json", body(
        WALK + "import json\nfor d in walk_for('results'):\n"
        "    open(d + '/results.json', 'w').write(json.dumps({'score': 100}))\nreturn x * 0"), "values differ"),
    Attack("open a socket", body("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\nreturn x"), "OSError"),
    Attack("resolve DNS", body("import socket\nsocket.gethostbyname('pypi.org')\nreturn x"), "gaierror"),
    Attack("remount the system read-write", body(
        "import subprocess\n"
        "r = subprocess.run(['mount', '-o', 'remount,rw,bind', '/usr'], capture_output=True, text=True)\n"
        "assert r.returncode != 0, 'remounted /usr read-write'\n"
        "open('/usr/escape_probe', 'w')"), "Read-only file system"),
    Attack("mount over the home directory", body(
        "import subprocess\n"
        "r = subprocess.run(['mount', '-t', 'tmpfs', 'none', os.path.expanduser('~')], capture_output=True, text=True)\n"
        "assert r.returncode != 0, 'mounted a tmpfs'\n"
        "raise PermissionError('mount refused: ' + r.stderr.strip())"), "mount refused"),
    Attack("detect grading mode", body("if os.environ.get('AUTOGRADER_PROFILE'):\n    return torch.ones_like(x)\nreturn x.softmax(-1) * 0"), "values differ"),
]


SHORT_TEST_TIMEOUT_S = 3


def shorten_time_limit(attack: Attack, grader, monkeypatch) -> None:
    """An attack that must end in the time limit ends in a short one: the toy's tests take milliseconds, and
    the toy's 10 s limit, once per softmax test, would make such an attack cost half a minute of the suite."""
    if attack.says == "time limit":
        monkeypatch.setattr(grader, "limits", replace(grader.limits, test_timeout_s=SHORT_TEST_TIMEOUT_S))


@pytest.fixture(scope="module")
def reference_nb(toy_assignment):
    return reference_submission(toy_assignment)


@pytest.mark.slow
@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_attack(attack, toy_grader, reference_nb, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_TEST_SECRET", "hunter2")
    shorten_time_limit(attack, toy_grader, monkeypatch)
    allclose_before = torch.allclose
    nb = with_cell_source(reference_nb, "softmax", attack.code)
    result = toy_grader.grade_path(write_notebook(tmp_path / "attack.ipynb", nb))
    got = {e.name: e.score for e in result.exercises}
    feedback = "\n".join(t.output for e in result.exercises for t in e.tests) + result.output
    assert got == attack.expect, feedback[:3000]
    assert attack.says in feedback, feedback[:3000]
    # The grader is untouched, and the next submission is graded normally.
    assert torch.allclose is allclose_before
    after = toy_grader.grade_path(write_notebook(tmp_path / "next.ipynb", reference_nb))
    assert after.score == 10, [t.output for e in after.exercises for t in e.tests if not t.passed]


def test_there_are_at_least_30_attacks():
    assert len(ATTACKS) >= 30


SPINS = (
    "import torch\n"
    "\n"
    "def _spin(n):\n"
    "    while n > 0:\n"
    "        n += 1\n"
    "\n"
    "def softmax(x):\n"
    "    _spin(1)\n"
    "    return x.softmax(-1)\n"
    "print('before the tests')\n"
)


def test_a_timeout_says_which_line_of_the_students_code_was_running(toy_grader, reference_nb, tmp_path, monkeypatch):
    """Just before a program that ran out of time is stopped, it is asked for its stack: the feedback names the
    student's own lines, innermost first, and the stack does not end up in the output shown as theirs."""
    monkeypatch.setattr(toy_grader, "limits", replace(toy_grader.limits, test_timeout_s=SHORT_TEST_TIMEOUT_S))
    nb = with_cell_source(reference_nb, "softmax", SPINS)
    result = toy_grader.grade_path(write_notebook(tmp_path / "spins.ipynb", nb))
    outputs = [t.output for t in result.exercise("softmax").tests]
    assert [t.reason for t in result.exercise("softmax").tests] == ["timeout", "timeout"]
    for output in outputs:
        assert "is there an infinite loop?\nWhen it was stopped, it was running:\n" in output, output
        # stopped at the loop's test (line 4) or its body (line 5), whichever was running
        assert re.search(r"\n  line [45] of cell 'softmax', in _spin\n  line 8 of cell 'softmax', in softmax$", output), output
    assert result.score == 6 and "before the tests" in result.output
    assert "Current thread" not in result.output and "worker.py" not in result.output, result.output
