"""Given helpers for 1.5.4 Superposition: training loops and plots.

Nothing here is graded. The training loops only rely on the methods you write
(``generate_batch``, ``forward``, ``calculate_loss`` for toy models; ``forward``
and the resampling methods for SAEs), so they work for every model class of the
notebook.
"""

from __future__ import annotations

import math
import os

import torch

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")


def cosine_decay_lr(step: int, steps: int) -> float:
    """A learning-rate factor going from 1 to 0 along half a cosine."""
    return 0.5 * (1 + math.cos(math.pi * step / steps))


def train_toy_model(model, steps: int = 5000, batch_size: int = 1024, lr: float = 1e-3,
                    log_every: int = 0, seed: int | None = 0) -> list[float]:
    """Train a toy model (ToyModel and its subclasses) with Adam; returns the losses.

    Each step draws a fresh batch with ``model.generate_batch`` and minimises
    ``model.calculate_loss(model(batch), batch)``.
    """
    if seed is not None:
        torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * cosine_decay_lr(step, steps)
        batch = model.generate_batch(batch_size)
        loss = model.calculate_loss(model(batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:5d}  loss {loss.item():.5f}")
    return losses


def train_sae(sae, steps: int = 10_000, batch_size: int = 1024, lr: float = 1e-3,
              resample_method: str | None = None, resample_every: int = 2500, resample_window: int = 500,
              resample_scale: float = 0.5, log_every: int = 0, seed: int | None = 0) -> dict:
    """Train an SAE on its toy model's hidden activations; returns a training log.

    The log holds the losses, and ``frac_active``: for each step, the fraction of
    the batch on which each latent fired, shape ``(steps, n_inst, d_sae)``.
    With ``resample_method`` ("simple" or "advanced"), dead latents are
    resampled every ``resample_every`` steps, looking back over the last
    ``resample_window`` steps to decide which latents are dead.
    """
    if seed is not None:
        torch.manual_seed(seed)
    params = [p for p in sae.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    log: dict = {"loss": [], "frac_active": [], "resampled_at": []}
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * cosine_decay_lr(step, steps)
        if resample_method and step > 0 and step % resample_every == 0 and step < steps * 0.8:
            window = torch.stack(log["frac_active"][-resample_window:])
            with torch.no_grad():
                if resample_method == "simple":
                    sae.resample_simple(window, resample_scale)
                elif resample_method == "advanced":
                    sae.resample_advanced(window, resample_scale, batch_size)
                else:
                    raise ValueError(f"unknown resample_method {resample_method!r}")
            log["resampled_at"].append(step)
        h = sae.generate_batch(batch_size)
        loss_dict, loss, acts, _ = sae(h)
        opt.zero_grad()
        loss.backward()
        opt.step()
        log["loss"].append(loss.item())
        log["frac_active"].append((acts.detach() > 1e-8).float().mean(0))
        if log_every and (step % log_every == 0 or step == steps - 1):
            parts = ", ".join(f"{k} {v.mean().item():.4f}" for k, v in loss_dict.items())
            print(f"step {step:5d}  loss {loss.item():.4f}  ({parts})")
    log["frac_active"] = torch.stack(log["frac_active"])
    return log


# ----------------------------------------------------------------------------- plots


def plot_features_in_2d(W: torch.Tensor, colors: torch.Tensor | None = None, titles: list[str] | None = None,
                        suptitle: str | None = None, n_cols: int = 8):
    """One panel per instance: the columns of W (shape (inst, 2, feats)) as arrows in the plane.

    ``colors`` (inst, feats) or (feats,) in [0, 1] colours each feature (e.g. by importance).
    """
    import matplotlib.pyplot as plt

    W = W.detach().cpu()
    n_inst, d, n_feats = W.shape
    assert d == 2, "plot_features_in_2d needs d_hidden = 2"
    n_cols = min(n_cols, n_inst)
    n_rows = math.ceil(n_inst / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.2 * n_cols, 2.3 * n_rows), squeeze=False)
    cmap = plt.get_cmap("viridis")
    if colors is not None:
        colors = colors.detach().cpu().expand(n_inst, n_feats)
    for i in range(n_rows * n_cols):
        ax = axes[i // n_cols][i % n_cols]
        ax.set_aspect("equal")
        ax.set_xlim(-1.5, 1.5)
        ax.set_ylim(-1.5, 1.5)
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n_inst:
            ax.axis("off")
            continue
        for f in range(n_feats):
            c = cmap(float(colors[i, f])) if colors is not None else "C0"
            x, y = float(W[i, 0, f]), float(W[i, 1, f])
            ax.plot([0, x], [0, y], color=c, lw=1.5)
            ax.scatter([x], [y], color=c, s=18, zorder=3)
        if titles:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_superposition_bars(W: torch.Tensor, titles: list[str] | None = None, n_cols: int = 8):
    """For each instance: ||W_i|| per feature (bar height) and how much of it is shared
    with other features (colour: sum_j (W_i_hat . W_j)^2 over j != i)."""
    import matplotlib.pyplot as plt

    W = W.detach().cpu()
    n_inst, _, n_feats = W.shape
    norms = W.norm(dim=1)
    unit = W / norms.clamp_min(1e-6).unsqueeze(1)
    overlap = torch.einsum("ihf,ihg->ifg", unit, W).pow(2)
    overlap = overlap * (1 - torch.eye(n_feats))
    interference = overlap.sum(-1)
    n_cols = min(n_cols, n_inst)
    n_rows = math.ceil(n_inst / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.2 * n_cols, 2.2 * n_rows), squeeze=False, sharey=True)
    cmap = plt.get_cmap("coolwarm")
    for i in range(n_rows * n_cols):
        ax = axes[i // n_cols][i % n_cols]
        if i >= n_inst:
            ax.axis("off")
            continue
        colours = [cmap(min(float(v), 1.0)) for v in interference[i]]
        ax.barh(range(n_feats), norms[i].tolist(), color=colours)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.5)
        if titles:
            ax.set_title(titles[i], fontsize=8)
    fig.supxlabel("||W_i|| (red: shares its direction with other features)")
    fig.tight_layout()
    return fig


def plot_correlation_check(batch: torch.Tensor, title: str = ""):
    """A heat map of how often each pair of features is present together in a batch (batch, feats)."""
    import matplotlib.pyplot as plt

    present = (batch.detach().cpu() != 0).float()
    both = present.T @ present / present.shape[0]
    fig, ax = plt.subplots(figsize=(3.5, 3))
    im = ax.imshow(both, cmap="viridis")
    fig.colorbar(im, ax=ax)
    ax.set_title(title or "P(feature i and feature j both present)", fontsize=9)
    fig.tight_layout()
    return fig
