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

from autograder.assets import require_asset
from autograder.assets.loading import hooked_from_hf_folder, read_config, verify_sha256sums

if TYPE_CHECKING:  # type hints only
    from sae_lens import SAE
    from transformer_lens import HookedTransformer

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")
LITE_DIR = Path(__file__).parent / "assets" / "lite"
EOT = "<|endoftext|>"
REGENERATE_CMD = "cd source/1.4.2_sae_circuits_and_transcoders && python assets/train_lite.py"
FULL_SAE_ID = "blocks.6.hook_resid_pre"  # the SAE of the gpt2-small-res-jb release that the full profile uses

# --------------------------------------------------------------------------
# The text: the statements of section 1.3.1
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
PROMPT_SUFFIX = " This statement is"
LABEL_WORDS = (" true", " false")  # the model's answer after the prompt: index 0 is "true"
# Word classes for finding features (lower case, as the lite tokenizer writes them)
TOKEN_CLASSES = {
    "number word": NUMBER_WORDS,
    "city": [c.lower() for cities in CITIES.values() for c in cities],
    "country": [c.lower() for c in COUNTRIES],
    "not": ["not"],
}


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
                    out.append((f"{city} is{neg} in {other}.", int((other == country) != bool(neg))))
    else:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return out


def statements(family: str, seed: int = 0) -> tuple[list[str], list[int]]:
    """A balanced set of statements of ``family`` (as in section 1.3.1): every statement of the rarer label and
    as many of the other drawn with ``seed``, shuffled with ``seed``."""
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


# --------------------------------------------------------------------------
# The model, the SAE and the transcoder
# --------------------------------------------------------------------------


def _check_profile(profile: str) -> None:
    if profile not in ("lite", "full"):
        raise ValueError(f"unknown profile {profile!r}; expected 'lite' or 'full'")


def model_folder(profile: str = PROFILE) -> Path:
    """The profile's model as a local Hugging Face folder (full: in the asset cache; never downloaded here)."""
    _check_profile(profile)
    return LITE_DIR if profile == "lite" else require_asset("1.4.2", "gpt2-small", "full")


def sae_folder(profile: str = PROFILE) -> Path:
    """The profile's SAE as a local SAELens folder (cfg.json + sae_weights.safetensors)."""
    _check_profile(profile)
    if profile == "lite":
        return LITE_DIR / "sae"
    return require_asset("1.4.2", "gpt2-small-res-jb", "full") / FULL_SAE_ID


# What HookedTransformer.from_pretrained does to GPT-2's weights (gpt2-small-res-jb was trained on this too).
PROCESSING = dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True,
                  refactor_factored_attn_matrices=False)


def load_model(profile: str = PROFILE, device: str = "cpu") -> "HookedTransformer":
    """The profile's model as a ``HookedTransformer`` in eval mode, gradients off."""
    return load_folder(model_folder(profile), device)


def load_folder(folder: str | os.PathLike, device: str = "cpu") -> "HookedTransformer":
    """:func:`load_model` for a given Hugging Face GPT-2 folder: TransformerLens's config and weight conversion,
    and a tokenizer over the folder's tokenizer.json that prepends ``<|endoftext|>`` (the BOS token)."""
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
