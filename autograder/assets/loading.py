"""Checkpoint integrity and model loading, shared by every section's helpers.

Everything here reads local files only: a checkpoint folder shipped with a
section (``assets/lite/``), or a folder ``autograder assets fetch`` put in the
asset cache. Nothing here reaches a model hub, so it behaves the same at
grading time (``HF_HUB_OFFLINE=1``) as on an instructor's laptop.

Three folder formats, one ending (:func:`hooked_from_state`):

* a *TransformerLens folder*: ``config.json`` holding ``HookedTransformerConfig``
  keywords and ``model.safetensors`` holding a TransformerLens state dict (the
  project's own lite checkpoints);
* a *Hugging Face folder* (``config.json`` + weights as ``save_pretrained``
  writes them, e.g. ``gpt2``): the config goes through TransformerLens's
  ``get_pretrained_model_config`` and the weights through its converters, as
  ``HookedTransformer.from_pretrained`` does for a hub id; ``from_pretrained``
  itself refuses local folders in TransformerLens 3.x;
* a *TransformerLens hub folder* (NeelNanda's ``attn-only-2l`` and kin):
  ``config.json`` in that repo's own format and a ``*final.pth`` state dict.

Import cost matters in the student sandbox: only the standard library at top
level; torch, safetensors, transformers and transformer_lens are imported by
the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # type hints only
    from torch import Tensor
    from transformer_lens import HookedTransformer, HookedTransformerConfig

SUMS_FILE = "SHA256SUMS"

# The weight processing that leaves parameters exactly as stored (no folding, no centring).
NO_PROCESSING = dict(
    fold_ln=False, center_writing_weights=False, center_unembed=False,
    fold_value_biases=False, refactor_factored_attn_matrices=False,
)


class ChecksumError(RuntimeError):
    """A checkpoint file is missing or differs from its recorded hash; the message names it and the fix."""


# ----------------------------------------------------------------------------- integrity


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_sha256sums(folder: str | os.PathLike) -> dict[str, str]:
    """``{relative path: sha256}`` from ``folder/SHA256SUMS`` (``sha256sum`` format; ``*`` binary marks allowed)."""
    sums = Path(folder) / SUMS_FILE
    entries = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split(None, 1)
            entries[name.strip().lstrip("*")] = digest
    return entries


def write_sha256sums(folder: str | os.PathLike, names: Iterable[str]) -> None:
    """Write ``folder/SHA256SUMS`` for ``names`` (paths relative to ``folder``), in the order given."""
    folder = Path(folder)
    (folder / SUMS_FILE).write_text("".join(f"{sha256_file(folder / n)}  {n}\n" for n in names))


def verify_sha256sums(folder: str | os.PathLike, fix: str) -> None:
    """Check every file listed in ``folder/SHA256SUMS``.

    Raises :class:`ChecksumError` naming the first bad file and ``fix`` (what
    to run to get a good copy back).
    """
    folder = Path(folder)
    sums = folder / SUMS_FILE
    if not sums.is_file():
        raise ChecksumError(f"{sums} not found; to get the checkpoint back: {fix}")
    entries = read_sha256sums(folder)
    if not entries:
        raise ChecksumError(f"{sums} is empty; to get the checkpoint back: {fix}")
    for name, digest in entries.items():
        path = folder / name
        if not path.is_file():
            raise ChecksumError(f"checkpoint file missing: {path}; to get it back: {fix}")
        actual = sha256_file(path)
        if actual != digest:
            raise ChecksumError(
                f"checksum mismatch for {path}: SHA256SUMS says {digest}, the file has {actual}; "
                f"to get a good copy: {fix}"
            )


# ----------------------------------------------------------------------------- TransformerLens folders


def read_config(folder: str | os.PathLike) -> dict:
    return json.loads((Path(folder) / "config.json").read_text())


def load_safetensors(path: str | os.PathLike, device: str = "cpu") -> "dict[str, Tensor]":
    from safetensors.torch import load_file

    return load_file(str(path), device=str(device))


def tl_config(config: dict, keys: Iterable[str] | None = None, device: str = "cpu", **extra: Any) -> "HookedTransformerConfig":
    """A ``HookedTransformerConfig`` from a config.json dict: only ``keys`` of it (all when None), plus ``extra``."""
    from transformer_lens import HookedTransformerConfig

    chosen = config if keys is None else {k: config[k] for k in keys if k in config}
    return HookedTransformerConfig(**{**chosen, **extra, "device": str(device)})


def new_hooked(cfg: "HookedTransformerConfig", tokenizer: Any = None) -> "HookedTransformer":
    """``HookedTransformer(cfg)``, quietly: TL 3.x warns that it is deprecated in favour of
    TransformerBridge, and the course deliberately uses HookedTransformer."""
    from transformer_lens import HookedTransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HookedTransformer(cfg, tokenizer=tokenizer)


def hooked_from_state(
    cfg: "HookedTransformerConfig",
    state_dict: "dict[str, Tensor]",
    *,
    tokenizer: Any = None,
    processing: dict | None = None,
    device: str = "cpu",
) -> "HookedTransformer":
    """Build ``HookedTransformer(cfg)`` and load a TransformerLens state dict into it, in eval mode.

    ``processing`` None loads the state dict exactly (``load_state_dict(strict=True)``);
    a dict of ``load_and_process_state_dict`` flags (``fold_ln``, ``center_writing_weights``, ...)
    processes the weights the way ``from_pretrained`` would.
    """
    model = new_hooked(cfg, tokenizer)
    if processing is None:
        model.load_state_dict(state_dict, strict=True)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_and_process_state_dict(state_dict, **processing)
    model.to(device)
    return model.eval()


def hooked_from_tl_folder(
    folder: str | os.PathLike,
    *,
    keys: Iterable[str] | None = None,
    device: str = "cpu",
    processing: dict | None = None,
    tokenizer: Any = None,
    **extra_config: Any,
) -> "HookedTransformer":
    """A TransformerLens folder (``config.json`` + ``model.safetensors``) as a ``HookedTransformer``."""
    folder = Path(folder)
    cfg = tl_config(read_config(folder), keys, device, **extra_config)
    return hooked_from_state(
        cfg, load_safetensors(folder / "model.safetensors", device), tokenizer=tokenizer,
        processing=processing, device=device,
    )


# ----------------------------------------------------------------------------- Hugging Face folders


def hf_folder_config(
    folder: str | os.PathLike, *, device: str = "cpu", fold_ln: bool = False, **overrides: Any
) -> "HookedTransformerConfig":
    """TransformerLens's own config for an HF-format folder, with ``overrides`` applied."""
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.loading_from_pretrained import get_pretrained_model_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = get_pretrained_model_config(str(folder), fold_ln=fold_ln, device=str(device))
    return HookedTransformerConfig.from_dict({**cfg.to_dict(), **overrides}) if overrides else cfg


def hf_folder_state_dict(folder: str | os.PathLike, cfg: "HookedTransformerConfig") -> "dict[str, Tensor]":
    """The weights of an HF-format folder, converted to TransformerLens names by TransformerLens's converters."""
    from transformers import AutoModelForCausalLM
    from transformer_lens.loading_from_pretrained import get_pretrained_state_dict

    hf_model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    return get_pretrained_state_dict(str(folder), cfg, hf_model=hf_model)


def hooked_from_hf_folder(
    folder: str | os.PathLike,
    *,
    device: str = "cpu",
    fold_ln: bool = False,
    processing: dict | None = None,
    tokenizer: Any = None,
    **config_overrides: Any,
) -> "HookedTransformer":
    """An HF-format model folder (e.g. ``gpt2`` fetched into the asset cache) as a ``HookedTransformer``.

    The path ``HookedTransformer.from_pretrained`` takes for a hub id, on a
    local folder: config through ``get_pretrained_model_config``, weights
    through ``get_pretrained_state_dict``. ``processing`` defaults to
    :data:`NO_PROCESSING` (parameters exactly as in the checkpoint).
    """
    cfg = hf_folder_config(folder, device=device, fold_ln=fold_ln, **config_overrides)
    state = hf_folder_state_dict(folder, cfg)
    return hooked_from_state(
        cfg, state, tokenizer=tokenizer, processing=NO_PROCESSING if processing is None else processing,
        device=device,
    )


# What HookedTransformer.from_pretrained does to GPT-2's weights.
GPT2_PROCESSING = dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True,
                       refactor_factored_attn_matrices=False)
EOT = "<|endoftext|>"


def hooked_gpt2_from_folder(
    folder: str | os.PathLike, device: str = "cpu", processing: dict | None = None
) -> "HookedTransformer":
    """A Hugging Face GPT-2 folder (``gpt2`` from the asset cache, or a project-trained GPT-2 with a word-level
    tokenizer.json) as ``HookedTransformer.from_pretrained`` would give it for a hub id: weights processed as
    for GPT-2 (or as ``processing`` says), a tokenizer that prepends ``<|endoftext|>`` as BOS and pads on the
    right with it; eval mode, gradients off. Sections 1.3.1, 1.3.3, 1.3.4, 1.4.1 and 1.4.2 load through it."""
    from transformers import PreTrainedTokenizerFast

    hf_cfg = read_config(folder)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(
        str(folder), bos_token=EOT, eos_token=EOT, unk_token=EOT, pad_token=EOT, add_bos_token=True
    )
    tokenizer.padding_side = "right"
    model = hooked_from_hf_folder(
        folder, device=str(device), fold_ln=True, processing=GPT2_PROCESSING if processing is None else processing,
        tokenizer=tokenizer,
        d_mlp=hf_cfg.get("n_inner") or 4 * hf_cfg["n_embd"], tokenizer_name=None, default_prepend_bos=True,
    )
    model.requires_grad_(False)
    return model


# ----------------------------------------------------------------------------- TransformerLens hub folders


def tl_hub_config_dict(raw: dict) -> dict:
    """``HookedTransformerConfig`` keywords from the config.json of a TransformerLens-format hub repo
    (NeelNanda's toy models: keys ``normalization`` and ``shortformer_pos`` instead of TL's own)."""
    cfg = {k: raw[k] for k in ("d_model", "n_layers", "d_mlp", "d_head", "n_heads", "n_ctx", "d_vocab", "act_fn")}
    cfg.update(
        attn_only=bool(raw.get("attn_only", False)),
        final_rms=bool(raw.get("final_rms", False)),
        normalization_type=raw.get("normalization", raw.get("normalization_type")),
        positional_embedding_type="shortformer" if raw.get("shortformer_pos") else "standard",
        tokenizer_name=raw.get("tokenizer_name"),
    )
    return cfg


def tl_hub_folder_config_and_state(
    folder: str | os.PathLike, *, device: str = "cpu", **config_overrides: Any
) -> "tuple[HookedTransformerConfig, dict[str, Tensor]]":
    """The config and the (unprocessed) state dict of a TransformerLens-format hub repo fetched into ``folder``
    (``config.json`` + ``*final.pth``, as ``from_pretrained`` picks for e.g. ``attn-only-2l``)."""
    import torch
    from transformer_lens import HookedTransformerConfig

    folder = Path(folder)
    finals = sorted(folder.rglob("*final.pth"))
    if not finals:
        raise FileNotFoundError(f"no *final.pth state dict in {folder}")
    cfg_dict = {**tl_hub_config_dict(read_config(folder)), "init_weights": False, **config_overrides}
    cfg = HookedTransformerConfig(**{**cfg_dict, "device": str(device)})
    return cfg, torch.load(finals[-1], map_location=str(device), weights_only=True)


def hooked_from_tl_hub_folder(
    folder: str | os.PathLike,
    *,
    device: str = "cpu",
    processing: dict | None = None,
    tokenizer: Any = None,
    **config_overrides: Any,
) -> "HookedTransformer":
    """A TransformerLens-format hub repo fetched into a folder, as a ``HookedTransformer``."""
    cfg, state = tl_hub_folder_config_and_state(folder, device=device, **config_overrides)
    return hooked_from_state(cfg, state, tokenizer=tokenizer, processing=processing, device=device)
