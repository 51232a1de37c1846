"""Train the sparse autoencoder of the `lite` profile of section 1.3.3.

The model is section 1.3.1's lite model (a 4-layer GPT-2, d_model 64, that answers " true"
or " false" after short statements), copied here from ``source/1.3.1_linear_probes/assets/lite``
(its config.json, generation_config.json, model.safetensors and tokenizer.json, checked against
1.3.1's SHA256SUMS first) so that this section has its own hashed copy.

The SAE is a standard ReLU SAE (SAELens architecture "standard"): 256 features on the residual
stream before block 2 (``blocks.2.hook_resid_pre``, d_in 64), trained here with our own loop
(not SAELens's trainer) on the activations at every real position (BOS included, padding
excluded) of every statement of the four families followed by " This statement is" (families
drawn uniformly, so the 1900 sums do not swamp the rest). Loss: squared reconstruction error
summed over d_in plus L1_COEFF times the sum of feature activations weighted by their decoder
norms, Adam, L1 coefficient warmed up linearly, features that stayed dead for a while
re-initialised towards badly reconstructed inputs. At the end the decoder norms are folded
into the encoder (unit decoder rows) and the SAE is saved with SAELens's ``save_model``.

Afterwards it measures, through ``sae_helpers`` (the notebook's code path), the evidence the
notebook states: L0, fraction of variance explained, the answer loss clean / with the SAE
spliced in / with the residual stream zero-ablated, dead features, and the features most
selective for number words, cities, countries, "not", and one country (France).

Outputs in ``assets/lite/`` (or ``--out``): the model files, cfg.json, sae_weights.safetensors,
training_info.json, SHA256SUMS.

Usage (from the section folder): ``python assets/train_lite.py [--out DIR] [--steps N]``.
About 2 to 5 minutes on 2 CPU cores (140 s measured on an idle machine, 272 s on a busy one). Reruns on the same machine and library versions give the same
weights; other CPUs or torch versions may differ in the last bits (then SHA256SUMS changes;
nothing in the notebook or the tests hard-codes a number from it).
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
import sae_helpers as sh  # noqa: E402

MODEL_SOURCE = SECTION.parent / "1.3.1_linear_probes" / "assets" / "lite"
MODEL_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"]
HOOK = "blocks.2.hook_resid_pre"
SEED = 1333
D_SAE = 512
STEPS = 20000
BATCH = 512
LR = 2e-3
L1_COEFF = 8.0
L1_WARMUP = 1000
RESAMPLE_EVERY = 1000
RESAMPLE_UNTIL = 12000


def copy_model(out: Path) -> None:
    from autograder.assets.loading import read_sha256sums, sha256_file

    sums = read_sha256sums(MODEL_SOURCE)
    for name in MODEL_FILES:
        if sha256_file(MODEL_SOURCE / name) != sums[name]:
            raise RuntimeError(f"{MODEL_SOURCE / name} differs from 1.3.1's SHA256SUMS")
        shutil.copyfile(MODEL_SOURCE / name, out / name)


def collect(model, hook: str = HOOK):
    """Activations at every real position of every statement, per family: {family: (n_tokens, d_model)}."""
    import torch

    out = {}
    for family in sh.FAMILIES:
        prompts = [sh.to_prompt(s) for s, _ in sh.all_statements(family)]
        tokens, last_pos = sh.tokenize_prompts(model, prompts)
        mask = torch.arange(tokens.shape[1])[None, :] <= last_pos[:, None]
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=hook)
        out[family] = cache[hook][mask]
    return out


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
    from sae_lens import StandardSAE, StandardSAEConfig

    t0 = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for p in out.iterdir():  # start clean so SHA256SUMS lists exactly our files
        if p.is_file():
            p.unlink()
    copy_model(out)
    model = sh.load_folder(out)
    acts = collect(model)
    d_in = model.cfg.d_model
    gen = torch.Generator().manual_seed(args.seed)

    def batch():
        fam = torch.randint(len(sh.FAMILIES), (BATCH,), generator=gen)
        rows = []
        for i, f in enumerate(sh.FAMILIES):
            k = int((fam == i).sum())
            rows.append(acts[f][torch.randint(len(acts[f]), (k,), generator=gen)])
        return torch.cat(rows)

    everything = torch.cat(list(acts.values()))
    W_enc = torch.nn.Parameter(torch.randn(d_in, D_SAE, generator=gen) / d_in ** 0.5)
    W_dec = torch.nn.Parameter(W_enc.detach().T.clone() / W_enc.detach().T.norm(dim=-1, keepdim=True) * 0.1)
    b_enc = torch.nn.Parameter(torch.zeros(D_SAE))
    b_dec = torch.nn.Parameter(everything.mean(0).clone())
    params = [W_enc, W_dec, b_enc, b_dec]
    optim = torch.optim.Adam(params, lr=LR, betas=(0.9, 0.999))
    last_fired = torch.zeros(D_SAE, dtype=torch.long)
    ema = None
    for step in range(args.steps):
        x = batch()
        f = torch.relu((x - b_dec) @ W_enc + b_enc)
        x_hat = f @ W_dec + b_dec
        mse = (x_hat - x).pow(2).sum(-1).mean()
        l1 = (f * W_dec.norm(dim=-1)).sum(-1).mean()
        coeff = args.l1 * min(1.0, (step + 1) / L1_WARMUP)
        frac = step / args.steps
        for g in optim.param_groups:
            g["lr"] = LR * (1.0 if frac < 0.8 else 1 - (frac - 0.8) / 0.2 * 0.9)
        loss = mse + coeff * l1
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        with torch.no_grad():
            fired = (f > 0).any(0)
            last_fired[fired] = step
            if step and step % RESAMPLE_EVERY == 0 and step <= RESAMPLE_UNTIL:
                dead = torch.nonzero(step - last_fired > RESAMPLE_EVERY // 2).flatten()
                if len(dead):
                    sample = everything[torch.randint(len(everything), (4096,), generator=gen)]
                    err = ((torch.relu((sample - b_dec) @ W_enc + b_enc) @ W_dec + b_dec) - sample).pow(2).sum(-1)
                    pick = torch.multinomial(err, len(dead), replacement=False, generator=gen)
                    dirs = sample[pick] - b_dec
                    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
                    W_dec[dead] = dirs * 0.1
                    alive_norm = W_enc[:, fired].norm(dim=0).mean() if fired.any() else 1.0
                    W_enc[:, dead] = dirs.T * alive_norm * 0.2
                    b_enc[dead] = 0.0
                    for p in params:  # reset Adam's moments for the resampled features
                        state = optim.state[p]
                        if p is W_enc:
                            state["exp_avg"][:, dead] = 0
                            state["exp_avg_sq"][:, dead] = 0
                        elif p is W_dec:
                            state["exp_avg"][dead] = 0
                            state["exp_avg_sq"][dead] = 0
                        elif p is b_enc:
                            state["exp_avg"][dead] = 0
                            state["exp_avg_sq"][dead] = 0
                    last_fired[dead] = step
                    print(f"step {step}: resampled {len(dead)} dead features", flush=True)
        ema = [mse.item(), l1.item(), (f > 0).float().sum(-1).mean().item()] if ema is None else [
            0.98 * e + 0.02 * v for e, v in zip(ema, [mse.item(), l1.item(), (f > 0).float().sum(-1).mean().item()])]
        if step % 500 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  mse {ema[0]:.4f}  l1 {ema[1]:.3f}  L0 {ema[2]:.2f}  {time.time() - t0:.0f}s", flush=True)
    train_seconds = time.time() - t0

    cfg = StandardSAEConfig(
        d_in=d_in, d_sae=D_SAE, dtype="float32", device="cpu", apply_b_dec_to_input=True,
        normalize_activations="none",
    )
    cfg.metadata.model_name = "lite-truth-gpt2-4l"
    cfg.metadata.hook_name = HOOK
    cfg.metadata.hook_head_index = None
    cfg.metadata.prepend_bos = True
    cfg.metadata.context_size = model.cfg.n_ctx
    cfg.metadata.sae_lens_version = sae_lens.__version__
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(W_enc)
        sae.W_dec.copy_(W_dec)
        sae.b_enc.copy_(b_enc)
        sae.b_dec.copy_(b_dec)
        sae.fold_W_dec_norm()  # unit decoder rows; the SAE computes the same function
    sae.save_model(out)
    for p in out.iterdir():
        p.chmod(0o644)

    evidence = measure((sh.load_folder(out), sh.load_sae_folder(out)))
    print(json.dumps(evidence, indent=1))
    info = {
        "seed": args.seed, "steps": args.steps, "batch_size": BATCH, "learning_rate": LR, "l1_coefficient": args.l1,
        "l1_warmup_steps": L1_WARMUP, "d_sae": D_SAE, "hook_name": HOOK, "train_seconds": round(train_seconds, 1),
        "final_ema": {"mse": ema[0], "l1": ema[1], "l0": ema[2]},
        "model": {"copied_from": "source/1.3.1_linear_probes/assets/lite", "files": MODEL_FILES},
        "evidence": evidence,
        "versions": {"torch": torch.__version__, "sae_lens": sae_lens.__version__, "numpy": np.__version__},
    }
    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    (out / "training_info.json").chmod(0o644)
    from autograder.assets.loading import write_sha256sums

    write_sha256sums(out, sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "SHA256SUMS"))
    print(f"saved to {out} in {time.time() - t0:.0f}s")


def measure(model_and_sae) -> dict:
    """The SAE's evidence on the balanced statements of all four families (sae_helpers.make_dataset, seed 0):
    L0 and fraction of variance explained at real positions, answer loss clean / SAE spliced in / zero-ablated and
    the fraction of loss recovered, dead features, and for each word class the feature with the largest gap between
    its mean activation on the class's tokens and on other tokens, with how often it fires on each."""
    import torch

    model, sae = model_and_sae
    hook = sae.cfg.metadata.hook_name
    d = sh.make_dataset(model)
    with torch.no_grad():
        logits, cache = model.run_with_cache(d["tokens"], names_filter=hook)
        x = cache[hook]
        feats = sae.encode(x)
        recon = sae.decode(feats)
        m = d["mask"]
        xs, rs, fs = x[m], recon[m], feats[m]
        l0 = float((fs > 0).float().sum(-1).mean())
        fve = float(1 - (xs - rs).pow(2).sum() / (xs - xs.mean(0)).pow(2).sum())
        clean = float(sh.answer_loss(logits, d["last_pos"], d["answers"]))
        spliced_logits = model.run_with_hooks(d["tokens"], fwd_hooks=[(hook, lambda a, hook: sae(a))])
        spliced = float(sh.answer_loss(spliced_logits, d["last_pos"], d["answers"]))
        zero_logits = model.run_with_hooks(d["tokens"], fwd_hooks=[(hook, lambda a, hook: torch.zeros_like(a))])
        zero = float(sh.answer_loss(zero_logits, d["last_pos"], d["answers"]))
        true_id, false_id = sh.label_token_ids(model)
        rows = torch.arange(len(d["labels"]))

        def accuracy(lg):
            diff = lg[rows, d["last_pos"], true_id] - lg[rows, d["last_pos"], false_id]
            return float(((diff > 0).long() == d["labels"]).float().mean())

        density = (fs > 0).float().mean(0)
        classes = dict(sh.TOKEN_CLASSES)
        classes["france"] = ["france"]
        features = {}
        for name, words in classes.items():
            is_class = sh.token_class_mask(model, d["tokens"], words)[m]
            gap = fs[is_class].mean(0) - fs[~is_class].mean(0)
            best = int(gap.argmax())
            features[name] = {
                "feature": best, "gap": round(float(gap[best]), 4),
                "fires_on_class": round(float((fs[is_class, best] > 0).float().mean()), 4),
                "fires_elsewhere": round(float((fs[~is_class, best] > 0).float().mean()), 4),
            }
    return {
        "tokens": int(m.sum()), "l0": round(l0, 3), "fraction_variance_explained": round(fve, 4),
        "answer_loss": {"clean": round(clean, 4), "sae": round(spliced, 4), "zero_ablation": round(zero, 4)},
        "loss_recovered": round((zero - spliced) / (zero - clean), 4),
        "answer_accuracy": {"clean": round(accuracy(logits), 4), "sae": round(accuracy(spliced_logits), 4)},
        "dead_features": int((density == 0).sum()), "dense_features_over_0.5": int((density > 0.5).sum()),
        "features": features,
    }


if __name__ == "__main__":
    main()
