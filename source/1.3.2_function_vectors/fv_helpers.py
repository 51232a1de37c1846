"""Support code for section 1.3.2 "Function vectors with nnsight".

The in-context learning (ICL) tasks, the prompts built from them, and the model, wrapped in nnsight's
``LanguageModel``.

Two profiles, selected with the ``AUTOGRADER_PROFILE`` environment variable:

* ``lite`` (default): a 4-layer GPT-2 (d_model 128, 4 heads of 32 dimensions, word-level vocabulary) that the
  course trained from scratch with ``assets/train_lite.py`` on sequences of in-context examples
  ``x1 -> y1 , x2 -> y2 , ... , xq ->`` of six synthetic tasks over two shared domains (number words, countries).
  Within a domain the query alone does not say which task is meant: only the examples do. Ships in
  ``assets/lite/`` as a Hugging Face folder (config.json, model.safetensors, tokenizer.json). Needs no network.
* ``full``: ``gpt2`` (GPT-2 small) read from the asset cache, where
  ``autograder assets fetch --profile full --assignment 1.3.2`` puts it, with natural-language versions of the
  same tasks (antonyms included). Loading never downloads; a missing asset raises an error naming that command.

Both profiles load through the same function (:func:`load_model`): a Hugging Face GPT-2 folder read by
``transformers`` and wrapped in ``nnsight.LanguageModel`` with a fast tokenizer over the folder's tokenizer.json.
"""

from __future__ import annotations

import os

# nnsight and transformers must never reach the network (the grading sandbox has none; the full profile reads the
# asset cache): set before either is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import random  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import torch  # noqa: E402

from autograder.assets import check_profile, require_asset  # noqa: E402
from autograder.assets.loading import verify_sha256sums  # noqa: E402

if TYPE_CHECKING:  # type hints only
    from nnsight import LanguageModel

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")
LITE_DIR = Path(__file__).parent / "assets" / "lite"
EOT = "<|endoftext|>"
ARROW, SEP = "->", ","
REGENERATE_CMD = "cd source/1.3.2_function_vectors && python assets/train_lite.py"

# --------------------------------------------------------------------------
# The tasks
# --------------------------------------------------------------------------

NUMBER_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
]
# country -> (capital, the largest other city)
COUNTRY_CITIES = {
    "france": ("paris", "marseille"), "germany": ("berlin", "hamburg"), "italy": ("rome", "milan"),
    "spain": ("madrid", "barcelona"), "japan": ("tokyo", "osaka"), "china": ("beijing", "shanghai"),
    "egypt": ("cairo", "alexandria"), "canada": ("ottawa", "toronto"), "australia": ("canberra", "sydney"),
    "india": ("delhi", "mumbai"), "portugal": ("lisbon", "porto"), "england": ("london", "manchester"),
    "russia": ("moscow", "petersburg"), "turkey": ("ankara", "istanbul"), "brazil": ("brasilia", "rio"),
    "poland": ("warsaw", "krakow"),
}


# country -> its people (the demonym), in COUNTRY_CITIES' order
DEMONYMS = ["french", "german", "italian", "spanish", "japanese", "chinese", "egyptian", "canadian", "australian",
            "indian", "portuguese", "english", "russian", "turkish", "brazilian", "polish"]


def _permutation_task() -> dict[str, str]:
    """A fixed random map from number words to number words (no arithmetic to it: only the examples teach it)."""
    rng = random.Random("permute-1.3.2")
    outs = NUMBER_WORDS[:]
    rng.shuffle(outs)
    return dict(zip(NUMBER_WORDS, outs))


# The lite tasks: two domains (number words, countries) with several tasks each, so that the query alone never says
# which task a prompt is about. Each task is a fixed mapping, input word -> output word.
LITE_TASKS: dict[str, dict[str, str]] = {
    "successor": {NUMBER_WORDS[i]: NUMBER_WORDS[i + 1] for i in range(20)},
    "predecessor": {NUMBER_WORDS[i]: NUMBER_WORDS[i - 1] for i in range(1, 21)},
    "permutation": _permutation_task(),
    "capital": {c: cities[0] for c, cities in COUNTRY_CITIES.items()},
    "second_city": {c: cities[1] for c, cities in COUNTRY_CITIES.items()},
    "demonym": dict(zip(COUNTRY_CITIES, DEMONYMS)),
}
LITE_DOMAINS = {"successor": "number", "predecessor": "number", "permutation": "number",
                "capital": "country", "second_city": "country", "demonym": "country"}

# The full profile's tasks: natural language for GPT-2 small (only the pairs whose words are one GPT-2 token each,
# with a leading space, are used: see :func:`task_pairs`).
FULL_TASKS: dict[str, dict[str, str]] = {
    "antonym": {
        "hot": "cold", "cold": "hot", "big": "small", "small": "big", "up": "down", "down": "up", "fast": "slow",
        "slow": "fast", "good": "bad", "bad": "good", "old": "new", "new": "old", "high": "low", "low": "high",
        "long": "short", "short": "long", "open": "closed", "early": "late", "late": "early", "rich": "poor",
        "poor": "rich", "strong": "weak", "weak": "strong", "happy": "sad", "sad": "happy", "dark": "light",
        "hard": "soft", "soft": "hard", "true": "false", "false": "true", "left": "right", "wet": "dry",
        "dry": "wet", "full": "empty", "empty": "full", "young": "old", "heavy": "light", "clean": "dirty",
    },
    "capital": {
        "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
        "China": "Beijing", "Egypt": "Cairo", "Canada": "Ottawa", "India": "Delhi", "Portugal": "Lisbon",
        "England": "London", "Russia": "Moscow", "Turkey": "Ankara", "Poland": "Warsaw", "Greece": "Athens",
        "Ireland": "Dublin", "Austria": "Vienna", "Sweden": "Stockholm", "Norway": "Oslo", "Cuba": "Havana",
        "Kenya": "Nairobi", "Peru": "Lima", "Iran": "Tehran", "Thailand": "Bangkok",
    },
    "successor": {w: NUMBER_WORDS[i + 1] for i, w in enumerate(NUMBER_WORDS[:20])},
    "predecessor": {NUMBER_WORDS[i]: NUMBER_WORDS[i - 1] for i in range(1, 21)},
    "english_french": {
        "one": "un", "two": "deux", "three": "trois", "cat": "chat", "dog": "chien", "house": "maison",
        "water": "eau", "red": "rouge", "green": "vert", "black": "noir", "white": "blanc", "man": "homme",
        "woman": "femme", "day": "jour", "night": "nuit", "sun": "soleil", "book": "livre", "bread": "pain",
        "good": "bon", "big": "grand", "small": "petit", "new": "nouveau", "car": "voiture", "city": "ville",
    },
}

TASKS = LITE_TASKS if PROFILE == "lite" else FULL_TASKS


def tasks_for(profile: str = PROFILE) -> dict[str, dict[str, str]]:
    check_profile(profile)
    return LITE_TASKS if profile == "lite" else FULL_TASKS


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


def model_folder(profile: str = PROFILE) -> Path:
    """The profile's model as a local Hugging Face folder (full: in the asset cache; never downloaded here)."""
    check_profile(profile)
    return LITE_DIR if profile == "lite" else require_asset("1.3.2", "gpt2-small", "full")


def load_model(profile: str = PROFILE, device: str = "cpu") -> "LanguageModel":
    """The profile's GPT-2 wrapped in ``nnsight.LanguageModel``, in eval mode, gradients off."""
    return load_folder(model_folder(profile), device)


def load_folder(folder: str | os.PathLike, device: str = "cpu") -> "LanguageModel":
    """:func:`load_model` for a given Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json)."""
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    folder = Path(folder)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), bos_token=EOT,
                                        eos_token=EOT, unk_token=EOT, pad_token=EOT)
    tokenizer.padding_side = "left"
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        hf = GPT2LMHeadModel.from_pretrained(str(folder), local_files_only=True).to(device).eval()
    finally:
        hf_logging.set_verbosity(verbosity)
    hf.requires_grad_(False)
    from nnsight import LanguageModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "LanguageModel is deprecated; use TransformersModel": same class, same API
        return LanguageModel(hf, tokenizer=tokenizer)


def n_layers(model) -> int:
    return model.config.n_layer


def n_heads(model) -> int:
    return model.config.n_head


def d_head(model) -> int:
    return model.config.n_embd // model.config.n_head


# --------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------


def word_id(model, word: str) -> int | None:
    """The token id of `` word`` (the word after a space), or None when it is not exactly one token."""
    ids = model.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or (ids[0] == model.tokenizer.unk_token_id and word != model.tokenizer.unk_token):
        return None  # several tokens, or a word the vocabulary does not have
    return ids[0]


def task_pairs(model, task: str, profile: str = PROFILE) -> list[tuple[str, str]]:
    """The (input, output) pairs of ``task`` whose two words are single tokens of ``model``, in a fixed order."""
    return [(x, y) for x, y in tasks_for(profile)[task].items()
            if word_id(model, x) is not None and word_id(model, y) is not None]


def format_prompt(examples: list[tuple[str, str]], query: str) -> str:
    """``x1 -> y1 , x2 -> y2 , ... , query ->``: the examples, then the query with its arrow."""
    parts = [f"{x} {ARROW} {y} {SEP} " for x, y in examples]
    return EOT + " " + "".join(parts) + f"{query} {ARROW}"


def make_icl_dataset(model, task: str, n_prompts: int, n_examples: int, seed: int = 0,
                     shuffle_labels: bool = False, profile: str = PROFILE) -> dict:
    """``n_prompts`` prompts of ``task`` with ``n_examples`` examples each (drawn without replacement, the query
    never among them), in one batch. All prompts have the same length (every word is one token), so no padding.

    ``shuffle_labels=True`` gives the corrupted prompts: the same example inputs and queries as with
    ``shuffle_labels=False`` and the same arguments (row for row), but the example outputs permuted among the
    examples (no example keeps its own), so the examples no longer show the task; the answer is still the true one.

    Returns a dict: ``prompts`` (list of str), ``tokens`` (n, seq) long (BOS first), ``answers`` (n,) the token id
    of the right answer, ``queries`` and ``answer_words`` (lists of str), ``examples`` (per prompt, its (x, y) pairs), ``task``.
    """
    pairs = task_pairs(model, task, profile)
    if len(pairs) < n_examples + 1:
        raise ValueError(f"task {task!r} has only {len(pairs)} usable pairs")
    rng = random.Random(f"{task}-{n_examples}-{seed}")
    shuffler = random.Random(f"shuffle-{task}-{n_examples}-{seed}")
    prompts, answers, queries, words, all_examples = [], [], [], [], []
    for _ in range(n_prompts):
        chosen = rng.sample(pairs, n_examples + 1)
        examples, (query, answer) = chosen[:-1], chosen[-1]
        if shuffle_labels and n_examples > 1:
            outs = [y for _, y in examples]
            perm = list(range(n_examples))
            while any(outs[p] == outs[i] for i, p in enumerate(perm)):  # a derangement: no example keeps its output
                shuffler.shuffle(perm)
            examples = [(x, outs[p]) for (x, _), p in zip(examples, perm)]
        prompts.append(format_prompt(examples, query))
        answers.append(word_id(model, answer))
        queries.append(query)
        words.append(answer)
        all_examples.append(examples)
    enc = model.tokenizer(prompts, add_special_tokens=False, return_tensors="pt", padding=True)
    tokens = enc["input_ids"]
    if not bool(enc["attention_mask"].all()):
        raise RuntimeError("prompts of different lengths: a word is not one token")
    return dict(prompts=prompts, tokens=tokens, answers=torch.tensor(answers), queries=queries,
                answer_words=words, examples=all_examples, task=task)


def zero_shot_dataset(model, task: str, n_prompts: int, seed: int = 0, profile: str = PROFILE) -> dict:
    """``query ->`` prompts without examples: the same as ``make_icl_dataset(..., n_examples=0)``."""
    return make_icl_dataset(model, task, n_prompts, 0, seed=seed, profile=profile)


def last_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    """The logits at the last position, (batch, vocab), by a plain nnsight trace (a helper for plots)."""
    with torch.no_grad(), model.trace(tokens):
        out = model.lm_head.output[:, -1].save()
    return out


def accuracy(logits_last: torch.Tensor, answers: torch.Tensor) -> float:
    """The fraction of rows whose top logit is the right answer."""
    return float((logits_last.argmax(-1) == answers.to(logits_last.device)).float().mean())


def verify_lite_checkpoint() -> None:
    """Check every file listed in ``assets/lite/SHA256SUMS``; raise naming the bad file."""
    verify_sha256sums(LITE_DIR, f"regenerate the lite checkpoint with:  {REGENERATE_CMD}")
