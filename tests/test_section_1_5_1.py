"""Section 1.5.1, beyond what ``test_sections.py`` checks for every section
(reference 100, blank 0, each mutant and alternative graded on its own): the
shipped checkpoint, the full profile's loading path, and the measured evidence
that the lite model really classifies bracket strings and represents both ways
of failing (measured here with our own code, independently of the notebook)."""

from __future__ import annotations

import shutil

import pytest

from autograder.authoring.assignment import find_assignment
from autograder.layout import CourseLayout
from conftest import REPO
from sections import import_fresh

ASSIGNMENT = find_assignment(CourseLayout(REPO).source, "1.5.1")


def _helpers(monkeypatch):
    return import_fresh(monkeypatch, ASSIGNMENT.source_dir, "brackets_helpers")


@pytest.fixture
def torch_no_grad():
    import torch

    mode = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    yield torch
    torch.set_grad_enabled(mode)


def test_lite_checkpoint_matches_its_hashes(monkeypatch):
    _helpers(monkeypatch).verify_checkpoint()


def test_lite_checkpoint_is_small(monkeypatch):
    folder = _helpers(monkeypatch).LITE_DIR
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) <= 3 * 1024 * 1024


def test_full_profile_loads_through_the_same_code_path(monkeypatch, tmp_path, torch_no_grad):
    """The full model is not shipped; its loader is the lite one, tried on a copy of the lite checkpoint."""
    torch = torch_no_grad
    assert ASSIGNMENT.assets["full"]["model"] == "assets/full"
    assert ASSIGNMENT.assets["full"]["env"] == "BRACKETS_FULL_DIR"
    bh = _helpers(monkeypatch)
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(bh.LITE_DIR / name, tmp_path / name)
    monkeypatch.setenv("BRACKETS_FULL_DIR", str(tmp_path))
    assert bh.model_dir("full") == tmp_path
    lite, full = bh.load_model("lite"), bh.load_model("full")
    assert bh.task_info("full") == bh.task_info("lite")
    data = bh.BracketsDataset.generate(64, seed=5, max_len=bh.task_info("full")["max_len"])
    assert torch.equal(lite(data.toks), full(data.toks))
    monkeypatch.setenv("BRACKETS_FULL_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="BRACKETS_FULL_DIR"):
        bh.load_model("full")


def test_padding_does_not_change_the_answer(monkeypatch, torch_no_grad):
    """Pads are masked: the same string padded to different widths gives the same logits at position 0."""
    torch = torch_no_grad
    bh = _helpers(monkeypatch)
    model = bh.load_model("lite")
    tok = bh.SimpleTokenizer()
    max_len = bh.task_info("lite")["max_len"]
    for s in ["()", "(()", "())(()", "(" * 3 + ")" * 3]:
        a = model(tok.tokenize(s))[0, 0]
        b = model(tok.tokenize(s, max_len=max_len))[0, 0]
        assert torch.allclose(a, b, atol=1e-5), s


def _elevation_failures(torch, toks, bh):
    height = ((toks == bh.OPEN).long() - (toks == bh.CLOSE).long()).cumsum(-1)
    return (height < 0).any(-1), height[:, -1] != 0


def test_lite_model_is_accurate_on_held_out_strings(monkeypatch, torch_no_grad):
    """Fresh strings (a seed used neither in training nor in the notebook), every kind of failure separately."""
    torch = torch_no_grad
    bh = _helpers(monkeypatch)
    model = bh.load_model("lite")
    data = bh.BracketsDataset.generate(3000, seed=424242, max_len=bh.task_info("lite")["max_len"])
    negative, total = _elevation_failures(torch, data.toks, bh)
    assert torch.equal(~(negative | total), data.isbal)
    right = (model(data.toks)[:, 0].argmax(-1) == bh.BALANCED) == data.isbal
    assert right.float().mean() > 0.99, float(right.float().mean())
    kinds = {"balanced": data.isbal, "negative only": negative & ~total, "total only": total & ~negative,
             "both": negative & total}
    for kind, mask in kinds.items():
        assert mask.sum() >= 100, kind
        assert right[mask].float().mean() > 0.97, (kind, float(right[mask].float().mean()))
    info = bh.training_info("lite")
    assert info["held_out_accuracy"]["overall"] >= 0.99


def test_lite_model_represents_both_failure_modes(monkeypatch, torch_no_grad):
    """Linear probes on the residual stream at position 0 before the last MLP read each failure mode, the
    final LayerNorm is almost linear at position 0, and the unbalanced direction carries the decision."""
    torch = torch_no_grad
    bh = _helpers(monkeypatch)
    model = bh.load_model("lite")
    n = 2000
    data = bh.BracketsDataset.generate(n, seed=777, max_len=bh.task_info("lite")["max_len"])
    negative, total = _elevation_failures(torch, data.toks, bh)
    logits, cache = model.run_with_cache(data.toks)
    last = model.cfg.n_layers - 1

    def design(x):
        return torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], 1)

    resid = cache[f"blocks.{last}.hook_resid_mid"][:, 0]
    half = n // 2
    for name, target in [("negative", negative), ("total", total)]:
        w = torch.linalg.pinv(design(resid[:half])) @ (target[:half].double() * 2 - 1)
        acc = float(((design(resid[half:]) @ w) > 0).eq(target[half:]).float().mean())
        assert acc > 0.9, (name, acc)
    # The final LayerNorm at position 0 is well approximated by an affine map.
    x, y = design(cache[f"blocks.{last}.hook_resid_post"][:, 0]), cache["ln_final.hook_normalized"][:, 0].double()
    fit = x @ (torch.linalg.pinv(x) @ y)
    r2 = float((1 - (y - fit).pow(2).sum(0) / (y - y.mean(0)).pow(2).sum(0)).mean())
    assert r2 > 0.97, r2
    # Along the pre-LayerNorm unbalanced direction, unbalanced strings sit far from balanced ones.
    direction = (torch.linalg.pinv(x) @ y)[:-1] @ (model.W_U[:, 0] - model.W_U[:, 1]).double()
    score = x[:, :-1] @ direction
    gap = (score[~data.isbal].mean() - score[data.isbal].mean()) / score[data.isbal].std()
    assert gap > 5, float(gap)
