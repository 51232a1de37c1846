"""Section 1.2, beyond what ``test_sections.py`` checks for every section: the
lite checkpoint and its loader, real induction heads, and comparisons that
cannot be monkeypatched."""

from __future__ import annotations


import pytest

from autograder.authoring.assignment import find_assignment
from sections import LAYOUT, REFERENCE, explain, full_marks, import_fresh, register_monkeypatched_comparisons, scores

ASSIGNMENT = find_assignment(LAYOUT.source, "1.2")


MONKEYPATCHED = register_monkeypatched_comparisons(ASSIGNMENT, "get_log_probs", (
    "def get_log_probs(logits, tokens):\n"
    "    return torch.zeros(tokens.shape[0], tokens.shape[1] - 1)\n"
))


def test_monkeypatched_comparisons_gain_nothing(section_batches):
    """Comparison functions replaced in the student's process: the hidden tests compare in ours."""
    result = section_batches.result(ASSIGNMENT, MONKEYPATCHED)
    assert scores(result) == {**full_marks(ASSIGNMENT), "get_log_probs": 0}, explain(result)


# ----------------------------------------------------------------------------- the lite checkpoint and the loader

SECTION = ASSIGNMENT.source_dir


@pytest.fixture(scope="module")
def helpers(module_monkeypatch):
    return import_fresh(module_monkeypatch, SECTION, "mi_helpers")


def test_lite_checkpoint_hashes(helpers):
    helpers.verify_lite_checkpoint()


def test_loader_builds_the_lite_model_through_the_shared_path(helpers):
    import torch

    cfg = helpers.lite_config()
    assert cfg.positional_embedding_type == "shortformer" and cfg.attn_only and cfg.n_layers == 2
    flags = helpers.processing_flags(cfg)
    assert flags["fold_ln"] is False and flags["center_writing_weights"] is False and flags["fold_value_biases"] is True
    model = helpers.load_model("lite")
    raw = helpers.lite_state_dict()
    # Same weights as on disk, value biases folded into b_O as from_pretrained would.
    assert torch.equal(model.W_Q[0], raw["blocks.0.attn.W_Q"]) and torch.equal(model.W_E, raw["embed.W_E"])
    assert torch.count_nonzero(model.b_V) == 0
    tokens = model.to_tokens("Once upon a time, there was a small fox named Cora.")
    assert tokens[0, 0].item() == model.tokenizer.bos_token_id == 0
    assert model.to_string(tokens[0, 1:]) == "Once upon a time, there was a small fox named Cora."
    loss = model(tokens, return_type="loss")
    assert loss.item() < 3.0, "the lite model should predict its own training distribution"


def test_lite_model_has_induction_heads(helpers):
    """The phenomenon the section studies: measured, not assumed (see training_info.json)."""
    import json

    import torch

    model = helpers.load_model("lite")
    gen = torch.Generator().manual_seed(99)
    seq_len = 40
    half = torch.randint(0, model.cfg.d_vocab, (8, seq_len), generator=gen)
    tokens = torch.cat([torch.zeros(8, 1, dtype=torch.long), half, half], dim=1)
    logits, cache = model.run_with_cache(tokens)
    logp = logits.log_softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    assert -logp[:, seq_len + 1:].mean() < 0.5 * -logp[:, :seq_len].mean()
    stripe = cache["pattern", 1].diagonal(offset=1 - seq_len, dim1=-2, dim2=-1)[..., -seq_len:].mean((0, 2))
    assert stripe.max() > 0.3
    prev = cache["pattern", 0].diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, 2))
    assert prev.max() > 0.15 > 0.1 > prev.median()  # a previous-token head stands out in layer 0
    info = json.loads((SECTION / "assets" / "lite" / "training_info.json").read_text())["induction"]
    assert max(info["induction_score"][1]) > 0.3 and info["loss_second_half"] < 0.5 * info["loss_first_half"]


def test_permuted_heads_compute_the_same_function(helpers):
    import torch

    model = helpers.load_model("lite")
    other = helpers.load_model("lite")
    other.load_state_dict(helpers.permuted_heads_state_dict(model, 1, list(range(model.cfg.n_heads))[::-1]))
    tokens = torch.randint(0, model.cfg.d_vocab, (2, 30), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(tokens), other(tokens), atol=1e-5, rtol=1e-5)


def test_the_commands_output_is_its_own(section_batches):
    """Loading 1.2's models prints TransformerLens's "Moving model to device" in the grading workers; the command's
    standard output holds its summary only."""
    section_batches.result(ASSIGNMENT, REFERENCE)
    printed = section_batches.printed[ASSIGNMENT.id]
    assert "submission(s)" in printed and "Moving model" not in printed and "Loading weights" not in printed, printed
