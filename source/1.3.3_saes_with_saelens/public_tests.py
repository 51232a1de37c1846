"""Public tests for section 1.3.3: call ``check("exercise_name")`` in the notebook.

They compare your code with SAELens itself, with small computations written out another way
(loops, one token at a time, hand-picked numbers) and check properties any correct answer has.
They are a subset of what grading checks; passing them is a good sign, not a guarantee.
"""

from __future__ import annotations


import torch

import sae_helpers as sh
from autograder.checks import CheckFailed, assert_close, check_shape
from autograder.public_checks import PublicChecks

CHECKS = PublicChecks(no_grad=True)
register, check = CHECKS.register, CHECKS.check


def _float(value, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise CheckFailed(f"{what}: expected a Python float, got {type(value).__name__}")
    return float(value)


def _near(actual, expected: float, what: str, tol: float = 1e-4) -> None:
    actual = _float(actual, what)
    if abs(actual - expected) > tol * max(1.0, abs(expected)):
        raise CheckFailed(f"{what}: got {actual:.6g}, expected {expected:.6g}")


def _prompts(model) -> tuple[torch.Tensor, torch.Tensor]:
    """Three prompts of different lengths in one batch, padded on the right."""
    prompts = [sh.to_prompt(s) for s in ["Paris is in France.", "Seven is larger than three.", "Rome is not in Spain."]]
    return sh.tokenize_prompts(model, prompts)


def _resid(model, sae, tokens) -> torch.Tensor:
    """The residual stream at the SAE's hook, read with a hook of our own."""
    box = []
    model.run_with_hooks(tokens, fwd_hooks=[(sae.cfg.metadata.hook_name, lambda a, hook: box.append(a.clone()))])
    return box[0]


@register("sae_encode")
def _check_sae_encode(g: dict) -> None:
    model, sae = g["model"], g["sae"]
    tokens, _ = _prompts(model)
    x = _resid(model, sae, tokens)
    got = g["sae_encode"](sae, x)
    check_shape(got, (*x.shape[:-1], sae.cfg.d_sae), "sae_encode of (batch, seq, d_in) activations")
    assert_close(got, sae.encode(x), atol=1e-4, rtol=1e-4, what="sae_encode against SAELens's sae.encode")
    if bool((got < 0).any()):
        raise CheckFailed("sae_encode: feature activations must be non-negative (a ReLU)")


@register("sae_decode")
def _check_sae_decode(g: dict) -> None:
    sae = g["sae"]
    f = torch.zeros(2, sae.cfg.d_sae, device=sae.W_dec.device)
    f[0, 3] = 2.0
    got = g["sae_decode"](sae, f)
    check_shape(got, (2, sae.cfg.d_in), "sae_decode of (2, d_sae) feature activations")
    assert_close(got[1], sae.b_dec, atol=1e-5, rtol=1e-5, what="no feature active: the reconstruction is b_dec")
    assert_close(got[0], sae.b_dec + 2.0 * sae.W_dec[3], atol=1e-4, rtol=1e-4,
                 what="feature 3 at 2.0: b_dec plus twice feature 3's decoder row")
    model = g["model"]
    tokens, _ = _prompts(model)
    x = _resid(model, sae, tokens)
    assert_close(g["sae_decode"](sae, sae.encode(x)), sae(x), atol=1e-4, rtol=1e-4,
                 what="sae_decode(sae.encode(x)) against SAELens's sae(x)")


@register("get_feature_acts")
def _check_get_feature_acts(g: dict) -> None:
    model, sae = g["model"], g["sae"]
    tokens, last_pos = _prompts(model)
    got = g["get_feature_acts"](model, sae, tokens)
    check_shape(got, (*tokens.shape, sae.cfg.d_sae), "get_feature_acts on a padded batch of 3 prompts")
    for i in range(tokens.shape[0]):  # one prompt at a time, no padding
        alone = tokens[i : i + 1, : int(last_pos[i]) + 1]
        assert_close(got[i, : int(last_pos[i]) + 1], sae.encode(_resid(model, sae, alone))[0], atol=1e-4, rtol=1e-4,
                     what=f"feature activations of prompt {i}, computed alone")


@register("reconstruction_stats")
def _check_reconstruction_stats(g: dict) -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])
    x_hat = torch.tensor([[1.0, 1.0], [3.0, 4.0], [4.0, 0.0]])
    f = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.5]])
    out = g["reconstruction_stats"](x, x_hat, f)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise CheckFailed("reconstruction_stats: expected a tuple (mse, l0, fve)")
    # errors: 1 and 1 over 6 elements; firing: 2, 0, 2; centred sum of squares: (4+0+4) + (0+4+4) = 16
    _near(out[0], 2 / 6, "mse on a hand-made example")
    _near(out[1], 4 / 3, "l0 on a hand-made example")
    _near(out[2], 1 - 2 / 16, "fraction of variance explained on a hand-made example (the variance is centred)")


@register("feature_density")
def _check_feature_density(g: dict) -> None:
    f = torch.tensor([[0.0, 1.0, 0.2], [0.0, 0.0, 3.0], [0.0, 5.0, 0.1], [0.0, 0.0, 0.7]])
    got = g["feature_density"](f)
    check_shape(got, (3,), "feature_density of (4, 3) activations")
    assert_close(got, torch.tensor([0.0, 0.5, 1.0]), atol=1e-6, rtol=0,
                 what="densities of a dead feature, one firing on half the rows, one on all")


@register("top_activating_tokens")
def _check_top_activating_tokens(g: dict) -> None:
    acts = torch.zeros(2, 4, 3)
    acts[0, 1, 2], acts[1, 0, 2], acts[1, 2, 2], acts[0, 3, 2] = 5.0, 2.0, 7.0, 9.0
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])  # (0, 3) is padding
    out = g["top_activating_tokens"](acts, mask, 2, 3)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise CheckFailed("top_activating_tokens: expected a tuple (values, rows, positions)")
    values, rows, positions = (torch.as_tensor(t) for t in out)
    assert_close(values, torch.tensor([7.0, 5.0, 2.0]), atol=1e-6, rtol=0,
                 what="top 3 values (the 9.0 is at a padding position and must be skipped)")
    if rows.tolist() != [1, 0, 1] or positions.tolist() != [2, 1, 0]:
        raise CheckFailed(f"top_activating_tokens: rows {rows.tolist()}, positions {positions.tolist()}; "
                          "expected rows [1, 0, 1], positions [2, 1, 0]")


@register("class_selectivity")
def _check_class_selectivity(g: dict) -> None:
    f = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0], [2.0, 0.0]])
    is_class = torch.tensor([True, True, False, False, False])
    got = g["class_selectivity"](f, is_class)
    check_shape(got, (2,), "class_selectivity of (5, 2) activations")
    # feature 0: class mean 2, others (0 + 0 + 2) / 3; feature 1: class mean 0, others 2
    assert_close(got, torch.tensor([2.0 - 2.0 / 3.0, -2.0]), atol=1e-5, rtol=0, what="selectivity on a hand-made example")


@register("spliced_losses")
def _check_spliced_losses(g: dict) -> None:
    model, sae = g["model"], g["sae"]
    data = g.get("data") or sh.make_dataset(model)
    tokens, last_pos, answers = data["tokens"][:40], data["last_pos"][:40], data["answers"][:40]
    out = g["spliced_losses"](model, sae, tokens, last_pos, answers)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise CheckFailed("spliced_losses: expected a tuple (clean, with_sae, zero_ablated)")
    clean = torch.nn.functional.cross_entropy(model(tokens)[torch.arange(40), last_pos], answers).item()
    _near(out[0], clean, "the clean answer loss")
    with_sae, zero = _float(out[1], "with_sae"), _float(out[2], "zero_ablated")
    if not clean <= with_sae + 1e-3 <= zero + 1e-3:
        print("  (note: usually clean <= with_sae <= zero_ablated; here "
              f"{clean:.4f}, {with_sae:.4f}, {zero:.4f})")
    hook = sae.cfg.metadata.hook_name
    by_hand = model.run_with_hooks(tokens, fwd_hooks=[(hook, lambda a, hook: sae.decode(sae.encode(a)))])
    _near(with_sae, torch.nn.functional.cross_entropy(by_hand[torch.arange(40), last_pos], answers).item(),
          "the answer loss with the SAE's reconstruction spliced in", tol=1e-3)


@register("feature_logit_attribution")
def _check_feature_logit_attribution(g: dict) -> None:
    model, sae = g["model"], g["sae"]
    got = g["feature_logit_attribution"](model, sae, 5)
    check_shape(got, (model.cfg.d_vocab,), "feature_logit_attribution")
    token = 7
    by_hand = sum(float(sae.W_dec[5, i]) * float(model.W_U[i, token]) for i in range(model.cfg.d_model))
    _near(got[token], by_hand, "the attribution to token 7 of feature 5, as a sum over d_model", tol=1e-3)


@register("steer_with_feature")
def _check_steer_with_feature(g: dict) -> None:
    model, sae = g["model"], g["sae"]
    tokens, _ = _prompts(model)
    plain = model(tokens)
    got = g["steer_with_feature"](model, sae, tokens, 3, 0.0)
    check_shape(got, tuple(plain.shape), "steer_with_feature logits")
    assert_close(got, plain, atol=1e-4, rtol=1e-4, what="alpha = 0 leaves the logits unchanged")
    hook = sae.cfg.metadata.hook_name
    pushed = sae.W_dec[3] * 4.0
    expected = model.run_with_hooks(tokens, fwd_hooks=[(hook, lambda a, hook: a + pushed)])
    assert_close(g["steer_with_feature"](model, sae, tokens, 3, 4.0), expected, atol=1e-3, rtol=1e-4,
                 what="alpha = 4 with feature 3")


__all__ = ["check", "register", "CheckFailed", "assert_close", "check_shape"]
