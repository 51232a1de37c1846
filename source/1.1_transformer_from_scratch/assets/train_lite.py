"""Train the tiny GPT-2-shaped model used by the `lite` profile of section 1.1.

Everything is produced here, offline, from a fixed seed:

1. a corpus of short children's-style stories from a small probabilistic
   grammar (written for this course; no downloaded data),
2. a byte-level BPE tokenizer (~1000 tokens) trained on that corpus, with
   `<|endoftext|>` (id 0) used as both BOS and EOS, like GPT-2,
3. a 2-layer `transformers.GPT2LMHeadModel` (d_model=64, 4 heads, untied
   embeddings) trained on the corpus for a fixed number of steps.

Outputs (in `assets/lite/` unless `--out` is given): config.json,
model.safetensors, tokenizer.json, training_info.json and SHA256SUMS.

Usage (from the section folder):  python assets/train_lite.py [--out DIR]

Reproducibility: every random choice is seeded (the grammar uses its own
`random.Random`, torch uses `torch.manual_seed`), and torch runs with 2
threads. Rerunning on the same machine and library versions gives the same
losses. Bit-identical weights across different CPUs / BLAS builds / torch
versions are NOT guaranteed (float reductions may be ordered differently),
so a regenerated checkpoint may have different SHA256SUMS; the script
rewrites them, and the losses should agree to a couple of decimals.

The story generator (`generate_story`, `generate_corpus`) is importable
without torch/transformers so tests can draw fresh text from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import time
from pathlib import Path

SEED = 1234
EOT = "<|endoftext|>"

# --------------------------------------------------------------------------
# 1. The story grammar
# --------------------------------------------------------------------------
# Word lists. Names are drawn from a fairly long list so that the model cannot
# just memorise "the" protagonist: to predict a name's later occurrences it
# has to copy it from earlier in the story (the same goes for the object and
# its colour, and the place visited).

NAMES = [
    "Ada", "Ben", "Cora", "Dev", "Elsa", "Finn", "Gus", "Hana", "Ivo", "Jade",
    "Kai", "Lena", "Milo", "Nora", "Omar", "Pia", "Quinn", "Rosa", "Sam",
    "Tara", "Uma", "Vic", "Wren", "Yara", "Zed", "Leo", "Mia", "Otto", "Ruby",
    "Theo", "Ivy", "Max", "Zoe", "Nico", "Ella", "Hugo", "June", "Remy",
    "Sara", "Toby",
]
ANIMALS = [
    "cat", "dog", "fox", "rabbit", "owl", "bear", "frog", "duck", "mouse",
    "horse", "goat", "turtle", "squirrel", "deer", "pig", "lamb", "crow",
    "bee", "wolf", "hen",
]
ADJECTIVES = [
    "small", "big", "brave", "shy", "happy", "sleepy", "clever", "kind",
    "grumpy", "curious", "quiet", "silly", "old", "young", "gentle", "busy",
]
COLORS = [
    "red", "blue", "green", "yellow", "brown", "white", "black", "orange",
    "purple", "pink", "silver", "gold",
]
OBJECTS = [
    "ball", "hat", "kite", "box", "book", "cup", "bell", "key", "scarf",
    "boat", "drum", "shell", "stone", "lamp", "map", "basket",
]
HOMES = [
    "in a small house", "in a big forest", "near a river", "on a farm",
    "by the sea", "in a garden", "on a hill", "in a quiet village",
    "under a bridge", "in a warm cave", "at the edge of a town",
]
DESTINATIONS = [
    "the park", "the market", "the lake", "the beach", "the forest",
    "the school", "the farm", "the hill", "the river", "the garden",
    "the library", "the town", "the meadow", "the bakery",
]
ACTIVITIES = [
    "play", "find some food", "look for shells", "read a book",
    "pick apples", "watch the birds", "fly a kite", "swim", "sing songs",
    "see a friend", "collect flowers", "build a sandcastle", "go fishing",
]
FEELINGS = [
    "sad", "scared", "tired", "surprised", "worried", "upset", "lonely",
]
GOOD_FEELINGS = ["happy", "proud", "excited", "glad", "cheerful"]
TIMES = ["morning", "afternoon", "evening", "sunny day", "rainy day"]
HIDING_PLACES = [
    "under a tree", "behind a rock", "in the grass", "next to the water",
    "inside an old log", "under a bench", "near the gate",
]


def _a(word: str) -> str:
    """Indefinite article for `word`."""
    return "an" if word[0] in "aeiou" else "a"


def generate_story(rng: random.Random) -> str:
    """One short story. All randomness comes from `rng`."""
    a, b = rng.sample(NAMES, 2)
    animal_a, animal_b = rng.choice(ANIMALS), rng.choice(ANIMALS)
    adj_a, adj_b = rng.choice(ADJECTIVES), rng.choice(ADJECTIVES)
    color, obj = rng.choice(COLORS), rng.choice(OBJECTS)
    dest = rng.choice(DESTINATIONS)
    activity = rng.choice(ACTIVITIES)

    s = []  # sentences
    # Introduction of the protagonist A.
    s.append(rng.choice([
        f"Once upon a time, there was {_a(adj_a)} {adj_a} {animal_a} named {a}.",
        f"There once was {_a(adj_a)} {adj_a} {animal_a} called {a}.",
        f"{a} was {_a(adj_a)} {adj_a} {animal_a}.",
    ]))
    s.append(rng.choice([
        f"{a} lived {rng.choice(HOMES)}.",
        f"{a} had a home {rng.choice(HOMES)}.",
    ]))
    # A's treasured object (recalled later in the story).
    if rng.random() < 0.8:
        s.append(rng.choice([
            f"{a} had {_a(color)} {color} {obj}.",
            f"{a} had {_a(color)} {color} {obj} and loved it very much.",
            f"The {color} {obj} was the best thing {a} had.",
        ]))
        has_obj = True
    else:
        has_obj = False
    # The trip.
    s.append(rng.choice([
        f"One day, {a} went to {dest} to {activity}.",
        f"One {rng.choice(TIMES)}, {a} walked to {dest}.",
        f"One {rng.choice(TIMES)}, {a} wanted to {activity}, so {a} went to {dest}.",
    ]))
    # Meeting B.
    s.append(rng.choice([
        f"At {dest}, {a} met {_a(adj_b)} {adj_b} {animal_b} named {b}.",
        f"There, {a} saw {_a(animal_b)} {animal_b} called {b}.",
        f"At {dest}, there was {_a(adj_b)} {adj_b} {animal_b}. The {animal_b} was called {b}.",
    ]))
    # A little dialogue.
    s.append(rng.choice([
        f'{b} said, "Hello, {a}! Do you want to {rng.choice(ACTIVITIES)}?"',
        f'"Hi, {b}," said {a}. "My name is {a}."',
        f'"Who are you?" asked {b}. "I am {a}," said {a}.',
    ]))
    # Optional complication involving the object.
    if has_obj and rng.random() < 0.6:
        feeling = rng.choice(FEELINGS)
        s.append(f"But then {a} lost the {color} {obj}.")
        s.append(rng.choice([
            f"{a} felt very {feeling}.",
            f'"Oh no!" said {a}. {a} was {feeling}.',
        ]))
        s.append(rng.choice([
            f"{b} helped {a} look for the {color} {obj}.",
            f'"I will help you," said {b}.',
        ]))
        s.append(f"They found the {color} {obj} {rng.choice(HIDING_PLACES)}.")
        s.append(f"{a} was {rng.choice(GOOD_FEELINGS)} and said, \"Thank you, {b}!\"")
    # Ending.
    s.append(rng.choice([
        f"In the end, {a} and {b} were good friends.",
        f"{a} and {b} played together until the sun went down.",
        f"From that day on, {a} and {b} went to {dest} every {rng.choice(TIMES)}.",
        f"{a} went home and told everyone about {b}.",
    ]))
    return " ".join(s)


def generate_corpus(n_stories: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [generate_story(rng) for _ in range(n_stories)]


# --------------------------------------------------------------------------
# 2. Tokenizer
# --------------------------------------------------------------------------

def train_tokenizer(stories: list[str], vocab_size: int):
    """Byte-level BPE like GPT-2's: no unknown tokens, decode(encode(s)) == s."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],  # first special token gets id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(stories, trainer=trainer)
    assert tok.token_to_id(EOT) == 0
    return tok


# --------------------------------------------------------------------------
# 3. Model training
# --------------------------------------------------------------------------

def encode_stories(tok, stories: list[str]):
    """Concatenate `<|endoftext|> story <|endoftext|> story ...` into one stream.

    Returns (stream, starts): `starts` are the positions of each story's
    leading <|endoftext|>, so training windows can begin with BOS just like
    the prompts the course feeds the model (prepend_bos=True)."""
    import torch

    eot = tok.token_to_id(EOT)
    stream, starts = [], []
    for enc in tok.encode_batch(stories):
        starts.append(len(stream))
        stream.append(eot)
        stream.extend(enc.ids)
    stream.append(eot)
    return torch.tensor(stream, dtype=torch.long), torch.tensor(starts, dtype=torch.long)


def make_windows(stream, starts, seq_len: int):
    """Windows of `seq_len` tokens that begin at a story start."""
    import torch

    starts = starts[starts + seq_len <= len(stream)]
    idx = starts[:, None] + torch.arange(seq_len)[None, :]
    return stream[idx]


def lm_loss(model, tokens):
    import torch.nn.functional as F

    logits = model(tokens).logits
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_sha256sums(out: Path) -> None:
    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{sha256_file(out / name)}  {name}\n" for name in files]
    (out / "SHA256SUMS").write_text("".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "lite")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--steps", type=int, default=800)
    args = parser.parse_args()

    import numpy as np
    import safetensors
    import tokenizers
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    t0 = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)

    # Hyperparameters (fixed, so a rerun takes the same number of steps).
    n_train, n_val = 40_000, 500
    vocab_size, seq_len, batch_size = 1000, 128, 32
    lr, warmup, weight_decay = 3e-3, 50, 0.01

    train_stories = generate_corpus(n_train, seed=args.seed)
    val_stories = generate_corpus(n_val, seed=args.seed + 1)  # held out
    tok = train_tokenizer(train_stories, vocab_size)
    eot = tok.token_to_id(EOT)
    train_stream, train_starts = encode_stories(tok, train_stories)
    val_stream, val_starts = encode_stories(tok, val_stories)
    val_windows = make_windows(val_stream, val_starts, seq_len)
    print(f"corpus: {len(train_stories)} train stories, {len(train_stream)} tokens, "
          f"{sum(map(len, train_stories))} chars; vocab {tok.get_vocab_size()}")

    config = GPT2Config(
        vocab_size=tok.get_vocab_size(), n_positions=seq_len, n_ctx=seq_len,
        n_embd=64, n_layer=2, n_head=4, n_inner=256,
        activation_function="gelu_new", layer_norm_epsilon=1e-5,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=False,  # the course's Unembed has its own W_U
        bos_token_id=eot, eos_token_id=eot,
    )
    model = GPT2LMHeadModel(config)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters")

    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay,
                              betas=(0.9, 0.98))

    def lr_at(step: int) -> float:  # linear warmup, cosine decay to 10%
        if step < warmup:
            return lr * (step + 1) / warmup
        frac = (step - warmup) / max(1, args.steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    @torch.no_grad()
    def val_loss() -> float:
        model.eval()
        losses = [lm_loss(model, w).item() for w in val_windows.split(64)]
        model.train()
        return float(np.mean(losses))

    gen = torch.Generator().manual_seed(args.seed)
    usable_starts = train_starts[train_starts + seq_len <= len(train_stream)]
    model.train()
    ema = None
    for step in range(args.steps):
        pick = usable_starts[torch.randint(len(usable_starts), (batch_size,), generator=gen)]
        batch = train_stream[pick[:, None] + torch.arange(seq_len)[None, :]]
        for group in optim.param_groups:
            group["lr"] = lr_at(step)
        loss = lm_loss(model, batch)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  train loss (ema) {ema:.4f}  lr {lr_at(step):.2e}  "
                  f"{time.time() - t0:.0f}s", flush=True)

    # Final losses: train loss on a fixed sample of training windows (not the
    # EMA), validation loss on all held-out windows.
    train_eval = train_stream[usable_starts[:512, None] + torch.arange(seq_len)[None, :]]
    model.eval()
    with torch.no_grad():
        final_train = float(np.mean([lm_loss(model, w).item() for w in train_eval.split(64)]))
    final_val = val_loss()
    print(f"final train loss {final_train:.4f}  val loss {final_val:.4f}  "
          f"(uniform baseline ln(V) = {math.log(config.vocab_size):.2f})")

    # Greedy sample, to eyeball that the model speaks the grammar.
    prompt = "Once upon a time, there was"
    ids = torch.tensor([[eot] + tok.encode(prompt).ids])
    with torch.no_grad():
        for _ in range(100):
            nxt = model(ids).logits[0, -1].argmax()
            if nxt.item() == eot:
                break
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    sample = tok.decode(ids[0, 1:].tolist())
    print("greedy sample:", sample)

    # Save.
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for p in out.iterdir():  # start clean so SHA256SUMS lists exactly our files
        if p.is_file():
            p.unlink()
    model.save_pretrained(out)  # transformers>=5 always writes model.safetensors
    tok.save(str(out / "tokenizer.json"))
    (out / "model.safetensors").chmod(0o644)  # transformers writes it 0600
    train_seconds = time.time() - t0
    info = {
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "learning_rate": lr,
        "warmup_steps": warmup,
        "weight_decay": weight_decay,
        "n_params": n_params,
        "final_train_loss": round(final_train, 4),
        "final_val_loss": round(final_val, 4),
        "corpus": {
            "generator": "assets/train_lite.py:generate_corpus",
            "train_stories": n_train,
            "val_stories": n_val,
            "train_seed": args.seed,
            "val_seed": args.seed + 1,
            "train_tokens": len(train_stream),
            "train_chars": sum(map(len, train_stories)),
        },
        "tokenizer": {"type": "byte-level BPE", "vocab_size": tok.get_vocab_size(),
                      "bos_eos_token": EOT, "bos_eos_id": eot},
        "greedy_sample": {"prompt": prompt, "completion": sample},
        "wall_seconds": round(train_seconds, 1),
        "torch_threads": 2,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
        },
        "note": "Losses reproduce on rerun with the same seed; weights are not "
                "guaranteed bit-identical across machines/library versions.",
    }
    (out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    write_sha256sums(out)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {out} ({size / 1e6:.2f} MB) in {train_seconds:.0f}s")


if __name__ == "__main__":
    main()
