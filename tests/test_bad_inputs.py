"""Bad input: every file gets a result a student can act on, never a stopped batch.

Files that cannot be read as a notebook score 0 with a message saying what to
do; readable notebooks with odd packaging (old format, thousands of cells,
outputs holding pickles or huge blobs) are graded on their code alone.
"""

from __future__ import annotations

import base64
import pickle
from dataclasses import dataclass
from typing import Callable

import nbformat
import pytest
from nbformat import v3

from autograder.build.samples import reference_submission
from autograder.grade.submission import MAX_SUBMISSION_BYTES


class _Exploit:  # unpickling this would run a shell command
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/autograder-pwned",))


def _with_output(nb, output) -> bytes:
    nb = nbformat.from_dict(nb)
    nb.cells[-1].outputs = [output]
    return nbformat.writes(nb).encode()


def nbformat3(reference) -> bytes:
    cells = [v3.new_code_cell(input=c.source) for c in reference.cells if c.cell_type == "code"]
    return v3.writes_json(v3.new_notebook(worksheets=[v3.new_worksheet(cells=cells)])).encode()


def many_cells(reference) -> bytes:
    nb = nbformat.from_dict(reference)
    nb.cells += [nbformat.v4.new_code_cell(f"x{i} = {i}") for i in range(10_000)]
    return nbformat.writes(nb).encode()


def huge(reference) -> bytes:
    blob = base64.b64encode(b"\0" * (MAX_SUBMISSION_BYTES * 2)).decode()
    return _with_output(reference, nbformat.v4.new_output("display_data", data={"image/png": blob}))


@dataclass(frozen=True)
class BadInput:
    name: str
    make: Callable[[nbformat.NotebookNode], bytes]
    score: float
    says: str
    suffix: str = ".ipynb"


BAD_INPUTS = [
    BadInput("malformed JSON", lambda ref: b'{"cells": [', 0, "not a valid Jupyter notebook"),
    BadInput("empty file", lambda ref: b"", 0, "not a valid Jupyter notebook"),
    BadInput("JSON that is not a notebook", lambda ref: b'[1, 2, 3]', 0, "not a valid Jupyter notebook"),
    BadInput("a zip archive named .ipynb", lambda ref: b"PK\x03\x04" + bytes(range(256)) * 4, 0, "not UTF-8"),
    BadInput("non-UTF-8 bytes", lambda ref: nbformat.writes(ref).encode().replace(b"def softmax", b"def softm\xe4x"), 0, "not UTF-8"),
    BadInput("a notebook over the size limit", huge, 0, "Clear the outputs"),
    BadInput("nbformat 3", nbformat3, 10, ""),
    BadInput("10,000 cells", many_cells, 10, ""),
    BadInput("an output holding a pickle", lambda ref: _with_output(ref, nbformat.v4.new_output(
        "display_data", data={"application/x-python-pickle": base64.b64encode(pickle.dumps(_Exploit())).decode()})), 10, ""),
    BadInput("an output holding a 20 MB base64 blob", lambda ref: _with_output(ref, nbformat.v4.new_output(
        "display_data", data={"image/png": base64.b64encode(b"\x89PNG" * (5 * 1024 * 1024)).decode()})), 10, ""),
    BadInput("a .py that is not percent format", lambda ref: b"\xef\xbb\xbfdef softmax(x):\n    return x\n", 0, "", ".py"),
]


@pytest.fixture(scope="module")
def reference_nb(toy_assignment):
    return reference_submission(toy_assignment)


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda b: b.name)
def test_bad_input_gets_an_actionable_result(bad, toy_grader, reference_nb, tmp_path):
    path = tmp_path / f"submission{bad.suffix}"
    path.write_bytes(bad.make(reference_nb))
    result = toy_grader.grade_path(path)
    assert result.score == bad.score, [t.output for e in result.exercises for t in e.tests if not t.passed][:3]
    feedback = result.output + "\n".join(t.output for e in result.exercises for t in e.tests)
    assert bad.says in feedback, feedback[:2000]
    results_json = result.to_gradescope()
    assert results_json["score"] == bad.score and results_json["tests"]
    # Nothing in the file was ever unpickled, and the next submission is graded as usual.
    import os

    assert not os.path.exists("/tmp/autograder-pwned")
    after = toy_grader.grade_path(_write(tmp_path / "next.ipynb", reference_nb))
    assert after.score == 10


def _write(path, nb):
    path.write_text(nbformat.writes(nb))
    return path


def test_there_are_at_least_ten_bad_inputs():
    assert len(BAD_INPUTS) >= 10
