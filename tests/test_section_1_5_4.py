"""Section 1.5.4, beyond what ``test_sections.py`` checks for every section
(reference 100, blank 0, mutants and alternatives)."""

from __future__ import annotations

from autograder.authoring.assignment import find_assignment
from autograder.build.samples import reference_submission
from sections import LAYOUT, explain, full_marks, in_section_batch, scores

ASSIGNMENT = find_assignment(LAYOUT.source, "1.5.4")


@in_section_batch(ASSIGNMENT, "attack: monkeypatched comparisons")
def monkeypatched_comparisons():
    attack = (
        "import torch, numpy\n"
        "torch.allclose = lambda *a, **k: True\n"
        "torch.equal = lambda *a, **k: True\n"
        "torch.testing.assert_close = lambda *a, **k: None\n"
        "numpy.testing.assert_allclose = lambda *a, **k: None\n"
        "def compute_dimensionality(W):\n"
        "    return torch.ones(W.shape[0], W.shape[2])\n"
    )
    nb = reference_submission(ASSIGNMENT)
    next(c for c in nb.cells if c["id"] == "feature_dimensionality").source = attack
    return nb


def test_monkeypatched_comparisons_gain_nothing(section_batches):
    """Comparison functions replaced in the student's process: the hidden tests compare in ours."""
    result = section_batches.result(ASSIGNMENT, "attack: monkeypatched comparisons")
    assert scores(result) == {**full_marks(ASSIGNMENT), "feature_dimensionality": 0}, explain(result)
