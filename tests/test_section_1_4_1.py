"""Section 1.4.1, beyond what ``test_sections.py`` checks for every section (reference 100,
blank 0, each mutant and alternative graded on its own): the prompts against an independent
reading of their words, the shipped checkpoint and its hashes, the measured evidence (the lite
model does IOI on held-out templates, and does it with a circuit that patching, attention and
mean ablation find), recomputed here from the checkpoint with code of this test's own, the
recorded numbers and the notebook's statement of them, and the full profile's loading path on a
locally saved GPT-2 of the same format, fetched through a fake hub."""

from __future__ import annotations

import json
import re

import pytest
import torch

from autograder.authoring.assignment import find_assignment
from autograder.layout import CourseLayout
from conftest import REPO
from fake_hub import fetch_full_then_go_offline, save_tiny_gpt2, serve_hub
from sections import checkpoint_files, import_fresh

ASSIGNMENT = find_assignment(CourseLayout(REPO).source, "1.4.1")


def _ih(monkeypatch):
    return import_fresh(monkeypatch, ASSIGNMENT.source_dir, "ioi_helpers")


# ----------------------------------------------------------------------------- the prompts


def test_prompts_are_ioi_prompts_with_the_right_answers(monkeypatch):
    ih = _ih(monkeypatch)
    names = set(ih.NAMES)
    for held_out in (True, False):
        prompts = ih.make_prompts(40, seed=3, held_out=held_out)
        assert [p["order"] for p in prompts[:4]] == ["ABBA", "BABA", "ABBA", "BABA"]
        for p in prompts:
            words = p["text"].split()
            assert len(words) == 14 and words[-1] == "to" and words[2] == "and" and words[8] == ","
            first, second, subject = words[1], words[3], words[9]
            assert {first, second, subject} <= names and first != second
            assert subject in (first, second)
            io = second if subject == first else first  # the name that is not repeated
            assert p["io"] == io and p["s"] == subject
            assert p["order"] == ("ABBA" if first == io else "BABA")
            bad = p["corrupt"].split()
            assert bad[:9] == words[:9] and bad[10:] == words[10:] and bad[9] not in (first, second)
            assert ih.is_held_out(p["template"]) == held_out
    assert ih.make_prompts(10, seed=3) == ih.make_prompts(10, seed=3) != ih.make_prompts(10, seed=4)
    held = [t for t in ih.templates() if ih.is_held_out(t)]
    assert 0.15 < len(held) / len(ih.templates()) < 0.25


def test_dataset_tokens_and_positions(monkeypatch):
    ih = _ih(monkeypatch)
    model = ih.load_model("lite")
    d = ih.make_dataset(model, 10, seed=2)
    assert d["tokens"].shape == d["corrupt_tokens"].shape == (10, 15)
    vocab = model.tokenizer.get_vocab()
    for i, p in enumerate(d["prompts"]):
        strs = model.to_str_tokens(d["tokens"][i])
        assert strs[1:] == p["text"].lower().split() and all(w in vocab for w in strs[1:])
        assert strs[int(d["io_pos"][i])] == p["io"].lower() and strs[int(d["s1_pos"][i])] == p["s"].lower()
        assert strs[d["s2_pos"]] == p["s"].lower() and d["end_pos"] == 14
        assert model.to_string(d["io_tok"][i:i + 1]).strip() == p["io"].lower()
        assert (d["tokens"][i] != d["corrupt_tokens"][i]).nonzero().flatten().tolist() == [10]


# ----------------------------------------------------------------------------- the checkpoint


def test_lite_checkpoint_matches_its_hashes(monkeypatch):
    ih = _ih(monkeypatch)
    ih.verify_lite_checkpoint()
    files = checkpoint_files(ih.LITE_DIR, max_mib=2)
    assert files == {"SHA256SUMS", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "training_info.json"}
    info = json.loads((ih.LITE_DIR / "training_info.json").read_text())
    assert info["seed"] == 1410 and info["steps"] >= 1000


@pytest.fixture(scope="module")
def evidence(module_monkeypatch):
    """Measured here from the shipped checkpoint on prompts of another seed than the notebook's and the training
    script's, with hooks of this test's own."""
    ih = import_fresh(module_monkeypatch, ASSIGNMENT.source_dir, "ioi_helpers")

    torch.manual_seed(0)
    model = ih.load_model("lite")
    d = ih.make_dataset(model, 200, seed=17)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    rows = torch.arange(200)

    def ld(logits):
        return logits[rows, -1, d["io_tok"]] - logits[rows, -1, d["s_tok"]]

    with torch.no_grad():
        clean_logits, clean = model.run_with_cache(d["tokens"])
        corrupt_logits, corrupt = model.run_with_cache(d["corrupt_tokens"])
    c, k = ld(clean_logits), ld(corrupt_logits)
    out = {"clean": c, "corrupt": k, "L": L, "H": H}
    # each head's clean output restored in the corrupted run
    restore = torch.zeros(L, H)
    for l in range(L):
        for h in range(H):
            def put(z, hook, h=h):
                z = z.clone()
                z[:, :, h] = clean[hook.name][:, :, h]
                return z

            with torch.no_grad():
                restore[l, h] = (ld(model.run_with_hooks(d["corrupt_tokens"], fwd_hooks=[(f"blocks.{l}.attn.hook_z", put)])).mean()
                                 - k.mean()) / (c.mean() - k.mean())
    out["restore"] = restore
    # direct effect of each head: its output at END, through the final LayerNorm, on the IO - S unembedding
    direct = torch.zeros(L, H)
    u = (model.W_U[:, d["io_tok"]] - model.W_U[:, d["s_tok"]]).T
    for l in range(L):
        for h in range(H):
            w = clean[f"blocks.{l}.attn.hook_z"][:, -1, h] @ model.W_O[l, h]
            direct[l, h] = ((w / clean["ln_final.hook_scale"][:, -1]) * u).sum(-1).mean()
    out["direct"] = direct
    last = model.cfg.n_layers - 1
    out["to_io"], out["to_s"] = {}, {}
    for l in range(L):
        for h in range(H):
            w = (clean[f"blocks.{l}.attn.hook_z"][:, -1, h] @ model.W_O[l, h]) / clean["ln_final.hook_scale"][:, -1]
            out["to_io"][(l, h)] = float((w * model.W_U[:, d["io_tok"]].T).sum(-1).mean())
            out["to_s"][(l, h)] = float((w * model.W_U[:, d["s_tok"]].T).sum(-1).mean())
    assert last >= 1
    pats = torch.stack([clean[f"blocks.{l}.attn.hook_pattern"] for l in range(L)])  # (L, b, H, q, k)
    out["end_io"] = torch.stack([pats[l][rows, :, 14, d["io_pos"]].mean(0) for l in range(L)])  # (L, H)
    out["end_s1"] = torch.stack([pats[l][rows, :, 14, d["s1_pos"]].mean(0) for l in range(L)])
    out["end_s2"] = pats[:, :, :, 14, 10].mean(1)
    out["s2_s1"] = torch.stack([pats[l][rows, :, 10, d["s1_pos"]].mean(0) for l in range(L)])

    # mean ablation of every head outside a set (means over the corrupted prompts, per position)
    means = [corrupt[f"blocks.{l}.attn.hook_z"].mean(0) for l in range(L)]

    def kept(heads):
        def ablate(z, hook):
            l = int(hook.name.split(".")[1])
            z = z.clone()
            for h in range(H):
                if (l, h) not in heads:
                    z[:, :, h] = means[l][:, h]
            return z

        with torch.no_grad():
            got = ld(model.run_with_hooks(d["tokens"], fwd_hooks=[(f"blocks.{l}.attn.hook_z", ablate) for l in range(L)]))
        return float(got.mean() / c.mean())

    heads = [(l, h) for l in range(L) for h in range(H)]
    circuit = sorted(heads, key=lambda lh: -abs(float(restore[lh])))[:4]
    g = torch.Generator().manual_seed(5)
    out["circuit"] = circuit
    out["circuit_kept"] = kept(set(circuit))
    out["random_kept"] = [kept({heads[i] for i in torch.randperm(len(heads), generator=g)[:4].tolist()}) for _ in range(20)]
    return out


def test_lite_model_does_ioi_on_held_out_templates(evidence):
    clean, corrupt = evidence["clean"], evidence["corrupt"]
    assert clean.mean() >= 2.0, float(clean.mean())
    assert (clean > 0).float().mean() >= 0.95
    assert abs(float(corrupt.mean())) <= 0.25 * float(clean.mean())  # the corrupted prompts carry no answer


def test_the_head_that_writes_the_answer_suppresses_the_subject(evidence):
    """The lite model's way (the notebook states it): the head with the largest direct effect sits in a later layer,
    attends from END to S2, and writes minus the subject (its effect on logit(S) is large and negative, on logit(IO)
    small); patching it alone restores a large part of the answer."""
    direct = evidence["direct"]
    top = max(((l, h) for l in range(evidence["L"]) for h in range(evidence["H"])), key=lambda lh: float(direct[lh]))
    assert top[0] >= 1
    assert float(direct[top]) >= 0.3 * float(evidence["clean"].mean()), (top, direct)
    assert float(evidence["end_s2"][top]) >= 0.8, (top, evidence["end_s2"])
    to_io, to_s = evidence["to_io"][top], evidence["to_s"][top]
    assert to_s <= -0.8 * float(direct[top]) and abs(to_io) <= 0.2 * float(direct[top]), (top, to_io, to_s)
    assert float(evidence["restore"][top]) >= 0.3, (top, evidence["restore"])


def test_layer_0_reads_both_names_and_no_head_detects_duplicates(evidence):
    """Layer-0 heads at END attend to the two first names alike (no head there prefers the IO), and no head attends
    from S2 back to S1: this model needs no duplicate-token heads, since S2 always stands at position 10."""
    both = evidence["end_io"][0] + evidence["end_s1"][0]
    assert float(both.max()) >= 0.3, both
    assert float((evidence["end_io"][0] - evidence["end_s1"][0]).abs().max()) <= 0.1
    assert float(evidence["s2_s1"].max()) <= 0.2, evidence["s2_s1"]
    # the layer-0 heads matter through their output at S2, which the later heads read there
    assert float(evidence["restore"][0].sum()) >= 0.2, evidence["restore"]


def test_the_circuit_is_faithful_and_random_heads_are_not(evidence):
    kept, random = evidence["circuit_kept"], evidence["random_kept"]
    assert kept >= 0.6, (evidence["circuit"], kept)
    assert sum(random) / len(random) <= kept - 0.3, (kept, random)


def test_recorded_evidence_is_this_checkpoints(monkeypatch):
    """training_info.json's numbers are recomputed from the shipped checkpoint by the training script's own
    measure(), and the notebook's header table states them."""
    ih = _ih(monkeypatch)
    train_lite = import_fresh(monkeypatch, ASSIGNMENT.source_dir / "assets", "train_lite")

    recorded = json.loads((ih.LITE_DIR / "training_info.json").read_text())["evidence"]
    measured = train_lite.measure(ih.load_model("lite"))
    for key in ("clean_mean", "corrupt_mean", "clean_positive_fraction", "train_templates_mean"):
        assert measured["logit_diff"][key] == pytest.approx(recorded["logit_diff"][key], abs=2e-3), key
    for key in ("head_patching", "dla"):
        assert torch.allclose(torch.tensor(measured[key]), torch.tensor(recorded[key]), atol=2e-3), key
    assert measured["circuit"]["heads"] == recorded["circuit"]["heads"]
    for key in ("kept_fraction", "random_sets_kept_fraction_mean", "nothing_kept_fraction"):
        assert measured["circuit"][key] == pytest.approx(recorded["circuit"][key], abs=2e-3), key
    notebook = (ASSIGNMENT.source_dir / ASSIGNMENT.notebook).read_text()
    row = next(line for line in notebook.splitlines() if line.startswith("# | logit difference IO − S"))
    stated = [float(v) for v in re.findall(r"[-+]?\d+\.\d+", row)]
    ld = recorded["logit_diff"]
    assert stated == [round(ld["clean_mean"], 2), round(ld["corrupt_mean"], 2), round(ld["train_templates_mean"], 2)]
    row = next(line for line in notebook.splitlines() if line.startswith("# | answers correct"))
    assert [float(v) for v in re.findall(r"([\d.]+)%", row)] == [
        round(100 * ld["clean_positive_fraction"], 1), round(100 * ld["train_templates_positive_fraction"], 1)]
    row = next(line for line in notebook.splitlines() if line.startswith("# | mean ablation"))
    stated = [int(v) for v in re.findall(r"(-?\d+)%", row)]
    c = recorded["circuit"]
    assert stated == [round(100 * c[k]) for k in ("kept_fraction", "random_sets_kept_fraction_mean",
                                                  "random_sets_kept_fraction_max", "nothing_kept_fraction")]
    assert ", ".join(f"{l}.{h}" for l, h in c["heads"]) in row


# ----------------------------------------------------------------------------- the full profile


def test_full_profile_loads_gpt2_through_the_same_code_path(monkeypatch, tmp_path):
    """gpt2-small cannot be downloaded here: a tiny GPT-2 saved by transformers in the same format (with the lite
    tokenizer, whose vocabulary has every word of the prompts) is served by a fake hub, fetched and locked by
    ``autograder assets fetch``, and loaded by ``ioi_helpers.load_model("full")`` with every network call refused;
    the notebook's hooks run on it."""
    from transformers import GPT2LMHeadModel

    from autograder.assets.declared import HubAsset, select_declared

    ih = _ih(monkeypatch)
    (asset,) = select_declared(REPO / "source", "1.4.1")[0].for_profile("full")
    assert isinstance(asset, HubAsset) and (asset.name, asset.hf_id, asset.kind) == ("gpt2-small", "gpt2", "hf")

    repo = tmp_path / "hub" / "gpt2"
    save_tiny_gpt2(repo, ih.LITE_DIR / "tokenizer.json", n_layer=3)
    assert serve_hub(monkeypatch, {"gpt2": repo}) == []
    fetch_full_then_go_offline(monkeypatch, REPO / "source", REPO, "1.4.1", tmp_path / "cache")
    full = ih.load_model("full")
    assert (full.cfg.n_layers, full.cfg.d_model, full.cfg.normalization_type) == (3, 32, "LNPre")
    reference = GPT2LMHeadModel.from_pretrained(repo).eval()
    data = ih.make_dataset(full, 6, seed=1)
    with torch.no_grad():
        ours = full(data["tokens"]).log_softmax(-1)
        theirs = reference(data["tokens"]).logits.log_softmax(-1)
        assert torch.allclose(ours, theirs, atol=1e-4)
        # the notebook's hooks: hook_z per head, hook_q, the final LayerNorm scale
        _, c = full.run_with_cache(data["tokens"])
    assert c["blocks.2.attn.hook_z"].shape == (6, 15, 4, 8) and c["blocks.1.attn.hook_q"].shape == (6, 15, 4, 8)
    assert c["ln_final.hook_scale"].shape == (6, 15, 1)
    # without the asset the full profile names the fetch command, never downloading
    monkeypatch.setenv("AUTOGRADER_ASSETS", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="autograder assets fetch --profile full --assignment 1.4.1"):
        ih.load_model("full")
