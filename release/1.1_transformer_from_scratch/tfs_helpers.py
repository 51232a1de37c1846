"""Support code for section 1.1 "Transformers from scratch".

Used by the student notebook and by the grader's tests. Two profiles:

* ``lite`` (default): a tiny 2-layer GPT-2-shaped model trained by
  ``assets/train_lite.py`` and stored in ``assets/lite/``. Needs no network.
* ``full``: the real GPT-2 small (HF hub id ``"gpt2"``), in Hugging Face
  format in the asset cache: ``autograder assets fetch --profile full
  --assignment 1.1`` puts it there. Loading never downloads; a missing model
  raises an error naming that command.

Select with the ``AUTOGRADER_PROFILE`` environment variable.

Import cost matters in the student sandbox, so this module only imports
torch and tokenizers at top level; transformers / transformer_lens are
imported inside the functions that need them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import tokenizers
import torch
from torch import Tensor

from autograder.assets import check_profile, require_asset
from autograder.assets.loading import hooked_from_hf_folder, read_config, verify_sha256sums

if TYPE_CHECKING:  # only for type hints; not imported at runtime
    from transformer_lens import HookedTransformer

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")
LITE_DIR = Path(__file__).parent / "assets" / "lite"
EOT = "<|endoftext|>"  # GPT-2's (and our lite model's) BOS = EOS token
REGENERATE_CMD = "cd source/1.1_transformer_from_scratch && python assets/train_lite.py"


# --------------------------------------------------------------------------
# Activation
# --------------------------------------------------------------------------

def gelu_new(x: Tensor) -> Tensor:
    """GPT-2's GELU: the tanh approximation
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------

class Tokenizer:
    """A small wrapper around a ``tokenizers.Tokenizer`` (byte-level BPE).

    ``encode`` does NOT add BOS/EOS (same as GPT-2's tokenizer); prepend
    ``bos_token_id`` yourself when you need it.
    """

    def __init__(self, tok: tokenizers.Tokenizer, special_token: str = EOT):
        self._tok = tok
        token_id = tok.token_to_id(special_token)
        if token_id is None:
            raise ValueError(f"tokenizer has no {special_token!r} token")
        self.bos_token_id: int = token_id
        self.eos_token_id: int = token_id
        self.vocab_size: int = tok.get_vocab_size()

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Tokenizer":
        return cls(tokenizers.Tokenizer.from_file(str(path)))

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def decode(self, ids) -> str:
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, bos=eos={self.bos_token_id})"


def load_tokenizer(profile: str = PROFILE) -> Tokenizer:
    """The tokenizer.json of the profile's model folder (lite: ``assets/lite/``; full: GPT-2's, in the asset cache)."""
    return Tokenizer.from_file(model_folder(profile) / "tokenizer.json")


# --------------------------------------------------------------------------
# Model loading
# --------------------------------------------------------------------------

def model_source(profile: str = PROFILE) -> str:
    """Where the profile's model comes from: the lite folder, or the hub id the full profile fetches."""
    check_profile(profile)
    return str(LITE_DIR) if profile == "lite" else "gpt2"


def model_folder(profile: str = PROFILE) -> Path:
    """The profile's model as a local Hugging Face folder (full: in the asset cache; never downloaded here)."""
    check_profile(profile)
    return LITE_DIR if profile == "lite" else require_asset("1.1", "gpt2", "full")


def load_hooked_gpt2(profile: str = PROFILE, device: str = "cpu") -> "HookedTransformer":
    """Load the profile's GPT-2 into a TransformerLens ``HookedTransformer``.

    The same code path serves both profiles: both are Hugging Face folders,
    loaded by ``autograder.assets.loading.hooked_from_hf_folder`` (TL's own
    config and weight conversion, since ``HookedTransformer.from_pretrained``
    refuses local folders in TransformerLens 3.x) *without* any weight
    processing (no LayerNorm folding, no centering), so parameters are exactly
    the HF ones in TL layout, which is what the course's ``DemoTransformer``
    expects.
    """
    from transformers import PreTrainedTokenizerFast

    folder = model_folder(profile)
    hf_cfg = read_config(folder)
    # A transformers tokenizer over the same tokenizer.json, so that
    # model.to_tokens / to_string / generate work. add_bos_token=True is what
    # TL itself asks for (see utils.get_tokenizer_with_bos): the tokenizer then
    # prepends <|endoftext|> and TL does not add a second one.
    hf_tok = PreTrainedTokenizerFast.from_pretrained(
        str(folder), bos_token=EOT, eos_token=EOT, unk_token=EOT, add_bos_token=True
    )
    return hooked_from_hf_folder(
        folder, device=device, tokenizer=hf_tok,
        # TL hard-codes d_mlp = 4 * n_embd for GPT-2; honour n_inner if set.
        d_mlp=hf_cfg.get("n_inner") or 4 * hf_cfg["n_embd"],
        # TL sets tokenizer_name to the folder and would load a tokenizer itself; ours is passed explicitly.
        tokenizer_name=None,
        initializer_range=hf_cfg["initializer_range"],  # 0.02, as GPT-2 was trained
        default_prepend_bos=True,  # GPT-2 convention: prompts start with <|endoftext|>
    )


# --------------------------------------------------------------------------
# Bridging to the course's DemoTransformer
# --------------------------------------------------------------------------

_BLOCK_PARAMS = [
    "ln1.w", "ln1.b",
    "attn.W_Q", "attn.W_K", "attn.W_V", "attn.W_O",
    "attn.b_Q", "attn.b_K", "attn.b_V", "attn.b_O",
    "ln2.w", "ln2.b",
    "mlp.W_in", "mlp.b_in", "mlp.W_out", "mlp.b_out",
]


def demo_param_names(n_layers: int) -> list[str]:
    """Parameter names of the course's DemoTransformer (TransformerLens naming)."""
    names = ["embed.W_E", "pos_embed.W_pos"]
    for i in range(n_layers):
        names += [f"blocks.{i}.{p}" for p in _BLOCK_PARAMS]
    names += ["ln_final.w", "ln_final.b", "unembed.W_U", "unembed.b_U"]
    return names


def demo_state_dict(model) -> dict[str, Tensor]:
    """The model's weights under exactly the DemoTransformer's parameter names.

    Buffers such as ``attn.mask`` / ``attn.IGNORE`` and any hook-related
    entries are dropped. Tensors are contiguous float32 clones, so loading
    them into a student's model can never alias the reference model.
    """
    sd = model.state_dict()
    names = demo_param_names(model.cfg.n_layers)
    missing = [n for n in names if n not in sd]
    if missing:
        raise KeyError(f"model is missing expected parameters: {missing}")
    return {n: sd[n].detach().to(torch.float32).clone().contiguous() for n in names}


def config_kwargs(model) -> dict:
    """Keyword arguments for the course's ``Config`` dataclass."""
    cfg = model.cfg
    return dict(
        d_model=cfg.d_model,
        debug=False,
        layer_norm_eps=cfg.eps,
        d_vocab=cfg.d_vocab,
        init_range=cfg.initializer_range,
        n_ctx=cfg.n_ctx,
        d_head=cfg.d_head,
        d_mlp=cfg.d_mlp,
        n_heads=cfg.n_heads,
        n_layers=cfg.n_layers,
    )


# --------------------------------------------------------------------------
# Checkpoint integrity
# --------------------------------------------------------------------------

def verify_lite_checkpoint() -> None:
    """Check every file listed in ``assets/lite/SHA256SUMS`` against its hash.

    Raises ``RuntimeError`` naming the offending file and how to regenerate.
    """
    verify_sha256sums(LITE_DIR, f"regenerate the lite checkpoint with:  {REGENERATE_CMD}")
