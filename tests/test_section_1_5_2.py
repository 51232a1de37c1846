"""Section 1.5.2, beyond what ``test_sections.py`` checks for every section
(reference 100, blank 0, each mutant and alternative graded on its own): the
shipped checkpoint, the full profile's loading path, and the measured evidence
that the lite model groks with Fourier features."""

from __future__ import annotations


from autograder.authoring.assignment import find_assignment
from autograder.layout import CourseLayout
from conftest import REPO
from sections import import_fresh

ASSIGNMENT = find_assignment(CourseLayout(REPO).source, "1.5.2")


# ----------------------------------------------------------------------------- the lite model and the full path


def _grok_helpers(monkeypatch):
    return import_fresh(monkeypatch, ASSIGNMENT.source_dir, "grok_helpers")


def test_lite_checkpoint_matches_its_hashes(monkeypatch):
    _grok_helpers(monkeypatch).verify_checkpoint()


def test_full_profile_loads_through_the_same_code_path(monkeypatch, tmp_path):
    """The full (p = 113) model is not shipped; its loader is the lite one, tried on a copy of the lite checkpoint."""
    import shutil

    import torch

    assert ASSIGNMENT.assets["full"]["model"] == "assets/full"
    gh = _grok_helpers(monkeypatch)
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(gh.LITE_DIR / name, tmp_path / name)
    (tmp_path / "checkpoints").mkdir()
    shutil.copyfile(gh.LITE_DIR / "checkpoints" / f"step_{gh.checkpoint_steps('lite')[-1]:05d}.safetensors",
                    tmp_path / "checkpoints" / "step_00007.safetensors")
    monkeypatch.setenv("GROKKING_FULL_DIR", str(tmp_path))
    lite, full = gh.load_model("lite"), gh.load_model("full")
    tokens, _ = gh.make_dataset(gh.task_info("full")["p"])
    with torch.no_grad():
        assert torch.equal(lite(tokens), full(tokens))
    assert gh.checkpoint_steps("full") == [7]


def test_lite_model_groks_and_uses_fourier_features(monkeypatch):
    """Measured here, independently of the notebook: the evidence the notebook states."""
    import math

    import torch

    gh = _grok_helpers(monkeypatch)
    task = gh.task_info("lite")
    p = task["p"]
    model = gh.load_model("lite")
    tokens, labels = gh.make_dataset(p)
    train_idx, test_idx = gh.train_test_split(p, task["train_frac"], task["data_seed"])
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    logits = logits[:, -1].double()
    assert (logits[test_idx].argmax(-1) == labels[test_idx]).float().mean() > 0.99
    # Fourier basis from torch.fft (cos/sin of frequency k in rows 2k-1, 2k).
    spec = torch.fft.rfft(torch.eye(p, dtype=torch.float64), dim=0)
    basis = torch.stack([spec[0].real] + [r for k in range(1, p // 2 + 1) for r in (spec[k].real, -spec[k].imag)])
    basis = basis / basis.norm(dim=1, keepdim=True)
    # Neurons: one frequency explains most of each firing neuron's variance.
    acts = cache["blocks.0.mlp.hook_post"][:, -1].double().reshape(p, p, -1)
    acts = acts - acts.mean((0, 1))
    power = torch.einsum("ia,jb,abn->ijn", basis, basis, acts).pow(2)
    blocks = torch.stack([power[[0, 2 * k - 1, 2 * k]][:, [0, 2 * k - 1, 2 * k]].sum((0, 1)) for k in range(1, p // 2 + 1)])
    total = power.sum((0, 1))
    alive = total > 1e-6 * total.max()
    frac, freq = (blocks / total.clamp_min(1e-12)).max(0)
    assert frac[alive].mean() > 0.7, float(frac[alive].mean())
    keys = gh.key_frequencies(freq + 1, torch.where(alive, frac, torch.zeros_like(frac)))
    assert 1 <= len(keys) <= 8, keys
    # Embedding: most of its norm lies in the key frequencies.
    emb = (basis @ model.W_E[:p].detach().double()).pow(2).sum(-1)
    share = sum(float(emb[2 * k - 1] + emb[2 * k]) for k in keys) / float(emb.sum())
    assert share > 0.6, share
    # Excluded loss: removing cos/sin(w(a+b)) of the key frequencies ruins the training loss.
    s = (tokens[:, 0] + tokens[:, 1]).double()
    removed = logits.clone()
    for k in keys:
        for f in (torch.cos, torch.sin):
            d = f(2 * math.pi * k * s / p)
            d = d / d.norm()
            removed -= d[:, None] * (d @ removed)[None]

    def loss(lg):
        return float(torch.nn.functional.cross_entropy(lg[train_idx], labels[train_idx]))

    assert loss(logits) < 0.01 and loss(removed) > 1.0, (loss(logits), loss(removed))
