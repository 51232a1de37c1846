"""Section 1.4.2 (SAE circuits and transcoders): what tests/test_sections.py does not cover for every section: the
shipped checkpoint (section 1.3.1's model and section 1.3.3's SAE, copied, and the transcoder trained here) and its
hashes, the transcoder saved in SAELens's own format, the measured evidence (the transcoder is a sparse, faithful
replacement for block 0's MLP, and the SAE features with the largest attribution really matter: ablating them moves
the answer far more than ablating random active features), the notebook's header stating it, and the full profile's
loading path on a locally saved GPT-2 and an SAE in the format of the gpt2-small-res-jb release, through a fake hub."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from autograder.authoring.assignment import find_assignment
from autograder.layout import CourseLayout
from conftest import REPO
from fake_hub import fetch_full_then_go_offline, save_tiny_gpt2, serve_hub
from sections import checkpoint_files, import_fresh

ASSIGNMENT = find_assignment(CourseLayout(REPO).source, "1.4.2")


def _ch(monkeypatch):
    return import_fresh(monkeypatch, ASSIGNMENT.source_dir, "circuit_helpers")


# ----------------------------------------------------------------------------- the checkpoint


def test_lite_checkpoint_matches_its_hashes(monkeypatch):
    ch = _ch(monkeypatch)
    ch.verify_lite_checkpoint()
    files = checkpoint_files(ch.LITE_DIR, max_mib=2)
    assert files == {"SHA256SUMS", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "sae/cfg.json", "sae/sae_weights.safetensors", "transcoder/cfg.json",
                     "transcoder/sae_weights.safetensors", "training_info.json"}
    info = json.loads((ch.LITE_DIR / "training_info.json").read_text())
    assert info["seed"] == 1420 and info["steps"] >= 5000 and info["hook_name"] == "blocks.0.ln2.hook_normalized"
    assert info["hook_name_out"] == "blocks.0.hook_mlp_out"
    assert info["train_seconds"] <= 300


def test_model_and_sae_are_copies_of_sections_1_3_1_and_1_3_3(monkeypatch):
    """Byte for byte (the training script checks their hashes when it copies them; if 1.3.1 or 1.3.3 is retrained,
    rerun assets/train_lite.py)."""
    ch = _ch(monkeypatch)
    for source, names, sub in [(REPO / "source/1.3.1_linear_probes/assets/lite", ["config.json", "model.safetensors", "tokenizer.json"], ""),
                               (REPO / "source/1.3.3_saes_with_saelens/assets/lite", ["cfg.json", "sae_weights.safetensors"], "sae/")]:
        for name in names:
            assert (ch.LITE_DIR / f"{sub}{name}").read_bytes() == (source / name).read_bytes(), name


def test_transcoder_is_saved_in_saelens_format(monkeypatch):
    from sae_lens import SAE
    from sae_lens.saes.transcoder import Transcoder

    ch = _ch(monkeypatch)
    cfg = json.loads((ch.LITE_DIR / "transcoder" / "cfg.json").read_text())
    assert cfg["architecture"] == "transcoder" and cfg["apply_b_dec_to_input"] is False
    assert cfg["metadata"]["hook_name"] == "blocks.0.ln2.hook_normalized"
    assert cfg["metadata"]["hook_name_out"] == "blocks.0.hook_mlp_out"
    tc = SAE.load_from_disk(str(ch.LITE_DIR / "transcoder"))
    assert isinstance(tc, Transcoder) and (tc.cfg.d_in, tc.cfg.d_sae, tc.cfg.d_out) == (64, 512, 64)
    assert torch.allclose(tc.W_dec.norm(dim=-1), torch.ones(512), atol=1e-5)
    x = torch.randn(10, 64) * 8
    with torch.no_grad():
        f = torch.clamp(x @ tc.W_enc + tc.b_enc, min=0)
        assert torch.allclose(tc.encode(x), f, atol=1e-5)
        assert torch.allclose(tc(x), f @ tc.W_dec + tc.b_dec, atol=1e-5)
    model, loaded, sae = ch.load_lite_circuit()
    assert torch.equal(loaded.W_enc, tc.W_enc) and not loaded.W_enc.requires_grad
    assert ch.transcoder_hooks(loaded) == ("blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out")
    assert sae.cfg.metadata.hook_name == "blocks.2.hook_resid_pre"


@pytest.fixture(scope="module")
def evidence(module_monkeypatch):
    """Measured here from the shipped files with code written for this test (the transcoder by its formulas, the
    splice and the ablations by hooks of its own, attribution through the gradient at the residual stream), on other
    statements (seed 5) than the notebook's."""
    ch = import_fresh(module_monkeypatch, ASSIGNMENT.source_dir, "circuit_helpers")

    torch.manual_seed(0)
    model, tc, sae = ch.load_lite_circuit()
    d = ch.make_dataset(model, seed=5)
    m, tokens, last = d["mask"], d["tokens"], d["last_pos"]
    hin, hout = "blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out"
    W_enc, b_enc, W_dec, b_dec = (t.detach().double() for t in (tc.W_enc, tc.b_enc, tc.W_dec, tc.b_dec))
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=[hin, hout])
        x, y = cache[hin].double(), cache[hout].double()
        f = torch.relu(x @ W_enc + b_enc)
        y_hat = f @ W_dec + b_dec
        ys, rs = y[m], y_hat[m]
        mean_out = ys.mean(0).float()
        store = {}

        def keep_in(a, hook):
            store["x"] = a

        def replace(a, hook):
            return (torch.relu(store["x"].double() @ W_enc + b_enc) @ W_dec + b_dec).float()

        runs = {
            "clean": logits,
            "transcoder": model.run_with_hooks(tokens, fwd_hooks=[(hin, keep_in), (hout, replace)]),
            "zero": model.run_with_hooks(tokens, fwd_hooks=[(hout, lambda a, hook: a * 0)]),
            "mean": model.run_with_hooks(tokens, fwd_hooks=[(hout, lambda a, hook: a * 0 + mean_out)]),
        }
    rows = torch.arange(len(d["labels"]))
    true_id, false_id = ch.label_token_ids(model)
    out = {"l0": float((f[m] > 0).double().sum(-1).mean()),
           "fve": float(1 - ((ys - rs) ** 2).sum() / ((ys - ys.mean(0)) ** 2).sum()),
           "dead": int(((f[m] > 0).double().mean(0) == 0).sum())}
    for name, lg in runs.items():
        lp = lg[rows, last].double().log_softmax(-1)
        out[name] = (float(-lp[rows, d["answers"]].mean()),
                     float(((lp[:, true_id] > lp[:, false_id]).long() == d["labels"]).double().mean()))

    # attribution: gradient of the summed logit difference at the residual stream (blocks.2.hook_resid_pre),
    # projected on each feature's decoder row, times the feature's activation
    hook = sae.cfg.metadata.hook_name
    with torch.no_grad():
        _, c2 = model.run_with_cache(tokens, names_filter=hook)
    resid = c2[hook].clone().requires_grad_(True)
    with torch.enable_grad():
        lg = model.run_with_hooks(tokens, fwd_hooks=[(hook, lambda a, hook: resid)])
        (lg[rows, last, true_id] - lg[rows, last, false_id]).sum().backward()
    with torch.no_grad():
        feats = sae.encode(c2[hook]) * m[..., None]
        attr = feats * (resid.grad @ sae.W_dec.T)
    k = 5
    n, seq, d_sae = attr.shape
    top = attr.abs().reshape(n, -1).topk(k, dim=1).indices
    gen = torch.Generator().manual_seed(1)
    rand = []
    for i in range(n):
        active = torch.nonzero(feats[i].reshape(-1) > 0).flatten()
        rand.append(active[torch.randperm(len(active), generator=gen)[:k]])
    rand = torch.stack(rand)

    def ablated(chosen):
        remove = torch.zeros(n, seq * d_sae)
        remove.scatter_(1, chosen, 1.0)
        remove = remove.reshape(n, seq, d_sae)
        with torch.no_grad():
            lg = model.run_with_hooks(tokens, fwd_hooks=[(hook, lambda a, hook: a - (feats * remove) @ sae.W_dec)])
        return lg[rows, last, true_id] - lg[rows, last, false_id]

    clean_ld = logits[rows, last, true_id] - logits[rows, last, false_id]
    out["ablation"] = {"clean": float(clean_ld.abs().mean()),
                       "top": float((ablated(top) - clean_ld).abs().mean()),
                       "random": float((ablated(rand) - clean_ld).abs().mean()),
                       "top_beats_random": float(((ablated(top) - clean_ld).abs() > (ablated(rand) - clean_ld).abs()).double().mean())}
    return out


def test_transcoder_is_sparse_and_predicts_the_mlp(evidence):
    assert evidence["l0"] <= 40, evidence["l0"]  # of 512 features
    assert evidence["fve"] >= 0.95, evidence["fve"]
    assert evidence["dead"] <= 0.2 * 512, evidence["dead"]


def test_transcoder_spliced_in_recovers_the_loss(evidence):
    clean, tc, zero, mean = (evidence[k][0] for k in ("clean", "transcoder", "zero", "mean"))
    assert zero >= 1.0 and mean >= 1.0 and clean < 0.1, evidence  # block 0's MLP matters
    assert (zero - tc) / (zero - clean) >= 0.9, evidence
    assert (mean - tc) / (mean - clean) >= 0.85, evidence
    assert evidence["transcoder"][1] >= 0.95 and evidence["mean"][1] <= 0.8, evidence


def test_top_attributed_features_matter(evidence):
    """Ablating the 5 SAE nodes with the largest |activation x gradient| per prompt moves the logit difference at
    least five times as much as ablating 5 random active nodes, and more in at least 80% of the prompts."""
    a = evidence["ablation"]
    assert a["top"] >= 5 * a["random"] and a["top"] >= 0.2 * a["clean"], a
    assert a["top_beats_random"] >= 0.8, a


def test_recorded_evidence_is_this_checkpoints(monkeypatch):
    """training_info.json's numbers are recomputed from the shipped files by the training script's own measure(), and
    the notebook's header states them."""
    ch = _ch(monkeypatch)
    train_lite = import_fresh(monkeypatch, ASSIGNMENT.source_dir / "assets", "train_lite")

    recorded = json.loads((ch.LITE_DIR / "training_info.json").read_text())["evidence"]
    model, tc, sae = ch.load_lite_circuit()
    measured = train_lite.measure(model, sae, tc)
    for key in ("l0", "fraction_variance_explained", "loss_recovered_vs_zero", "loss_recovered_vs_mean", "dead_features"):
        assert measured[key] == pytest.approx(recorded[key], abs=2e-3), key
    for key in ("answer_loss", "answer_accuracy", "ablation"):
        for k in recorded[key]:
            assert measured[key][k] == pytest.approx(recorded[key][k], abs=2e-3), (key, k)
    notebook = (ASSIGNMENT.source_dir / ASSIGNMENT.notebook).read_text()

    def row(prefix):
        return next(line for line in notebook.splitlines() if line.startswith(prefix))

    assert re.findall(r"[\d.]+", row("# | L0: features firing"))[-1] == f"{recorded['l0']:.1f}"
    assert re.findall(r"[\d.]+", row("# | fraction of the MLP output"))[-1] == f"{recorded['fraction_variance_explained']:.3f}"
    loss = recorded["answer_loss"]
    assert re.findall(r"\d+\.\d+", row("# | answer loss: clean")) == [
        f"{loss[k]:.3f}" for k in ("clean", "transcoder", "zero_ablation", "mean_ablation")]
    assert re.findall(r"\d+\.\d+", row("# | loss recovered against")) == [
        f"{recorded[k]:.3f}" for k in ("loss_recovered_vs_zero", "loss_recovered_vs_mean")]
    acc = recorded["answer_accuracy"]
    assert re.findall(r"[\d.]+(?=%)", row("# | answers correct")) == [
        f"{100 * acc[k]:.1f}" for k in ("clean", "transcoder", "zero_ablation", "mean_ablation")]
    assert re.findall(r"\d+", row("# | dead features").split("|")[2])[0] == str(recorded["dead_features"])
    abl = recorded["ablation"]
    assert re.findall(r"[\d.]+", row("# | mean \\|logit difference\\| clean"))[-1] == f"{abl['clean_abs_logit_diff']:.2f}"
    assert re.findall(r"[\d.]+", row("# | mean \\|change\\| when the 5 nodes"))[-1] == f"{abl['top_change']:.2f}"
    assert re.findall(r"[\d.]+", row("# | mean \\|change\\| when 5 random"))[-1] == f"{abl['random_change']:.2f}"
    assert re.findall(r"[\d.]+(?=%)", row("# | prompts where the top 5"))[-1] == f"{100 * abl['top_beats_random']:.0f}"


# ----------------------------------------------------------------------------- the full profile


def _pre_6_sae_cfg(d_in: int, d_sae: int, hook: str) -> dict:
    """A cfg.json in the format of jbloom/GPT2-Small-SAEs-Reformatted (SAELens before 6.0)."""
    return {
        "model_name": "gpt2-small", "hook_point": hook, "hook_point_layer": 6, "hook_point_head_index": None,
        "dataset_path": "Skylion007/openwebtext", "is_dataset_tokenized": False, "context_size": 128,
        "use_cached_activations": False, "d_in": d_in, "d_sae": d_sae, "b_dec_init_method": "geometric_median",
        "expansion_factor": d_sae // d_in, "activation_fn": "relu", "lp_norm": 1.0, "l1_coefficient": 8e-05,
        "lr": 0.0004, "dtype": "torch.float32", "device": "cuda", "seed": 42, "prepend_bos": True,
        "apply_b_dec_to_input": True, "normalize_sae_decoder": True,
    }


def test_full_profile_loads_gpt2_and_the_res_jb_sae_through_the_same_code_path(monkeypatch, tmp_path):
    """A tiny GPT-2 (lite tokenizer) and a tiny SAE in the gpt2-small-res-jb release's format, served by a fake hub,
    fetched by ``autograder assets fetch`` and loaded offline by ``load_model("full")`` / ``load_sae("full")``; then
    the reference's attribution and ablation run on them, and attribution agrees with a finite difference."""
    from safetensors.torch import save_file

    from autograder.assets.declared import HubAsset, select_declared

    ch = _ch(monkeypatch)
    declared = select_declared(REPO / "source", "1.4.2")
    model_asset, sae_asset = declared[0].for_profile("full")
    assert isinstance(model_asset, HubAsset) and (model_asset.name, model_asset.hf_id) == ("gpt2-small", "gpt2")
    assert (sae_asset.name, sae_asset.hf_id, sae_asset.kind) == (
        "gpt2-small-res-jb", "jbloom/GPT2-Small-SAEs-Reformatted", "sae_lens")
    import yaml
    from sae_lens import __file__ as sae_lens_init

    releases = yaml.safe_load((Path(sae_lens_init).parent / "pretrained_saes.yaml").read_text())
    release = releases["gpt2-small-res-jb"]
    assert release["repo_id"] == sae_asset.hf_id and release["model"] == "gpt2-small"
    assert any(s["id"] == ch.FULL_SAE_ID for s in release["saes"])
    assert not any("transcoder" in name and r.get("model") == "gpt2-small" for name, r in releases.items())

    hub = {"gpt2": tmp_path / "hub" / "gpt2", sae_asset.hf_id: tmp_path / "hub" / "saes"}
    save_tiny_gpt2(hub["gpt2"], ch.LITE_DIR / "tokenizer.json", n_layer=7)
    sae_dir = hub[sae_asset.hf_id] / ch.FULL_SAE_ID
    sae_dir.mkdir(parents=True)
    (sae_dir / "cfg.json").write_text(json.dumps(_pre_6_sae_cfg(32, 128, ch.FULL_SAE_ID)))
    g = torch.Generator().manual_seed(0)
    weights = {"W_enc": torch.randn(32, 128, generator=g) * 0.2, "b_enc": torch.randn(128, generator=g) * 0.1,
               "W_dec": torch.randn(128, 32, generator=g) * 0.2, "b_dec": torch.randn(32, generator=g) * 0.1}
    save_file(weights, str(sae_dir / "sae_weights.safetensors"))
    save_file({"sparsity": torch.full((128,), -3.0)}, str(sae_dir / "sparsity.safetensors"))
    fetched = serve_hub(monkeypatch, hub)
    fetch_full_then_go_offline(monkeypatch, REPO / "source", REPO, "1.4.2", tmp_path / "cache")
    assert sorted(repo for repo, _ in fetched) == sorted(hub)
    model, sae = ch.load_model("full"), ch.load_sae("full")
    assert (model.cfg.n_layers, model.cfg.d_model) == (7, 32) and sae.cfg.metadata.hook_name == ch.FULL_SAE_ID
    assert torch.equal(sae.W_enc, weights["W_enc"])

    # the reference solution's attribution and ablation on the full path
    source = (ASSIGNMENT.source_dir / ASSIGNMENT.notebook).read_text()
    namespace = {"torch": torch, "ch": ch, "logit_diff": ch.logit_diff, "TRUE_ID": ch.label_token_ids(model)[0]}
    for name in ("sae_attribution", "ablate_sae_features"):
        start = source.index(f"def {name}(")
        end = source.index("\n\n\n", start)
        exec(compile("from torch import Tensor\nfrom jaxtyping import Float, Int\nfrom sae_lens import SAE\n"
                     "from transformer_lens import HookedTransformer\n" + source[start:end], name, "exec"), namespace)
    d = ch.make_dataset(model, families=("city",))
    tokens, last = d["tokens"][:4], d["last_pos"][:4]
    attr, grad = namespace["sae_attribution"](model, sae, tokens, last)
    assert attr.shape == (*tokens.shape, 128) and torch.isfinite(attr).all()
    flat = int(attr[0].abs().flatten().argmax())
    node = torch.tensor([[flat // 128, flat % 128]])
    with torch.no_grad():
        clean = ch.logit_diff(model, model(tokens), last)
    after = namespace["ablate_sae_features"](model, sae, tokens, last, node)
    # Attribution is a first-order estimate of a whole ablation; on random weights it agrees in sign and in
    # size to within a small factor (measured: -0.23 ablated against -0.60 estimated), not to the digit.
    effect, estimate = float((after - clean)[0]), -float(attr[0].flatten()[flat])
    assert effect * estimate > 0 and 0.25 < effect / estimate < 4, (effect, estimate)
    # without the assets the full profile names the fetch command, never downloading
    monkeypatch.setenv("AUTOGRADER_ASSETS", str(tmp_path / "empty"))
    for load in (ch.load_model, ch.load_sae):
        with pytest.raises(FileNotFoundError, match="autograder assets fetch --profile full --assignment 1.4.2"):
            load("full")
