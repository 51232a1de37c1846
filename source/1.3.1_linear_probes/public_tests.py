"""Public tests for section 1.3.1: call ``check("exercise_name")`` in the notebook.

They compare your code with small computations written out another way (loops,
hand-picked numbers, one prompt at a time without padding) and check properties
any correct answer has. They are a subset of what grading checks; passing them is
a good sign, not a guarantee.
"""

from __future__ import annotations

import math

import torch

import truth_helpers as th
from autograder.checks import CheckFailed, assert_close, check_shape
from autograder.public_checks import PublicChecks

CHECKS = PublicChecks()
register, check = CHECKS.register, CHECKS.check


def _float(value, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise CheckFailed(f"{what}: expected a Python float, got {type(value).__name__}")
    return float(value)


def _near(actual: float, expected: float, what: str, tol: float = 1e-5) -> None:
    if abs(actual - expected) > tol:
        raise CheckFailed(f"{what}: got {actual:.6g}, expected {expected:.6g}")


def _mixed_prompts(model) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Four prompts of different lengths (two families), padded into one batch."""
    prompts = [th.to_prompt(s) for s in ["Paris is in France.", "Seven is larger than three.",
                                         "Rome is not in Spain.", "Lyon is in Egypt."]]
    tokens, last_pos = th.tokenize_prompts(model, prompts)
    return prompts, tokens, last_pos


def _nearest_mean_predictions(train_x, train_y, test_x) -> list[int]:
    """Predict the class whose mean is nearer (the same rule as the midpoint threshold on the mass-mean direction)."""
    m1 = train_x[train_y == 1].double().mean(0)
    m0 = train_x[train_y == 0].double().mean(0)
    out = []
    for x in test_x.double():
        out.append(int(float(((x - m1) ** 2).sum()) < float(((x - m0) ** 2).sum())))
    return out


def _accuracy_by_hand(train_x, train_y, test_x, test_y) -> float:
    preds = _nearest_mean_predictions(train_x, train_y, test_x)
    return sum(int(p == int(t)) for p, t in zip(preds, test_y)) / len(preds)


# ----------------------------------------------------------------------------- 0. logit difference


@register("get_logit_diff")
def _check_get_logit_diff(g: dict) -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 7)
    last_pos = torch.tensor([4, 1, 2])
    got = g["get_logit_diff"](logits, last_pos, 6, 2)
    check_shape(got, (3,), "get_logit_diff")
    want = [float(logits[i, int(last_pos[i]), 6]) - float(logits[i, int(last_pos[i]), 2]) for i in range(3)]
    assert_close(got, torch.tensor(want), what="get_logit_diff on random logits (last_pos 4, 1, 2; true_id 6, false_id 2)")


# ----------------------------------------------------------------------------- 1. activations


@register("get_last_token_acts")
def _check_get_last_token_acts(g: dict) -> None:
    model = g["model"]
    prompts, tokens, last_pos = _mixed_prompts(model)
    layers = [model.cfg.n_layers - 1, 0]
    got = g["get_last_token_acts"](model, tokens, last_pos, layers)
    check_shape(got, (2, len(prompts), model.cfg.d_model), "get_last_token_acts(model, tokens, last_pos, [last, 0])")
    for i, prompt in enumerate(prompts):
        with torch.no_grad():
            _, cache = model.run_with_cache(model.to_tokens(prompt))  # one prompt alone: no padding
        for k, layer in enumerate(layers):
            want = cache[f"blocks.{layer}.hook_resid_post"][0, -1]
            assert_close(got[k, i], want, atol=1e-4, rtol=1e-4,
                         what=f"activation of prompt {i} ({prompt!r}) after block {layer}, in a padded batch")


# ----------------------------------------------------------------------------- 2. PCA


@register("pca_directions")
def _check_pca_directions(g: dict) -> None:
    gen = torch.Generator().manual_seed(1)
    basis, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen))
    scales = torch.tensor([5.0, 3.0, 2.0, 0.5, 0.3, 0.1])
    x = (torch.randn(400, 6, generator=gen) * scales) @ basis.T + torch.tensor([20.0, -5, 3, 0, 8, 1])
    got = g["pca_directions"](x, 3)
    check_shape(got, (3, 6), "pca_directions(acts, 3)")
    gram = got @ got.T
    assert_close(gram, torch.eye(3), atol=1e-4, rtol=0, what="the directions' dot products (they should be orthonormal)")
    for k in range(3):
        cos = abs(float(got[k] @ basis[:, k]))
        if cos < 0.98:
            raise CheckFailed(f"principal direction {k} has |cos| {cos:.3f} with the true axis of variance "
                              f"{scales[k] ** 2:.2f} (data with a large mean offset: did you centre it?)")


# ----------------------------------------------------------------------------- 3. mass-mean


@register("mass_mean_direction")
def _check_mass_mean_direction(g: dict) -> None:
    acts = torch.tensor([[1.0, 2.0], [3.0, 2.0], [0.0, 1.0], [10.0, -4.0], [2.0, 0.0]])
    labels = torch.tensor([1, 1, 0, 1, 0])
    got = g["mass_mean_direction"](acts, labels)
    # true mean (14/3, 0), false mean (1, 0.5)
    assert_close(got, torch.tensor([14 / 3 - 1, -0.5]), what="mass_mean_direction on 3 true and 2 false points")


@register("mass_mean_accuracy")
def _check_mass_mean_accuracy(g: dict) -> None:
    train = torch.tensor([[1.0, 11.0], [1.0, 13.0], [1.0, 9.0], [1.0, 7.0]])
    train_y = torch.tensor([1, 1, 0, 0])
    # means (1, 12) and (1, 8): "true" when the second coordinate is above 10 (not above 0!)
    test = torch.tensor([[0.0, 10.5], [0.0, 9.5], [5.0, 11.0], [-3.0, 2.0], [0.0, 12.0], [9.0, 9.9]])
    test_y = torch.tensor([1, 1, 0, 0, 1, 1])
    got = _float(g["mass_mean_accuracy"](train, train_y, test, test_y), "mass_mean_accuracy")
    _near(got, 3 / 6, "mass_mean_accuracy on points whose threshold is 10 along the direction (0, 4)")
    # on the model's activations, against a nearest-mean classifier written out by hand
    model = g["model"]
    data = th.make_dataset(model, "cmp")
    acts = g["get_last_token_acts"](model, data["tokens"], data["last_pos"], [model.cfg.n_layers - 1])[0].cpu()
    y = data["labels"].cpu()
    tr, te = th.train_test_split(len(y), 0.3, seed=3)
    got = _float(g["mass_mean_accuracy"](acts[tr], y[tr], acts[te], y[te]), "mass_mean_accuracy")
    _near(got, _accuracy_by_hand(acts[tr], y[tr], acts[te], y[te]), "mass_mean_accuracy on the cmp statements")


# ----------------------------------------------------------------------------- 4. logistic regression


@register("train_logistic_probe")
def _check_train_logistic_probe(g: dict) -> None:
    gen = torch.Generator().manual_seed(2)
    y = torch.randint(0, 2, (200,), generator=gen)
    x = torch.randn(200, 5, generator=gen) + 3.0  # offset: the bias matters
    x[:, 0] += 1.5 * (2 * y - 1)
    out = g["train_logistic_probe"](x, y, n_steps=300, lr=0.05, weight_decay=1e-2)
    if not isinstance(out, tuple) or len(out) != 2:
        raise CheckFailed("train_logistic_probe should return a tuple (w, b)")
    w, b = out
    check_shape(w, (5,), "w")
    check_shape(torch.as_tensor(b), (), "b (a scalar tensor)")
    objective = g["probe_objective"]
    w = w.detach().clone().requires_grad_(True)
    b = torch.as_tensor(b).detach().clone().requires_grad_(True)
    with torch.set_grad_enabled(True):
        value = objective(x, y, w, b, 1e-2)
        grads = torch.autograd.grad(value, [w, b])
    slope = math.sqrt(sum(float((t ** 2).sum()) for t in grads))
    if slope > 2e-2:
        raise CheckFailed(f"the objective's gradient at your (w, b) has norm {slope:.3g}: not a minimum "
                          "(are both w and b optimised, with the labels as given and the weight decay?)")
    accuracy = float((((x @ w + b) > 0).long() == y).float().mean())
    if accuracy < 0.8:
        raise CheckFailed(f"your probe classifies only {accuracy:.1%} of its training points correctly")


# ----------------------------------------------------------------------------- 5. layer sweep


@register("probe_accuracy_by_layer")
def _check_probe_accuracy_by_layer(g: dict) -> None:
    gen = torch.Generator().manual_seed(4)
    y = torch.arange(40) % 2
    noise = torch.randn(4, 40, 3, generator=gen)
    signal = torch.tensor([0.0, 4.0, 0.3, 4.0])  # layers 1 and 3 separate perfectly: the first one is "best"
    acts = noise.clone()
    acts[:, :, 0] += signal[:, None] * (2 * y - 1)
    tr, te = torch.arange(0, 40, 2).tolist() + [1, 3, 5, 7], list(range(9, 40, 2))
    tr, te = torch.tensor(sorted(tr)), torch.tensor(te)
    out = g["probe_accuracy_by_layer"](acts, y, tr, te)
    if not isinstance(out, tuple) or len(out) != 2:
        raise CheckFailed("probe_accuracy_by_layer should return (accuracies, best_layer)")
    accuracies, best = out
    want = torch.tensor([_accuracy_by_hand(a[tr], y[tr], a[te], y[te]) for a in acts])
    assert_close(accuracies, want, atol=1e-6, rtol=0, what="accuracies by layer (synthetic activations, 4 layers)")
    if int(best) != int(torch.nonzero(want == want.max())[0]):
        raise CheckFailed(f"best_layer: got {best}; layers 1 and 3 tie at the top, and the first one counts")


# ----------------------------------------------------------------------------- 6. generalisation


@register("transfer_matrix")
def _check_transfer_matrix(g: dict) -> None:
    gen = torch.Generator().manual_seed(5)
    acts, labels, trains, tests = [], [], [], []
    for shift, axis in [(0.0, 0), (2.0, 0), (0.0, 1)]:
        y = torch.arange(30) % 2
        x = torch.randn(30, 3, generator=gen) * 0.7
        x[:, axis] += 2 * y - 1 + shift
        acts.append(x), labels.append(y)
        trains.append(torch.arange(0, 20)), tests.append(torch.arange(20, 30))
    got = g["transfer_matrix"](acts, labels, trains, tests)
    want = torch.tensor([[_accuracy_by_hand(acts[i][trains[i]], labels[i][trains[i]], acts[j][tests[j]], labels[j][tests[j]])
                          for j in range(3)] for i in range(3)])
    assert_close(got, want, atol=1e-6, rtol=0, what="transfer_matrix on 3 synthetic families ([i, j]: fit on i, test on j)")


@register("cosine_similarity_matrix")
def _check_cosine_similarity_matrix(g: dict) -> None:
    d = torch.tensor([[3.0, 0.0, 4.0], [0.0, 2.0, 0.0], [-1.0, 1.0, 0.0]])
    got = g["cosine_similarity_matrix"](d)
    want = torch.tensor([[1.0, 0.0, -0.6 / math.sqrt(2)], [0.0, 1.0, 1 / math.sqrt(2)],
                         [-0.6 / math.sqrt(2), 1 / math.sqrt(2), 1.0]])
    assert_close(got, want, what="cosine_similarity_matrix of (3, 0, 4), (0, 2, 0), (-1, 1, 0)")


# ----------------------------------------------------------------------------- 7. steering


@register("steer_logit_diff")
def _check_steer_logit_diff(g: dict) -> None:
    model = g["model"]
    true_id, false_id = th.label_token_ids(model)
    prompts, tokens, last_pos = _mixed_prompts(model)
    gen = torch.Generator().manual_seed(6)
    direction = torch.randn(model.cfg.d_model, generator=gen).to(tokens.device)
    layer = model.cfg.n_layers // 2
    got = g["steer_logit_diff"](model, tokens, last_pos, layer, direction, 2.0)
    check_shape(got, (len(prompts),), "steer_logit_diff")
    for i, prompt in enumerate(prompts):
        def push(activation, hook):  # one prompt alone: its last position is -1
            pushed = activation.clone()
            pushed[:, -1] = pushed[:, -1] + 2.0 * direction
            return pushed

        with torch.no_grad():
            logits = model.run_with_hooks(model.to_tokens(prompt), fwd_hooks=[(f"blocks.{layer}.hook_resid_post", push)])
        want = float(logits[0, -1, true_id] - logits[0, -1, false_id])
        _near(float(got[i]), want, f"steered logit difference of prompt {i} ({prompt!r}) in a padded batch", tol=1e-3)


@register("flip_rate")
def _check_flip_rate(g: dict) -> None:
    before = torch.tensor([-2.0, -1.0, -0.5, 0.7, -3.0, 1.0, -1.0])
    after = torch.tensor([1.0, -0.2, 0.3, 2.0, 0.5, 2.0, -4.0])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    # false and answered "false" before: 0, 1, 2; of those, answered "true" after: 0, 2
    _near(_float(g["flip_rate"](before, after, labels), "flip_rate"), 2 / 3, "flip_rate on 7 hand-made statements")


__all__ = ["check", "register", "CheckFailed", "assert_close", "check_shape"]
