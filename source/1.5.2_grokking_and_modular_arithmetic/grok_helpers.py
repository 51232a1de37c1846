"""Support code for section 1.5.2 "Grokking and modular arithmetic".

Used by the student notebook, the public checks, the grader's hidden tests and
``assets/train_lite.py``. Two profiles, one code path:

* ``lite`` (default): a 1-layer transformer trained on (a + b) mod 53 by
  ``assets/train_lite.py``, shipped in ``assets/lite/`` (config.json,
  model.safetensors, checkpoints/, training_info.json, SHA256SUMS).
* ``full``: the classic p = 113 model (d_model 128, 4 heads, d_mlp 512). It is
  not shipped; put a folder with the same layout (``config.json`` +
  ``model.safetensors``, optionally ``checkpoints/``) at ``assets/full/`` or
  point ``GROKKING_FULL_DIR`` at one; ``autograder assets fetch --profile full``
  copies it into the asset cache, where grading finds it.

Both are loaded the same way, by ``autograder.assets.loading`` (shared with the
other sections): ``config.json`` -> ``HookedTransformerConfig`` ->
``HookedTransformer(cfg)`` -> ``load_state_dict`` of a safetensors state dict.
Select the profile with the ``AUTOGRADER_PROFILE`` environment variable.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from autograder.assets.cache import profile_folder
from autograder.assets.loading import (  # noqa: F401 - read_config, sha256_file: part of this module's API
    load_safetensors, new_hooked, read_config, sha256_file, tl_config, verify_sha256sums,
)

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")
HERE = Path(__file__).resolve().parent
LITE_DIR = HERE / "assets" / "lite"
REGENERATE_CMD = "cd source/1.5.2_grokking_and_modular_arithmetic && python assets/train_lite.py"

# HookedTransformerConfig keys stored in config.json (everything else there is about the task).
MODEL_KEYS = (
    "n_layers", "d_model", "d_head", "n_heads", "d_mlp", "d_vocab", "d_vocab_out", "n_ctx",
    "act_fn", "normalization_type", "seed",
)


def model_dir(profile: str = PROFILE) -> Path:
    """lite: the shipped folder. full: ``$GROKKING_FULL_DIR``, else ``assets/full/``, else the asset cache."""
    return profile_folder(profile, assignment="1.5.2", lite=LITE_DIR, full_env="GROKKING_FULL_DIR", full_local=HERE / "assets" / "full")


def build_model(config: dict, device: str = "cpu") -> "HookedTransformer":
    """A fresh ``HookedTransformer`` with the architecture described by ``config`` (a config.json dict)."""
    return new_hooked(tl_config(config, MODEL_KEYS, device))


load_state = load_safetensors  # (path, device) -> state dict


def load_model(profile: str = PROFILE, device: str = "cpu", folder: str | os.PathLike | None = None) -> "HookedTransformer":
    """The profile's trained model (or the one in ``folder``): config.json + model.safetensors."""
    folder = Path(folder) if folder is not None else model_dir(profile)
    if not (folder / "config.json").is_file():
        hint = REGENERATE_CMD if profile == "lite" else (
            "the full (p = 113) model is not shipped: save its config.json and model.safetensors "
            "in that folder or set GROKKING_FULL_DIR"
        )
        raise FileNotFoundError(f"no config.json in {folder}; {hint}")
    model = build_model(read_config(folder), device)
    model.load_state_dict(load_state(folder / "model.safetensors", device), strict=True)
    return model.eval()


def checkpoint_steps(profile: str = PROFILE, folder: str | os.PathLike | None = None) -> list[int]:
    folder = Path(folder) if folder is not None else model_dir(profile)
    found = [re.fullmatch(r"step_(\d+)\.safetensors", p.name) for p in (folder / "checkpoints").glob("*.safetensors")]
    return sorted(int(m.group(1)) for m in found if m)


def load_checkpoints(profile: str = PROFILE, device: str = "cpu", folder: str | os.PathLike | None = None) -> dict[int, dict[str, Tensor]]:
    """{training step: state dict} for every checkpoint saved during training."""
    folder = Path(folder) if folder is not None else model_dir(profile)
    return {s: load_state(folder / "checkpoints" / f"step_{s:05d}.safetensors", device)
            for s in checkpoint_steps(profile, folder)}


def task_info(profile: str = PROFILE, folder: str | os.PathLike | None = None) -> dict:
    """p, the train fraction and the data seed of the profile's model."""
    config = read_config(Path(folder) if folder is not None else model_dir(profile))
    return {"p": int(config["p"]), "train_frac": float(config["train_frac"]), "data_seed": int(config["data_seed"])}


# ----------------------------------------------------------------------------- data

def make_dataset(p: int) -> tuple[Tensor, Tensor]:
    """Every pair: tokens (p*p, 3) = [a, b, p] (p is the "=" token), labels (p*p,) = (a + b) % p.

    Row ``a * p + b`` holds the pair (a, b).
    """
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    tokens = torch.stack([a, b, torch.full_like(a, p)], dim=1)
    return tokens, (a + b) % p


def train_test_split(p: int, train_frac: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices into ``make_dataset(p)`` of the training and the test pairs (a fixed random split)."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(p * p, generator=g)
    n_train = int(round(train_frac * p * p))
    return order[:n_train].sort().values, order[n_train:].sort().values


# ----------------------------------------------------------------------------- integrity

def verify_checkpoint(folder: Path = LITE_DIR) -> None:
    """Check every file listed in ``SHA256SUMS``; raise ``RuntimeError`` naming a bad file."""
    verify_sha256sums(folder, REGENERATE_CMD)


# ----------------------------------------------------------------------------- analysis helpers (given code)

def key_frequencies(neuron_freqs: Tensor, neuron_frac_explained: Tensor,
                    min_frac_explained: float = 0.5, min_share: float = 0.05) -> list[int]:
    """The model's key frequencies, read off its neurons.

    A neuron counts if one frequency explains at least ``min_frac_explained`` of its
    variance; a frequency is *key* if at least ``min_share`` of the counted neurons use it.
    """
    clean = neuron_frac_explained.nan_to_num(0.0) >= min_frac_explained
    freqs = neuron_freqs[clean]
    if freqs.numel() == 0:
        return []
    counts = torch.bincount(freqs.long())
    return [int(k) for k in torch.nonzero(counts >= min_share * freqs.numel()).flatten()]


@torch.no_grad()
def checkpoint_logits(model: "HookedTransformer", checkpoints: dict[int, dict[str, Tensor]], tokens: Tensor) -> Tensor:
    """Final-position logits of every checkpoint (in order of step): (n_checkpoints, batch, d_vocab_out).

    Loads each state dict into ``model`` in turn and restores the model's own weights at the end.
    """
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    out = []
    try:
        for s in sorted(checkpoints):
            model.load_state_dict(checkpoints[s])
            out.append(model(tokens)[:, -1])
    finally:
        model.load_state_dict(saved)
    return torch.stack(out)


def training_info(profile: str = PROFILE, folder: str | os.PathLike | None = None) -> dict:
    """The training_info.json written by assets/train_lite.py (empty if the profile has none)."""
    path = (Path(folder) if folder is not None else model_dir(profile)) / "training_info.json"
    return json.loads(path.read_text()) if path.is_file() else {}
