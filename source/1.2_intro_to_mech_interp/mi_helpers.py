"""Support code for section 1.2 "Intro to Mechanistic Interpretability".

Two profiles, selected with the ``AUTOGRADER_PROFILE`` environment variable:

* ``lite`` (default): a 2-layer attention-only transformer with
  shortformer-style positional embeddings, trained by ``assets/train_lite.py``
  and shipped in ``assets/lite/`` (config.json + model.safetensors +
  tokenizer.json). Needs no network and runs on a laptop CPU.
* ``full``: TransformerLens's ``attn-only-2l`` (for everything about induction)
  and ``gpt2-small`` (for the first part), read from the asset cache, where
  ``autograder assets fetch --profile full --assignment 1.2`` puts them.
  Loading never downloads; a missing model raises an error naming that command.

Both profiles load through the same code path (:func:`load_model`): a
``HookedTransformerConfig`` plus a state dict in TransformerLens format, then
``HookedTransformer(cfg)`` and ``load_and_process_state_dict`` with the same
weight processing ``HookedTransformer.from_pretrained`` would choose for that
config. (``from_pretrained`` itself refuses local directories, so the
checkpoints go through ``autograder.assets.loading`` instead.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from autograder.assets import check_profile, require_asset
from autograder.assets.loading import (
    hf_folder_config, hf_folder_state_dict, hooked_from_state, load_safetensors, tl_hub_folder_config_and_state,
    verify_sha256sums,
)

if TYPE_CHECKING:  # type hints only
    from transformer_lens import HookedTransformer, HookedTransformerConfig

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")
LITE_DIR = Path(__file__).parent / "assets" / "lite"
EOT = "<|endoftext|>"
REGENERATE_CMD = "cd source/1.2_intro_to_mech_interp && python assets/train_lite.py"

# The models of the full profile (TransformerLens names).
FULL_MODELS = {"attn-only-2l": "attn-only-2l", "gpt2-small": "gpt2-small"}


# --------------------------------------------------------------------------
# Config and weights, per profile
# --------------------------------------------------------------------------


def lite_config(device: str = "cpu") -> "HookedTransformerConfig":
    """The lite model's config, read from ``assets/lite/config.json``."""
    from transformer_lens import HookedTransformerConfig

    cfg_dict = json.loads((LITE_DIR / "config.json").read_text())
    cfg_dict.update(device=device, init_weights=False)
    return HookedTransformerConfig(**cfg_dict)


def lite_state_dict() -> dict[str, torch.Tensor]:
    """The lite model's raw (unprocessed) weights, in TransformerLens naming."""
    return load_safetensors(LITE_DIR / "model.safetensors")


def lite_tokenizer():
    """A ``transformers`` tokenizer over ``assets/lite/tokenizer.json``, so that
    ``model.to_tokens`` / ``to_str_tokens`` / ``to_string`` work. It prepends
    ``<|endoftext|>`` (the BOS token, id 0) like GPT-2's does in TransformerLens."""
    from transformers import PreTrainedTokenizerFast

    # from_pretrained (not the constructor): TransformerLens reloads the
    # tokenizer from its `name_or_path`, which must be this directory.
    return PreTrainedTokenizerFast.from_pretrained(
        str(LITE_DIR), bos_token=EOT, eos_token=EOT, unk_token=EOT, pad_token=EOT, add_bos_token=True
    )


def _config_and_weights(profile: str, name: str, device: str):
    check_profile(profile)
    if profile == "lite":
        return lite_config(device), lite_state_dict(), lite_tokenizer()
    if name not in FULL_MODELS:
        raise ValueError(f"unknown model {name!r}; the full profile has {sorted(FULL_MODELS)}")
    folder = require_asset("1.2", FULL_MODELS[name], "full")  # the asset cache only; never the hub
    if name == "gpt2-small":
        # As in from_pretrained: ask for folded LayerNorm (LN -> LNPre in the config).
        cfg = hf_folder_config(folder, device=device, fold_ln=True)
        return cfg, hf_folder_state_dict(folder, cfg), None  # TL loads the tokenizer from the folder itself
    from transformers import AutoTokenizer

    # attn-only-2l is a shortformer: LayerNorm stays (processing_flags). Its tokenizer is its own asset.
    cfg, state = tl_hub_folder_config_and_state(folder, device=device, tokenizer_name=None)
    tokenizer = AutoTokenizer.from_pretrained(
        str(require_asset("1.2", "attn-only-2l-tokenizer", "full")), add_bos_token=True, local_files_only=True
    )
    return cfg, state, tokenizer


def processing_flags(cfg: "HookedTransformerConfig") -> dict:
    """The weight processing ``HookedTransformer.from_pretrained`` uses for ``cfg``.

    Shortformer models (attn-only-2l and the lite model) add the positional
    embedding *after* ``ln1``, so LayerNorm cannot be folded and writing
    weights cannot be centred; only value biases are folded into ``b_O``.
    """
    shortformer = cfg.positional_embedding_type == "shortformer"
    return dict(
        fold_ln=not shortformer and cfg.normalization_type in ("LN", "LNPre"),
        center_writing_weights=not shortformer,
        center_unembed=not shortformer,
        fold_value_biases=True,
        refactor_factored_attn_matrices=False,
    )


def load_model(profile: str = PROFILE, device: str = "cpu", name: str = "attn-only-2l") -> "HookedTransformer":
    """Load a model of ``profile`` as a ``HookedTransformer`` in eval mode.

    ``name`` picks the full profile's model (``"attn-only-2l"`` or
    ``"gpt2-small"``); the lite profile has one model and ignores it.
    """
    cfg, state_dict, tokenizer = _config_and_weights(profile, name, str(device))
    model = hooked_from_state(cfg, state_dict, tokenizer=tokenizer, processing=processing_flags(cfg), device=device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# --------------------------------------------------------------------------
# Small utilities the notebook and the tests share
# --------------------------------------------------------------------------


def permuted_heads_state_dict(model: "HookedTransformer", layer: int, perm: list[int]) -> dict[str, torch.Tensor]:
    """The model's state dict with the heads of ``layer`` reordered by ``perm``.

    The permuted model computes exactly the same function; only the head
    indices change (head ``i`` of the new model is head ``perm[i]`` of the
    old). Handy for checking that an analysis *finds* heads rather than
    remembering them.
    """
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    idx = torch.tensor(perm)
    for key in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V"):
        full = f"blocks.{layer}.attn.{key}"
        if full in sd:
            sd[full] = sd[full][idx].clone()
    return sd


def story_prompt() -> str:
    """A short story from the lite model's training distribution (used in the notebook)."""
    return (
        "Once upon a time, there was a small fox named Cora. Cora lived in a garden. "
        "Cora had a pink bell. One day, Cora went to the river to look for shells. "
        "At the river, Cora met a shy owl named Ben. \"Hi, Ben,\" said Cora. \"My name is Cora.\" "
        "But then Cora lost the pink bell. Ben helped Cora look for the pink bell."
    )


# --------------------------------------------------------------------------
# Checkpoint integrity
# --------------------------------------------------------------------------


def verify_lite_checkpoint() -> None:
    """Check every file listed in ``assets/lite/SHA256SUMS``; raise naming the bad file."""
    verify_sha256sums(LITE_DIR, f"regenerate the lite checkpoint with:  {REGENERATE_CMD}")
