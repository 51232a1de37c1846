"""Support code for section 1.3.4 "Activation oracles".

The target model (whose activations we read), the oracle (a copy of it fine-tuned to answer questions about
activations injected into its residual stream), the questions, and the statements they are asked about.

Two profiles, selected with the ``AUTOGRADER_PROFILE`` environment variable:

* ``lite`` (default): the target is section 1.3.1's 4-layer GPT-2 (d_model 64, word-level vocabulary), which
  answers " true" or " false" after statements such as "Paris is not in France. This statement is". The oracle
  is a copy of it with thirteen more words in its vocabulary and 24 positions instead of 16, fine-tuned by this
  section (``assets/train_lite.py``) to answer six questions about the target's residual stream after block
  :data:`READ_LAYER` ("is this statement true ?", "which country ?", ...). Both ship in ``assets/lite/`` as
  Hugging Face folders (``target/``, ``oracle/``). Needs no network.
* ``full``: the target is ``Qwen/Qwen3-8B``; the oracle is the same model with the LoRA adapter of the
  activation-oracle paper (Karvonen et al., 2025) merged into its weights. Both come from the asset cache, where
  ``autograder assets fetch --profile full --assignment 1.3.4`` puts them; nothing is downloaded here.

Both profiles load through the same functions (:func:`load_target`, :func:`load_oracle`): a Hugging Face folder
converted by TransformerLens, with the LayerNorm folded but the residual stream left exactly as the Hugging
Face model computes it (no centring of the writing weights). That matters here: the oracle was trained with the
injection written on the Hugging Face model's residual stream, and the injection depends on its norm.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from autograder.assets import check_profile, require_asset
from autograder.assets.loading import EOT, hooked_gpt2_from_folder, verify_sha256sums
from autograder.course.truth_statements import (  # noqa: F401 - the notebook and tests use them from here
    CITIES,
    COUNTRIES,
    FAMILIES,
    NUMBER_WORDS,
    all_statements,
    to_prompt,
)

if TYPE_CHECKING:  # type hints only
    from transformer_lens import HookedTransformer

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")
LITE_DIR = Path(__file__).parent / "assets" / "lite"
REGENERATE_CMD = "cd source/1.3.4_activation_oracles && python assets/train_lite.py"

# Where the oracle reads and writes. READ_LAYER: the target's residual stream after this block
# (``blocks.{READ_LAYER}.hook_resid_post``). INJECT_LAYER: the oracle's residual stream entering this block
# (``blocks.{INJECT_LAYER}.hook_resid_pre``), i.e. after its first block, as in the paper.
READ_LAYER = {"lite": 3, "full": 18}
INJECT_LAYER = 1
PLACEHOLDER = " ?"  # one per vector: the token whose residual stream receives it
# What the oracle reads before the placeholders: which of the target's layers the vectors come from. The lite oracle
# only ever saw one layer, but its prompt keeps the paper's layout.
PROMPT_PREFIX = {"lite": "layer 3 :", "full": "Layer 18:"}

# The residual stream exactly as Hugging Face computes it: LayerNorm folded (which does not change it),
# writing weights not centred (which would).
RESIDUAL_PRESERVING = dict(fold_ln=True, center_writing_weights=False, center_unembed=True, fold_value_biases=True,
                           refactor_factored_attn_matrices=False)

# --------------------------------------------------------------------------
# Questions
# --------------------------------------------------------------------------

RELATIONS = ["larger", "smaller", "plus", "in", "not"]  # the "kind" of a statement: the word that decides it

# name: (the question as the lite oracle reads it, the families it is asked about, the candidate answers)
QUESTIONS: dict[str, tuple[str, tuple[str, ...], list[str]]] = {
    "truth": ("is this statement true ?", FAMILIES, ["true", "false"]),
    "kind": ("which kind of statement ?", FAMILIES, RELATIONS),
    "country": ("which country ?", ("city", "neg_city"), [c.lower() for c in COUNTRIES]),
    "city": ("which city ?", ("city", "neg_city"), [c.lower() for cs in CITIES.values() for c in cs]),
    "first": ("which number comes first ?", ("cmp", "sum"), NUMBER_WORDS),
    "second": ("which number comes second ?", ("cmp", "sum"), NUMBER_WORDS),
}
# The same questions in the words the full oracle (trained on natural language) reads.
FULL_QUESTION_TEXT = {
    "truth": "Is this statement true or false?",
    "kind": "Which word decides whether this statement is true?",
    "country": "Which country is named?",
    "city": "Which city is named?",
    "first": "Which number comes first?",
    "second": "Which number comes second?",
}
# The oracle never saw this question asked about this family in training: the test of generalisation. No negated
# statement's truth was ever a training target, so every one of them (both splits) can test it.
HELD_OUT = ("truth", "neg_city")


def evaluation_examples(question: str, family: str, seed: int = 0) -> list[tuple[str, str, str]]:
    """What the evidence is measured on: the held-out split, balanced for the truth question; for the held-out
    (question, family) pair, every statement of the family (balanced), since none of their truths was trained on."""
    if (question, family) == HELD_OUT:
        return balanced_truth_examples(None, [family], seed)
    if question == "truth":
        return balanced_truth_examples("test", [family], seed)
    return examples(question, "test", [family])
NEW_WORDS = ["?", ":", "layer", "3", "which", "kind", "of", "country", "city", "number", "comes", "first", "second"]


def answers_of(statement: str, family: str, truth: int) -> dict[str, str]:
    """The right answer (one word) to every question that applies to ``statement``."""
    words = statement.lower().rstrip(".").split()
    out = {"truth": "true" if truth else "false"}
    if family in ("cmp", "sum"):
        # "seven is larger than two" / "three plus four is seven"
        out["first"] = words[0]
        out["second"] = words[4] if family == "cmp" else words[2]
        out["kind"] = words[2] if family == "cmp" else "plus"
    else:
        # "paris is in france" / "paris is not in egypt"
        out["city"], out["country"] = words[0], words[-1]
        out["kind"] = "not" if family == "neg_city" else "in"
    return out


def split_of(statement: str) -> str:
    """"train" or "test": a fixed split of every statement (one in five is held out), the same in the training
    script, the notebook and the tests."""
    return "test" if int(hashlib.sha256(statement.encode()).hexdigest(), 16) % 5 == 0 else "train"


def examples(question: str, split: str | None = "test", families=None) -> list[tuple[str, str, str]]:
    """``(statement, family, answer)`` for every statement of ``split`` (None: of both) that ``question`` applies to,
    in the families' order (``families`` None: all the question's families)."""
    _, fams, _ = QUESTIONS[question]
    out = []
    for family in (fams if families is None else [f for f in families if f in fams]):
        for statement, truth in all_statements(family):
            if split is None or split_of(statement) == split:
                out.append((statement, family, answers_of(statement, family, truth)[question]))
    return out


def balanced_truth_examples(split: str | None = "test", families=FAMILIES, seed: int = 0) -> list[tuple[str, str, str]]:
    """The truth question's examples with as many true as false statements in each family (the sums are mostly
    false: a majority-class guess would look good on them)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for family in families:
        rows = examples("truth", split, [family])
        true = [r for r in rows if r[2] == "true"]
        false = [r for r in rows if r[2] == "false"]
        n = min(len(true), len(false))
        pick = lambda rs: [rs[i] for i in torch.randperm(len(rs), generator=g)[:n].sort().values.tolist()]  # noqa: E731
        out += pick(true) + pick(false)
    return out


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


def _check_profile(profile: str | None) -> str:
    """``profile``, or the ``AUTOGRADER_PROFILE`` one when None (read at call time, so that tests can switch it)."""
    return check_profile(PROFILE if profile is None else profile)


def target_folder(profile: str | None = None) -> Path:
    profile = _check_profile(profile)
    return LITE_DIR / "target" if profile == "lite" else require_asset("1.3.4", "qwen3-8b", "full")


def oracle_folder(profile: str | None = None) -> Path:
    """The oracle as a Hugging Face folder. Full: the base model with the oracle's LoRA adapter merged, written
    once into the asset cache by :func:`merged_oracle_folder`."""
    profile = _check_profile(profile)
    if profile == "lite":
        return LITE_DIR / "oracle"
    return merged_oracle_folder(target_folder(profile), require_asset("1.3.4", "activation-oracle-qwen3-8b", "full"))


def load_target(profile: str | None = None, device: str = "cpu") -> "HookedTransformer":
    """The target model as a ``HookedTransformer`` (residual stream as in Hugging Face), eval mode, no gradients."""
    profile = _check_profile(profile)
    return _load(target_folder(profile), profile, device)


def load_oracle(profile: str | None = None, device: str = "cpu") -> "HookedTransformer":
    """The oracle as a ``HookedTransformer`` (residual stream as in Hugging Face), eval mode, no gradients."""
    profile = _check_profile(profile)
    return _load(oracle_folder(profile), profile, device)


def _load(folder: Path, profile: str, device: str) -> "HookedTransformer":
    if profile == "lite":  # a GPT-2 with a word-level tokenizer
        return hooked_gpt2_from_folder(folder, device, processing=RESIDUAL_PRESERVING)
    from transformers import AutoTokenizer

    from autograder.assets.loading import hooked_from_hf_folder

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    tokenizer.padding_side = "right"
    model = hooked_from_hf_folder(folder, device=str(device), fold_ln=True, processing=RESIDUAL_PRESERVING,
                                  tokenizer=tokenizer)
    model.requires_grad_(False)
    return model


def merged_oracle_folder(base: Path, adapter: Path) -> Path:
    """``base`` (a Hugging Face folder) with the PEFT LoRA adapter in ``adapter`` merged into its weights, saved
    next to the adapter (``<adapter>-merged``) on first use and reused afterwards. Merging with PEFT's own
    ``merge_and_unload`` keeps the oracle a plain Hugging Face model, which TransformerLens then converts."""
    out = adapter.parent / f"{adapter.name}-merged"
    if (out / "config.json").exists():
        return out
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter), local_files_only=True).merge_and_unload()
    tmp = out.with_name(out.name + ".partial")
    merged.save_pretrained(str(tmp))
    AutoTokenizer.from_pretrained(str(base), local_files_only=True).save_pretrained(str(tmp))
    tmp.rename(out)  # only a complete folder ever has the final name
    return out


def verify_lite_checkpoint() -> None:
    """Check every file listed in ``assets/lite/SHA256SUMS``; raise naming the bad file."""
    verify_sha256sums(LITE_DIR, f"regenerate the lite checkpoint with:  {REGENERATE_CMD}")


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


def tokenize_statements(target: "HookedTransformer", statements: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """What the target reads, one batch padded on the right: tokens ``(n, seq)`` (BOS first) and the position of
    each prompt's last token ``(n,)`` (where it answers " true" or " false"). Lengths are measured with
    ``to_tokens`` itself, which adds BOS whether or not the tokenizer does (Qwen's does not)."""
    prompts = [to_prompt(s) for s in statements]
    tokens = target.to_tokens(prompts, prepend_bos=True, padding_side="right")
    lengths = [target.to_tokens(p, prepend_bos=True).shape[1] for p in prompts]
    return tokens, torch.tensor(lengths, device=tokens.device) - 1


def candidate_ids(oracle: "HookedTransformer", question: str, profile: str | None = None) -> torch.Tensor:
    """``(n_candidates,)``: the token ids of the question's candidate answers, in their listed order. Full: the
    first token of each answer written as a word after a space, capitalised as English writes it ("France")."""
    profile = _check_profile(profile)
    words = QUESTIONS[question][2]
    if profile == "lite":
        return torch.tensor([int(oracle.to_single_token(w)) for w in words])
    ids = [int(oracle.to_tokens(" " + _english(w), prepend_bos=False)[0, 0]) for w in words]
    if len(set(ids)) != len(ids):
        raise ValueError(f"the candidate answers of {question!r} share a first token in the full model's vocabulary")
    return torch.tensor(ids)


def _english(word: str) -> str:
    proper = {c.lower() for c in COUNTRIES} | {c.lower() for cs in CITIES.values() for c in cs}
    return word.capitalize() if word in proper else word


def question_text(question: str, profile: str | None = None) -> str:
    """The words of ``question`` as the profile's oracle reads them (a key of :data:`QUESTIONS`, or any text)."""
    profile = _check_profile(profile)
    if question not in QUESTIONS:
        return question
    return QUESTIONS[question][0] if profile == "lite" else FULL_QUESTION_TEXT[question]


def prompt_prefix(profile: str | None = None) -> str:
    """What the oracle's prompt starts with, after BOS and before the placeholders."""
    profile = _check_profile(profile)
    return PROMPT_PREFIX[profile]
