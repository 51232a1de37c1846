"""Support code for section 1.3.1 "Linear probes and the geometry of truth".

Statements, their truth labels, the prompts built from them, and the models.

Two profiles, selected with the ``AUTOGRADER_PROFILE`` environment variable:

* ``lite`` (default): a 4-layer GPT-2-style model (d_model 64) that the course
  trains on the statements below (``assets/train_lite.py``) to answer "true" or
  "false" after each one; shipped in ``assets/lite/`` as a Hugging Face folder
  (config.json, model.safetensors, a word-level tokenizer.json). Needs no network.
* ``full``: ``gpt2-small``, read from the asset cache, where
  ``autograder assets fetch --profile full --assignment 1.3.1`` puts it.
  Loading never downloads; a missing model raises an error naming that command.

Both profiles are Hugging Face GPT-2 folders and load through the same function
(:func:`load_model`), with the weight processing ``HookedTransformer.from_pretrained``
applies to GPT-2 (LayerNorm folded, writing weights and unembedding centred).
The prompts are the same English text in both profiles.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from autograder.assets import require_asset
from autograder.assets.loading import hooked_from_hf_folder, read_config, verify_sha256sums

if TYPE_CHECKING:  # type hints only
    from transformer_lens import HookedTransformer

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")
LITE_DIR = Path(__file__).parent / "assets" / "lite"
EOT = "<|endoftext|>"
REGENERATE_CMD = "cd source/1.3.1_linear_probes && python assets/train_lite.py"

# --------------------------------------------------------------------------
# The statements
# --------------------------------------------------------------------------

NUMBER_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
]
CITIES = {
    "France": ["Paris", "Lyon", "Marseille"],
    "Germany": ["Berlin", "Munich", "Hamburg"],
    "Italy": ["Rome", "Milan", "Naples"],
    "Spain": ["Madrid", "Barcelona", "Seville"],
    "Japan": ["Tokyo", "Osaka", "Kyoto"],
    "China": ["Beijing", "Shanghai", "Wuhan"],
    "Egypt": ["Cairo", "Alexandria", "Luxor"],
    "Canada": ["Toronto", "Montreal", "Vancouver"],
    "Australia": ["Sydney", "Melbourne", "Perth"],
    "India": ["Mumbai", "Delhi", "Chennai"],
    "Portugal": ["Lisbon", "Porto", "Braga"],
    "England": ["London", "Manchester", "Liverpool"],
}
COUNTRIES = list(CITIES)
FAMILIES = ("cmp", "sum", "city", "neg_city")
FAMILY_DESCRIPTIONS = {
    "cmp": "number comparisons: 'Seven is larger than three.'",
    "sum": "sums: 'Two plus four is six.'",
    "city": "facts about cities: 'Paris is in France.'",
    "neg_city": "the same facts, negated: 'Paris is not in France.'",
}
PROMPT_SUFFIX = " This statement is"
LABEL_WORDS = (" true", " false")  # the model's answer after the prompt: index 0 is "true"


def _cap(word: str) -> str:
    return word[0].upper() + word[1:]


def all_statements(family: str) -> list[tuple[str, int]]:
    """Every statement of ``family`` with its truth (1 true, 0 false), in a fixed order."""
    out = []
    if family == "cmp":
        for a in range(10):
            for b in range(10):
                if a == b:
                    continue
                out.append((f"{_cap(NUMBER_WORDS[a])} is larger than {NUMBER_WORDS[b]}.", int(a > b)))
                out.append((f"{_cap(NUMBER_WORDS[a])} is smaller than {NUMBER_WORDS[b]}.", int(a < b)))
    elif family == "sum":
        for a in range(10):
            for b in range(10):
                for c in range(19):
                    out.append((f"{_cap(NUMBER_WORDS[a])} plus {NUMBER_WORDS[b]} is {NUMBER_WORDS[c]}.", int(a + b == c)))
    elif family in ("city", "neg_city"):
        neg = " not" if family == "neg_city" else ""
        for country, cities in CITIES.items():
            for city in cities:
                for other in COUNTRIES:
                    in_it = other == country
                    out.append((f"{city} is{neg} in {other}.", int(in_it != bool(neg))))
    else:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return out


def statements(family: str, seed: int = 0) -> tuple[list[str], list[int]]:
    """A balanced set of statements of ``family``: every statement of the rarer label, and as many of
    the other label drawn with ``seed`` (cmp is balanced already: all 180). Shuffled with ``seed``."""
    rng = random.Random(f"{family}-{seed}")
    pool = all_statements(family)
    true = [s for s in pool if s[1] == 1]
    false = [s for s in pool if s[1] == 0]
    n = min(len(true), len(false))
    chosen = (rng.sample(true, n) if len(true) > n else true) + (rng.sample(false, n) if len(false) > n else false)
    rng.shuffle(chosen)
    return [s for s, _ in chosen], [y for _, y in chosen]


def to_prompt(statement: str) -> str:
    """What the model reads: the statement, then " This statement is"; it answers " true" or " false"."""
    return statement + PROMPT_SUFFIX


def train_test_split(n: int, test_frac: float = 0.3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random split of ``range(n)`` into (train indices, test indices), both sorted."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = int(round(n * test_frac))
    return perm[n_test:].sort().values, perm[:n_test].sort().values


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


def _check_profile(profile: str) -> None:
    if profile not in ("lite", "full"):
        raise ValueError(f"unknown profile {profile!r}; expected 'lite' or 'full'")


def model_folder(profile: str = PROFILE) -> Path:
    """The profile's model as a local Hugging Face folder (full: in the asset cache; never downloaded here)."""
    _check_profile(profile)
    return LITE_DIR if profile == "lite" else require_asset("1.3.1", "gpt2-small", "full")


# What HookedTransformer.from_pretrained does to GPT-2's weights.
PROCESSING = dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True,
                  refactor_factored_attn_matrices=False)


def load_model(profile: str = PROFILE, device: str = "cpu") -> "HookedTransformer":
    """The profile's model as a ``HookedTransformer`` in eval mode, gradients off. The same code path for both
    profiles: a Hugging Face GPT-2 folder, TransformerLens's config and weight conversion, and a transformers
    tokenizer over the folder's tokenizer.json that prepends ``<|endoftext|>`` (the BOS token)."""
    return load_folder(model_folder(profile), device)


def load_folder(folder: str | os.PathLike, device: str = "cpu") -> "HookedTransformer":
    """:func:`load_model` for a given Hugging Face GPT-2 folder."""
    from transformers import PreTrainedTokenizerFast

    hf_cfg = read_config(folder)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(
        str(folder), bos_token=EOT, eos_token=EOT, unk_token=EOT, pad_token=EOT, add_bos_token=True
    )
    tokenizer.padding_side = "right"
    model = hooked_from_hf_folder(
        folder, device=str(device), fold_ln=True, processing=PROCESSING, tokenizer=tokenizer,
        d_mlp=hf_cfg.get("n_inner") or 4 * hf_cfg["n_embd"], tokenizer_name=None,
        default_prepend_bos=True,
    )
    model.requires_grad_(False)
    return model


def label_token_ids(model: "HookedTransformer") -> tuple[int, int]:
    """The token ids of the answers (" true", " false")."""
    return tuple(int(model.to_single_token(w)) for w in LABEL_WORDS)


def tokenize_prompts(model: "HookedTransformer", prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens ``(n, seq)`` (BOS first, padded on the right with ``<|endoftext|>``) and the position of each
    prompt's last token ``(n,)``: where the model predicts its answer."""
    lengths = [len(model.tokenizer(p)["input_ids"]) for p in prompts]
    tokens = model.to_tokens(prompts, prepend_bos=True, padding_side="right")
    if tokens.shape[1] != max(lengths):
        raise RuntimeError("the tokenizer did not add exactly one BOS token")
    return tokens, torch.tensor(lengths, device=tokens.device) - 1


def make_dataset(model: "HookedTransformer", family: str, seed: int = 0) -> dict:
    """The balanced statements of ``family`` as model inputs.

    Returns a dict with ``statements`` (list of str), ``labels`` (n,) long, 1 = true,
    ``tokens`` (n, seq) and ``last_pos`` (n,) as in :func:`tokenize_prompts`.
    """
    texts, labels = statements(family, seed)
    tokens, last_pos = tokenize_prompts(model, [to_prompt(t) for t in texts])
    return dict(statements=texts, labels=torch.tensor(labels, device=tokens.device), tokens=tokens, last_pos=last_pos)


def verify_lite_checkpoint() -> None:
    """Check every file listed in ``assets/lite/SHA256SUMS``; raise naming the bad file."""
    verify_sha256sums(LITE_DIR, f"regenerate the lite checkpoint with:  {REGENERATE_CMD}")
