"""Section 1.5.4, beyond what ``test_sections.py`` checks for every section
(reference 100, blank 0, mutants and alternatives)."""

from __future__ import annotations

from autograder.authoring.assignment import find_assignment
from sections import LAYOUT, explain, full_marks, register_monkeypatched_comparisons, scores

ASSIGNMENT = find_assignment(LAYOUT.source, "1.5.4")


MONKEYPATCHED = register_monkeypatched_comparisons(ASSIGNMENT, "feature_dimensionality", (
    "def compute_dimensionality(W):\n"
    "    return torch.ones(W.shape[0], W.shape[2])\n"
))


def test_monkeypatched_comparisons_gain_nothing(section_batches):
    """Comparison functions replaced in the student's process: the hidden tests compare in ours."""
    result = section_batches.result(ASSIGNMENT, MONKEYPATCHED)
    assert scores(result) == {**full_marks(ASSIGNMENT), "feature_dimensionality": 0}, explain(result)
