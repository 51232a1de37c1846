"""Train the 1-layer modular-addition transformer used by the `lite` profile of section 1.5.2.

The task: inputs ``a b =`` (tokens a, b in [0, p) and "=" = p), predict (a + b) mod p at
the last position. p = 53; 40% of the p^2 pairs are the training set, the rest the test
set. Full-batch AdamW with strong weight decay (1.0) makes the model first memorise the
training pairs and later *grok*: test accuracy jumps to ~100% long after training
accuracy did, as the model switches to a Fourier-feature algorithm.

The architecture is TransformerLens's ``HookedTransformer``: 1 layer, attention + ReLU MLP,
no LayerNorm, biases frozen at zero (as in the classic grokking setup), d_vocab = p + 1
inputs, d_vocab_out = p outputs.

Outputs (in ``assets/lite/`` unless ``--out`` is given):

* ``config.json``: the HookedTransformerConfig fields plus the task (p, train_frac, data_seed);
* ``model.safetensors``: the final weights (float32);
* ``checkpoints/step_XXXXX.safetensors``: weights at a few steps across training;
* ``training_info.json``: seed, steps, loss/accuracy curve summary, the step at which test
  accuracy passed 99%, the key frequencies and the measured evidence of Fourier features;
* ``SHA256SUMS``.

Usage (from the section folder): ``python assets/train_lite.py [--out DIR]``. Takes about
half a minute on 2 CPU threads. Reruns on the same machine and library versions give the
same weights; other CPUs / torch versions may differ in the last bits (then SHA256SUMS
changes, and the key frequencies may too: the notebook and tests never hard-code them).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

SECTION = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SECTION))
from grok_helpers import build_model, key_frequencies, load_model, make_dataset, sha256_file, train_test_split  # noqa: E402

SEED = 1234
P = 53
TRAIN_FRAC = 0.4
DATA_SEED = 598
CONFIG = dict(
    n_layers=1, d_model=64, d_head=16, n_heads=4, d_mlp=256, d_vocab=P + 1, d_vocab_out=P, n_ctx=3,
    act_fn="relu", normalization_type=None, seed=SEED,
)
LR = 3e-3
WEIGHT_DECAY = 1.0
BETAS = (0.9, 0.98)
STEPS = 3000
EVAL_EVERY = 50
CHECKPOINT_STEPS = [0, 250, 500, 1000, 1500, 1750, 2000, 2250, 2500, 2750, 3000]


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy at the last position, in float64 (avoids the loss spikes float32 gives)."""
    logprobs = logits[:, -1].to(torch.float64).log_softmax(-1)
    return -logprobs.gather(-1, labels[:, None]).mean()


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits[:, -1].argmax(-1) == labels).float().mean())


def fourier_basis(p: int) -> torch.Tensor:
    """Orthonormal rows: constant, then cos(2πkx/p), sin(2πkx/p) for k = 1..p//2."""
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.ones(p, dtype=torch.float64)]
    for k in range(1, p // 2 + 1):
        rows += [torch.cos(2 * math.pi * k * x / p), torch.sin(2 * math.pi * k * x / p)]
    basis = torch.stack(rows)
    return basis / basis.norm(dim=1, keepdim=True)


def evidence(model, tokens, labels, train_idx, p: int) -> dict:
    """Measured signs that the model uses Fourier features (independent of the notebook's code)."""
    F = fourier_basis(p)
    W_E = model.W_E[:p].detach().to(torch.float64)
    emb_power = (F @ W_E).pow(2).sum(-1)  # per basis row
    freq_power = torch.stack([emb_power[2 * k - 1] + emb_power[2 * k] for k in range(1, p // 2 + 1)])
    order = freq_power.argsort(descending=True)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    neurons = cache["blocks.0.mlp.hook_post"][:, -1].to(torch.float64).reshape(p, p, -1)
    neurons = neurons - neurons.mean((0, 1))
    coef = torch.einsum("ia,jb,abn->ijn", F, F, neurons)  # 2-D Fourier coefficients per neuron
    total = coef.pow(2).sum((0, 1))
    # each neuron's frequency: the k whose terms (1, cos k, sin k on either axis) hold most of its variance
    per_k = []
    for k in range(1, p // 2 + 1):
        idx = [0, 2 * k - 1, 2 * k]
        per_k.append(coef[idx][:, idx].pow(2).sum((0, 1)))
    per_k = torch.stack(per_k)  # (p//2, d_mlp)
    best_frac, best_k = (per_k / total.clamp_min(1e-12)).max(0)
    alive = total > 1e-6 * total.max()
    key = key_frequencies(best_k + 1, torch.where(alive, best_frac, torch.zeros_like(best_frac)))
    return dict(
        embedding_top_frequencies=[int(k) + 1 for k in order[:8]],
        embedding_power_fraction_top_keys=round(float(freq_power[[k - 1 for k in key]].sum() / freq_power.sum()), 4),
        key_frequencies=key,
        neurons_alive=int(alive.sum()),
        neuron_frac_explained_by_own_frequency_mean=round(float(best_frac[alive].mean()), 4),
        neurons_per_key_frequency={k: int(((best_k + 1) == k).logical_and(alive).sum()) for k in key},
    )


def excluded_loss(model, tokens, labels, train_idx, key, p: int) -> float:
    """Training loss after removing, from every class's logits over the p*p grid of inputs,
    the directions cos(w(a+b)) and sin(w(a+b)) of the key frequencies."""
    with torch.no_grad():
        logits = model(tokens)[:, -1].to(torch.float64)  # (p*p, p)
    s = (tokens[:, 0] + tokens[:, 1]).to(torch.float64)
    for k in key:
        w = 2 * math.pi * k / p
        for f in (torch.cos, torch.sin):
            d = f(w * s)
            d = d / d.norm()
            logits = logits - d[:, None] * (d @ logits)[None]
    lp = logits[train_idx].log_softmax(-1)
    return float(-lp.gather(-1, labels[train_idx, None]).mean())


def analyse(out: Path) -> dict:
    """Measured evidence of Fourier features for the model saved in ``out`` (final weights and checkpoints)."""
    from grok_helpers import load_checkpoints

    tokens, labels = make_dataset(P)
    train_idx, test_idx = train_test_split(P, TRAIN_FRAC, DATA_SEED)
    model = load_model(folder=out)
    found = evidence(model, tokens, labels, train_idx, P)
    key = found["key_frequencies"]
    per_ckpt = {}
    for step, sd in load_checkpoints(folder=out).items():
        model.load_state_dict(sd)
        with torch.no_grad():
            logits = model(tokens)
        per_ckpt[step] = dict(
            train_loss=round(float(loss_fn(logits[train_idx], labels[train_idx])), 6),
            test_loss=round(float(loss_fn(logits[test_idx], labels[test_idx])), 4),
            excluded_train_loss=round(excluded_loss(model, tokens, labels, train_idx, key, P), 4),
        )
    found["by_checkpoint"] = per_ckpt
    return found


def write_sums(out: Path) -> None:
    for path in out.rglob("*.safetensors"):
        path.chmod(0o644)  # safetensors writes 0600 files; students and the grader need to read them
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    (out / "SHA256SUMS").write_text("".join(f"{sha256_file(out / f)}  {f}\n" for f in files))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "lite")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--evidence-only", action="store_true",
                        help="recompute the evidence in training_info.json for the model already in --out")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.evidence_only:
        info = json.loads((args.out / "training_info.json").read_text())
        info["evidence"] = analyse(args.out)
        (args.out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
        write_sums(args.out)
        print(json.dumps(info["evidence"], indent=2))
        return

    torch.manual_seed(SEED)
    started = time.time()
    tokens, labels = make_dataset(P)
    train_idx, test_idx = train_test_split(P, TRAIN_FRAC, DATA_SEED)

    model = build_model(CONFIG)
    biases = [p for n, p in model.named_parameters() if ".b_" in n or n.endswith("b_U")]
    with torch.no_grad():
        for b in biases:
            b.zero_()
            b.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY, betas=BETAS)

    def state_dict() -> dict[str, torch.Tensor]:
        return {k: v.detach().to(torch.float32).clone().contiguous() for k, v in model.state_dict().items()}

    curve, checkpoints = [], {}
    step_99 = None
    for step in range(args.steps + 1):
        if step in CHECKPOINT_STEPS:
            checkpoints[step] = state_dict()
        if step % EVAL_EVERY == 0 or step == args.steps:
            with torch.no_grad():
                logits = model(tokens)
            row = dict(
                step=step,
                train_loss=round(float(loss_fn(logits[train_idx], labels[train_idx])), 5),
                test_loss=round(float(loss_fn(logits[test_idx], labels[test_idx])), 5),
                train_acc=round(accuracy(logits[train_idx], labels[train_idx]), 4),
                test_acc=round(accuracy(logits[test_idx], labels[test_idx]), 4),
            )
            curve.append(row)
            if step_99 is None and row["test_acc"] > 0.99:
                step_99 = step
            if step % 500 == 0:
                print(row, f"{time.time() - started:.0f}s", flush=True)
        if step == args.steps:
            break
        loss = loss_fn(model(tokens[train_idx]), labels[train_idx])
        opt.zero_grad()
        loss.backward()
        opt.step()

    from safetensors.torch import save_file

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.rglob("*")):
        if old.is_file():
            old.unlink()
    (out / "checkpoints").mkdir(exist_ok=True)
    (out / "config.json").write_text(json.dumps({**CONFIG, "p": P, "train_frac": TRAIN_FRAC, "data_seed": DATA_SEED}, indent=2) + "\n")
    save_file(state_dict(), str(out / "model.safetensors"))
    for step, sd in checkpoints.items():
        save_file(sd, str(out / "checkpoints" / f"step_{step:05d}.safetensors"))

    final = curve[-1]
    info = dict(
        seed=SEED, data_seed=DATA_SEED, p=P, train_frac=TRAIN_FRAC, n_train=int(train_idx.numel()),
        steps=args.steps, optimizer=dict(name="AdamW", lr=LR, weight_decay=WEIGHT_DECAY, betas=list(BETAS), full_batch=True),
        n_params=sum(p.numel() for p in model.parameters()),
        step_test_acc_over_99=step_99,
        final=final,
        curve_summary=[r for r in curve if r["step"] % 250 == 0 or r["step"] == args.steps],
        checkpoint_steps=sorted(checkpoints),
        wall_seconds=round(time.time() - started, 1),
        torch_threads=2,
        versions=dict(torch=torch.__version__),
        note="Reruns on the same machine give the same weights; other CPUs/library versions may differ slightly.",
    )
    info["evidence"] = analyse(out)
    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    write_sums(out)
    print(json.dumps({k: info[k] for k in ("step_test_acc_over_99", "final", "evidence", "wall_seconds")}, indent=2))


if __name__ == "__main__":
    main()
