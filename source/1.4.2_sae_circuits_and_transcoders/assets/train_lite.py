"""Build the `lite` assets of section 1.4.2 "SAE circuits and transcoders".

* The model: section 1.3.1's lite model (a 4-layer GPT-2, d_model 64, d_mlp 256, that answers " true" or " false"
  after short statements), copied from ``source/1.3.1_linear_probes/assets/lite`` after checking 1.3.1's SHA256SUMS.
* The SAE: section 1.3.3's 512-feature SAE on ``blocks.2.hook_resid_pre``, copied into ``lite/sae/`` after checking
  1.3.3's SHA256SUMS (SAELens format: cfg.json + sae_weights.safetensors).
* The transcoder, trained here: a ReLU transcoder (SAELens architecture "transcoder") with 512 features for the MLP
  of block 0. It reads the MLP's input, the normalised residual stream ``blocks.0.ln2.hook_normalized`` (the model is
  loaded with LayerNorm weights folded into the MLP), and writes the MLP's output ``blocks.0.hook_mlp_out``. Block 0's
  MLP is the one the model depends on (zero-ablating it raises the answer loss from 0.02 to about 3; the later MLPs
  matter much less). Trained with our own loop (not SAELens's trainer) on the activations at every real position of
  every statement of the four families followed by " This statement is" (families drawn uniformly). Loss: squared
  error of the MLP output summed over d_model plus L1_COEFF times the feature activations weighted by their decoder
  norms; Adam; the L1 coefficient warmed up; dead features re-initialised towards badly predicted inputs; decoder
  norms folded into the encoder at the end. Saved with SAELens's ``save_model`` into ``lite/transcoder/``, with the
  output hook in its metadata (``hook_name_out``).

Afterwards it measures, through ``circuit_helpers`` (the notebook's code path), the evidence the notebook states.

Usage (from the section folder): ``python assets/train_lite.py [--out DIR] [--steps N]``. Uses one CPU thread,
about 3 minutes. Reruns on the same machine and library versions give the same weights.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

SECTION = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SECTION))
sys.path.insert(0, str(SECTION.parents[1]))  # the course root, for `autograder`
import circuit_helpers as ch  # noqa: E402

MODEL_SOURCE = SECTION.parent / "1.3.1_linear_probes" / "assets" / "lite"
MODEL_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"]
SAE_SOURCE = SECTION.parent / "1.3.3_saes_with_saelens" / "assets" / "lite"
SAE_FILES = ["cfg.json", "sae_weights.safetensors"]
LAYER = 0
HOOK_IN, HOOK_OUT = f"blocks.{LAYER}.ln2.hook_normalized", f"blocks.{LAYER}.hook_mlp_out"
SEED = 1420
D_SAE = 512
STEPS = 12000
BATCH = 512
LR = 2e-3
L1_COEFF = 8.0
L1_WARMUP = 1000
RESAMPLE_EVERY = 1000
RESAMPLE_UNTIL = 8000


def copy_checked(source: Path, names: list[str], dest: Path) -> None:
    from autograder.assets.loading import read_sha256sums, sha256_file

    sums = read_sha256sums(source)
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        if sha256_file(source / name) != sums[name]:
            raise RuntimeError(f"{source / name} differs from its SHA256SUMS")
        shutil.copyfile(source / name, dest / name)


def collect(model):
    """MLP inputs and outputs at every real position of every statement, per family: {family: (x, y)}."""
    import torch

    out = {}
    for family in ch.FAMILIES:
        prompts = [ch.to_prompt(s) for s, _ in ch.all_statements(family)]
        tokens, last_pos = ch.tokenize_prompts(model, prompts)
        mask = torch.arange(tokens.shape[1])[None, :] <= last_pos[:, None]
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=[HOOK_IN, HOOK_OUT])
        out[family] = (cache[HOOK_IN][mask], cache[HOOK_OUT][mask])
    return out


def train(model, steps: int, seed: int, l1_coeff: float):
    import torch

    acts = collect(model)
    d_in = model.cfg.d_model
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    def batch():
        fam = torch.randint(len(ch.FAMILIES), (BATCH,), generator=gen)
        xs, ys = [], []
        for i, f in enumerate(ch.FAMILIES):
            k = int((fam == i).sum())
            idx = torch.randint(len(acts[f][0]), (k,), generator=gen)
            xs.append(acts[f][0][idx])
            ys.append(acts[f][1][idx])
        return torch.cat(xs), torch.cat(ys)

    all_x = torch.cat([a[0] for a in acts.values()])
    all_y = torch.cat([a[1] for a in acts.values()])
    W_enc = torch.nn.Parameter(torch.randn(d_in, D_SAE, generator=gen) / d_in ** 0.5)
    W_dec = torch.nn.Parameter(torch.randn(D_SAE, d_in, generator=gen) / d_in ** 0.5 * 0.1)
    b_enc = torch.nn.Parameter(torch.zeros(D_SAE))
    b_dec = torch.nn.Parameter(all_y.mean(0).clone())
    params = [W_enc, W_dec, b_enc, b_dec]
    optim = torch.optim.Adam(params, lr=LR)
    last_fired = torch.zeros(D_SAE, dtype=torch.long)
    ema = None
    t0 = time.time()
    for step in range(steps):
        x, y = batch()
        f = torch.relu(x @ W_enc + b_enc)
        y_hat = f @ W_dec + b_dec
        mse = (y_hat - y).pow(2).sum(-1).mean()
        l1 = (f * W_dec.norm(dim=-1)).sum(-1).mean()
        coeff = l1_coeff * min(1.0, (step + 1) / L1_WARMUP)
        frac = step / steps
        for g in optim.param_groups:
            g["lr"] = LR * (1.0 if frac < 0.8 else 1 - (frac - 0.8) / 0.2 * 0.9)
        loss = mse + coeff * l1
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        with torch.no_grad():
            last_fired[(f > 0).any(0)] = step
            if step and step % RESAMPLE_EVERY == 0 and step <= RESAMPLE_UNTIL:
                dead = torch.nonzero(step - last_fired > RESAMPLE_EVERY // 2).flatten()
                if len(dead):
                    pick_rows = torch.randint(len(all_x), (4096,), generator=gen)
                    sx, sy = all_x[pick_rows], all_y[pick_rows]
                    err = (torch.relu(sx @ W_enc + b_enc) @ W_dec + b_dec - sy).pow(2).sum(-1)
                    pick = torch.multinomial(err, len(dead), replacement=False, generator=gen)
                    xin = sx[pick] / sx[pick].norm(dim=-1, keepdim=True)
                    resid = sy[pick] - (torch.relu(sx[pick] @ W_enc + b_enc) @ W_dec + b_dec)
                    W_enc[:, dead] = xin.T * 0.2
                    b_enc[dead] = 0.0
                    W_dec[dead] = resid / resid.norm(dim=-1, keepdim=True) * 0.1
                    for p in params:
                        state = optim.state[p]
                        if p is W_enc:
                            state["exp_avg"][:, dead] = 0
                            state["exp_avg_sq"][:, dead] = 0
                        elif p is not b_dec:
                            state["exp_avg"][dead] = 0
                            state["exp_avg_sq"][dead] = 0
                    last_fired[dead] = step
                    print(f"step {step}: resampled {len(dead)} dead features", flush=True)
        now = [mse.item(), l1.item(), (f > 0).float().sum(-1).mean().item()]
        ema = now if ema is None else [0.98 * e + 0.02 * v for e, v in zip(ema, now)]
        if step % 500 == 0 or step == steps - 1:
            print(f"step {step:5d}  mse {ema[0]:.3f}  l1 {ema[1]:.3f}  L0 {ema[2]:.2f}  {time.time() - t0:.0f}s", flush=True)
    return (W_enc.detach(), b_enc.detach(), W_dec.detach(), b_dec.detach()), ema, time.time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "lite")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--l1", type=float, default=L1_COEFF)
    args = parser.parse_args()

    import numpy as np
    import sae_lens
    import torch
    from sae_lens.saes.transcoder import Transcoder, TranscoderConfig

    torch.set_num_threads(1)
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)  # start clean so SHA256SUMS lists exactly our files
    out.mkdir(parents=True)
    copy_checked(MODEL_SOURCE, MODEL_FILES, out)
    copy_checked(SAE_SOURCE, SAE_FILES, out / "sae")
    model = ch.load_folder(out)
    (W_enc, b_enc, W_dec, b_dec), ema, seconds = train(model, args.steps, args.seed, args.l1)

    cfg = TranscoderConfig(d_in=model.cfg.d_model, d_sae=D_SAE, d_out=model.cfg.d_model, dtype="float32",
                           device="cpu", apply_b_dec_to_input=False, normalize_activations="none")
    cfg.metadata.model_name = "lite-truth-gpt2-4l"
    cfg.metadata.hook_name = HOOK_IN
    cfg.metadata.hook_name_out = HOOK_OUT
    cfg.metadata.hook_head_index = None
    cfg.metadata.prepend_bos = True
    cfg.metadata.context_size = model.cfg.n_ctx
    cfg.metadata.sae_lens_version = sae_lens.__version__
    tc = Transcoder(cfg)
    with torch.no_grad():
        norms = W_dec.norm(dim=-1).clamp(min=1e-8)  # unit decoder rows, the same function
        tc.W_enc.copy_(W_enc * norms)
        tc.b_enc.copy_(b_enc * norms)
        tc.W_dec.copy_(W_dec / norms[:, None])
        tc.b_dec.copy_(b_dec)
    tc.save_model(out / "transcoder")
    for p in out.rglob("*"):
        if p.is_file():
            p.chmod(0o644)

    evidence = measure(ch.load_folder(out), ch.load_sae_folder(out / "sae"), ch.load_transcoder_folder(out / "transcoder"))
    print(json.dumps(evidence, indent=1))
    info = {
        "seed": args.seed, "steps": args.steps, "batch_size": BATCH, "learning_rate": LR, "l1_coefficient": args.l1,
        "l1_warmup_steps": L1_WARMUP, "d_sae": D_SAE, "hook_name": HOOK_IN, "hook_name_out": HOOK_OUT,
        "train_seconds": round(seconds, 1), "final_ema": {"mse": ema[0], "l1": ema[1], "l0": ema[2]},
        "model": {"copied_from": "source/1.3.1_linear_probes/assets/lite", "files": MODEL_FILES},
        "sae": {"copied_from": "source/1.3.3_saes_with_saelens/assets/lite", "files": [f"sae/{f}" for f in SAE_FILES]},
        "evidence": evidence,
        "versions": {"torch": torch.__version__, "sae_lens": sae_lens.__version__, "numpy": np.__version__},
    }
    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    (out / "training_info.json").chmod(0o644)
    from autograder.assets.loading import write_sha256sums

    write_sha256sums(out, sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "SHA256SUMS"))
    print(f"saved to {out}")


def measure(model, sae, tc) -> dict:
    """The transcoder's evidence on the balanced statements of all four families (make_dataset, seed 0): L0 and the
    fraction of the MLP output's variance explained at real positions; the answer loss and accuracy clean, with the
    transcoder in place of the MLP, with the MLP output zero-ablated and mean-ablated (mean over real positions);
    the fraction of loss recovered against each; dead features; and the attribution-graph check: for the true/false
    logit difference, ablating the 5 SAE features (position, feature) with the largest activation x gradient
    attribution in each prompt against 5 random active ones."""
    import torch

    d = ch.make_dataset(model)
    m = d["mask"]
    hin, hout = tc.cfg.metadata.hook_name, tc.cfg.metadata.hook_name_out
    true_id, false_id = ch.label_token_ids(model)
    rows = torch.arange(len(d["labels"]))
    with torch.no_grad():
        logits, cache = model.run_with_cache(d["tokens"], names_filter=[hin, hout])
        x, y = cache[hin], cache[hout]
        f = tc.encode(x)
        y_hat = tc.decode(f)
        ys, rs, fs = y[m], y_hat[m], f[m]
        l0 = float((fs > 0).float().sum(-1).mean())
        fve = float(1 - (ys - rs).pow(2).sum() / (ys - ys.mean(0)).pow(2).sum())
        mean_out = ys.mean(0)
        runs = {
            "clean": logits,
            "transcoder": model.run_with_hooks(d["tokens"], fwd_hooks=[(hout, lambda a, hook: tc(cache[hin]))]),
            "zero_ablation": model.run_with_hooks(d["tokens"], fwd_hooks=[(hout, lambda a, hook: torch.zeros_like(a))]),
            "mean_ablation": model.run_with_hooks(d["tokens"], fwd_hooks=[(hout, lambda a, hook: mean_out.expand_as(a))]),
        }
    loss = {k: float(ch.answer_loss(v, d["last_pos"], d["answers"])) for k, v in runs.items()}

    def accuracy(lg):
        diff = lg[rows, d["last_pos"], true_id] - lg[rows, d["last_pos"], false_id]
        return float(((diff > 0).long() == d["labels"]).float().mean())

    density = (fs > 0).float().mean(0)
    graph = ablation_check(model, sae, d, k=5, seed=0)
    return {
        "tokens": int(m.sum()), "l0": round(l0, 3), "fraction_variance_explained": round(fve, 4),
        "answer_loss": {k: round(v, 4) for k, v in loss.items()},
        "loss_recovered_vs_zero": round((loss["zero_ablation"] - loss["transcoder"]) / (loss["zero_ablation"] - loss["clean"]), 4),
        "loss_recovered_vs_mean": round((loss["mean_ablation"] - loss["transcoder"]) / (loss["mean_ablation"] - loss["clean"]), 4),
        "answer_accuracy": {k: round(accuracy(v), 4) for k, v in runs.items()},
        "dead_features": int((density == 0).sum()), "dense_features_over_0.5": int((density > 0.5).sum()),
        "ablation": {k: round(v, 4) for k, v in graph.items()},
    }


def sae_attribution(model, sae, tokens, last_pos):
    """Activation x gradient of the summed logit difference (" true" - " false") for every SAE feature at every
    position, with the SAE spliced in with its error term (the forward pass stays the clean one). Written
    independently of the notebook's solution."""
    import torch

    hook = sae.cfg.metadata.hook_name
    store = {}

    def splice(x, hook):
        f = sae.encode(x).detach().requires_grad_(True)
        store["f"] = f
        return sae.decode(f) + (x - sae.decode(sae.encode(x))).detach()

    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(hook, splice)])
        ch.logit_diff(model, logits, last_pos).sum().backward()
    f = store["f"]
    return (f * f.grad).detach(), f.detach()


def ablated_logit_diff(model, sae, tokens, last_pos, remove):
    """Logit difference with the given SAE feature activations removed: ``remove`` (batch, seq, d_sae) is a 0/1
    mask; the residual stream loses activation x decoder row for each removed feature (error term kept)."""
    import torch

    hook = sae.cfg.metadata.hook_name

    def ablate(x, hook):
        f = sae.encode(x)
        return x - (f * remove) @ sae.W_dec

    with torch.no_grad():
        return ch.logit_diff(model, model.run_with_hooks(tokens, fwd_hooks=[(hook, ablate)]), last_pos)


def ablation_check(model, sae, d, k: int = 5, seed: int = 0) -> dict:
    """Per prompt: the k SAE nodes (position, feature) with the largest |attribution| to the logit difference,
    and k random active nodes (real positions). Returns the mean |change| of the logit difference when each set is
    ablated, the mean |logit difference| clean, and how often ablating the top set changes it more."""
    import torch

    tokens, last_pos, m = d["tokens"], d["last_pos"], d["mask"]
    attr, f = sae_attribution(model, sae, tokens, last_pos)
    n, seq, d_sae = attr.shape
    flat = attr.abs().masked_fill(~m[..., None], 0).reshape(n, -1)
    top = torch.zeros_like(flat)
    top.scatter_(1, flat.topk(k, dim=1).indices, 1.0)
    gen = torch.Generator().manual_seed(seed)
    active = ((f > 0) & m[..., None]).reshape(n, -1).float()
    rand = torch.zeros_like(flat)
    for i in range(n):
        idx = torch.nonzero(active[i]).flatten()
        rand[i, idx[torch.randperm(len(idx), generator=gen)[:k]]] = 1.0
    clean = ablated_logit_diff(model, sae, tokens, last_pos, torch.zeros_like(attr))
    with_top = ablated_logit_diff(model, sae, tokens, last_pos, top.reshape(attr.shape))
    with_rand = ablated_logit_diff(model, sae, tokens, last_pos, rand.reshape(attr.shape))
    # what the k top nodes' attributions predict for their removal (first-order: the change is minus their sum)
    predicted = -(attr.reshape(n, -1) * top).sum(-1)
    return {
        "k": k, "clean_abs_logit_diff": float(clean.abs().mean()),
        "top_change": float((with_top - clean).abs().mean()), "random_change": float((with_rand - clean).abs().mean()),
        "top_beats_random": float(((with_top - clean).abs() > (with_rand - clean).abs()).float().mean()),
        "prediction_correlation": float(torch.corrcoef(torch.stack([predicted, with_top - clean]))[0, 1]),
    }


if __name__ == "__main__":
    main()
