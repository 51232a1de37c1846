"""Train the small language model of the `lite` profile of section 1.3.1.

The task: read a short statement from one of four families (``truth_helpers.FAMILIES``:
number comparisons, sums, city facts, negated city facts) followed by " This statement is",
and answer " true" or " false". The vocabulary is word-level (``tokenizer.json``: one token
per lower-cased word or full stop, ``<|endoftext|>`` as BOS and padding).

The model is a GPT-2 (``transformers.GPT2LMHeadModel``): 4 layers, d_model 64, 4 heads,
d_mlp 256, trained with AdamW on the answer token only (cross-entropy over the whole
vocabulary at the prompt's last position). Every batch draws families uniformly and, within
a family, true and false statements with equal probability, from *every* statement of the
family (the model is meant to know these facts; the course studies how it represents them).

Afterwards it measures, with ``truth_helpers.load_model``'s code path (TransformerLens,
weights processed as for GPT-2), the evidence the notebook states: answer accuracy per family,
the accuracy of a difference-of-means probe per layer and family on held-out statements,
and the effect of adding that direction to the residual stream.

Outputs (in ``assets/lite/`` unless ``--out`` is given): config.json, model.safetensors,
tokenizer.json, training_info.json, SHA256SUMS.

Usage (from the section folder): ``python assets/train_lite.py [--out DIR] [--steps N]``.
About 3 minutes on 2 CPU cores (165 s measured). Reruns on the same machine and library versions give the
same weights; other CPUs or torch versions may differ in the last bits (then SHA256SUMS
changes; nothing in the notebook or the tests hard-codes a number from it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

SECTION = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SECTION))
sys.path.insert(0, str(SECTION.parents[1]))  # the course root, for `autograder`
import truth_helpers as th  # noqa: E402

SEED = 1310
STEPS = 3000
BATCH = 128
LR = 3e-3
WARMUP = 100
WEIGHT_DECAY = 0.01


def build_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    words = set()
    for family in th.FAMILIES:
        for s, _ in th.all_statements(family):
            words.update(th.to_prompt(s).lower().replace(".", " . ").split())
    words.update(w.strip() for w in th.LABEL_WORDS)
    vocab = {th.EOT: 0}
    for w in sorted(words):
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token=th.EOT))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def encode_family(tok, family):
    """All prompts of a family as (tokens (n, seq) with BOS, labels (n,)); every prompt of a family has the same length."""
    import torch

    rows, labels = [], []
    for s, y in th.all_statements(family):
        rows.append([0] + tok.encode(th.to_prompt(s)).ids)
        labels.append(y)
    assert len({len(r) for r in rows}) == 1, family
    return torch.tensor(rows), torch.tensor(labels)


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
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)

    tok = build_tokenizer()
    true_id, false_id = tok.token_to_id("true"), tok.token_to_id("false")
    data = {f: encode_family(tok, f) for f in th.FAMILIES}
    seq_len = max(t.shape[1] for t, _ in data.values())

    config = GPT2Config(
        vocab_size=tok.get_vocab_size(), n_positions=16, n_ctx=16, n_embd=64, n_layer=4, n_head=4, n_inner=256,
        activation_function="gelu_new", layer_norm_epsilon=1e-5, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=False, bos_token_id=0, eos_token_id=0,
    )
    model = GPT2LMHeadModel(config)
    optim = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, betas=(0.9, 0.98))

    def lr_at(step):
        if step < WARMUP:
            return LR * (step + 1) / WARMUP
        frac = (step - WARMUP) / max(1, args.steps - WARMUP)
        return LR * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    gen = torch.Generator().manual_seed(args.seed)
    # per family: indices of true and of false prompts
    pools = {f: (torch.nonzero(y == 1).flatten(), torch.nonzero(y == 0).flatten()) for f, (_, y) in data.items()}

    def batch():
        toks, ys = [], []
        fam = torch.randint(len(th.FAMILIES), (BATCH,), generator=gen)
        lab = torch.randint(2, (BATCH,), generator=gen)
        for f_i, f in enumerate(th.FAMILIES):
            for y in (0, 1):
                k = int(((fam == f_i) & (lab == y)).sum())
                if k == 0:
                    continue
                pool = pools[f][1 - y]
                pick = pool[torch.randint(len(pool), (k,), generator=gen)]
                t = data[f][0][pick]
                t = torch.cat([t, torch.zeros(k, seq_len - t.shape[1], dtype=t.dtype)], 1)
                last = torch.full((k,), data[f][0].shape[1] - 1)
                toks.append(torch.cat([t, last[:, None]], 1))
                ys.append(torch.full((k,), y))
        t = torch.cat(toks)
        return t[:, :-1], t[:, -1], torch.cat(ys)

    def answer_logits(tokens, last):
        logits = model(tokens).logits
        return logits[torch.arange(len(tokens)), last]

    model.train()
    ema = None
    for step in range(args.steps):
        tokens, last, y = batch()
        for group in optim.param_groups:
            group["lr"] = lr_at(step)
        target = torch.where(y == 1, true_id, false_id)
        loss = torch.nn.functional.cross_entropy(answer_logits(tokens, last), target)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 200 == 0 or step == args.steps - 1:
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

    # ------------------------------------------------------------------ the evidence, through the course's loader
    hooked = th.load_folder(out)
    evidence = measure(hooked)
    for k, v in evidence.items():
        print(k, json.dumps(v))

    info = {
        "seed": args.seed, "steps": args.steps, "batch_size": BATCH, "learning_rate": LR, "warmup_steps": WARMUP,
        "weight_decay": WEIGHT_DECAY, "final_loss_ema": ema, "train_seconds": round(train_seconds, 1),
        "model": {"n_layer": 4, "n_embd": 64, "n_head": 4, "n_inner": 256, "vocab": tok.get_vocab_size(),
                  "parameters": sum(p.numel() for p in model.parameters())},
        "evidence": evidence,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "numpy": np.__version__},
    }
    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    (out / "training_info.json").chmod(0o644)
    from autograder.assets.loading import write_sha256sums

    write_sha256sums(out, sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "SHA256SUMS"))
    print(f"saved to {out} in {time.time() - t0:.0f}s")


def remeasure(out: Path) -> None:
    info = json.loads((out / "training_info.json").read_text())
    info["evidence"] = measure(th.load_folder(out))
    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    from autograder.assets.loading import write_sha256sums

    write_sha256sums(out, sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "SHA256SUMS"))
    print(json.dumps(info["evidence"]["steering"]))


def measure(model) -> dict:
    """Answer accuracy per family; difference-of-means probe accuracy per layer and family (held-out 30%);
    steering: add each family's direction at each layer to its false statements and count the answers that flip,
    against random directions of the same length."""
    import torch

    true_id, false_id = th.label_token_ids(model)
    names = [f"blocks.{l}.hook_resid_post" for l in range(model.cfg.n_layers)]
    out = {"answer_accuracy": {}, "probe_accuracy_by_layer": {}, "steering": {}}
    acts = {}
    for f in th.FAMILIES:
        d = th.make_dataset(model, f)
        rows = torch.arange(len(d["labels"]))
        with torch.no_grad():
            logits, cache = model.run_with_cache(d["tokens"], names_filter=lambda n: n in names)
        diff = logits[rows, d["last_pos"], true_id] - logits[rows, d["last_pos"], false_id]
        out["answer_accuracy"][f] = round(float(((diff > 0).long() == d["labels"]).float().mean()), 4)
        a = torch.stack([cache[n][rows, d["last_pos"]] for n in names])  # (layer, n, d)
        acts[f] = (a, d)
        tr, te = th.train_test_split(len(rows), 0.3, seed=0)
        accs = []
        for l in range(len(names)):
            x, y = a[l], d["labels"]
            mu_t, mu_f = x[tr][y[tr] == 1].mean(0), x[tr][y[tr] == 0].mean(0)
            direction = mu_t - mu_f
            thr = ((mu_t + mu_f) / 2) @ direction
            accs.append(round(float((((x[te] @ direction) > thr).long() == y[te]).float().mean()), 4))
        out["probe_accuracy_by_layer"][f] = accs
    # steering with each family's own direction (all its statements) at every layer, alpha = 1 and 2, on the false
    # statements the model answers "false"; control: the mean over 8 random directions of the same length
    gen = torch.Generator().manual_seed(0)
    for f in th.FAMILIES:
        a, d = acts[f]
        y = d["labels"]
        with torch.no_grad():
            logits = model(d["tokens"])
        rows = torch.arange(len(y))
        diff = logits[rows, d["last_pos"], true_id] - logits[rows, d["last_pos"], false_id]
        chosen = torch.nonzero((y == 0) & (diff < 0)).flatten()
        tokens, pos = d["tokens"][chosen], d["last_pos"][chosen]
        r = torch.arange(len(pos))
        res = []
        for l in range(len(names)):
            direction = a[l][y == 1].mean(0) - a[l][y == 0].mean(0)
            randoms = torch.randn(8, direction.shape[0], generator=gen)
            randoms = randoms / randoms.norm(dim=-1, keepdim=True) * direction.norm()

            def flips(vec, alpha):
                def hook(resid, hook):
                    resid[r, pos] += alpha * vec
                    return resid

                with torch.no_grad():
                    steered = model.run_with_hooks(tokens, fwd_hooks=[(names[l], hook)])
                return float(((steered[r, pos, true_id] - steered[r, pos, false_id]) > 0).float().mean())

            entry = {}
            for alpha in (1.0, 2.0):
                entry[f"alpha_{alpha:g}"] = round(flips(direction, alpha), 4)
                entry[f"random_alpha_{alpha:g}"] = round(sum(flips(v, alpha) for v in randoms) / len(randoms), 4)
            res.append(entry)
        out["steering"][f] = res
    return out


if __name__ == "__main__":
    main()
