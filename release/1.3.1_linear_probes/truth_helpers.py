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
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from autograder.assets import check_profile, require_asset
from autograder.assets.loading import EOT, hooked_gpt2_from_folder as load_folder, verify_sha256sums
from autograder.course.truth_statements import (  # noqa: F401 - the notebook and tests use them from here
    CITIES,
    COUNTRIES,
    FAMILIES,
    LABEL_WORDS,
    NUMBER_WORDS,
    PROMPT_SUFFIX,
    all_statements,
    label_token_ids,
    statements,
    to_prompt,
    tokenize_prompts,
)

if TYPE_CHECKING:  # type hints only
    from transformer_lens import HookedTransformer

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")
LITE_DIR = Path(__file__).parent / "assets" / "lite"
REGENERATE_CMD = "cd source/1.3.1_linear_probes && python assets/train_lite.py"

# --------------------------------------------------------------------------
# The statements
# --------------------------------------------------------------------------

FAMILY_DESCRIPTIONS = {
    "cmp": "number comparisons: 'Seven is larger than three.'",
    "sum": "sums: 'Two plus four is six.'",
    "city": "facts about cities: 'Paris is in France.'",
    "neg_city": "the same facts, negated: 'Paris is not in France.'",
}


def train_test_split(n: int, test_frac: float = 0.3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random split of ``range(n)`` into (train indices, test indices), both sorted."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = int(round(n * test_frac))
    return perm[n_test:].sort().values, perm[:n_test].sort().values


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


def model_folder(profile: str = PROFILE) -> Path:
    """The profile's model as a local Hugging Face folder (full: in the asset cache; never downloaded here)."""
    check_profile(profile)
    return LITE_DIR if profile == "lite" else require_asset("1.3.1", "gpt2-small", "full")


def load_model(profile: str = PROFILE, device: str = "cpu") -> "HookedTransformer":
    """The profile's model as a ``HookedTransformer`` in eval mode, gradients off. The same code path for both
    profiles: a Hugging Face GPT-2 folder, TransformerLens's config and weight conversion, and a transformers
    tokenizer over the folder's tokenizer.json that prepends ``<|endoftext|>`` (the BOS token)."""
    return load_folder(model_folder(profile), device)


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
