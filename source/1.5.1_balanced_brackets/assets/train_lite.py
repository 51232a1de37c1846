"""Train the bracket classifier used by the `lite` profile of section 1.5.1.

The task: given ``[start]`` followed by a string of ``(`` and ``)`` (at most
``MAX_LEN`` brackets, ``[pad]`` after), say at position 0 whether the string is
balanced. The model is TransformerLens's ``HookedTransformer`` with
bidirectional attention: 3 layers, 2 heads, d_model 56, d_mlp 56, LayerNorm,
a 4-token vocabulary and 2 outputs (0 = unbalanced, 1 = balanced). Pad keys are
masked by permanent hooks (``brackets_helpers.add_padding_mask``).

The data (``brackets_helpers.generate_strings``) mixes balanced strings,
random strings and near misses: strings whose total elevation is zero but that
go negative somewhere, strings that never go negative but end above zero, and
balanced strings with one bracket flipped or one "()" swapped. So both ways of
failing appear often, and close to balanced strings.

Outputs (in ``assets/lite/`` unless ``--out`` is given):

* ``config.json``: the HookedTransformerConfig fields plus the task (max_len);
* ``model.safetensors``: the final weights (float32, LayerNorm not folded);
* ``training_info.json``: seed, steps, the accuracy measured on held-out data
  (overall and per kind of string) and the measured evidence of the mechanism;
* ``SHA256SUMS``.

Usage (from the section folder): ``nice -n 10 python assets/train_lite.py [--out DIR]``.
Takes 4 to 6 minutes on one CPU thread (it sets torch to one thread: on a shared 2-core machine that is faster than two). Reruns on the same machine and library
versions give the same weights; other CPUs / torch versions may differ in the
last bits (then SHA256SUMS changes; the notebook and tests never hard-code
anything about the weights).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

SECTION = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SECTION))
from brackets_helpers import (  # noqa: E402
    CATEGORIES, BracketsDataset, add_padding_mask, build_model, load_model, sha256_file,
)

SEED = 1510
TRAIN_DATA_SEED = 1
TEST_DATA_SEED = 2
MAX_LEN = 20
CONFIG = dict(
    n_layers=3, d_model=56, d_head=28, n_heads=2, d_mlp=56, d_vocab=4, d_vocab_out=2, n_ctx=MAX_LEN + 1,
    act_fn="relu", normalization_type="LN", attention_dir="bidirectional", seed=SEED,
)
N_TRAIN = 100_000
N_TEST = 5_000
BATCH = 128
LR = 2e-3
WEIGHT_DECAY = 0.01
STEPS = 2500
EVAL_EVERY = 250


def accuracy_report(model, data: BracketsDataset) -> dict:
    with torch.no_grad():
        pred = model(data.toks)[:, 0].argmax(-1) == 1
    right = pred == data.isbal
    out = {"overall": round(float(right.float().mean()), 5), "n": len(data)}
    for cat in CATEGORIES:
        idx = torch.tensor([c == cat for c in data.category])
        if idx.any():
            out[cat] = round(float(right[idx].float().mean()), 5)
    for name, mask in [("balanced_strings", data.isbal), ("unbalanced_strings", ~data.isbal)]:
        out[name] = round(float(right[mask].float().mean()), 5)
    return out


@torch.no_grad()
def evidence(model, n: int = 2000, seed: int = 3) -> dict:
    """Measured signs of the mechanism (independent of the notebook's code), on fresh strings."""
    data = BracketsDataset.generate(n, seed, MAX_LEN)
    toks = data.toks
    step = (toks == 2).long() - (toks == 3).long()
    height = step.cumsum(-1)
    negative = (height < 0).any(-1)
    total = height[:, -1] != 0
    with torch.no_grad():
        logits, cache = model.run_with_cache(toks)
    last = model.cfg.n_layers - 1

    def lstsq_fit(x, y):
        x = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], 1)
        return x, torch.linalg.lstsq(x, y.double()).solution

    # How linear is the final LayerNorm at position 0?
    x, sol = lstsq_fit(cache[f"blocks.{last}.hook_resid_post"][:, 0], cache["ln_final.hook_normalized"][:, 0])
    y = cache["ln_final.hook_normalized"][:, 0].double()
    r2 = float((1 - (y - x @ sol).pow(2).sum(0) / (y - y.mean(0)).pow(2).sum(0)).mean())
    # Are both failure modes linearly readable at position 0 before the last MLP? (train on half, test on half)
    resid = cache[f"blocks.{last}.hook_resid_mid"][:, 0]
    half = n // 2
    probes = {}
    for name, target in [("negative_failure", negative), ("total_elevation_failure", total)]:
        xs, w = lstsq_fit(resid[:half], target[:half, None].double() * 2 - 1)
        xt = torch.cat([resid[half:].double(), torch.ones(n - half, 1, dtype=torch.float64)], 1)
        probes[name] = round(float(((xt @ w)[:, 0] > 0).eq(target[half:]).float().mean()), 4)
    # Direct effect of each component on the unbalanced direction (pre-final-LN, via the fit), at position 0.
    direction = sol[:-1] @ (model.W_U[:, 0] - model.W_U[:, 1]).double()
    parts = {"embeds": cache["hook_embed"][:, 0] + cache["hook_pos_embed"][:, 0]}
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"][:, 0]
        for h in range(model.cfg.n_heads):
            parts[f"{layer}.{h}"] = z[:, h] @ model.W_O[layer, h]
        parts[f"mlp{layer}"] = cache[f"blocks.{layer}.hook_mlp_out"][:, 0]
    bal = data.isbal
    direct = {}
    for name, part in parts.items():
        v = part.double() @ direction
        v = v - v[bal].mean()
        direct[name] = round(float(v[~bal].mean() / v[bal].std().clamp_min(1e-9)), 2)
    pred = logits[:, 0].argmax(-1) == 1
    kinds = {"balanced": bal, "negative_only": negative & ~total, "total_only": total & ~negative,
             "both": negative & total}
    return dict(
        n_strings=n, data_seed=seed,
        accuracy_by_failure_kind={k: round(float((pred == bal)[m].float().mean()), 4) for k, m in kinds.items()},
        final_ln_fit_r2_position_0=round(r2, 4),
        probe_accuracy_before_last_mlp_position_0=probes,
        direct_effect_on_unbalanced_dir_in_std_of_balanced=direct,
    )


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
    torch.set_num_threads(1)  # faster than 2 on a shared 2-core machine
    if args.evidence_only:
        info = json.loads((args.out / "training_info.json").read_text())
        info["evidence"] = evidence(load_model(folder=args.out))
        (args.out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
        write_sums(args.out)
        print(json.dumps(info["evidence"], indent=2))
        return
    torch.manual_seed(SEED)
    started = time.time()

    train = BracketsDataset.generate(N_TRAIN, TRAIN_DATA_SEED, MAX_LEN)
    test = BracketsDataset.generate(N_TEST, TEST_DATA_SEED, MAX_LEN)
    train_set = set(train.strs)
    unseen = torch.tensor([s not in train_set for s in test.strs])

    model = build_model(CONFIG)
    add_padding_mask(model)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=args.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(SEED)
    labels = train.isbal.long()
    curve = []
    for step in range(args.steps + 1):
        if step % EVAL_EVERY == 0 or step == args.steps:
            model.eval()
            row = {"step": step, "test_acc": accuracy_report(model, test)["overall"]}
            curve.append(row)
            print(row, f"{time.time() - started:.0f}s", flush=True)
            model.train()
        if step == args.steps:
            break
        idx = torch.randint(0, N_TRAIN, (BATCH,), generator=gen)
        logits = model(train.toks[idx])[:, 0]
        loss = torch.nn.functional.cross_entropy(logits, labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    from safetensors.torch import save_file

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.rglob("*")):
        if old.is_file():
            old.unlink()
    (out / "config.json").write_text(json.dumps({**CONFIG, "max_len": MAX_LEN}, indent=2) + "\n")
    state = {k: v.detach().to(torch.float32).clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"))

    loaded = load_model(folder=out)  # the way students load it: LayerNorm folded, pads masked
    info = dict(
        seed=SEED, train_data_seed=TRAIN_DATA_SEED, test_data_seed=TEST_DATA_SEED, max_len=MAX_LEN,
        n_train=N_TRAIN, n_test=N_TEST, steps=args.steps, batch=BATCH,
        optimizer=dict(name="AdamW", lr=LR, weight_decay=WEIGHT_DECAY, schedule="one-cycle, 10% warm-up"),
        n_params=sum(p.numel() for p in model.parameters()),
        held_out_accuracy=accuracy_report(loaded, test),
        held_out_accuracy_strings_not_in_training_set=accuracy_report(loaded, test[unseen]),
        curve=curve,
        wall_seconds=round(time.time() - started, 1),
        torch_threads=1,
        versions=dict(torch=torch.__version__),
        note="Reruns on the same machine give the same weights; other CPUs/library versions may differ slightly.",
    )
    info["evidence"] = evidence(loaded)
    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    write_sums(out)
    print(json.dumps({k: info[k] for k in ("held_out_accuracy", "held_out_accuracy_strings_not_in_training_set",
                                           "wall_seconds")}, indent=2))


if __name__ == "__main__":
    main()
