"""Section 1.3.3 (Sparse autoencoders with SAELens): what tests/test_sections.py does not cover for every section
(reference 100, blank 0, each mutant and alternative graded on its own): the shipped checkpoint (section 1.3.1's
model, copied, and the SAE) and its hashes, the SAE saved in SAELens's own format, the measured evidence (the SAE is
sparse, reconstructs the residual stream, costs the model little when spliced in, and has features specific to "not",
to city names and to one country), and the full profile's loading path on a locally saved GPT-2 and an SAE in the
format of the gpt2-small-res-jb release, fetched through a fake hub."""

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

ASSIGNMENT = find_assignment(CourseLayout(REPO).source, "1.3.3")


def _sh(monkeypatch):
    return import_fresh(monkeypatch, ASSIGNMENT.source_dir, "sae_helpers")


# ----------------------------------------------------------------------------- the checkpoint


def test_lite_checkpoint_matches_its_hashes(monkeypatch):
    sh = _sh(monkeypatch)
    sh.verify_lite_checkpoint()
    files = checkpoint_files(sh.LITE_DIR, max_mib=2)
    assert files == {"SHA256SUMS", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "cfg.json", "sae_weights.safetensors", "training_info.json"}
    info = json.loads((sh.LITE_DIR / "training_info.json").read_text())
    assert info["seed"] == 1333 and info["steps"] >= 5000 and info["hook_name"] == "blocks.2.hook_resid_pre"
    assert info["model"]["copied_from"] == "source/1.3.1_linear_probes/assets/lite"


def test_sae_is_saved_in_saelens_format_and_loads_with_load_from_disk(monkeypatch):
    """cfg.json as SAELens 6 writes it; SAE.load_from_disk gives a StandardSAE whose encode/decode are the ReLU SAE
    formulas (written out here), with unit-norm decoder rows (the norms folded into the encoder)."""
    from sae_lens import SAE, StandardSAE

    sh = _sh(monkeypatch)
    cfg = json.loads((sh.LITE_DIR / "cfg.json").read_text())
    assert cfg["architecture"] == "standard" and cfg["apply_b_dec_to_input"] is True
    assert cfg["normalize_activations"] == "none" and cfg["metadata"]["hook_name"] == "blocks.2.hook_resid_pre"
    assert cfg["metadata"]["sae_lens_version"].startswith("6.")
    sae = SAE.load_from_disk(str(sh.LITE_DIR))
    assert isinstance(sae, StandardSAE) and (sae.cfg.d_in, sae.cfg.d_sae) == (64, cfg["d_sae"])
    assert torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(sae.cfg.d_sae), atol=1e-5)
    x = torch.randn(20, 64) * 10
    with torch.no_grad():
        f = torch.clamp((x - sae.b_dec) @ sae.W_enc + sae.b_enc, min=0)
        assert torch.allclose(sae.encode(x), f, atol=1e-5)
        assert torch.allclose(sae.decode(f), f @ sae.W_dec + sae.b_dec, atol=1e-5)
    # the helpers load the same SAE
    loaded = sh.load_sae("lite")
    assert torch.equal(loaded.W_enc, sae.W_enc) and not loaded.W_enc.requires_grad


@pytest.fixture(scope="module")
def evidence(module_monkeypatch):
    """The SAE's evidence, measured here from the shipped checkpoint with code written for this test (the SAE by
    its formulas, splicing by a hook of its own) on other statements than the notebook's where there are more."""
    sh = import_fresh(module_monkeypatch, ASSIGNMENT.source_dir, "sae_helpers")

    model, sae = sh.load_model("lite"), sh.load_sae("lite")
    hook = sae.cfg.metadata.hook_name
    d = sh.make_dataset(model, seed=7)
    m = d["mask"]
    W_enc, b_enc, W_dec, b_dec = (t.detach().double() for t in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec))

    def encode(a):
        return torch.relu((a.double() - b_dec) @ W_enc + b_enc)

    with torch.no_grad():
        logits, cache = model.run_with_cache(d["tokens"], names_filter=hook)
        x = cache[hook].double()
        f = encode(x)
        x_hat = f @ W_dec + b_dec
        xs, rs, fs = x[m], x_hat[m], f[m]
        rows = torch.arange(len(d["labels"]))

        def loss_and_accuracy(out):
            answer = out[rows, d["last_pos"]].double().log_softmax(-1)
            loss = -answer[rows, d["answers"]].mean()
            true_id, false_id = sh.label_token_ids(model)
            correct = ((answer[:, true_id] > answer[:, false_id]).long() == d["labels"]).double().mean()
            return float(loss), float(correct)

        spliced = model.run_with_hooks(d["tokens"], fwd_hooks=[(hook, lambda a, hook: (encode(a) @ W_dec + b_dec).to(a.dtype))])
        zeroed = model.run_with_hooks(d["tokens"], fwd_hooks=[(hook, lambda a, hook: a * 0)])
    out = {
        "l0": float((fs > 0).double().sum(-1).mean()),
        "fve": float(1 - ((xs - rs) ** 2).sum() / ((xs - xs.mean(0)) ** 2).sum()),
        "clean": loss_and_accuracy(logits), "sae": loss_and_accuracy(spliced), "zero": loss_and_accuracy(zeroed),
        "dead": int(((fs > 0).double().mean(0) == 0).sum()), "d_sae": sae.cfg.d_sae, "features": {},
    }
    for name, words in [("not", ["not"]), ("city", sh.TOKEN_CLASSES["city"]), ("france", ["france"]),
                        ("number word", sh.NUMBER_WORDS)]:
        is_class = sh.token_class_mask(model, d["tokens"], words)[m]
        firing = fs > 0
        on, off = firing[is_class].double().mean(0), firing[~is_class].double().mean(0)
        best = int((fs[is_class].mean(0) - fs[~is_class].mean(0)).argmax())  # the most selective feature
        out["features"][name] = {"feature": best, "on": float(on[best]), "off": float(off[best]),
                                 "n_specific": int(((on >= 0.03) & (off <= 0.003)).sum())}
    # steering, on the notebook's statements (seed 0): find the France feature as the notebook does (largest mean
    # activation on "france" tokens minus elsewhere), add 20 times its decoder row at every position to the true
    # statements about cities outside France; against 16 random features (unit decoder rows, like every feature's)
    d0 = sh.make_dataset(model)
    with torch.no_grad():
        _, c0 = model.run_with_cache(d0["tokens"], names_filter=hook)
    f0 = encode(c0[hook])[d0["mask"]]
    is_fr = sh.token_class_mask(model, d0["tokens"], ["france"])[d0["mask"]]
    france = int((f0[is_fr].mean(0) - f0[~is_fr].mean(0)).argmax())
    french = {c.lower() for c in sh.CITIES["France"]}
    keep = [i for i, (fam, y, s) in enumerate(zip(d0["family"], d0["labels"].tolist(), d0["statements"]))
            if fam == "city" and y == 1 and s.split()[0].lower() not in french]
    toks, last = d0["tokens"][keep], d0["last_pos"][keep]
    r = torch.arange(len(keep))
    true_id, false_id = sh.label_token_ids(model)

    def steered(feature, alpha=20.0):
        vec = alpha * sae.W_dec[feature].detach()
        with torch.no_grad():
            lg = model.run_with_hooks(toks, fwd_hooks=[(hook, lambda a, hook: a + vec)])
        return float((lg[r, last, true_id] - lg[r, last, false_id]).mean())

    randoms = torch.randint(sae.cfg.d_sae, (16,), generator=torch.Generator().manual_seed(5)).tolist()
    out["steer"] = {"france": steered(france), "random": [steered(f) for f in randoms],
                    "none": steered(france, 0.0)}
    return out


def test_sae_is_sparse_and_reconstructs(evidence):
    assert evidence["l0"] <= 40, evidence["l0"]  # of 512 features (64 dimensions)
    assert evidence["fve"] >= 0.95, evidence["fve"]
    assert evidence["dead"] <= 0.15 * evidence["d_sae"], evidence["dead"]


def test_splicing_the_sae_in_costs_the_model_little(evidence):
    clean, with_sae, zero = evidence["clean"][0], evidence["sae"][0], evidence["zero"][0]
    assert zero >= 1.0 > clean, evidence  # the hook point matters: zeroing it destroys the answers
    assert (zero - with_sae) / (zero - clean) >= 0.85, evidence
    assert evidence["clean"][1] >= 0.95 and evidence["sae"][1] >= 0.85, evidence


def test_features_are_specific(evidence):
    """The most selective feature for "not" fires on a good share of the "not" tokens (30% or more) and at least
    ten times as often on them as on the others; the same for "France". City names and number words are split over several narrower features: at least 3
    each fire on 3% or more of the class's tokens and on at most 0.3% of the others."""
    feats = evidence["features"]
    for name in ("not", "france"):
        assert feats[name]["on"] >= 0.3 and feats[name]["on"] >= 10 * feats[name]["off"], (name, feats[name])
    for name in ("city", "number word"):
        assert feats[name]["n_specific"] >= 3, (name, feats[name])


def test_steering_with_the_france_feature_flips_true_statements(evidence):
    """As the notebook states: alpha 20 of the France feature turns the model's answer on true statements about cities
    outside France to "false" on average; the median random feature leaves it clearly "true", and at most a quarter of
    them flip it (the notebook reports 2 of 16)."""
    steer = evidence["steer"]
    random = sorted(steer["random"])
    assert steer["none"] >= 5.0, steer
    assert steer["france"] < 0, steer
    assert random[len(random) // 2] >= 3.0, steer  # the median random feature
    assert sum(v < 0 for v in random) <= len(random) // 4, steer


def test_recorded_evidence_is_this_checkpoints(monkeypatch):
    """training_info.json's numbers are recomputed from the shipped checkpoint by the training script's own
    measure(), and the notebook's header tables state them."""
    sh = _sh(monkeypatch)
    train_lite = import_fresh(monkeypatch, ASSIGNMENT.source_dir / "assets", "train_lite")

    recorded = json.loads((sh.LITE_DIR / "training_info.json").read_text())["evidence"]
    measured = train_lite.measure((sh.load_model("lite"), sh.load_sae("lite")))
    for key in ("l0", "fraction_variance_explained", "loss_recovered", "dead_features"):
        assert measured[key] == pytest.approx(recorded[key], abs=2e-3), key
    for key in ("answer_loss", "answer_accuracy"):
        for k in recorded[key]:
            assert measured[key][k] == pytest.approx(recorded[key][k], abs=2e-3), (key, k)
    for name, entry in recorded["features"].items():
        assert measured["features"][name]["feature"] == entry["feature"], name
    notebook = (ASSIGNMENT.source_dir / ASSIGNMENT.notebook).read_text()

    def row(prefix):
        return next(line for line in notebook.splitlines() if line.startswith(prefix))

    assert re.findall(r"[\d.]+", row("# | L0: features firing"))[-1] == f"{recorded['l0']:.1f}"
    assert re.findall(r"[\d.]+", row("# | fraction of variance explained"))[-1] == f"{recorded['fraction_variance_explained']:.3f}"
    loss = recorded["answer_loss"]
    assert re.findall(r"\d+\.\d+", row("# | answer loss: clean")) == [f"{loss[k]:.3f}" for k in ("clean", "sae", "zero_ablation")]
    assert re.findall(r"[\d.]+", row("# | loss recovered"))[-1] == f"{recorded['loss_recovered']:.3f}"
    acc = recorded["answer_accuracy"]
    assert re.findall(r"[\d.]+(?=%)", row("# | answers correct")) == [f"{100 * acc[k]:.1f}" for k in ("clean", "sae")]
    assert re.findall(r"\d+", row("# | dead features").split("|")[2])[0] == str(recorded["dead_features"])
    for name, entry in recorded["features"].items():
        cells = [c.strip() for c in row(f"# | {name} |").split("|")[2:5]]
        assert cells == [str(entry["feature"]), f"{100 * entry['fires_on_class']:.0f}%",
                         f"{100 * entry['fires_elsewhere']:.1f}%"], (name, cells)


def test_model_files_are_section_1_3_1s(monkeypatch):
    """The model is section 1.3.1's: the same architecture and tokenizer, and the training script copies it from
    there after checking 1.3.1's hashes (if 1.3.1 is retrained, rerun assets/train_lite.py)."""
    sh = _sh(monkeypatch)
    source = REPO / "source" / "1.3.1_linear_probes" / "assets" / "lite"
    for name in ("config.json", "tokenizer.json"):
        assert json.loads((sh.LITE_DIR / name).read_text()) == json.loads((source / name).read_text()), name


# ----------------------------------------------------------------------------- the full profile


def _pre_6_sae_cfg(d_in: int, d_sae: int, hook: str) -> dict:
    """A cfg.json in the format of jbloom/GPT2-Small-SAEs-Reformatted (SAELens before 6.0: hook_point, no
    architecture, no metadata)."""
    return {
        "model_name": "gpt2-small", "hook_point": hook, "hook_point_layer": 6, "hook_point_head_index": None,
        "dataset_path": "Skylion007/openwebtext", "is_dataset_tokenized": False, "context_size": 128,
        "use_cached_activations": False, "d_in": d_in, "d_sae": d_sae, "b_dec_init_method": "geometric_median",
        "expansion_factor": d_sae // d_in, "activation_fn": "relu", "lp_norm": 1.0, "l1_coefficient": 8e-05,
        "lr": 0.0004, "dtype": "torch.float32", "device": "cuda", "seed": 42, "prepend_bos": True,
        "apply_b_dec_to_input": True, "normalize_sae_decoder": True,
    }


def test_full_profile_loads_gpt2_and_the_res_jb_sae_through_the_same_code_path(monkeypatch, tmp_path):
    """gpt2-small and jbloom/GPT2-Small-SAEs-Reformatted cannot be downloaded here: a tiny GPT-2 saved by
    transformers (with the lite tokenizer, which has " true" and " false" as tokens) and a tiny SAE saved in that
    release's pre-6.0 SAELens format under blocks.6.hook_resid_pre/ are served by a fake hub, fetched and locked by
    ``autograder assets fetch``, and loaded by ``sae_helpers.load_model("full")`` / ``load_sae("full")`` with every
    network call refused; then the notebook's operations run on them."""
    from safetensors.torch import save_file
    from transformers import GPT2LMHeadModel

    from autograder.assets.declared import HubAsset, select_declared

    sh = _sh(monkeypatch)
    declared = select_declared(REPO / "source", "1.3.3")
    model_asset, sae_asset = declared[0].for_profile("full")
    assert isinstance(model_asset, HubAsset) and (model_asset.name, model_asset.hf_id) == ("gpt2-small", "gpt2")
    assert (sae_asset.name, sae_asset.hf_id, sae_asset.kind) == (
        "gpt2-small-res-jb", "jbloom/GPT2-Small-SAEs-Reformatted", "sae_lens")
    # the release SAELens itself knows by that name lives in that repo, with that SAE
    import yaml
    from sae_lens import __file__ as sae_lens_init

    releases = yaml.safe_load((Path(sae_lens_init).parent / "pretrained_saes.yaml").read_text())
    release = releases["gpt2-small-res-jb"]
    assert release["repo_id"] == sae_asset.hf_id and release["model"] == "gpt2-small"
    assert any(s["id"] == sh.FULL_SAE_ID and s["path"] == sh.FULL_SAE_ID for s in release["saes"])

    hub = {"gpt2": tmp_path / "hub" / "gpt2", sae_asset.hf_id: tmp_path / "hub" / "saes"}
    save_tiny_gpt2(hub["gpt2"], sh.LITE_DIR / "tokenizer.json", n_layer=7)
    sae_dir = hub[sae_asset.hf_id] / sh.FULL_SAE_ID
    sae_dir.mkdir(parents=True)
    (sae_dir / "cfg.json").write_text(json.dumps(_pre_6_sae_cfg(32, 128, sh.FULL_SAE_ID)))
    weights = {"W_enc": torch.randn(32, 128) * 0.2, "b_enc": torch.randn(128) * 0.1 - 0.2,
               "W_dec": torch.randn(128, 32) * 0.2, "b_dec": torch.randn(32) * 0.1}
    save_file(weights, str(sae_dir / "sae_weights.safetensors"))
    save_file({"sparsity": torch.full((128,), -3.0)}, str(sae_dir / "sparsity.safetensors"))
    (hub[sae_asset.hf_id] / "blocks.7.hook_resid_pre").mkdir()  # another SAE of the release: not fetched
    (hub[sae_asset.hf_id] / "blocks.7.hook_resid_pre" / "cfg.json").write_text("{}")

    fetched = serve_hub(monkeypatch, hub)
    fetch_full_then_go_offline(monkeypatch, REPO / "source", REPO, "1.3.3", tmp_path / "cache")
    assert sorted(repo for repo, _ in fetched) == sorted(hub)
    model = sh.load_model("full")
    sae = sh.load_sae("full")
    assert not (sh.sae_folder("full").parent / "blocks.7.hook_resid_pre").exists()
    assert (model.cfg.n_layers, model.cfg.d_model) == (7, 32)
    assert sae.cfg.metadata.hook_name == sh.FULL_SAE_ID and (sae.cfg.d_in, sae.cfg.d_sae) == (32, 128)
    assert torch.equal(sae.W_enc, weights["W_enc"]) and torch.equal(sae.b_dec, weights["b_dec"])
    reference = GPT2LMHeadModel.from_pretrained(hub["gpt2"]).eval()
    data = sh.make_dataset(model, families=("city",))
    with torch.no_grad():
        assert torch.allclose(model(data["tokens"][:4]).log_softmax(-1),
                              reference(data["tokens"][:4]).logits.log_softmax(-1), atol=1e-4)
        # the notebook's operations: features at the hook, splicing, attribution
        _, act_cache = model.run_with_cache(data["tokens"], names_filter=sae.cfg.metadata.hook_name)
        feats = sae.encode(act_cache[sae.cfg.metadata.hook_name])
        assert feats.shape == (*data["tokens"].shape, 128) and (feats >= 0).all()
        spliced = model.run_with_hooks(data["tokens"], fwd_hooks=[(sae.cfg.metadata.hook_name, lambda a, hook: sae(a))])
        assert torch.isfinite(sh.answer_loss(spliced, data["last_pos"], data["answers"]))
        assert (sae.W_dec[3] @ model.W_U).shape == (model.cfg.d_vocab,)
    # without the assets the full profile names the fetch command, never downloading
    monkeypatch.setenv("AUTOGRADER_ASSETS", str(tmp_path / "empty"))
    for load in (sh.load_model, sh.load_sae):
        with pytest.raises(FileNotFoundError, match="autograder assets fetch --profile full --assignment 1.3.3"):
            load("full")
