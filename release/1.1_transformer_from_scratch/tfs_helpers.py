"""Support code for section 1.1 "Transformers from scratch".

Used by the student notebook and by the grader's tests. Two profiles:

* ``lite`` (default): a tiny 2-layer GPT-2-shaped model trained by
  ``assets/train_lite.py`` and stored in ``assets/lite/``. Needs no network.
* ``full``: the real GPT-2 small (HF hub id ``"gpt2"``); must already be in
  the local Hugging Face cache when there is no network.

Select with the ``AUTOGRADER_PROFILE`` environment variable.

Import cost matters in the student sandbox, so this module only imports
torch and tokenizers at top level; transformers / transformer_lens /
huggingface_hub are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import tokenizers
import torch
from torch import Tensor

if TYPE_CHECKING:  # only for type hints; not imported at runtime
    from transformer_lens import HookedTransformer

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")
LITE_DIR = Path(__file__).parent / "assets" / "lite"
EOT = "<|endoftext|>"  # GPT-2's (and our lite model's) BOS = EOS token
REGENERATE_CMD = "cd source/1.1_transformer_from_scratch && python assets/train_lite.py"


def _check_profile(profile: str) -> None:
    if profile not in ("lite", "full"):
        raise ValueError(f"unknown profile {profile!r}; expected 'lite' or 'full'")


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


def _tokenizer_json(profile: str) -> Path:
    _check_profile(profile)
    if profile == "lite":
        return LITE_DIR / "tokenizer.json"
    from huggingface_hub import hf_hub_download  # lazy: only the full profile needs it

    return Path(hf_hub_download("gpt2", "tokenizer.json"))


def load_tokenizer(profile: str = PROFILE) -> Tokenizer:
    """lite: ``assets/lite/tokenizer.json``; full: GPT-2's tokenizer.json from the HF cache."""
    return Tokenizer.from_file(_tokenizer_json(profile))


# --------------------------------------------------------------------------
# Model loading
# --------------------------------------------------------------------------

def model_source(profile: str = PROFILE) -> str:
    """What ``GPT2LMHeadModel.from_pretrained`` is given: a local dir or a hub id."""
    _check_profile(profile)
    return str(LITE_DIR) if profile == "lite" else "gpt2"


def load_hooked_gpt2(profile: str = PROFILE, device: str = "cpu") -> "HookedTransformer":
    """Load the profile's GPT-2 into a TransformerLens ``HookedTransformer``.

    The same code path serves both profiles. ``HookedTransformer.from_pretrained``
    refuses local directories in TransformerLens 3.x, so we do by hand what it
    does for GPT-2: load the HF model, convert its config and weights, and
    load them *without* any weight processing (no LayerNorm folding, no
    centering), so parameters are exactly the HF ones in TL layout, which is
    what the course's ``DemoTransformer`` expects.
    """
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.loading_from_pretrained import convert_hf_model_config
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

    source = model_source(profile)
    hf_model = GPT2LMHeadModel.from_pretrained(source)
    hf_cfg = hf_model.config

    # convert_hf_model_config accepts a hub id or a local dir with config.json.
    cfg_dict = convert_hf_model_config(source)
    # It hard-codes d_mlp = 4 * n_embd for GPT-2; honour n_inner if set.
    cfg_dict["d_mlp"] = hf_cfg.n_inner or 4 * hf_cfg.n_embd
    # It sets tokenizer_name to `source`, which would make HookedTransformer
    # call AutoTokenizer itself; we pass our tokenizer explicitly instead.
    cfg_dict["tokenizer_name"] = None
    cfg_dict.update(
        initializer_range=hf_cfg.initializer_range,  # 0.02, as GPT-2 was trained
        default_prepend_bos=True,  # GPT-2 convention: prompts start with <|endoftext|>
        device=device,
    )
    cfg = HookedTransformerConfig(**cfg_dict)

    # A transformers tokenizer over the same tokenizer.json, so that
    # model.to_tokens / to_string / generate work. add_bos_token=True is what
    # TL itself asks for (see utils.get_tokenizer_with_bos): the tokenizer then
    # prepends <|endoftext|> and TL does not add a second one.
    hf_tok = PreTrainedTokenizerFast.from_pretrained(
        source, bos_token=EOT, eos_token=EOT, unk_token=EOT, add_bos_token=True
    )

    with warnings.catch_warnings():
        # TL 3.x warns that HookedTransformer is deprecated in favour of
        # TransformerBridge; the course deliberately uses HookedTransformer.
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg, tokenizer=hf_tok)
    state = convert_gpt2_weights(hf_model, cfg)  # has no unembed.b_U: TL fills zeros
    model.load_and_process_state_dict(
        state,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    model.to(device)
    return model.eval()


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

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_lite_checkpoint() -> None:
    """Check every file listed in ``assets/lite/SHA256SUMS`` against its hash.

    Raises ``RuntimeError`` naming the offending file and how to regenerate.
    """
    sums = LITE_DIR / "SHA256SUMS"
    hint = f"Regenerate the lite checkpoint with:  {REGENERATE_CMD}"
    if not sums.is_file():
        raise RuntimeError(f"{sums} not found. {hint}")
    entries = [line.split(None, 1) for line in sums.read_text().splitlines() if line.strip()]
    if not entries:
        raise RuntimeError(f"{sums} is empty. {hint}")
    for digest, name in entries:
        path = LITE_DIR / name.strip().lstrip("*")
        if not path.is_file():
            raise RuntimeError(f"lite checkpoint file missing: {path}. {hint}")
        actual = _sha256(path)
        if actual != digest:
            raise RuntimeError(
                f"checksum mismatch for {path}: expected {digest}, got {actual}. {hint}"
            )
