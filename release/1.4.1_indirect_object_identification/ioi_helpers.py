"""Support code for section 1.4.1 "Indirect object identification (IOI): finding a circuit".

IOI prompts, their corrupted counterparts, and the models.

An IOI prompt names two people, then repeats one of them (the subject, S) as the one who gives
something; the model should complete it with the other name (the indirect object, IO):

    "When Mary and John went to the store , John gave a drink to"  ->  " Mary"

Every prompt has the same shape (15 tokens with the BOS token), so the positions of the names
are the same in every prompt: the first two names at positions 2 and 4, the repeated subject
(S2) at position 10, the last token ("to", END) at position 14. In ``ABBA`` prompts the IO comes
first (position 2) and S second (position 4); in ``BABA`` prompts the other way round.

The corrupted prompt of a clean one replaces S2 by a third name C, so that nothing in it tells
the two first names apart ("ABC" prompts).

Two profiles, selected with the ``AUTOGRADER_PROFILE`` environment variable:

* ``lite`` (default): a 3-layer GPT-2-style model (d_model 64, 4 heads per layer) that the course
  trains on IOI prompts (``assets/train_lite.py``); shipped in ``assets/lite/`` as a Hugging Face
  folder with a word-level tokenizer. Needs no network.
* ``full``: ``gpt2-small``, read from the asset cache, where
  ``autograder assets fetch --profile full --assignment 1.4.1`` puts it. Never downloads.

Both profiles load through the same function (:func:`load_model`), with the weight processing that
``HookedTransformer.from_pretrained`` applies to GPT-2. The prompts are the same English text in both.
"""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from autograder.assets import check_profile, require_asset
from autograder.assets.loading import EOT, hooked_gpt2_from_folder as load_folder, verify_sha256sums

if TYPE_CHECKING:  # type hints only
    from transformer_lens import HookedTransformer

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")
LITE_DIR = Path(__file__).parent / "assets" / "lite"
REGENERATE_CMD = "cd source/1.4.1_indirect_object_identification && python assets/train_lite.py"

# --------------------------------------------------------------------------
# The prompts
# --------------------------------------------------------------------------

NAMES = [
    "Mary", "John", "Tom", "James", "Dan", "Paul", "Mark", "David", "Michael", "Sarah", "Kate", "Lisa",
    "Anna", "Emma", "Jack", "Ben", "Sam", "Max", "Adam", "Eric", "Ryan", "Laura", "Rachel", "Jane",
    "Peter", "Steve", "Chris", "Kevin", "Alex", "Rose", "Amy", "Alice",
]
OPENERS = ["When", "After", "While", "Once"]
GOES = ["went to", "got to", "arrived at", "were at"]
PLACES = ["store", "park", "house", "office", "school", "party"]
GIVES = ["gave", "handed", "passed", "sent", "showed", "brought"]
OBJECTS = ["drink", "ball", "book", "letter", "picture", "gift"]

SEQ_LEN = 15
POS = {"IO_first": 2, "IO_second": 4, "S2": 10, "END": 14}  # token positions, BOS at 0


def templates() -> list[tuple[str, str, str, str, str]]:
    """Every template as (opener, go, place, give, object), in a fixed order."""
    return list(itertools.product(OPENERS, GOES, PLACES, GIVES, OBJECTS))


_TEMPLATE_INDEX: dict = {}


def is_held_out(template: tuple[str, ...]) -> bool:
    """About one template in five is never seen in training (a fixed, hash-free rule)."""
    if not _TEMPLATE_INDEX:
        _TEMPLATE_INDEX.update({t: i for i, t in enumerate(templates())})
    return (_TEMPLATE_INDEX[tuple(template)] * 7 + 3) % 5 == 0


def fill(template: tuple[str, ...], first: str, second: str, subject: str) -> str:
    """The prompt text: ``template`` with the two first names and the repeated subject (S2)."""
    opener, go, place, give, obj = template
    return f"{opener} {first} and {second} {go} the {place} , {subject} {give} a {obj} to"


def make_prompts(n: int, seed: int = 0, held_out: bool = True) -> list[dict]:
    """``n`` IOI prompts, half ABBA and half BABA (alternating), from held-out templates (or training
    templates with ``held_out=False``). Each is a dict with ``text`` (clean prompt), ``corrupt`` (S2 replaced
    by a third name C), ``io``, ``s``, ``c`` (names, no leading space), ``order`` ("ABBA" or "BABA")."""
    rng = random.Random(f"ioi-{seed}-{held_out}")
    pool = [t for t in templates() if is_held_out(t) == held_out]
    out = []
    for i in range(n):
        t = rng.choice(pool)
        io, s, c = rng.sample(NAMES, 3)
        order = "ABBA" if i % 2 == 0 else "BABA"
        first, second = (io, s) if order == "ABBA" else (s, io)
        out.append(dict(text=fill(t, first, second, s), corrupt=fill(t, first, second, c), io=io, s=s, c=c,
                        order=order, template=t))
    return out


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


def model_folder(profile: str = PROFILE) -> Path:
    """The profile's model as a local Hugging Face folder (full: in the asset cache; never downloaded here)."""
    check_profile(profile)
    return LITE_DIR if profile == "lite" else require_asset("1.4.1", "gpt2-small", "full")


def load_model(profile: str = PROFILE, device: str = "cpu") -> "HookedTransformer":
    """The profile's model as a ``HookedTransformer`` in eval mode, gradients off, with ``use_attn_result``
    off and ``use_split_qkv_input`` off (hooks on ``hook_z`` are all the exercises need). The same code path for
    both profiles: a Hugging Face GPT-2 folder, TransformerLens's conversion, and a tokenizer that prepends BOS."""
    return load_folder(model_folder(profile), device)


def name_token(model: "HookedTransformer", name: str) -> int:
    """The token id of `` name`` (with its leading space, as it follows another word)."""
    return int(model.to_single_token(" " + name))


def make_dataset(model: "HookedTransformer", n: int = 64, seed: int = 0, held_out: bool = True) -> dict:
    """``n`` prompts from :func:`make_prompts` as model inputs.

    Returns a dict with ``prompts`` (the list of dicts), ``tokens`` and ``corrupt_tokens`` ``(n, 15)``
    (BOS first), ``io_tok``, ``s_tok`` ``(n,)`` (the answer tokens), ``io_pos``, ``s1_pos`` ``(n,)`` (where
    IO and the first S stand: 2 or 4), and the int positions ``s2_pos`` and ``end_pos``.
    """
    prompts = make_prompts(n, seed, held_out)
    tokens = model.to_tokens([p["text"] for p in prompts], prepend_bos=True)
    corrupt = model.to_tokens([p["corrupt"] for p in prompts], prepend_bos=True)
    if tokens.shape[1] != SEQ_LEN or corrupt.shape[1] != SEQ_LEN:
        raise RuntimeError(f"expected every prompt to be {SEQ_LEN} tokens long with BOS, got {tokens.shape[1]}")
    dev = tokens.device
    io_first = torch.tensor([p["order"] == "ABBA" for p in prompts], device=dev)
    return dict(
        prompts=prompts, tokens=tokens, corrupt_tokens=corrupt,
        io_tok=torch.tensor([name_token(model, p["io"]) for p in prompts], device=dev),
        s_tok=torch.tensor([name_token(model, p["s"]) for p in prompts], device=dev),
        io_pos=torch.where(io_first, POS["IO_first"], POS["IO_second"]),
        s1_pos=torch.where(io_first, POS["IO_second"], POS["IO_first"]),
        s2_pos=POS["S2"], end_pos=POS["END"],
    )


def head_names(model: "HookedTransformer") -> list[tuple[int, int]]:
    """Every head as (layer, head), layer by layer."""
    return [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]


def verify_lite_checkpoint() -> None:
    """Check every file listed in ``assets/lite/SHA256SUMS``; raise naming the bad file."""
    verify_sha256sums(LITE_DIR, f"regenerate the lite checkpoint with:  {REGENERATE_CMD}")
