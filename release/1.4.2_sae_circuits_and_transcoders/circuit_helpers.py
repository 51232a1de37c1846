"""Support code for section 1.4.2 "SAE circuits and transcoders".

The text the model reads, the model, the sparse autoencoder (SAE) on its residual stream and the transcoder that
stands in for one of its MLPs.

Two profiles, selected with the ``AUTOGRADER_PROFILE`` environment variable:

* ``lite`` (default): the 4-layer GPT-2-style model (d_model 64, word-level vocabulary of 80 tokens) of section
  1.3.1, which answers " true" or " false" after short statements; section 1.3.3's SAE with 512 features on
  ``blocks.2.hook_resid_pre``; and a transcoder with 512 features for the MLP of block 0 that this section trains
  (``assets/train_lite.py``), reading ``blocks.0.ln2.hook_normalized`` and writing ``blocks.0.hook_mlp_out``. All
  ship in ``assets/lite/``: the model as a Hugging Face folder, the SAE in ``sae/`` and the transcoder in
  ``transcoder/``, both in SAELens's own format, read with ``SAE.load_from_disk``. Needs no network.
* ``full``: ``gpt2-small`` and the SAE of Joseph Bloom's residual-stream release for it (SAELens release
  ``gpt2-small-res-jb``, the SAE on ``blocks.6.hook_resid_pre``), read from the asset cache, where
  ``autograder assets fetch --profile full --assignment 1.4.2`` puts them. SAELens has no transcoder for
  gpt2-small, so in both profiles the transcoder exercises use the lite model and the lite transcoder
  (:func:`load_lite_circuit`).

Both profiles load through the same functions: a Hugging Face GPT-2 folder with the weight processing
``HookedTransformer.from_pretrained`` applies to GPT-2, and SAELens folders read by ``SAE.load_from_disk``.
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
REGENERATE_CMD = "cd source/1.4.2_sae_circuits_and_transcoders && python assets/train_lite.py"
FULL_SAE_ID = "blocks.6.hook_resid_pre"  # the SAE of the gpt2-small-res-jb release that the full profile uses

# --------------------------------------------------------------------------
# The model, the SAE and the transcoder
# --------------------------------------------------------------------------


def model_folder(profile: str = PROFILE) -> Path:
    """The profile's model as a local Hugging Face folder (full: in the asset cache; never downloaded here)."""
    check_profile(profile)
    return LITE_DIR if profile == "lite" else require_asset("1.4.2", "gpt2-small", "full")


def sae_folder(profile: str = PROFILE) -> Path:
    """The profile's SAE as a local SAELens folder (cfg.json + sae_weights.safetensors)."""
    check_profile(profile)
    if profile == "lite":
        return LITE_DIR / "sae"
    return require_asset("1.4.2", "gpt2-small-res-jb", "full") / FULL_SAE_ID


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


def load_transcoder_folder(folder: str | os.PathLike, device: str = "cpu") -> "SAE":
    """An SAELens transcoder folder (architecture "transcoder"; its cfg.json's metadata names the MLP's input hook
    ``hook_name`` and output hook ``hook_name_out``), read by ``SAE.load_from_disk``, gradients off."""
    tc = load_sae_folder(folder, device)
    if tc.cfg.architecture() not in ("transcoder", "jumprelu_transcoder"):
        raise ValueError(f"{folder} holds a {tc.cfg.architecture()!r} SAE, not a transcoder")
    if not tc.cfg.metadata.hook_name_out:
        raise ValueError(f"{folder}/cfg.json names no output hook (metadata.hook_name_out)")
    return tc


def load_lite_circuit(device: str = "cpu") -> tuple["HookedTransformer", "SAE", "SAE"]:
    """(model, transcoder, SAE) of the lite profile, for the transcoder exercises in every profile: SAELens has no
    transcoder for gpt2-small (its transcoder releases are for Gemma models)."""
    return (load_folder(LITE_DIR, device), load_transcoder_folder(LITE_DIR / "transcoder", device),
            load_sae_folder(LITE_DIR / "sae", device))


def transcoder_hooks(transcoder: "SAE") -> tuple[str, str]:
    """(input hook, output hook) of a transcoder: where it reads the MLP's input and what it stands in for."""
    return transcoder.cfg.metadata.hook_name, transcoder.cfg.metadata.hook_name_out


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


def logit_diff(model: "HookedTransformer", logits: torch.Tensor, last_pos: torch.Tensor) -> torch.Tensor:
    """``(batch,)``: logit(" true") − logit(" false") at each prompt's last position."""
    true_id, false_id = label_token_ids(model)
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, last_pos, true_id] - logits[rows, last_pos, false_id]


def verify_lite_checkpoint() -> None:
    """Check every file listed in ``assets/lite/SHA256SUMS``; raise naming the bad file."""
    verify_sha256sums(LITE_DIR, f"regenerate the lite checkpoint with:  {REGENERATE_CMD}")
