"""Support code for section 1.5.1 "Balanced brackets".

Used by the student notebook, the public checks, the grader's hidden tests and
``assets/train_lite.py``. Two profiles, one code path:

* ``lite`` (default): a 3-layer, 2-head bidirectional classifier (d_model 56)
  trained on bracket strings of length <= 20 by ``assets/train_lite.py``,
  shipped in ``assets/lite/`` (config.json, model.safetensors,
  training_info.json, SHA256SUMS).
* ``full``: the same architecture at the original size (strings of length
  <= 40). It is not shipped: put a folder with the same layout (``config.json``
  + ``model.safetensors``) at ``assets/full/`` or point ``BRACKETS_FULL_DIR``
  at one.

Both are loaded the same way: ``config.json`` -> ``HookedTransformerConfig`` ->
``HookedTransformer(cfg)`` -> ``load_state_dict`` of a safetensors state dict,
then the LayerNorm weights are folded into the following layers
(``process_weights_``) and padding is masked (``add_padding_mask``). Select the
profile with the ``AUTOGRADER_PROFILE`` environment variable.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from itertools import accumulate
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from autograder.assets.cache import profile_folder
from autograder.assets.loading import (  # noqa: F401 - read_config, sha256_file: part of this module's API
    load_safetensors, new_hooked, read_config, sha256_file, tl_config, verify_sha256sums,
)

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")
HERE = Path(__file__).resolve().parent
LITE_DIR = HERE / "assets" / "lite"
FULL_ENV = "BRACKETS_FULL_DIR"
REGENERATE_CMD = "cd source/1.5.1_balanced_brackets && python assets/train_lite.py"

# HookedTransformerConfig keys stored in config.json (everything else there is about the task).
MODEL_KEYS = (
    "n_layers", "d_model", "d_head", "n_heads", "d_mlp", "d_vocab", "d_vocab_out", "n_ctx",
    "act_fn", "normalization_type", "attention_dir", "seed",
)

# ----------------------------------------------------------------------------- tokens

START, PAD, OPEN, CLOSE = 0, 1, 2, 3
VOCAB = {"[start]": START, "[pad]": PAD, "(": OPEN, ")": CLOSE}
# The classifier's two outputs, read at position 0 (the [start] token).
UNBALANCED, BALANCED = 0, 1


class SimpleTokenizer:
    """Turns bracket strings into token ids: ``[start]`` first, then one token per bracket, ``[pad]`` after."""

    def __init__(self, alphabet: str = "()"):
        self.alphabet = alphabet
        self.t_to_i = {"[start]": START, "[pad]": PAD, alphabet[0]: OPEN, alphabet[1]: CLOSE}
        self.i_to_t = {i: t for t, i in self.t_to_i.items()}
        self.START_TOKEN, self.PAD_TOKEN = START, PAD

    def tokenize(self, strs: str | list[str], max_len: int | None = None) -> Tensor:
        """(batch, 1 + longest) int64 tokens; a single string gives a batch of one."""
        if isinstance(strs, str):
            strs = [strs]
        width = max((len(s) for s in strs), default=0) if max_len is None else max_len
        out = torch.full((len(strs), width + 1), PAD, dtype=torch.long)
        out[:, 0] = START
        for row, s in enumerate(strs):
            if len(s) > width:
                raise ValueError(f"string of length {len(s)} is longer than max_len = {width}")
            for col, c in enumerate(s):
                if c not in self.t_to_i or c.startswith("["):
                    raise ValueError(f"unexpected character {c!r}; only {self.alphabet!r} are allowed")
                out[row, col + 1] = self.t_to_i[c]
        return out

    def decode(self, tokens: Tensor) -> list[str]:
        """The bracket strings back (special tokens dropped)."""
        if tokens.ndim == 1:
            tokens = tokens[None]
        return ["".join(self.i_to_t[int(t)] for t in row if int(t) in (OPEN, CLOSE)) for row in tokens]


def balanced_reference(s: str) -> bool:
    """Plain definition, used to label the data (the notebook asks you to write your own)."""
    heights = list(accumulate(1 if c == "(" else -1 for c in s))
    return not heights or (min(heights) >= 0 and heights[-1] == 0)


# ----------------------------------------------------------------------------- data

CATEGORIES = ("balanced", "random", "zero_total_goes_negative", "never_negative_nonzero_total", "one_edit")


def _dyck(rng: random.Random, n_pairs: int) -> str:
    """A uniformly random balanced string with ``n_pairs`` pairs (cycle lemma)."""
    steps = ["("] * n_pairs + [")"] * (n_pairs + 1)
    rng.shuffle(steps)
    for r in range(len(steps)):
        rotated = steps[r:] + steps[:r]
        if rotated[-1] == ")" and balanced_reference("".join(rotated[:-1])):
            return "".join(rotated[:-1])
    raise AssertionError("unreachable: some rotation is always balanced")


def _sample(rng: random.Random, category: str, max_len: int) -> str:
    half = max_len // 2
    if category == "balanced":
        return _dyck(rng, rng.randint(1, half))
    if category == "random":
        return "".join(rng.choice("()") for _ in range(rng.randint(1, max_len)))
    if category == "zero_total_goes_negative":
        n = rng.randint(1, half)
        while True:
            chars = ["("] * n + [")"] * n
            rng.shuffle(chars)
            s = "".join(chars)
            if not balanced_reference(s):
                return s
    if category == "never_negative_nonzero_total":
        length = rng.randint(1, max_len)
        while True:
            depth, out = 0, []
            for _ in range(length):
                c = "(" if depth == 0 or rng.random() < 0.5 else ")"
                depth = depth + (1 if c == "(" else -1)
                out.append(c)
            if depth > 0:
                return "".join(out)
    if category == "one_edit":
        s = list(_dyck(rng, rng.randint(1, half)))
        if rng.random() < 0.5:  # flip one bracket: the total elevation becomes +-2
            i = rng.randrange(len(s))
            s[i] = "(" if s[i] == ")" else ")"
        else:  # swap an adjacent "()" into ")(": same total, may dip below zero
            spots = [i for i in range(len(s) - 1) if s[i] == "(" and s[i + 1] == ")"]
            i = rng.choice(spots)
            s[i], s[i + 1] = ")", "("
        return "".join(s)
    raise ValueError(f"unknown category {category!r}")


DEFAULT_MIX = {"balanced": 0.4, "random": 0.15, "zero_total_goes_negative": 0.15,
               "never_negative_nonzero_total": 0.15, "one_edit": 0.15}


def generate_strings(n: int, seed: int, max_len: int = 20, mix: dict[str, float] | None = None) -> tuple[list[str], list[str]]:
    """``n`` bracket strings and their categories (see ``CATEGORIES``), reproducible from ``seed``."""
    mix = DEFAULT_MIX if mix is None else mix
    rng = random.Random(seed)
    names, weights = list(mix), list(mix.values())
    cats = rng.choices(names, weights=weights, k=n)
    return [_sample(rng, c, max_len) for c in cats], cats


@dataclass
class BracketsDataset:
    """Bracket strings with their tokens and labels.

    ``strs``: the strings; ``toks``: (n, 1 + longest) tokens; ``isbal``: (n,) bool;
    ``category``: how each string was generated (see ``CATEGORIES``).
    """

    strs: list[str]
    toks: Tensor
    isbal: Tensor
    category: list[str]

    @classmethod
    def from_strings(cls, strs: list[str], category: list[str] | None = None, max_len: int | None = None) -> "BracketsDataset":
        toks = SimpleTokenizer().tokenize(strs, max_len=max_len)
        isbal = torch.tensor([balanced_reference(s) for s in strs], dtype=torch.bool)
        return cls(list(strs), toks, isbal, list(category) if category is not None else ["given"] * len(strs))

    @classmethod
    def generate(cls, n: int, seed: int, max_len: int = 20, mix: dict[str, float] | None = None) -> "BracketsDataset":
        strs, cats = generate_strings(n, seed, max_len, mix)
        return cls.from_strings(strs, cats)

    def __len__(self) -> int:
        return len(self.strs)

    def __getitem__(self, idx) -> "BracketsDataset":
        if isinstance(idx, int):
            idx = [idx]
        if isinstance(idx, slice):
            idx = list(range(len(self)))[idx]
        if isinstance(idx, Tensor):
            idx = (torch.nonzero(idx).flatten() if idx.dtype == torch.bool else idx).tolist()
        strs = [self.strs[i] for i in idx]
        return BracketsDataset.from_strings(strs, [self.category[i] for i in idx])

    def to(self, device) -> "BracketsDataset":
        return BracketsDataset(self.strs, self.toks.to(device), self.isbal.to(device), self.category)


# ----------------------------------------------------------------------------- the model

def model_dir(profile: str = PROFILE) -> Path:
    """lite: the shipped folder. full: ``$BRACKETS_FULL_DIR``, else ``assets/full/``, else the asset cache."""
    return profile_folder(profile, assignment="1.5.1", lite=LITE_DIR, full_env=FULL_ENV, full_local=HERE / "assets" / "full")


def build_model(config: dict, device: str = "cpu") -> "HookedTransformer":
    """A fresh ``HookedTransformer`` with the architecture described by ``config`` (a config.json dict)."""
    return new_hooked(tl_config(config, MODEL_KEYS, device, use_hook_tokens=True))


def add_padding_mask(model: "HookedTransformer") -> "HookedTransformer":
    """Make every attention head ignore ``[pad]`` keys, with permanent hooks.

    ``attention_dir="bidirectional"`` has no padding mask of its own. A hook on
    ``hook_tokens`` remembers where the pads are; a hook on every layer's
    ``attn.hook_attn_scores`` sets the scores of pad keys to -inf. Permanent
    hooks survive ``model.reset_hooks()`` and ``run_with_hooks``.
    """
    state: dict[str, Tensor] = {}

    def remember_pads(tokens, hook):
        state["pad"] = tokens == PAD
        return tokens

    def mask_pads(scores, hook):
        pad = state["pad"].to(scores.device)
        if pad.shape[-1] != scores.shape[-1]:
            return scores
        return scores.masked_fill(pad[:, None, None, :], float("-inf"))

    model.add_perma_hook("hook_tokens", remember_pads)
    for layer in range(model.cfg.n_layers):
        model.add_perma_hook(f"blocks.{layer}.attn.hook_attn_scores", mask_pads)
    return model


load_state = load_safetensors  # (path, device) -> state dict


def load_model(profile: str = PROFILE, device: str = "cpu", folder: str | os.PathLike | None = None) -> "HookedTransformer":
    """The profile's trained classifier (or the one in ``folder``), LayerNorm folded, padding masked."""
    folder = Path(folder) if folder is not None else model_dir(profile)
    if not (folder / "config.json").is_file():
        hint = REGENERATE_CMD if profile == "lite" else (
            "the full model is not shipped: save its config.json and model.safetensors (the layout of "
            f"assets/lite/) in that folder or set {FULL_ENV}"
        )
        raise FileNotFoundError(f"no config.json in {folder}; {hint}")
    model = build_model(read_config(folder), device)
    model.load_state_dict(load_state(folder / "model.safetensors", device), strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.process_weights_(fold_ln=True, center_writing_weights=False, center_unembed=False)
    add_padding_mask(model)
    return model.eval()


def task_info(profile: str = PROFILE, folder: str | os.PathLike | None = None) -> dict:
    """The longest string the profile's model was trained on."""
    config = read_config(Path(folder) if folder is not None else model_dir(profile))
    return {"max_len": int(config["max_len"])}


def training_info(profile: str = PROFILE, folder: str | os.PathLike | None = None) -> dict:
    """The training_info.json written by assets/train_lite.py (empty if the profile has none)."""
    path = (Path(folder) if folder is not None else model_dir(profile)) / "training_info.json"
    return json.loads(path.read_text()) if path.is_file() else {}


# ----------------------------------------------------------------------------- integrity

def verify_checkpoint(folder: Path = LITE_DIR) -> None:
    """Check every file listed in ``SHA256SUMS``; raise ``RuntimeError`` naming a bad file."""
    verify_sha256sums(folder, REGENERATE_CMD)
