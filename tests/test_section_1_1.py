"""Section 1.1, beyond what ``test_sections.py`` checks for every section."""

from __future__ import annotations

from autograder.authoring.assignment import find_assignment
from sections import LAYOUT, explain, full_marks, register_monkeypatched_comparisons, scores

ASSIGNMENT = find_assignment(LAYOUT.source, "1.1")


MONKEYPATCHED = register_monkeypatched_comparisons(ASSIGNMENT, "layernorm", (
    "class LayerNorm(torch.nn.Module):\n"
    "    def __init__(self, cfg):\n"
    "        super().__init__()\n"
    "        self.w = torch.nn.Parameter(torch.ones(cfg.d_model))\n"
    "        self.b = torch.nn.Parameter(torch.zeros(cfg.d_model))\n"
    "    def forward(self, residual):\n"
    "        return residual\n"
))


def test_monkeypatched_comparisons_gain_nothing(section_batches):
    """Comparison functions replaced in the student's process: the hidden tests compare in ours."""
    result = section_batches.result(ASSIGNMENT, MONKEYPATCHED)
    assert scores(result) == {**full_marks(ASSIGNMENT), "layernorm": 0}, explain(result)


def test_a_mask_that_also_hides_the_diagonal_is_told_which_position(section_batches):
    """The off-by-one mask (a required mutant, graded in every run): the feedback names a (query, key) pair, not an
    index into a flattened selection of the scores."""
    result = section_batches.result(ASSIGNMENT, "apply_causal_mask: masks the diagonal too (off by one)")
    said = explain(result)
    assert "the score of query position 0 for key position 0 changed" in said, said
