"""Train the small OthelloGPT used by the `lite` profile of section 1.5.3, and its board-state probes.

The task: a game of Othello as a sequence of 60 move tokens (``othello_helpers``' vocabulary:
1..60 = the non-centre squares, 0 = pass/pad, unused). The model reads moves 0..58 and predicts
the next move at every position. The games are random legal games in which nobody passes
(every move is uniform among the legal ones), so the best possible prediction is "uniform over
the legal moves": a model can only do that by tracking the board.

The model is TransformerLens's ``HookedTransformer``: 4 layers, d_model 128, 4 heads, d_mlp 512,
LayerNorm, GELU, learned positions. Every step sees 64 fresh games (AdamW, warm-up then cosine
decay). Afterwards, a linear probe (no bias) is trained on the residual stream after every layer
to read the board relative to the player to move: blank / mine / theirs for each of the 64
squares.

Outputs (in ``assets/lite/`` unless ``--out`` is given):

* ``config.json``: the HookedTransformerConfig fields plus ``probe_layer``;
* ``model.safetensors``: the final weights (float32);
* ``probe.safetensors``: ``probe`` (d_model, 8, 8, 3), the probe at ``probe_layer``'s
  ``resid_post``, and ``layer_{L}`` for every layer (``layer_-1`` reads the embeddings);
* ``training_info.json``: seeds, steps, the loss curve, and the measured evidence: top-1
  legal-move accuracy against two baselines, and the probe accuracy per layer against the
  majority-class baseline;
* ``SHA256SUMS``.

Usage (from the section folder): ``nice -n 10 python assets/train_lite.py [--out DIR] [--steps N]``.
Takes 20 to 35 minutes on one CPU core (``torch.set_num_threads(1)``; 36 min measured on a busy shared 2-core machine). Reruns on the same machine
and library versions give the same weights; other CPUs / torch versions may differ in the last
bits (then SHA256SUMS changes; nothing in the notebook or the tests hard-codes a number from it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SECTION = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SECTION))
import othello_helpers as oh  # noqa: E402

SEED = 1530
TRAIN_DATA_SEED = 1
EVAL_SEED = 2
PROBE_TRAIN_SEED = 3
PROBE_TEST_SEED = 4
CONFIG = dict(
    n_layers=4, d_model=128, d_head=32, n_heads=4, d_mlp=512, d_vocab=61, d_vocab_out=61, n_ctx=59,
    act_fn="gelu", normalization_type="LN", positional_embedding_type="standard", seed=SEED,
)
BATCH = 64
STEPS = 3000
LR = 2e-3
WARMUP = 100
WEIGHT_DECAY = 0.01
CHUNK = 8192  # games generated at a time
N_EVAL = 1000
N_PROBE_TRAIN, N_PROBE_TEST = 1500, 500
PROBE_STEPS, PROBE_BATCH, PROBE_LR = 1500, 1024, 3e-3


def lr_at(step: int, steps: int) -> float:
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    return LR * 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / max(1, steps - WARMUP)))


def game_stream(seed: int):
    """Endless batches of training tokens (BATCH, 60), from chunks of pass-free random games."""
    chunk_seed = seed * 100_000
    while True:
        squares, _ = oh.random_games(CHUNK, chunk_seed)
        chunk_seed += 1
        tokens = oh.squares_to_tokens(squares)
        for i in range(0, CHUNK - BATCH + 1, BATCH):
            yield tokens[i: i + BATCH]


@torch.no_grad()
def legal_move_evidence(model, n_games: int = N_EVAL, seed: int = EVAL_SEED) -> dict:
    squares, boards = oh.random_games(n_games, seed)
    tokens = oh.squares_to_tokens(squares)
    legal = oh.legal_token_masks(boards)[:, :59]  # legal tokens after moves 0..58
    preds, losses = [], []
    for i in range(0, n_games, 250):
        logits = model(tokens[i: i + 250, :59])
        losses.append(F.cross_entropy(logits.reshape(-1, 61), tokens[i: i + 250, 1:].reshape(-1), reduction="sum"))
        logits[..., 0] = -torch.inf  # never count "pass" as a prediction
        preds.append(logits.argmax(-1))
    pred = torch.cat(preds)
    top1_legal = legal.gather(-1, pred[..., None])[..., 0].float()
    n_legal = legal.sum(-1).float()
    n_empty = (torch.as_tensor(boards[:, :59]) == 0).sum(-1).float()
    # the loss of the ideal predictor: uniform over the legal moves
    return dict(
        n_games=n_games,
        top1_legal_accuracy=round(float(top1_legal.mean()), 4),
        top1_legal_accuracy_by_position_quartile=[round(float(q.mean()), 4) for q in top1_legal.chunk(4, dim=1)],
        baseline_uniform_over_60_squares=round(float((n_legal / 60).mean()), 4),
        baseline_uniform_over_empty_squares=round(float((n_legal / n_empty).mean()), 4),
        next_move_loss=round(float(torch.stack(losses).sum() / (n_games * 59)), 4),
        ideal_loss_uniform_over_legal=round(float(n_legal.log().mean()), 4),
    )


@torch.no_grad()
def residuals(model, tokens: torch.Tensor) -> dict[int, torch.Tensor]:
    """{layer: (n_games, 59, d_model)}: resid_post of each layer; -1 = hook_resid_pre of block 0."""
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(model.cfg.n_layers)]
    out = {l: [] for l in range(-1, model.cfg.n_layers)}
    for i in range(0, tokens.shape[0], 250):
        _, cache = model.run_with_cache(tokens[i: i + 250, :59], names_filter=lambda n: n in names)
        for l, name in zip(range(-1, model.cfg.n_layers), names):
            out[l].append(cache[name])
    return {l: torch.cat(v) for l, v in out.items()}


def train_probe(resid: torch.Tensor, states: torch.Tensor, seed: int) -> torch.Tensor:
    """A (d_model, 8, 8, 3) probe: logits = resid @ probe, trained with Adam on cross-entropy."""
    g = torch.Generator().manual_seed(seed)
    x = resid.reshape(-1, resid.shape[-1])
    y = states.reshape(-1, 64)
    probe = torch.nn.Parameter(torch.randn(x.shape[-1], 64 * 3, generator=g) / math.sqrt(x.shape[-1]))
    opt = torch.optim.Adam([probe], lr=PROBE_LR)
    for step in range(PROBE_STEPS):
        idx = torch.randint(0, x.shape[0], (PROBE_BATCH,), generator=g)
        logits = (x[idx] @ probe).reshape(-1, 64, 3)
        loss = F.cross_entropy(logits.reshape(-1, 3), y[idx].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        for group in opt.param_groups:
            group["lr"] = PROBE_LR * (1 - step / PROBE_STEPS)
    return probe.detach().reshape(-1, 8, 8, 3).contiguous()


@torch.no_grad()
def probe_accuracy(resid: torch.Tensor, states: torch.Tensor, probe: torch.Tensor) -> dict:
    pred = torch.einsum("gpd,dijk->gpijk", resid, probe).argmax(-1)
    right = pred == states
    occupied = states != 0
    return dict(
        accuracy=round(float(right.float().mean()), 4),
        mine_vs_theirs_accuracy_on_occupied=round(float(right[occupied].float().mean()), 4),
        blank_vs_occupied_accuracy=round(float(((pred == 0) == (states == 0)).float().mean()), 4),
    )


def probe_evidence(model) -> tuple[dict, dict[int, torch.Tensor], int]:
    sq_tr, b_tr = oh.random_games(N_PROBE_TRAIN, PROBE_TRAIN_SEED)
    sq_te, b_te = oh.random_games(N_PROBE_TEST, PROBE_TEST_SEED)
    st_tr, st_te = oh.relative_states(b_tr)[:, :59], oh.relative_states(b_te)[:, :59]
    res_tr = residuals(model, oh.squares_to_tokens(sq_tr))
    res_te = residuals(model, oh.squares_to_tokens(sq_te))
    # majority baselines, fitted on the probe's training games, scored on the test games
    counts = F.one_hot(st_tr, 3).sum(0)  # (59, 8, 8, 3)
    maj_pos_sq = counts.argmax(-1)
    maj_global = F.one_hot(st_tr, 3).sum((0, 1, 2, 3)).argmax()
    occ = st_te != 0
    occ_counts = counts[..., 1:].argmax(-1) + 1  # majority of mine/theirs given occupied, per position and square
    baselines = dict(
        majority_class_overall=round(float((st_te == maj_global).float().mean()), 4),
        majority_class_per_position_and_square=round(float((st_te == maj_pos_sq).float().mean()), 4),
        mine_vs_theirs_majority_on_occupied_per_position_and_square=round(
            float((st_te == occ_counts.expand_as(st_te))[occ].float().mean()), 4),
    )
    probes, per_layer = {}, {}
    for layer in res_tr:
        t0 = time.time()
        probes[layer] = train_probe(res_tr[layer], st_tr, seed=SEED + 10 + layer)
        per_layer[str(layer)] = probe_accuracy(res_te[layer], st_te, probes[layer])
        print(f"probe layer {layer}: {per_layer[str(layer)]} ({time.time() - t0:.0f}s)", flush=True)
    best = max(range(model.cfg.n_layers), key=lambda l: per_layer[str(l)]["mine_vs_theirs_accuracy_on_occupied"])
    info = dict(
        read_at="blocks.{L}.hook_resid_post (L = -1: blocks.0.hook_resid_pre); positions 0..58",
        classes="0 blank, 1 mine, 2 theirs (relative to the player to move next)",
        n_train_games=N_PROBE_TRAIN, n_test_games=N_PROBE_TEST, steps=PROBE_STEPS, batch=PROBE_BATCH, lr=PROBE_LR,
        per_layer=per_layer, baselines=baselines, probe_layer=best,
    )
    return info, probes, best


def write_sums(out: Path) -> None:
    for path in out.rglob("*.safetensors"):
        path.chmod(0o644)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    (out / "SHA256SUMS").write_text("".join(f"{oh.sha256_file(out / f)}  {f}\n" for f in files))


def main() -> None:
    global PROBE_STEPS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "lite")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--probe-steps", type=int, default=None)
    args = parser.parse_args()
    if args.probe_steps is not None:
        PROBE_STEPS = args.probe_steps
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    started = time.time()

    from safetensors.torch import save_file

    model = oh.build_model(CONFIG)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=WEIGHT_DECAY), dict(params=no_decay, weight_decay=0.0)],
                            lr=LR, betas=(0.9, 0.99))
    stream = game_stream(TRAIN_DATA_SEED)
    curve = []
    running = None
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps)
        tokens = next(stream)
        logits = model(tokens[:, :59])
        loss = F.cross_entropy(logits.reshape(-1, 61), tokens[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running = float(loss) if running is None else 0.98 * running + 0.02 * float(loss)
        if (step + 1) % 250 == 0 or step + 1 == args.steps:
            model.eval()
            ev = legal_move_evidence(model, n_games=200, seed=EVAL_SEED + 1000)
            model.train()
            row = dict(step=step + 1, train_loss_ema=round(running, 4), top1_legal_200_games=ev["top1_legal_accuracy"],
                       seconds=round(time.time() - started))
            curve.append(row)
            print(row, flush=True)
    train_seconds = time.time() - started
    model.eval()

    legal = legal_move_evidence(model)
    print("legal moves:", legal, flush=True)
    probe_info, probes, best = probe_evidence(model)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.rglob("*")):
        if old.is_file():
            old.unlink()
    (out / "config.json").write_text(json.dumps({**CONFIG, "probe_layer": best}, indent=2) + "\n")
    save_file({k: v.detach().to(torch.float32).clone().contiguous() for k, v in model.state_dict().items()},
              str(out / "model.safetensors"))
    save_file({"probe": probes[best].clone(), **{f"layer_{l}": p for l, p in probes.items()}}, str(out / "probe.safetensors"))
    info = dict(
        seed=SEED, train_data_seed=TRAIN_DATA_SEED, eval_seed=EVAL_SEED,
        probe_seeds=dict(train=PROBE_TRAIN_SEED, test=PROBE_TEST_SEED),
        games="random legal pass-free games, each move uniform among the legal ones (othello_helpers.random_games)",
        steps=args.steps, batch_games=BATCH, games_seen=args.steps * BATCH,
        optimizer=dict(name="AdamW", lr=LR, warmup=WARMUP, schedule="cosine", weight_decay=WEIGHT_DECAY, grad_clip=1.0),
        n_params=sum(p.numel() for p in model.parameters()),
        curve=curve,
        legal_moves=legal,
        probe=probe_info,
        train_seconds=round(train_seconds, 1),
        wall_seconds=round(time.time() - started, 1),
        torch_threads=1,
        versions=dict(torch=torch.__version__, numpy=np.__version__),
        note="Reruns on the same machine give the same weights; other CPUs/library versions may differ slightly.",
    )
    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    write_sums(out)
    print(json.dumps({k: info[k] for k in ("legal_moves", "probe", "wall_seconds")}, indent=2))


if __name__ == "__main__":
    main()
