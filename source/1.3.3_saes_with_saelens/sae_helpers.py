"""Support code for section 1.3.3 "Sparse autoencoders with SAELens".

The text the model reads, the model, and the sparse autoencoder (SAE) on its residual stream.

Two profiles, selected with the ``AUTOGRADER_PROFILE`` environment variable:

* ``lite`` (default): the 4-layer GPT-2-style model (d_model 64, word-level vocabulary of 80
  tokens) of section 1.3.1, which answers " true" or " false" after short statements, and an
  SAE with 256 features that the course trained on its residual stream before block 2
  (``blocks.2.hook_resid_pre``) with ``assets/train_lite.py``. Both ship in ``assets/lite/``:
  the model as a Hugging Face folder (config.json, model.safetensors, tokenizer.json), the SAE
  in SAELens's own format (cfg.json, sae_weights.safetensors), loaded with
  ``SAE.load_from_disk``. Needs no network.
* ``full``: ``gpt2-small`` and the SAE of Joseph Bloom's residual-stream release for it
  (SAELens release ``gpt2-small-res-jb``, hub repo ``jbloom/GPT2-Small-SAEs-Reformatted``,
  the SAE on ``blocks.6.hook_resid_pre``), both read from the asset cache, where
  ``autograder assets fetch --profile full --assignment 1.3.3`` puts them. Loading never
  downloads; a missing asset raises an error naming that command.

Both profiles load through the same functions (:func:`load_model`, :func:`load_sae`): a
Hugging Face GPT-2 folder with the weight processing ``HookedTransformer.from_pretrained``
applies to GPT-2, and an SAELens SAE folder read by ``SAE.load_from_disk``.
"""

from __future__ import annotations

import os
import random
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
    TOKEN_CLASSES,
    all_statements,
    label_token_ids,
    statements,
    to_prompt,
    tokenize_prompts,
)

if TYPE_CHECKING:  # type hints only
    from sae_lens import SAE
    from transformer_lens import HookedTransformer

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")
LITE_DIR = Path(__file__).parent / "assets" / "lite"
REGENERATE_CMD = "cd source/1.3.3_saes_with_saelens && python assets/train_lite.py"
FULL_SAE_ID = "blocks.6.hook_resid_pre"  # the SAE of the gpt2-small-res-jb release that the full profile uses

# --------------------------------------------------------------------------
# The model and the SAE
# --------------------------------------------------------------------------


def model_folder(profile: str = PROFILE) -> Path:
    """The profile's model as a local Hugging Face folder (full: in the asset cache; never downloaded here)."""
    check_profile(profile)
    return LITE_DIR if profile == "lite" else require_asset("1.3.3", "gpt2-small", "full")


def sae_folder(profile: str = PROFILE) -> Path:
    """The profile's SAE as a local SAELens folder (cfg.json + sae_weights.safetensors)."""
    check_profile(profile)
    if profile == "lite":
        return LITE_DIR
    return require_asset("1.3.3", "gpt2-small-res-jb", "full") / FULL_SAE_ID


def load_model(profile: str = PROFILE, device: str = "cpu") -> "HookedTransformer":
    """The profile's model as a ``HookedTransformer`` in eval mode, gradients off."""
    return load_folder(model_folder(profile), device)


def load_sae(profile: str = PROFILE, device: str = "cpu") -> "SAE":
    """The profile's SAE, read by SAELens's ``SAE.load_from_disk`` (never the hub), gradients off."""
    return load_sae_folder(sae_folder(profile), device)


def load_sae_folder(folder: str | os.PathLike, device: str = "cpu") -> "SAE":
    """:func:`load_sae` for a given SAELens folder (cfg.json + sae_weights.safetensors)."""
    import warnings

    from sae_lens import SAE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "load the model with model_from_pretrained_kwargs": load_model does
        sae = SAE.load_from_disk(str(folder), device=str(device))
    sae.requires_grad_(False)
    return sae.eval()


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


def make_dataset(model: "HookedTransformer", families=FAMILIES, seed: int = 0) -> dict:
    """The balanced statements of ``families``, all in one padded batch, in a seeded order.

    Returns a dict with ``statements`` (list of str), ``family`` (list of str), ``labels`` (n,) long (1 true),
    ``tokens`` (n, seq), ``last_pos`` (n,), ``mask`` (n, seq) bool: True at real tokens (BOS included),
    False at padding, and ``answers`` (n,): the token id of the right answer (" true" or " false").
    """
    texts, fams, labels = [], [], []
    for family in families:
        t, y = statements(family, seed)
        texts += t
        labels += y
        fams += [family] * len(t)
    order = list(range(len(texts)))
    random.Random(f"mix-{seed}").shuffle(order)
    texts, fams, labels = [texts[i] for i in order], [fams[i] for i in order], [labels[i] for i in order]
    tokens, last_pos = tokenize_prompts(model, [to_prompt(t) for t in texts])
    mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] <= last_pos[:, None]
    true_id, false_id = label_token_ids(model)
    labels_t = torch.tensor(labels, device=tokens.device)
    answers = torch.where(labels_t == 1, true_id, false_id)
    return dict(statements=texts, family=fams, labels=labels_t, tokens=tokens, last_pos=last_pos, mask=mask,
                answers=answers)


def token_class_mask(model: "HookedTransformer", tokens: torch.Tensor, words: list[str]) -> torch.Tensor:
    """``(n, seq)`` bool: True where the token is one of ``words`` (a word of the lite vocabulary, or a GPT-2
    token that, stripped of spaces and lower-cased, is one of them)."""
    wanted = {w.lower() for w in words}
    vocab_hits = [i for i, s in enumerate(model.to_str_tokens(torch.arange(model.cfg.d_vocab)))
                  if s.strip().lower() in wanted]
    return torch.isin(tokens, torch.tensor(vocab_hits, device=tokens.device, dtype=tokens.dtype))


def answer_loss(logits: torch.Tensor, last_pos: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """The model's loss on what it was trained for: the mean cross-entropy of the right answer (``answers``,
    token ids) at each prompt's last position."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    return torch.nn.functional.cross_entropy(logits[rows, last_pos].float(), answers)


def verify_lite_checkpoint() -> None:
    """Check every file listed in ``assets/lite/SHA256SUMS``; raise naming the bad file."""
    verify_sha256sums(LITE_DIR, f"regenerate the lite checkpoint with:  {REGENERATE_CMD}")
