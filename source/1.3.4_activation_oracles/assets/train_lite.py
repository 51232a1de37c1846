"""Train the activation oracle of the `lite` profile of section 1.3.4.

The target is section 1.3.1's lite model (copied, byte for byte, into ``assets/lite/target/``). The oracle starts
as a copy of it with the thirteen words of ``oracle_helpers.NEW_WORDS`` added to its vocabulary (new embedding rows)
and 24 positions instead of 16 (the new position rows start as copies of the last one), and is fine-tuned, every
weight, on questions about the target's activations:

* an example is (statement, question, answer), e.g. ("Paris is not in Egypt.", "which country ?", "egypt");
* the target reads the statement's prompt, and we take its residual stream after block ``READ_LAYER`` either at
  the prompt's last token only (one vector) or at every token but BOS (one vector per token), half of the
  examples each;
* the oracle reads ``<BOS> layer 3 : ? ? … ? <question>``, with one placeholder "?" per vector, and its residual stream
  entering block ``INJECT_LAYER`` gets, at each placeholder, the vector rescaled to the norm of the residual
  stream already there, added (the paper's norm-matched injection);
* the loss is the cross-entropy of the answer word at the last position.

Questions are drawn uniformly, then a family the question applies to, then a training statement (for "is this
statement true ?", true and false equally often). The question "is this statement true ?" is never asked about
the negated city facts (``oracle_helpers.HELD_OUT``), and one statement in five is never used
(``oracle_helpers.split_of``): the evidence is measured on those.

Afterwards the script measures, through the notebook's code path (TransformerLens, ``oracle_helpers.load_*``),
the evidence the notebook states, and writes it to ``training_info.json``.

Outputs (in ``assets/lite/`` unless ``--out`` is given): ``target/`` (copied), ``oracle/`` (config.json,
generation_config.json, model.safetensors, tokenizer.json), training_info.json, SHA256SUMS.

Usage (from the section folder): ``python assets/train_lite.py [--out DIR] [--steps N] [--measure-only]``.
About 40 minutes on one core of a busy 2-core machine (2488 s measured). Two runs at once on the same machine gave
byte-identical weights; other CPUs or torch versions may differ in the last bits (then SHA256SUMS changes;
nothing in the notebook or the tests hard-codes a number from it).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

SECTION = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SECTION))
sys.path.insert(0, str(SECTION.parents[1]))  # the course root, for `autograder`
import oracle_helpers as oh  # noqa: E402

SEED = 1340
STEPS = 15000
BATCH = 128
LR = 1e-3
WARMUP = 100
WEIGHT_DECAY = 0.01
FULL_SEQUENCE_FRACTION = 0.5
N_POSITIONS = 24
TARGET_SOURCE = SECTION.parents[0] / "1.3.1_linear_probes" / "assets" / "lite"
TARGET_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"]
ORACLE_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"]


def copy_target(out: Path) -> None:
    """Section 1.3.1's checkpoint, after checking its recorded hashes."""
    from autograder.assets.loading import verify_sha256sums

    verify_sha256sums(TARGET_SOURCE, "regenerate section 1.3.1's checkpoint first")
    (out / "target").mkdir(parents=True, exist_ok=True)
    for name in TARGET_FILES:
        shutil.copyfile(TARGET_SOURCE / name, out / "target" / name)


def oracle_tokenizer_json(target_dir: Path) -> dict:
    """The target's word-level tokenizer with ``NEW_WORDS`` appended (the target's ids unchanged)."""
    tok = json.loads((target_dir / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    for word in oh.NEW_WORDS:
        if word not in vocab:
            vocab[word] = len(vocab)
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
        info = json.loads((args.out / "training_info.json").read_text())
        info["evidence"] = measure(args.out)
        write_info(args.out, info)
        return

    import tokenizers
    import torch
    import transformers
    from tokenizers import Tokenizer
    from transformers import GPT2LMHeadModel

    t0 = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    copy_target(args.out)
    target = GPT2LMHeadModel.from_pretrained(str(args.out / "target")).eval()
    tok_json = oracle_tokenizer_json(args.out / "target")
    tok = Tokenizer.from_str(json.dumps(tok_json))

    def ids(text: str) -> list[int]:
        return tok.encode(text).ids

    # ---- the target's activations for every statement: (tokens but BOS, d_model), read once
    statements = {f: oh.all_statements(f) for f in oh.FAMILIES}
    prompts = sorted({s for f in oh.FAMILIES for s, _ in statements[f]})
    acts: dict[str, torch.Tensor] = {}
    read = {}  # the residual stream leaving block READ_LAYER (Hugging Face's last hidden state has ln_f applied)
    target.transformer.h[oh.READ_LAYER["lite"]].register_forward_hook(
        lambda m, a, out: read.update(h=out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        for i in range(0, len(prompts), 256):
            chunk = prompts[i:i + 256]
            rows = [[0] + ids(oh.to_prompt(s)) for s in chunk]
            width = max(map(len, rows))
            x = torch.tensor([r + [0] * (width - len(r)) for r in rows])
            target(x)
            hidden = read["h"]
            for j, s in enumerate(chunk):
                acts[s] = hidden[j, 1:len(rows[j])].clone()

    # ---- training examples: per (question, family), the training statements and their answers
    pools: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for q, (_, fams, _) in oh.QUESTIONS.items():
        for f in fams:
            if (q, f) == oh.HELD_OUT:
                continue
            rows = [(s, oh.answers_of(s, f, y)[q]) for s, y in statements[f] if oh.split_of(s) == "train"]
            if q == "truth":  # true and false equally often
                pools[(q, f, "true")] = [r for r in rows if r[1] == "true"]
                pools[(q, f, "false")] = [r for r in rows if r[1] == "false"]
            else:
                pools[(q, f)] = rows
    rng = random.Random(args.seed)

    def draw():
        q = rng.choice(list(oh.QUESTIONS))
        f = rng.choice([f for f in oh.QUESTIONS[q][1] if (q, f) != oh.HELD_OUT])
        key = (q, f, rng.choice(["true", "false"])) if q == "truth" else (q, f)
        s, answer = rng.choice(pools[key])
        vectors = acts[s] if rng.random() < FULL_SEQUENCE_FRACTION else acts[s][-1:]
        return q, vectors, answer

    # ---- the oracle: the target's weights, a larger vocabulary and context
    vocab_size = len(tok_json["model"]["vocab"])
    config = transformers.GPT2Config.from_dict({**target.config.to_dict(), "vocab_size": vocab_size,
                                                "n_positions": N_POSITIONS, "n_ctx": N_POSITIONS})
    oracle = GPT2LMHeadModel(config)
    state = oracle.state_dict()
    with torch.no_grad():
        for name, value in target.state_dict().items():
            if name in ("transformer.wte.weight", "lm_head.weight"):
                state[name][: value.shape[0]] = value
                state[name][value.shape[0]:] = value.mean(0) + 0.02 * torch.randn(vocab_size - value.shape[0], value.shape[1])
            elif name == "transformer.wpe.weight":
                state[name][: value.shape[0]] = value
                state[name][value.shape[0]:] = value[-1]
            else:
                state[name].copy_(value)
    oracle.load_state_dict(state)

    injection = {}

    def inject(module, args_, kwargs):
        """Norm-matched addition at the placeholders, on the residual stream entering block INJECT_LAYER."""
        if "vectors" not in injection:
            return None
        hidden = args_[0] if args_ else kwargs["hidden_states"]
        vectors, mask = injection["vectors"], injection["mask"]
        added = hidden.norm(dim=-1, keepdim=True) * vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        hidden = hidden + mask * added
        if args_:
            return (hidden, *args_[1:]), kwargs
        return args_, {**kwargs, "hidden_states": hidden}

    oracle.transformer.h[oh.INJECT_LAYER].register_forward_pre_hook(inject, with_kwargs=True)
    placeholder = tok_json["model"]["vocab"][oh.PLACEHOLDER.strip()]
    prefix = ids(oh.PROMPT_PREFIX["lite"])
    start = 1 + len(prefix)  # the first placeholder's position

    def batch_of(items):
        rows = [[0] + prefix + [placeholder] * len(v) + ids(oh.QUESTIONS[q][0]) for q, v, _ in items]
        width = max(map(len, rows))
        x = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        vectors = torch.zeros(len(items), width, config.n_embd)
        mask = torch.zeros(len(items), width, 1)
        for i, (_, v, _) in enumerate(items):
            vectors[i, start:start + len(v)], mask[i, start:start + len(v)] = v, 1
        last = torch.tensor([len(r) - 1 for r in rows])
        y = torch.tensor([tok_json["model"]["vocab"][a] for _, _, a in items])
        return x, vectors, mask, last, y

    optim = torch.optim.AdamW(oracle.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, betas=(0.9, 0.98))

    def lr_at(step):
        if step < WARMUP:
            return LR * (step + 1) / WARMUP
        return LR * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / max(1, args.steps - WARMUP))))

    oracle.train()
    losses = []
    for step in range(args.steps):
        x, vectors, mask, last, y = batch_of([draw() for _ in range(BATCH)])
        injection.update(vectors=vectors, mask=mask)
        logits = oracle(x).logits[torch.arange(len(y)), last]
        loss = torch.nn.functional.cross_entropy(logits, y)
        for group in optim.param_groups:
            group["lr"] = lr_at(step)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
        if step % 500 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {sum(losses[-100:]) / len(losses[-100:]):.4f}  {time.time() - t0:.0f}s", flush=True)
    injection.clear()
    train_seconds = time.time() - t0

    oracle.eval()
    (args.out / "oracle").mkdir(parents=True, exist_ok=True)
    oracle.save_pretrained(str(args.out / "oracle"))
    (args.out / "oracle" / "tokenizer.json").write_text(json.dumps(tok_json, ensure_ascii=False))
    info = dict(
        seed=args.seed, steps=args.steps, batch=BATCH, lr=LR, full_sequence_fraction=FULL_SEQUENCE_FRACTION,
        read_layer=oh.READ_LAYER["lite"], inject_layer=oh.INJECT_LAYER, held_out=list(oh.HELD_OUT),
        final_loss=sum(losses[-100:]) / 100, train_seconds=round(train_seconds, 1),
        versions=dict(torch=torch.__version__, transformers=transformers.__version__, tokenizers=tokenizers.__version__),
    )
    info["evidence"] = measure(args.out)
    write_info(args.out, info)


def write_info(out: Path, info: dict) -> None:
    from autograder.assets.loading import write_sha256sums

    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    write_sha256sums(out, [f"target/{n}" for n in TARGET_FILES] + [f"oracle/{n}" for n in ORACLE_FILES]
                     + ["training_info.json"])
    print(json.dumps(info["evidence"], indent=2))


PROBE_L2 = 1e-4


def fit_probe(x, y, n_classes: int):
    """Multinomial logistic regression with a little L2, solved to its optimum (L-BFGS, float64); returns x -> logits.

    The optimum is unique, so the recorded accuracies do not depend on the CPU's rounding. A fixed number of
    Adam steps in float32 did: on another CPU model, two of 44 held-out predictions changed.
    """
    import torch

    x = x.double()
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=2000, tolerance_grad=1e-10, tolerance_change=1e-14,
                            history_size=20, line_search_fn="strong_wolfe")

    def objective():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w + b, y) + PROBE_L2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(objective)
    w, b = w.detach(), b.detach()
    return lambda inputs: inputs.double() @ w + b


def measure(out: Path) -> dict:
    """The evidence, through the notebook's code path: accuracy of the oracle's answer (the best-scoring candidate)
    on the held-out statements, per question and family, from the last token's vector and from every token's,
    against the same questions asked with another statement's vectors (the control), and a difference-of-means
    probe's accuracy on the held-out family for the truth question."""
    import torch

    oh.LITE_DIR = out
    target, oracle = oh.load_target("lite"), oh.load_oracle("lite")
    torch.manual_seed(0)
    hook_read = f"blocks.{oh.READ_LAYER['lite']}.hook_resid_post"

    def vectors_of(statements):
        tokens, last = oh.tokenize_statements(target, statements)
        _, cache = target.run_with_cache(tokens, names_filter=hook_read)
        return [cache[hook_read][i, 1:int(last[i]) + 1] for i in range(len(statements))]

    def ask(question, vector_lists):
        """Candidate index chosen for each list of vectors (one oracle run per number of vectors)."""
        cands = oh.candidate_ids(oracle, question, "lite")
        choice = torch.empty(len(vector_lists), dtype=torch.long)
        by_len: dict[int, list[int]] = {}
        for i, v in enumerate(vector_lists):
            by_len.setdefault(len(v), []).append(i)
        for k, rows in by_len.items():
            tokens = oracle.to_tokens(oh.prompt_prefix("lite") + oh.PLACEHOLDER * k + " " + oh.question_text(question, "lite"))
            first = oracle.to_tokens(oh.prompt_prefix("lite")).shape[1]
            vecs = torch.stack([vector_lists[i] for i in rows])

            def hook(resid, hook):
                resid = resid.clone()
                h = resid[:, first:first + k]
                resid[:, first:first + k] = h + h.norm(dim=-1, keepdim=True) * vecs / vecs.norm(dim=-1, keepdim=True)
                return resid

            logits = oracle.run_with_hooks(tokens.expand(len(rows), -1),
                                           fwd_hooks=[(f"blocks.{oh.INJECT_LAYER}.hook_resid_pre", hook)])[:, -1]
            choice[rows] = logits[:, cands].argmax(-1)
        return choice

    evidence = {"accuracy": {}}
    with torch.no_grad():
        for q, (_, fams, cand_words) in oh.QUESTIONS.items():
            # the control shows each question another statement's vectors, drawn from every family the question
            # applies to (within one family some answers never change: every sum's "kind" is "plus")
            pool = [r[0] for f in fams for r in oh.evaluation_examples(q, f)]
            pool_vectors = dict(zip(pool, vectors_of(pool)))
            gen = torch.Generator().manual_seed(1)
            for f in fams:
                rows = oh.evaluation_examples(q, f)
                right = torch.tensor([cand_words.index(r[2]) for r in rows])
                seq = [pool_vectors[r[0]] for r in rows]
                others = []
                for r in rows:
                    j = int(torch.randint(len(pool), (1,), generator=gen))
                    others.append(pool_vectors[pool[j if pool[j] != r[0] else (j + 1) % len(pool)]])
                row = {"n": len(rows)}
                for mode, vecs, ctrl in (("last", [v[-1:] for v in seq], [v[-1:] for v in others]), ("all", seq, others)):
                    row[mode] = round((ask(q, vecs) == right).float().mean().item(), 3)
                    row[f"{mode}_control"] = round((ask(q, ctrl) == right).float().mean().item(), 3)
                evidence["accuracy"][f"{q}/{f}"] = row
        # what a probe trained for each question reads off the same last-token vectors: a ceiling for the oracle's
        # "last" column (logistic regression on standardised vectors, trained on the training split of every family
        # the oracle was trained to answer the question about, scored on the same rows as the oracle)
        for q, (_, fams, cand_words) in oh.QUESTIONS.items():
            rows = [r for f in fams if (q, f) != oh.HELD_OUT for r in oh.examples(q, "train", [f])]
            xtr = torch.stack([v[-1] for v in vectors_of([r[0] for r in rows])])
            ytr = torch.tensor([cand_words.index(r[2]) for r in rows])
            mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
            probe = fit_probe((xtr - mu) / sd, ytr, len(cand_words))
            for f in fams:
                test = oh.evaluation_examples(q, f)
                xte = torch.stack([v[-1] for v in vectors_of([r[0] for r in test])])
                yte = torch.tensor([cand_words.index(r[2]) for r in test])
                evidence["accuracy"][f"{q}/{f}"]["probe_last"] = round((probe((xte - mu) / sd).argmax(-1) == yte).float().mean().item(), 3)
        # the linear-probe baseline on the question the oracle never saw for this family
        train = [r for f in oh.FAMILIES if f != oh.HELD_OUT[1] for r in oh.balanced_truth_examples("train", [f])]
        test = oh.evaluation_examples(*oh.HELD_OUT)
        xtr = torch.stack([v[-1] for v in vectors_of([r[0] for r in train])])
        ytr = torch.tensor([r[2] == "true" for r in train])
        xte = torch.stack([v[-1] for v in vectors_of([r[0] for r in test])])
        yte = torch.tensor([r[2] == "true" for r in test])
        direction = xtr[ytr].mean(0) - xtr[~ytr].mean(0)
        threshold = ((xtr[ytr].mean(0) + xtr[~ytr].mean(0)) / 2) @ direction
        evidence["probe_on_held_out_family"] = round((((xte @ direction) > threshold) == yte).float().mean().item(), 3)
    return evidence


if __name__ == "__main__":
    main()
