"""Train the small language model of the `lite` profile of section 1.4.1.

The task: read an IOI prompt (``ioi_helpers.make_prompts``: "When Mary and John went to the store ,
John gave a drink to") and predict the indirect object (" Mary"). The vocabulary is word-level
(``tokenizer.json``: one token per lower-cased word or comma, ``<|endoftext|>`` as BOS).

The model is a GPT-2 (``transformers.GPT2LMHeadModel``): 3 layers, d_model 64, 4 heads, d_mlp 128,
trained with AdamW on the answer (cross-entropy over the whole vocabulary at the last position) plus
ordinary next-token prediction at every earlier position (weight ``LM_WEIGHT``), on the training templates (about four in five; the other fifth is held out for the
notebook and the tests), ABBA and BABA equally often, names drawn at random.

Afterwards it measures, through ``ioi_helpers.load_model``'s code path, the evidence the notebook
states (see :func:`measure`). The model trained this way solves the task by *suppressing the subject*: later heads attend
from END to S2 and write minus its name, while layer-0 heads copy both first names (see the notebook).

Outputs (in ``assets/lite/`` unless ``--out`` is given): config.json, generation_config.json,
model.safetensors, tokenizer.json, training_info.json, SHA256SUMS.

Usage (from the section folder): ``python assets/train_lite.py [--out DIR] [--steps N]``.
About 3 minutes on one CPU core (158 s of training measured; one thread is faster than two on a shared
2-core machine). Reruns on the same machine and library versions give the same
weights; nothing in the notebook or the tests hard-codes a number from them.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

SECTION = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SECTION))
sys.path.insert(0, str(SECTION.parents[1]))  # the course root, for `autograder`
import ioi_helpers as ih  # noqa: E402

SEED = 1410
STEPS = 1500
BATCH = 128
LR = 3e-3
WARMUP = 100
WEIGHT_DECAY = 0.01
LM_WEIGHT = 1.0
N_LAYER, N_EMBD, N_HEAD, N_INNER = 3, 64, 4, 128


def build_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    words = set(w.lower() for w in ih.NAMES)
    for t in ih.templates():
        words.update(ih.fill(t, ih.NAMES[0], ih.NAMES[1], ih.NAMES[0]).lower().split())
    vocab = {ih.EOT: 0}
    for w in sorted(words):
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token=ih.EOT))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "lite")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--measure-only", action="store_true",
                        help="re-measure the evidence of the checkpoint in --out (no training) and rewrite training_info.json")
    args = parser.parse_args()
    if args.measure_only:
        remeasure(args.out)
        return

    import numpy as np
    import tokenizers
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    t0 = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # faster than 2 on a shared 2-core machine
    torch.use_deterministic_algorithms(True)

    tok = build_tokenizer()
    train_templates = [t for t in ih.templates() if not ih.is_held_out(t)]
    name_ids = [tok.token_to_id(n.lower()) for n in ih.NAMES]
    assert None not in name_ids
    # every training template as token ids with placeholders for the three name slots
    rows = []
    for t in train_templates:
        ids = [0] + [tok.token_to_id(w.lower()) if w not in ("X", "Y", "Z") else -1 for w in ih.fill(t, "X", "Y", "Z").split()]
        rows.append(ids)
    rows = torch.tensor(rows)
    assert rows.shape[1] == ih.SEQ_LEN and (rows[:, [2, 4, 10]] == -1).all() and (rows >= -1).all()
    names = torch.tensor(name_ids)

    config = GPT2Config(
        vocab_size=tok.get_vocab_size(), n_positions=16, n_ctx=16, n_embd=N_EMBD, n_layer=N_LAYER, n_head=N_HEAD,
        n_inner=N_INNER, activation_function="gelu_new", layer_norm_epsilon=1e-5, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, tie_word_embeddings=False, bos_token_id=0, eos_token_id=0,
    )
    model = GPT2LMHeadModel(config)
    optim = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, betas=(0.9, 0.98))

    def lr_at(step):
        if step < WARMUP:
            return LR * (step + 1) / WARMUP
        frac = (step - WARMUP) / max(1, args.steps - WARMUP)
        return LR * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    gen = torch.Generator().manual_seed(args.seed)

    def batch():
        t = rows[torch.randint(len(rows), (BATCH,), generator=gen)].clone()
        pick = torch.stack([torch.randperm(len(names), generator=gen)[:2] for _ in range(BATCH)])
        io, s = names[pick[:, 0]], names[pick[:, 1]]
        io_first = torch.randint(2, (BATCH,), generator=gen).bool()
        t[:, 2] = torch.where(io_first, io, s)
        t[:, 4] = torch.where(io_first, s, io)
        t[:, 10] = s
        return t, io

    model.train()
    ema = None
    for step in range(args.steps):
        tokens, target = batch()
        for group in optim.param_groups:
            group["lr"] = lr_at(step)
        logits = model(tokens).logits
        answer_loss = torch.nn.functional.cross_entropy(logits[:, -1], target)
        # next-token prediction on every earlier position too: it is what breaks the symmetry quickly
        # (without it the answer stays at 50% between the two names for thousands of steps)
        lm_loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        loss = answer_loss + LM_WEIGHT * lm_loss
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 250 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss (ema) {ema:.4f}  lr {lr_at(step):.2e}  {time.time() - t0:.0f}s", flush=True)
    train_seconds = time.time() - t0

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for p in out.iterdir():  # start clean so SHA256SUMS lists exactly our files
        if p.is_file():
            p.unlink()
    model.eval()
    model.save_pretrained(out)
    tok.save(str(out / "tokenizer.json"))
    for p in out.iterdir():
        p.chmod(0o644)

    info = {
        "seed": args.seed, "steps": args.steps, "batch_size": BATCH, "learning_rate": LR, "warmup_steps": WARMUP,
        "weight_decay": WEIGHT_DECAY, "lm_weight": LM_WEIGHT, "final_loss_ema": ema, "train_seconds": round(train_seconds, 1),
        "model": {"n_layer": N_LAYER, "n_embd": N_EMBD, "n_head": N_HEAD, "n_inner": N_INNER,
                  "vocab": tok.get_vocab_size(), "parameters": sum(p.numel() for p in model.parameters())},
        "evidence": {},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "numpy": np.__version__},
    }
    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    remeasure(out)
    print(f"saved to {out} in {time.time() - t0:.0f}s")


def remeasure(out: Path) -> None:
    info = json.loads((out / "training_info.json").read_text())
    info["evidence"] = measure(ih.load_folder(out))
    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    (out / "training_info.json").chmod(0o644)
    from autograder.assets.loading import write_sha256sums

    write_sha256sums(out, sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "SHA256SUMS"))
    print(json.dumps(info["evidence"], indent=1))


def measure(model) -> dict:
    """The evidence, on 256 held-out prompts (``make_dataset(model, 256, seed=1)``), with code of its own:

    * ``logit_diff``: mean logit(IO) - logit(S) at END on clean and corrupted (ABC) prompts, and the fraction of
      clean prompts with a positive difference, also on 256 training-template prompts;
    * ``head_patching``: per head, the logit difference of the corrupted run with that head's ``hook_z``
      restored from the clean run, as a fraction of (clean - corrupted);
    * ``dla``: per head, its direct contribution to the logit difference at END (through the final LayerNorm scale);
    * ``attention``: per head, the mean attention from END to IO, to S1 and to S2, and from S2 to S1;
    * ``circuit``: the heads (at most 4) with the largest |head_patching|, and the logit difference kept when every
      other head is mean-ablated (means over the corrupted prompts), against 20 random head sets of the same size.
    """
    import torch

    torch.manual_seed(0)
    d = ih.make_dataset(model, 256, seed=1)
    train_d = ih.make_dataset(model, 256, seed=1, held_out=False)
    rows = torch.arange(len(d["io_tok"]))
    L, H, end = model.cfg.n_layers, model.cfg.n_heads, d["end_pos"]

    def ld(logits, dd=d):
        last = logits[:, dd["end_pos"]]
        return last[rows, dd["io_tok"]] - last[rows, dd["s_tok"]]

    with torch.no_grad():
        clean_logits, clean = model.run_with_cache(d["tokens"])
        corrupt_logits, corrupt = model.run_with_cache(d["corrupt_tokens"])
        train_ld = ld(model(train_d["tokens"]), train_d)
    clean_ld, corrupt_ld = ld(clean_logits), ld(corrupt_logits)
    c, k = float(clean_ld.mean()), float(corrupt_ld.mean())
    out = {"logit_diff": {"clean_mean": round(c, 3), "corrupt_mean": round(k, 3),
                          "clean_positive_fraction": round(float((clean_ld > 0).float().mean()), 4),
                          "train_templates_mean": round(float(train_ld.mean()), 3),
                          "train_templates_positive_fraction": round(float((train_ld > 0).float().mean()), 4)}}

    patch = torch.zeros(L, H)
    for l in range(L):
        for h in range(H):
            def restore(z, hook, h=h):
                z[:, :, h] = clean[hook.name][:, :, h]
                return z

            with torch.no_grad():
                got = ld(model.run_with_hooks(d["corrupt_tokens"], fwd_hooks=[(f"blocks.{l}.attn.hook_z", restore)]))
            patch[l, h] = (got.mean() - k) / (c - k)
    out["head_patching"] = [[round(float(x), 3) for x in r] for r in patch]

    direction = model.W_U[:, d["io_tok"]] - model.W_U[:, d["s_tok"]]  # (d_model, batch)
    scale = clean["ln_final.hook_scale"][:, end]  # (batch, 1)
    dla = torch.zeros(L, H)
    for l in range(L):
        per_head = torch.einsum("bhd,hdm->bhm", clean[f"blocks.{l}.attn.hook_z"][:, end], model.W_O[l]) / scale[:, None]
        dla[l] = torch.einsum("bhm,mb->bh", per_head, direction).mean(0)
    out["dla"] = [[round(float(x), 3) for x in r] for r in dla]

    att = {"end_to_io": [], "end_to_s1": [], "end_to_s2": [], "s2_to_s1": []}
    for l in range(L):
        pat = clean[f"blocks.{l}.attn.hook_pattern"]  # (batch, head, q, k)
        att["end_to_io"].append([round(float(pat[rows, h, end, d["io_pos"]].mean()), 3) for h in range(H)])
        att["end_to_s1"].append([round(float(pat[rows, h, end, d["s1_pos"]].mean()), 3) for h in range(H)])
        att["end_to_s2"].append([round(float(pat[:, h, end, d["s2_pos"]].mean()), 3) for h in range(H)])
        att["s2_to_s1"].append([round(float(pat[rows, h, d["s2_pos"], d["s1_pos"]].mean()), 3) for h in range(H)])
    out["attention"] = att

    means = {l: corrupt[f"blocks.{l}.attn.hook_z"].mean(0) for l in range(L)}  # (pos, head, d_head)

    def kept(heads):
        keep = set(heads)

        def ablate(z, hook):
            l = int(hook.name.split(".")[1])
            for h in range(H):
                if (l, h) not in keep:
                    z[:, :, h] = means[l][:, h]
            return z

        with torch.no_grad():
            got = ld(model.run_with_hooks(d["tokens"], fwd_hooks=[(f"blocks.{l}.attn.hook_z", ablate) for l in range(L)]))
        return float(got.mean()) / c

    order = sorted(ih.head_names(model), key=lambda lh: -abs(float(patch[lh])))
    size = 4
    circuit = sorted(order[:size])
    gen = torch.Generator().manual_seed(0)
    heads = ih.head_names(model)
    randoms = [kept([heads[i] for i in torch.randperm(len(heads), generator=gen)[:size].tolist()]) for _ in range(20)]
    out["circuit"] = {"heads": [list(x) for x in circuit], "kept_fraction": round(kept(circuit), 3),
                      "random_sets_kept_fraction_mean": round(sum(randoms) / len(randoms), 3),
                      "random_sets_kept_fraction_max": round(max(randoms), 3),
                      "nothing_kept_fraction": round(kept([]), 3)}
    return out


if __name__ == "__main__":
    main()
