"""Section 1.1, beyond what ``test_sections.py`` checks for every section."""

from __future__ import annotations

from autograder.authoring.assignment import find_assignment
from autograder.build.samples import reference_submission
from sections import LAYOUT, explain, full_marks, in_section_batch, scores

ASSIGNMENT = find_assignment(LAYOUT.source, "1.1")


@in_section_batch(ASSIGNMENT, "attack: monkeypatched comparisons")
def monkeypatched_comparisons():
    attack = (
        "import torch, numpy\n"
        "torch.allclose = lambda *a, **k: True\n"
        "torch.testing.assert_close = lambda *a, **k: None\n"
        "numpy.testing.assert_allclose = lambda *a, **k: None\n"
        "class LayerNorm(torch.nn.Module):\n"
        "    def __init__(self, cfg):\n"
        "        super().__init__()\n"
        "        self.w = torch.nn.Parameter(torch.ones(cfg.d_model))\n"
        "        self.b = torch.nn.Parameter(torch.zeros(cfg.d_model))\n"
        "    def forward(self, residual):\n"
        "        return residual\n"
    )
    nb = reference_submission(ASSIGNMENT)
    next(c for c in nb.cells if c["id"] == "layernorm").source = attack
    return nb


def test_monkeypatched_comparisons_gain_nothing(section_batches):
    """Comparison functions replaced in the student's process: the hidden tests compare in ours."""
    result = section_batches.result(ASSIGNMENT, "attack: monkeypatched comparisons")
    assert scores(result) == {**full_marks(ASSIGNMENT), "layernorm": 0}, explain(result)
