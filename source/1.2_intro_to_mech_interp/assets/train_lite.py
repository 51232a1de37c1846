"""Train the 2-layer attention-only model used by the `lite` profile of section 1.2.

Everything is produced here, offline, from a fixed seed:

* text: short stories from section 1.1's story grammar
  (`source/1.1_transformer_from_scratch/assets/train_lite.py: generate_corpus`,
  imported from there), tokenized with 1.1's byte-level BPE tokenizer (a copy
  of it lives in `assets/lite/tokenizer.json`);
* induction data: `<|endoftext|>` followed by a random token sequence repeated
  twice, the cleanest possible reason for a model to grow induction heads.

The model is a TransformerLens `HookedTransformer`: 2 layers, attention only,
LayerNorm, shortformer positional embeddings (added to queries and keys only,
like TransformerLens's `attn-only-2l`). Outputs in `assets/lite/`:
config.json, model.safetensors (raw weights, TransformerLens names),
training_info.json (seed, steps, losses and the measured induction evidence)
and SHA256SUMS.

Usage (from the section folder):  python assets/train_lite.py [--out DIR]

Reproducibility: every random choice is seeded and torch runs with 1 thread
and deterministic algorithms. Rerunning on the same machine and library
versions gives the same losses; bit-identical weights across machines are not
guaranteed, so a regenerated checkpoint may have new SHA256SUMS (the script
rewrites them) while the measured evidence should agree to a couple of decimals.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import random
import sys
import time
from pathlib import Path

SEED = 1234
HERE = Path(__file__).resolve().parent
SECTION = HERE.parent
STORY_GRAMMAR = SECTION.parent / "1.1_transformer_from_scratch" / "assets" / "train_lite.py"

CONFIG = dict(
    d_model=64,
    d_head=16,
    n_heads=8,
    n_layers=2,
    n_ctx=128,
    d_vocab=889,  # 1.1's tokenizer
    d_mlp=None,
    attn_only=True,
    act_fn=None,
    normalization_type="LN",
    positional_embedding_type="shortformer",
    default_prepend_bos=True,
    original_architecture="neel",
    model_name="lite-attn-only-2l",
    tokenizer_name=None,
    seed=SEED,
)


def load_story_grammar():
    """1.1's story generator (importable without torch)."""
    spec = importlib.util.spec_from_file_location("tfs_train_lite", STORY_GRAMMAR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_sha256sums(out: Path) -> None:
    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "SHA256SUMS")
    (out / "SHA256SUMS").write_text("".join(f"{sha256_file(out / n)}  {n}\n" for n in files))


class AttnOnly:
    """A plain-PyTorch twin of TransformerLens's attention-only, shortformer
    HookedTransformer (same parameter names and shapes, same computation), used
    for training because it is several times faster on a CPU than the hooked
    model. The saved weights are loaded into a real HookedTransformer."""

    def __init__(self, cfg: dict, gen):
        import torch

        d, h, dh, v, n = cfg["d_model"], cfg["n_heads"], cfg["d_head"], cfg["d_vocab"], cfg["n_ctx"]
        self.cfg = cfg
        std = 0.8 / math.sqrt(d)
        # Position embeddings start at the size of ln1's output, so that the
        # positional signal a previous-token head needs is there from step 0.
        p = {"embed.W_E": torch.randn(v, d, generator=gen) * std,
             "pos_embed.W_pos": torch.randn(n, d, generator=gen)}
        for layer in range(cfg["n_layers"]):
            pre = f"blocks.{layer}."
            p[pre + "ln1.w"] = torch.ones(d)
            p[pre + "ln1.b"] = torch.zeros(d)
            for name in ("W_Q", "W_K", "W_V"):
                p[pre + "attn." + name] = torch.randn(h, d, dh, generator=gen) * std
            p[pre + "attn.W_O"] = torch.randn(h, dh, d, generator=gen) * (std / math.sqrt(2 * cfg["n_layers"]))
            for name in ("b_Q", "b_K", "b_V"):
                p[pre + "attn." + name] = torch.zeros(h, dh)
            p[pre + "attn.b_O"] = torch.zeros(d)
        p["ln_final.w"] = torch.ones(d)
        p["ln_final.b"] = torch.zeros(d)
        p["unembed.W_U"] = p["embed.W_E"].T.clone()  # initialised (not tied) to W_E.T: copying starts easier
        p["unembed.b_U"] = torch.zeros(v)
        self.params = {k: t.requires_grad_(True) for k, t in p.items()}

    @staticmethod
    def layer_norm(x, w, b, eps=1e-5):
        x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt() * w + b

    def __call__(self, tokens):
        import torch

        p, cfg = self.params, self.cfg
        seq = tokens.shape[1]
        resid = p["embed.W_E"][tokens]
        pos = p["pos_embed.W_pos"][:seq]
        mask = torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1)
        for layer in range(cfg["n_layers"]):
            pre = f"blocks.{layer}."
            x = self.layer_norm(resid, p[pre + "ln1.w"], p[pre + "ln1.b"])
            qk_in = x + pos  # shortformer: positions only reach queries and keys
            q = torch.einsum("bsd,hde->bhse", qk_in, p[pre + "attn.W_Q"]) + p[pre + "attn.b_Q"][:, None]
            k = torch.einsum("bsd,hde->bhse", qk_in, p[pre + "attn.W_K"]) + p[pre + "attn.b_K"][:, None]
            v = torch.einsum("bsd,hde->bhse", x, p[pre + "attn.W_V"]) + p[pre + "attn.b_V"][:, None]
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(cfg["d_head"])
            pattern = scores.masked_fill(mask, float("-inf")).softmax(-1)
            z = pattern @ v  # b h s e
            resid = resid + torch.einsum("bhse,hed->bsd", z, p[pre + "attn.W_O"]) + p[pre + "attn.b_O"]
        x = self.layer_norm(resid, p["ln_final.w"], p["ln_final.b"])
        return x @ p["unembed.W_U"] + p["unembed.b_U"]


def repeated_batch(gen, batch: int, seq_len: int, d_vocab: int, bos: int):
    import torch

    half = torch.randint(1, d_vocab, (batch, seq_len), generator=gen)
    return torch.cat([torch.full((batch, 1), bos), half, half], dim=1)


def induction_evidence(model, gen, seq_len: int = 50, batch: int = 20) -> dict:
    """Per-head induction and previous-token scores, and the loss on each half,
    on BOS + random tokens repeated twice."""
    import torch

    tokens = repeated_batch(gen, batch, seq_len, model.cfg.d_vocab, 0)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        logp = logits.log_softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    ind, prev = [], []
    for layer in range(model.cfg.n_layers):
        pattern = cache["pattern", layer]  # batch head q k
        ind.append(pattern.diagonal(offset=1 - seq_len, dim1=-2, dim2=-1)[..., -seq_len:].mean((0, 2)))
        prev.append(pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, 2)))
    return {
        "seq_len": seq_len,
        "batch": batch,
        "loss_first_half": round(float(-logp[:, :seq_len].mean()), 3),
        "loss_second_half": round(float(-logp[:, seq_len + 1:].mean()), 3),
        "uniform_loss": round(math.log(model.cfg.d_vocab), 3),
        "induction_score": [[round(float(v), 3) for v in row] for row in torch.stack(ind)],
        "prev_token_score": [[round(float(v), 3) for v in row] for row in torch.stack(prev)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "lite")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--steps", type=int, default=1300)
    parser.add_argument("--induction-steps", type=int, default=1000)
    parser.add_argument("--text-weight", type=float, default=0.3)
    args = parser.parse_args()

    import numpy as np
    import safetensors
    import tokenizers
    import torch
    import transformer_lens
    from safetensors.torch import save_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    t0 = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # more threads only fight each other on a busy 2-core machine
    torch.use_deterministic_algorithms(True)

    out: Path = args.out
    tok = tokenizers.Tokenizer.from_file(str(HERE / "lite" / "tokenizer.json"))
    bos = tok.token_to_id("<|endoftext|>")
    assert bos == 0 and tok.get_vocab_size() == CONFIG["d_vocab"]

    # Text: a stream of BOS + story, cut into windows that start at a story.
    grammar = load_story_grammar()
    n_stories = 12_000
    stories = grammar.generate_corpus(n_stories, seed=args.seed + 7)
    stream, starts = [], []
    for enc in tok.encode_batch(stories):
        starts.append(len(stream))
        stream.append(bos)
        stream.extend(enc.ids)
    stream = torch.tensor(stream)
    seq = 96  # text windows; n_ctx (128) leaves room for longer prompts
    starts = torch.tensor([s for s in starts if s + seq <= len(stream)])

    cfg = HookedTransformerConfig(**{**CONFIG, "device": "cpu"})
    gen = torch.Generator().manual_seed(args.seed)
    twin = AttnOnly(CONFIG, gen)
    n_params = sum(p.numel() for p in twin.params.values())
    print(f"model: {n_params} parameters; text: {n_stories} stories, {len(stream)} tokens")

    # Phase 1 (steps < args.induction_steps): repeated random tokens only, no
    # curriculum, no gradient clipping, half lengths drawn from 8..40.
    # Induction is the only way to beat the uniform loss there. (A single fixed
    # half length trains much faster but is solved by a positional shortcut,
    # "attend to the position half a sequence back", which is not induction
    # and collapses on other lengths.)
    # Phase 2: text mixed in (down-weighted: at full weight its early
    # gradients wipe induction out), with a repeated batch in every step (half
    # lengths 8..60, so that the positions of the length-50 evaluation are
    # trained) so that induction is not forgotten while the model learns the
    # stories.
    batch_text, batch_rep, batch_rep_phase1 = 16, 32, 64
    text_weight = args.text_weight
    lr = 2e-3
    optim = torch.optim.AdamW(twin.params.values(), lr=lr, weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < args.induction_steps:
            return lr
        frac = (step - args.induction_steps) / max(1, args.steps - args.induction_steps)
        return lr * (0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * frac)))

    def loss_fn(tokens):
        logits = twin(tokens)
        return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, cfg.d_vocab), tokens[:, 1:].reshape(-1))

    ema = None
    for step in range(args.steps):
        phase1 = step < args.induction_steps
        half = int(torch.randint(8, 41, (1,), generator=gen)) if phase1 else int(torch.randint(8, 61, (1,), generator=gen))
        rep = repeated_batch(gen, batch_rep_phase1 if phase1 else batch_rep, half, cfg.d_vocab, bos)
        for group in optim.param_groups:
            group["lr"] = lr_at(step)
        loss = rep_loss = loss_fn(rep)
        if not phase1:
            pick = starts[torch.randint(len(starts), (batch_text,), generator=gen)]
            loss = loss + text_weight * loss_fn(stream[pick[:, None] + torch.arange(seq)[None, :]])
        optim.zero_grad(set_to_none=True)
        loss.backward()
        if not phase1:
            torch.nn.utils.clip_grad_norm_(list(twin.params.values()), 1.0)
        optim.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss ({'repeated' if phase1 else 'repeated + text'}, ema) {ema:.3f}  {time.time() - t0:.0f}s", flush=True)
    # Into a real HookedTransformer, through the same loader the course uses.
    state = {k: v.detach().clone().contiguous() for k, v in twin.params.items()}
    model = HookedTransformer(cfg)
    model.load_state_dict(state, strict=False)
    model.eval()
    with torch.no_grad():
        probe = torch.randint(0, cfg.d_vocab, (2, 40), generator=gen)
        gap = float((model(probe) - twin(probe)).abs().max())
    assert gap < 1e-4, f"the training twin and the HookedTransformer disagree by {gap}"

    # Evidence, on held-out data.
    eval_gen = torch.Generator().manual_seed(args.seed + 1)
    evidence = induction_evidence(model, eval_gen)
    val = grammar.generate_corpus(200, seed=args.seed + 8)
    val_rows = [[bos] + e.ids for e in tok.encode_batch(val)]
    val_rows = [r[:64] for r in val_rows if len(r) >= 64]
    val_tokens = torch.tensor(val_rows)
    with torch.no_grad():
        val_logits = model(val_tokens)
        val_loss = float(torch.nn.functional.cross_entropy(
            val_logits[:, :-1].reshape(-1, cfg.d_vocab), val_tokens[:, 1:].reshape(-1)))
        val_acc = float((val_logits[:, :-1].argmax(-1) == val_tokens[:, 1:]).float().mean())
    print(json.dumps(evidence, indent=1))
    print(f"text: val loss {val_loss:.3f}, top-1 accuracy {val_acc:.3f}")

    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "training_info.json", "SHA256SUMS"):
        (out / name).unlink(missing_ok=True)
    save_file(state, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps({k: v for k, v in CONFIG.items() if k != "seed"}, indent=2) + "\n")
    ind = torch.tensor(evidence["induction_score"])
    prev = torch.tensor(evidence["prev_token_score"])
    info = {
        "seed": args.seed,
        "steps": args.steps,
        "induction_only_steps": args.induction_steps,
        "batch": {"repeated_sequences_phase1": batch_rep_phase1, "text_windows": batch_text,
                  "repeated_sequences": batch_rep, "repeated_half_length": {"phase1": [8, 40], "phase2": [8, 60]}},
        "text_weight": text_weight,
        "learning_rate": lr,
        "n_params": n_params,
        "text": {
            "generator": "source/1.1_transformer_from_scratch/assets/train_lite.py:generate_corpus",
            "train_stories": n_stories, "train_seed": args.seed + 7,
            "val_stories": len(val_rows), "val_seed": args.seed + 8,
            "val_loss": round(val_loss, 3), "val_top1_accuracy": round(val_acc, 3),
        },
        "induction": {
            **evidence,
            "heads_with_induction_score_above_0.5": [f"{l}.{h}" for l, h in (ind > 0.5).nonzero().tolist()],
            "heads_with_prev_token_score_above_0.5": [f"{l}.{h}" for l, h in (prev > 0.5).nonzero().tolist()],
        },
        "wall_seconds": round(time.time() - t0, 1),
        "torch_threads": 1,
        "versions": {
            "torch": torch.__version__,
            "transformer_lens": getattr(transformer_lens, "__version__", "unknown"),
            "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__,
            "python": sys.version.split()[0],
        },
        "note": "Losses and scores reproduce on rerun with the same seed; weights are not "
                "guaranteed bit-identical across machines/library versions.",
    }
    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    write_sha256sums(out)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {out} ({size / 1e6:.2f} MB) in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
