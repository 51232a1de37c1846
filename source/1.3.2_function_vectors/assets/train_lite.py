"""Train the small language model of the `lite` profile of section 1.3.2 and measure its function vectors.

The data: sequences of in-context examples ``<|endoftext|> x1 -> y1 , x2 -> y2 , ... , x10 -> y10`` of one task of
``fv_helpers.LITE_TASKS`` (successor, predecessor and a fixed permutation over number words; capital, second city
and demonym over countries), the pairs drawn without replacement. The loss is the cross-entropy of every ``y_i`` at
the ``->`` before it, so the model learns to answer after 0, 1, ..., 9 examples. Within a domain the query word alone
does not say which task is meant (``seven`` can go to ``eight``, ``six`` or the permutation's image): the model must
read the task off the examples, which is in-context learning.

Plus an auxiliary task-vector loss, from step 0 (without it, this small model spreads the task over its last blocks
and its function vectors barely work on the number tasks): for each task in the batch, the mean attention output
of block ``TV_LAYER`` at the arrows (with at least ``TV_MIN_EXAMPLES`` examples before them) over the batch's
sequences of that task is added, at the arrow, to the output of block ``TV_LAYER`` of zero-shot prompts ``q ->`` of
that task, and the model must then give the task's answer. This asks the model for what a function vector assumes:
a query-independent task representation that block ``TV_LAYER``'s heads write at the last position and that the
later blocks use. The heads, their ranking by indirect effect and the function vectors are still measured the usual
way, afterwards, on the saved model.

The model is a GPT-2 (``transformers.GPT2LMHeadModel``): 4 layers, d_model 128, 4 heads, d_mlp 512, word-level
vocabulary (``tokenizer.json``: one token per word, ``->`` and ``,``; ``<|endoftext|>`` as BOS), AdamW.

Afterwards :func:`measure` computes, with nnsight on the saved folder (``fv_helpers.load_folder``), the evidence the
notebook states: ICL accuracy by number of examples, the shuffled-label baseline, each head's average indirect
effect, and the zero-shot accuracy with the function vector added against a random vector of the same norm and the
mean residual-stream vector.

Outputs (in ``assets/lite/`` unless ``--out`` is given): config.json, generation_config.json, model.safetensors,
tokenizer.json, training_info.json, SHA256SUMS.

Usage (from the section folder): ``python assets/train_lite.py [--out DIR] [--steps N] [--measure-only]``.
1000 steps took 387 s (398 s with the measurement) on one thread of a busy 2-core machine. Reruns on the same
machine and library versions give the same weights.
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
import fv_helpers as fh  # noqa: E402

SEED = 1332
STEPS = 1000
BATCH = 48
N_EXAMPLES = 10  # pairs per training sequence
LR = 2e-3
WARMUP = 100
WEIGHT_DECAY = 0.01
CONFIG = dict(n_layer=4, n_embd=128, n_head=4, n_inner=512)
# the auxiliary task-vector loss (see main())
TV_LAYER = 1
TV_WEIGHT = 1.0
TV_MIN_EXAMPLES = 2
TV_QUERIES = 16

# what measure() uses (the notebook uses the same settings)
EVAL_PROMPTS = 64
FV_EXAMPLES = 6
FV_LAYER = 0  # the function vector is added to the output of block 0 (of 0..3), before the heads that carry the task
TOP_HEADS = 4


def vocabulary() -> list[str]:
    words = set()
    for task in fh.LITE_TASKS.values():
        for x, y in task.items():
            words.update((x, y))
    return [fh.EOT, fh.ARROW, fh.SEP] + sorted(words)


def build_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=fh.EOT))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "lite")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--measure-only", action="store_true",
                        help="re-measure the checkpoint in --out (no training) and rewrite training_info.json")
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
    torch.set_num_threads(1)

    tok = build_tokenizer()
    vocab = tok.get_vocab()
    arrow, sep = vocab[fh.ARROW], vocab[fh.SEP]
    tasks = [[(vocab[x], vocab[y]) for x, y in t.items()] for t in fh.LITE_TASKS.values()]
    tasks = [torch.tensor(t) for t in tasks]
    seq_len = 1 + 4 * N_EXAMPLES - 1  # BOS, then "x -> y ," per pair, without the last ","

    config = GPT2Config(
        vocab_size=len(vocab), n_positions=64, n_ctx=64, activation_function="gelu_new", layer_norm_epsilon=1e-5,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False, bos_token_id=0,
        eos_token_id=0, **CONFIG,
    )
    model = GPT2LMHeadModel(config)
    optim = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, betas=(0.9, 0.98))

    def lr_at(step):
        if step < WARMUP:
            return LR * (step + 1) / WARMUP
        frac = (step - WARMUP) / max(1, args.steps - WARMUP)
        return LR * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    gen = torch.Generator().manual_seed(args.seed)
    arrow_pos = torch.tensor([2 + 4 * i for i in range(N_EXAMPLES)])  # where each answer is predicted

    last_which = [None]

    def batch():
        rows = []
        which = torch.randint(len(tasks), (BATCH,), generator=gen)
        for t in which.tolist():
            pairs = tasks[t][torch.randperm(len(tasks[t]), generator=gen)[:N_EXAMPLES]]
            seq = [0]
            for x, y in pairs.tolist():
                seq += [x, arrow, y, sep]
            rows.append(seq[:seq_len])
        last_which[0] = which
        return torch.tensor(rows)

    model.train()
    ema = None
    for step in range(args.steps):
        tokens = batch()
        for group in optim.param_groups:
            group["lr"] = lr_at(step)
        cap = {}
        hk = model.transformer.h[TV_LAYER].attn.c_proj.register_forward_hook(lambda m, a, o: cap.__setitem__("o", o))
        logits = model(tokens).logits[:, arrow_pos]  # (batch, N_EXAMPLES, vocab)
        main_loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, arrow_pos + 1].flatten())
        hk.remove()
        # the auxiliary task-vector loss: per task in the batch, the mean attention output of block TV_LAYER
        # (without c_proj's bias) at the arrows with at least TV_MIN_EXAMPLES examples before them, over the
        # batch's rows of that task, is added to the output of block TV_LAYER at the arrow of TV_QUERIES zero-shot
        # prompts "q ->" of that task, which must then give the task's answer. The gradient flows into both the
        # heads that build the mean and the blocks that read it.
        att = cap["o"][:, arrow_pos[TV_MIN_EXAMPLES:]] - model.transformer.h[TV_LAYER].attn.c_proj.bias  # (B, P, D)
        which = last_which[0]
        vecs, zq, za, owner = [], [], [], []
        for k, t in enumerate(sorted(set(which.tolist()))):
            vecs.append(att[which == t].mean((0, 1)))
            idx = torch.randint(len(tasks[t]), (TV_QUERIES,), generator=gen)
            for i in idx.tolist():
                zq.append([0, int(tasks[t][i, 0]), arrow])
                za.append(int(tasks[t][i, 1]))
                owner.append(k)
        add = torch.stack(vecs)[torch.tensor(owner)]  # (n zero-shot prompts, d_model)

        def add_hook(module, inputs, output):
            x = output[0] if isinstance(output, tuple) else output
            x = torch.cat([x[:, :-1], (x[:, -1] + add)[:, None]], 1)
            return (x,) + tuple(output[1:]) if isinstance(output, tuple) else x

        hk2 = model.transformer.h[TV_LAYER].register_forward_hook(add_hook)
        zero_logits = model(torch.tensor(zq)).logits[:, -1]
        hk2.remove()
        tv_loss = torch.nn.functional.cross_entropy(zero_logits, torch.tensor(za))
        loss = main_loss + TV_WEIGHT * tv_loss
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        ema = main_loss.item() if ema is None else 0.95 * ema + 0.05 * main_loss.item()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss (ema) {ema:.4f}  task-vector loss {tv_loss.item():.4f}  "
                  f"lr {lr_at(step):.2e}  {time.time() - t0:.0f}s", flush=True)
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

    evidence = measure(fh.load_folder(out))
    print(json.dumps(evidence, indent=1))
    info = {
        "seed": args.seed, "steps": args.steps, "batch_size": BATCH, "examples_per_sequence": N_EXAMPLES,
        "learning_rate": LR, "warmup_steps": WARMUP, "weight_decay": WEIGHT_DECAY, "final_loss_ema": ema,
        "task_vector_loss": {"layer": TV_LAYER, "weight": TV_WEIGHT, "min_examples": TV_MIN_EXAMPLES,
                             "zero_shot_queries_per_task": TV_QUERIES, "final": round(tv_loss.item(), 4)},
        "train_seconds": round(train_seconds, 1),
        "model": {**CONFIG, "vocab": len(vocab), "parameters": sum(p.numel() for p in model.parameters())},
        "evidence": evidence,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "numpy": np.__version__},
    }
    write_info(out, info)
    print(f"saved to {out} in {time.time() - t0:.0f}s")


def write_info(out: Path, info: dict) -> None:
    from autograder.assets.loading import write_sha256sums

    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    (out / "training_info.json").chmod(0o644)
    write_sha256sums(out, sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "SHA256SUMS"))


def remeasure(out: Path) -> None:
    info = json.loads((out / "training_info.json").read_text())
    info["evidence"] = measure(fh.load_folder(out))
    print(json.dumps(info["evidence"], indent=1))
    write_info(out, info)


# ---------------------------------------------------------------------------------------------------- the evidence
# Written here with nnsight directly (not with the notebook's solutions), so that the section's tests re-measure
# the evidence independently of the code they grade.


def measure(model) -> dict:
    import torch

    torch.manual_seed(0)
    L, H = model.config.n_layer, model.config.n_head
    D = model.config.n_embd
    dh = D // H
    tasks = list(fh.LITE_TASKS)
    out: dict = {"accuracy_by_examples": {}, "shuffled_accuracy": {}}

    def last_logits(tokens, edit=None):
        box = {}
        with torch.no_grad(), model.trace(tokens):
            if edit is not None:
                edit()
            box["logits"] = model.lm_head.output[:, -1].save()
        return box["logits"]

    def acc(lg, answers):
        return round(float((lg.argmax(-1) == answers).float().mean()), 4)

    for task in tasks:
        out["accuracy_by_examples"][task] = {}
        for k in (0, 1, 2, 4, 6, 8):
            d = fh.make_icl_dataset(model, task, EVAL_PROMPTS, k, seed=100)
            out["accuracy_by_examples"][task][str(k)] = acc(last_logits(d["tokens"]), d["answers"])
        d = fh.make_icl_dataset(model, task, EVAL_PROMPTS, FV_EXAMPLES, seed=100, shuffle_labels=True)
        out["shuffled_accuracy"][task] = acc(last_logits(d["tokens"]), d["answers"])

    # mean head outputs (input of c_proj at the last position, split into heads) over clean prompts, per task;
    # indirect effect of each head: P(answer) on shuffled prompts with that head's mean output patched in, minus
    # P(answer) on the shuffled prompts unpatched, averaged over prompts and tasks
    ie = torch.zeros(L, H)
    head_means, resid_means, resid_tv_means = {}, {}, {}
    for task in tasks:
        clean = fh.make_icl_dataset(model, task, EVAL_PROMPTS, FV_EXAMPLES, seed=1)
        corrupt = fh.make_icl_dataset(model, task, EVAL_PROMPTS // 2, FV_EXAMPLES, seed=2, shuffle_labels=True)
        head_z, box = [], {}  # filled inside the trace (names first bound inside a trace block stay there)
        with torch.no_grad(), model.trace(clean["tokens"]):
            for layer in range(L):
                head_z.append(model.transformer.h[layer].attn.c_proj.input[:, -1].mean(0).save())
                if layer == FV_LAYER:
                    box["resid"] = model.transformer.h[layer].output[:, -1].mean(0).save()
                if layer == TV_LAYER:
                    box["resid_tv"] = model.transformer.h[layer].output[:, -1].mean(0).save()
        head_means[task] = torch.stack(head_z).view(L, H, dh)
        resid_means[task] = box["resid"]
        resid_tv_means[task] = box["resid_tv"]
        rows = torch.arange(len(corrupt["answers"]))
        base = last_logits(corrupt["tokens"]).softmax(-1)[rows, corrupt["answers"]]
        for layer in range(L):
            for head in range(H):
                sl = slice(head * dh, (head + 1) * dh)

                def patch(layer=layer, sl=sl, head=head, task=task):
                    model.transformer.h[layer].attn.c_proj.input[:, -1, sl] = head_means[task][layer, head]

                p = last_logits(corrupt["tokens"], patch).softmax(-1)[rows, corrupt["answers"]]
                ie[layer, head] += float((p - base).mean()) / len(tasks)
    out["indirect_effect"] = [[round(float(v), 4) for v in row] for row in ie]
    order = ie.flatten().argsort(descending=True)
    top = [(int(i) // H, int(i) % H) for i in order[:TOP_HEADS]]
    out["top_heads"] = [list(h) for h in top]

    # function vectors (per task: the top heads' mean outputs through c_proj, summed), added to the output of block
    # FV_LAYER at the last position of zero-shot prompts; controls: random vectors of the same norm, the mean
    # residual stream at that layer over the clean prompts
    out["zero_shot"], out["with_function_vector"], out["with_random_vector"], out["with_mean_resid"] = {}, {}, {}, {}
    out["function_vector_norm"] = {}
    # the same two vectors added after block TV_LAYER, after the heads that carry the task: there the mean residual
    # stream contains those heads' mean outputs, so it carries the task too
    out[f"with_function_vector_after_block{TV_LAYER}"], out[f"with_mean_resid_after_block{TV_LAYER}"] = {}, {}
    gen = torch.Generator().manual_seed(0)
    for task in tasks:
        fv = torch.zeros(D)
        for layer, head in top:
            W = model.transformer.h[layer].attn.c_proj.weight  # Conv1D: (in, out)
            fv += head_means[task][layer, head] @ W[head * dh:(head + 1) * dh]
        zero = fh.make_icl_dataset(model, task, EVAL_PROMPTS, 0, seed=100)

        def add(vec, layer=FV_LAYER):
            def edit():
                model.transformer.h[layer].output[:, -1] += vec
            return acc(last_logits(zero["tokens"], edit), zero["answers"])

        out["zero_shot"][task] = acc(last_logits(zero["tokens"]), zero["answers"])
        out["with_function_vector"][task] = add(fv)
        randoms = []
        for _ in range(8):
            r = torch.randn(D, generator=gen)
            randoms.append(add(r / r.norm() * fv.norm()))
        out["with_random_vector"][task] = round(sum(randoms) / len(randoms), 4)
        out["with_mean_resid"][task] = add(resid_means[task])
        out["function_vector_norm"][task] = round(float(fv.norm()), 3)
        out[f"with_function_vector_after_block{TV_LAYER}"][task] = add(fv, TV_LAYER)
        out[f"with_mean_resid_after_block{TV_LAYER}"][task] = add(resid_tv_means[task], TV_LAYER)
    return out


if __name__ == "__main__":
    main()
