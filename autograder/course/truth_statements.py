"""The statements of sections 1.3.1, 1.3.3 and 1.4.2, and how the model reads them.

Four families of short English statements, each true or false: number comparisons ("Seven is larger than
two."), sums ("Three plus four is seven."), cities ("Paris is in France.") and negated cities ("Paris is not in
Egypt."). The model reads a statement followed by " This statement is" and answers " true" or " false".
Section 1.3.1 trains its lite model on them; sections 1.3.3 and 1.4.2 study that same model, so all three
build their prompts here, identically.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # type hints only
    from transformer_lens import HookedTransformer

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
    """A balanced set of statements of ``family``: every statement of the rarer label and
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
