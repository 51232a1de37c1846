"""Public tests for section 1.5.4: call ``check("exercise_name")`` in the notebook.

They compare your code with small computations written out element by element
(loops, hand-picked weights) and check the properties random outputs must have.
They are a subset of what grading checks; passing them is a good sign, not a
guarantee.
"""

from __future__ import annotations

import math

import torch

from autograder.checks import CheckFailed, assert_close, check_shape
from autograder.public_checks import PublicChecks

CHECKS = PublicChecks()
register, check = CHECKS.register, CHECKS.check


def _close(actual, expected, what, atol=1e-5, rtol=1e-4):
    assert_close(actual, torch.as_tensor(expected, dtype=torch.float32), atol=atol, rtol=rtol, what=what)


def _relu(v: float) -> float:
    return v if v > 0 else 0.0


def _rate_ok(rate: float, p: float, n: int, what: str) -> None:
    allowed = 5 * math.sqrt(max(p * (1 - p), 1e-12) / n) + 0.01
    if abs(rate - p) > allowed:
        raise CheckFailed(f"{what}: got {rate:.3f}, expected about {p:.3f}")


def _set_params(module, values: dict) -> None:
    with torch.no_grad():
        for name, value in values.items():
            getattr(module, name).copy_(torch.as_tensor(value, dtype=torch.float32))


# ----------------------------------------------------------------------------- toy models


def _toy(g: dict, cls: str = "ToyModel", **kwargs):
    cfg = g["Config"](n_inst=2, n_features=3, d_hidden=2)
    model = g[cls](cfg, **kwargs)
    W = [[[1.0, -0.5, 0.3], [0.2, 0.8, -1.0]], [[-0.7, 0.4, 0.9], [0.6, 0.1, 0.5]]]
    b = [[-0.1, 0.2, -0.3], [0.05, -0.4, 0.1]]
    if cls == "NeuronComputationModel":
        W2 = [[[0.5, -1.0], [0.3, 0.7], [-0.2, 0.9]], [[1.1, 0.2], [-0.6, 0.4], [0.8, -0.3]]]
        _set_params(model, {"W1": W, "W2": W2, "b_final": b})
        return model, W, W2, b
    _set_params(model, {"W": W, "b_final": b})
    return model, W, None, b


def _loop_forward(x, W, b, hidden_relu: bool, W2=None):
    """The toy models' forward pass, one instance and one number at a time."""
    out = []
    for row in x.tolist():
        out_row = []
        for k, feats in enumerate(row):
            n_hidden, n_feats = len(W[k]), len(W[k][0])
            hidden = [sum(W[k][d][i] * feats[i] for i in range(n_feats)) for d in range(n_hidden)]
            if hidden_relu:
                hidden = [_relu(v) for v in hidden]
            if W2 is None:
                back = [sum(W[k][d][i] * hidden[d] for d in range(n_hidden)) for i in range(n_feats)]
            else:
                back = [sum(W2[k][i][d] * hidden[d] for d in range(n_hidden)) for i in range(n_feats)]
            out_row.append([_relu(back[i] + b[k][i]) for i in range(n_feats)])
        out.append(out_row)
    return torch.tensor(out)


_X = torch.tensor([[[0.5, 0.0, 0.9], [0.0, 0.3, 0.0]], [[1.0, 0.2, 0.0], [0.7, 0.7, 0.7]]])


@register("toy_model_forward")
def _check_toy_forward(g: dict) -> None:
    model, W, _, b = _toy(g)
    with torch.no_grad():
        got = model(_X)
    _close(got, _loop_forward(_X, W, b, hidden_relu=False), "ToyModel.forward on a small hand-made example")


@register("generate_batch")
def _check_generate_batch(g: dict) -> None:
    cfg = g["Config"](n_inst=3, n_features=4, d_hidden=2)
    probs = torch.tensor([[1.0], [0.25], [0.0]]).expand(3, 4)
    model = g["ToyModel"](cfg, feature_probability=probs)
    batch = model.generate_batch(3000)
    check_shape(batch, (3000, 3, 4), "generate_batch")
    if batch.min() < 0 or batch.max() > 1:
        raise CheckFailed("generate_batch: values must lie in [0, 1]")
    if not (batch[:, 0] > 0).all():
        raise CheckFailed("generate_batch: with feature_probability 1 every feature must be present")
    if (batch[:, 2] != 0).any():
        raise CheckFailed("generate_batch: with feature_probability 0 no feature may be present")
    _rate_ok(float((batch[:, 1] != 0).float().mean()), 0.25, 12000, "generate_batch: fraction present at probability 0.25")
    mean = float(batch[:, 0].mean())
    if abs(mean - 0.5) > 0.03:
        raise CheckFailed(f"generate_batch: present values should be uniform on [0, 1] (mean 0.5), got mean {mean:.3f}")


@register("calculate_loss")
def _check_calculate_loss(g: dict) -> None:
    importance = torch.tensor([[1.0, 0.5, 0.25], [2.0, 1.0, 0.0]])
    model, *_ = _toy(g, importance=importance)
    out = torch.tensor([[[0.1, 0.2, 0.3], [0.0, 0.5, 1.0]], [[0.4, 0.4, 0.4], [1.0, 0.0, 0.2]]])
    total = 0.0
    for k in range(2):
        acc = 0.0
        for b in range(2):
            for i in range(3):
                acc += float(importance[k, i]) * (float(_X[b, k, i]) - float(out[b, k, i])) ** 2
        total += acc / (2 * 3)
    got = torch.as_tensor(model.calculate_loss(out, _X))
    if got.numel() != 1:
        raise CheckFailed(f"calculate_loss: return a scalar, got shape {tuple(got.shape)}")
    _close(got.reshape(()), torch.tensor(total), "calculate_loss on a small example")


@register("correlated_features")
def _check_correlated(g: dict) -> None:
    p = torch.tensor([0.3, 0.1])
    n = 4000
    corr = g["generate_correlated_features"](n, 2, p)
    check_shape(corr, (n, 2, 4), "generate_correlated_features(4000, 2, p) with p of shape (2,)")
    on = corr != 0
    if not torch.equal(on[..., 0], on[..., 1]) or not torch.equal(on[..., 2], on[..., 3]):
        raise CheckFailed("generate_correlated_features: features 2k and 2k+1 must be present together")
    for k in range(2):
        _rate_ok(float(on[:, k, 0].float().mean()), float(p[k]), n, f"generate_correlated_features: presence rate (instance {k})")
    both = on[..., 0] & on[..., 1]
    if both.any() and float((corr[..., 0][both] == corr[..., 1][both]).float().mean()) > 0.01:
        raise CheckFailed("generate_correlated_features: the two values of a pair should be drawn independently")
    anti = g["generate_anticorrelated_features"](n, 2, p)
    check_shape(anti, (n, 2, 4), "generate_anticorrelated_features(4000, 2, p) with p of shape (2,)")
    on = anti != 0
    if (on[..., 0] & on[..., 1]).any() or (on[..., 2] & on[..., 3]).any():
        raise CheckFailed("generate_anticorrelated_features: two features of a pair must never both be present")
    for k in range(2):
        _rate_ok(float(on[:, k, 1].float().mean()), float(p[k]), n,
                 f"generate_anticorrelated_features: presence rate of one feature (instance {k})")


@register("neuron_model")
def _check_neuron_model(g: dict) -> None:
    model, W, _, b = _toy(g, cls="NeuronModel")
    with torch.no_grad():
        got = model(_X)
    _close(got, _loop_forward(_X, W, b, hidden_relu=True), "NeuronModel.forward on a small hand-made example")


@register("neuron_computation")
def _check_neuron_computation(g: dict) -> None:
    model, W1, W2, b = _toy(g, cls="NeuronComputationModel")
    x = _X * torch.tensor([1.0, -1.0, 1.0])
    with torch.no_grad():
        got = model(x)
    _close(got, _loop_forward(x, W1, b, hidden_relu=True, W2=W2), "NeuronComputationModel.forward on a small example")
    cfg = g["Config"](n_inst=1, n_features=4, d_hidden=2)
    batch = g["NeuronComputationModel"](cfg, feature_probability=0.5).generate_batch(2000)
    check_shape(batch, (2000, 1, 4), "NeuronComputationModel.generate_batch")
    present = batch[batch != 0]
    if batch.min() < -1 or batch.max() > 1 or abs(float((present < 0).float().mean()) - 0.5) > 0.05:
        raise CheckFailed("NeuronComputationModel.generate_batch: present values should be uniform on [-1, 1]")
    _rate_ok(float((batch != 0).float().mean()), 0.5, 8000, "NeuronComputationModel.generate_batch: presence rate")
    importance = torch.tensor([[1.0, 0.5, 2.0], [1.0, 1.0, 1.0]])
    model.importance = importance
    total = 0.0
    for k in range(2):
        total += sum(float(importance[k, i]) * (abs(float(x[bi, k, i])) - float(got[bi, k, i])) ** 2
                     for bi in range(2) for i in range(3)) / 6
    _close(torch.as_tensor(model.calculate_loss(got, x)).reshape(()), torch.tensor(total),
           "NeuronComputationModel.calculate_loss (target |x|) on a small example")


@register("feature_dimensionality")
def _check_dimensionality(g: dict) -> None:
    W = torch.zeros(1, 2, 4)
    W[0, 0, 0] = 1.5          # alone on its axis: D = 1
    W[0, 1, 1] = 0.9          # antipodal pair on the other axis: D = 1/2 each
    W[0, 1, 2] = -0.9
    W[0, 0, 3] = 1e-3         # nearly absent, on the first axis: takes almost nothing
    got = g["compute_dimensionality"](W)
    check_shape(got, (1, 4), "compute_dimensionality")
    d3 = (1e-3) ** 2 / ((1e-3) ** 2 + 1.5 ** 2)
    d0 = 1.5 ** 2 / (1.5 ** 2 + 1e-3 ** 2)
    _close(got, torch.tensor([[d0, 0.5, 0.5, d3]]), "compute_dimensionality on a hand-made W")


# ----------------------------------------------------------------------------- SAEs


def _sae(g: dict, cls: str = "ToySAE", **overrides):
    cfg = g["ToySAEConfig"](**{"n_inst": 2, "d_in": 2, "d_sae": 3, "sparsity_coeff": 0.5, **overrides})
    torch.manual_seed(0)
    return g[cls](cfg)


@register("sae_normalized_decoder")
def _check_normalized_decoder(g: dict) -> None:
    sae = _sae(g)
    dec = sae.W_dec_normalized
    check_shape(dec, (2, 3, 2), "W_dec_normalized")
    for k in range(2):
        for j in range(3):
            row, raw = dec[k, j].tolist(), sae.W_dec[k, j].tolist()
            length = math.hypot(*row)
            cosine = (row[0] * raw[0] + row[1] * raw[1]) / (length * math.hypot(*raw))
            if abs(length - 1) > 1e-4 or cosine < 1 - 1e-4:
                raise CheckFailed(f"W_dec_normalized: row ({k}, {j}) should be W_dec[{k}, {j}] scaled to length 1; "
                                  f"it has length {length:.4f} and cosine {cosine:.4f} with it")
    tied = _sae(g, tied_weights=True)
    check_shape(tied.W_dec_normalized, (2, 3, 2), "W_dec_normalized with tied weights")


@register("sae_forward")
def _check_sae_forward(g: dict) -> None:
    sae = _sae(g)
    _set_params(sae, {
        "W_enc": [[[1.0, -1.0, 0.5], [0.0, 1.0, 0.5]], [[0.3, 0.0, -0.2], [1.0, 0.4, 0.8]]],
        "_W_dec": [[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[0.0, 3.0], [1.0, 0.0], [0.6, 0.8]]],
        "b_enc": [[0.0, -0.1, 0.1], [-0.2, 0.0, 0.0]],
        "b_dec": [[0.1, -0.1], [0.0, 0.2]],
    })
    h = torch.tensor([[[1.0, 0.5], [0.2, -0.3]], [[-0.4, 0.9], [0.7, 0.7]]])
    with torch.no_grad():
        out = sae(h)
        dec = sae.W_dec_normalized
    if not isinstance(out, tuple) or len(out) != 4:
        raise CheckFailed("forward should return a tuple (loss_dict, loss, acts, h_reconstructed)")
    loss_dict, loss, acts, rec = out
    W_enc, b_enc, b_dec = sae.W_enc.tolist(), sae.b_enc.tolist(), sae.b_dec.tolist()
    exp_acts, exp_rec, exp_lr, exp_ls = [], [], [], []
    for bi in range(2):
        ra, rr, rl, rs = [], [], [], []
        for k in range(2):
            x = [h[bi, k, d].item() - b_dec[k][d] for d in range(2)]
            z = [_relu(sum(x[d] * W_enc[k][d][j] for d in range(2)) + b_enc[k][j]) for j in range(3)]
            r = [sum(z[j] * dec[k, j, d].item() for j in range(3)) + b_dec[k][d] for d in range(2)]
            ra.append(z)
            rr.append(r)
            rl.append(sum((r[d] - h[bi, k, d].item()) ** 2 for d in range(2)) / 2)
            rs.append(sum(z))
        exp_acts.append(ra), exp_rec.append(rr), exp_lr.append(rl), exp_ls.append(rs)
    _close(acts, exp_acts, "ToySAE.forward: acts")
    _close(rec, exp_rec, "ToySAE.forward: h_reconstructed")
    if not isinstance(loss_dict, dict) or sorted(loss_dict) != ["L_reconstruction", "L_sparsity"]:
        raise CheckFailed("ToySAE.forward: loss_dict should have the keys 'L_reconstruction' and 'L_sparsity'")
    _close(loss_dict["L_reconstruction"], exp_lr, "ToySAE.forward: loss_dict['L_reconstruction']")
    _close(loss_dict["L_sparsity"], exp_ls, "ToySAE.forward: loss_dict['L_sparsity']")
    total = sum((exp_lr[0][k] + exp_lr[1][k]) / 2 + 0.5 * (exp_ls[0][k] + exp_ls[1][k]) / 2 for k in range(2))
    _close(torch.as_tensor(loss).reshape(()), torch.tensor(total), "ToySAE.forward: loss")


def _frac_window(dead: torch.Tensor) -> torch.Tensor:
    window = torch.full((4, *dead.shape), 0.3)
    window[:, dead] = 0.0
    window[2, ~dead] = 0.0  # alive latents may skip a step
    return window


def _snapshot(sae) -> dict:
    return {n: p.detach().clone() for n, p in sae.named_parameters()}


@register("resample_simple")
def _check_resample_simple(g: dict) -> None:
    sae = _sae(g, d_sae=40, d_in=3)
    dead = torch.zeros(2, 40, dtype=torch.bool)
    dead[0, ::3] = True
    dead[1, 5:9] = True
    before = _snapshot(sae)
    sae.resample_simple(_frac_window(dead), 0.4)
    after = _snapshot(sae)
    if not torch.equal(after["_W_dec"][~dead], before["_W_dec"][~dead]) or not torch.equal(
            after["W_enc"].transpose(1, 2)[~dead], before["W_enc"].transpose(1, 2)[~dead]):
        raise CheckFailed("resample_simple: latents that fired at some step of the window must not change")
    new_dec = after["_W_dec"][dead]
    _close(new_dec.norm(dim=-1), torch.ones(len(new_dec)), "resample_simple: new decoder rows must have length 1")
    _close(after["W_enc"].transpose(1, 2)[dead], new_dec * 0.4, "resample_simple: new encoder columns")
    _close(after["b_enc"][dead], torch.zeros(len(new_dec)), "resample_simple: new encoder biases")


@register("resample_advanced")
def _check_resample_advanced(g: dict) -> None:
    inputs = torch.tensor([[[3.0, 0.0, 0.0], [0.0, 0.0, 2.0]], [[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]]])

    class FixedBatchSAE(g["ToySAE"]):
        def generate_batch(self, batch_size):
            return inputs.clone()

    cfg = g["ToySAEConfig"](n_inst=2, d_in=3, d_sae=30)
    torch.manual_seed(1)
    sae = FixedBatchSAE(cfg)
    with torch.no_grad():
        sae.b_enc.fill_(-50.0)  # nothing fires: every input is reconstructed as b_dec = 0
    dead = torch.zeros(2, 30, dtype=torch.bool)
    dead[:, 10:] = True
    before = _snapshot(sae)
    sae.resample_advanced(_frac_window(dead), 0.5, 2)
    after = _snapshot(sae)
    if not torch.equal(after["_W_dec"][~dead], before["_W_dec"][~dead]):
        raise CheckFailed("resample_advanced: latents that fired at some step of the window must not change")
    for k in range(2):
        units = [row / row.norm() for row in inputs[:, k]]
        for j in range(10, 30):
            row = after["_W_dec"][k, j]
            if max(float(row @ u) for u in units) < 1 - 1e-4:
                raise CheckFailed(f"resample_advanced: the new decoder row of latent {j} (instance {k}) is not the "
                                  "normalised input of an example of the batch")
        alive_norm = sum(float(before["W_enc"][k, :, j].norm()) for j in range(10)) / 10
        _close(after["W_enc"][k, :, 10:].T, after["_W_dec"][k, 10:] * 0.5 * alive_norm,
               f"resample_advanced: new encoder columns (instance {k})")
    _close(after["b_enc"][dead], torch.zeros(40), "resample_advanced: new encoder biases")


# ----------------------------------------------------------------------------- autograd functions


def _grads(g: dict, fn, z, theta, eps):
    return g["vjp"](fn, [z, theta], torch.ones_like(z), eps)


_Z = torch.tensor([[0.10, 0.24, 0.28, 0.50], [0.27, 0.15, 0.80, 0.33]])
_THETA = torch.tensor([0.25, 0.30, 0.30, 0.30])
_EPS = 0.1


@register("heaviside")
def _check_heaviside(g: dict) -> None:
    fn = g["Heaviside"].apply
    out = fn(_Z, _THETA, _EPS)
    _close(out, [[0, 0, 0, 1], [1, 0, 1, 1]], "Heaviside forward (1 where z > theta)")
    gz, gt = _grads(g, fn, _Z, _THETA, _EPS)
    _close(gz, torch.zeros_like(_Z), "Heaviside: gradient w.r.t. z (should be 0)")
    # z - theta is within eps/2 = 0.05 of 0 at (1, 0) [+0.02], (0, 2) [-0.02] and (1, 3) [+0.03]; not at (0, 1) [-0.06].
    _close(gt, [-10.0, 0.0, -10.0, -10.0], "Heaviside: gradient w.r.t. theta, summed over the rows")


@register("jumprelu_function")
def _check_jumprelu(g: dict) -> None:
    fn = g["JumpReLU"].apply
    out = fn(_Z, _THETA, _EPS)
    _close(out, [[0, 0, 0, 0.5], [0.27, 0, 0.8, 0.33]], "JumpReLU forward (z where z > theta, else 0)")
    gz, gt = _grads(g, fn, _Z, _THETA, _EPS)
    _close(gz, [[0, 0, 0, 1], [1, 0, 1, 1]], "JumpReLU: gradient w.r.t. z")
    _close(gt, [-2.5, 0.0, -3.0, -3.0], "JumpReLU: gradient w.r.t. theta (-theta/eps inside the window), summed")


@register("gated_sae")
def _check_gated(g: dict) -> None:
    sae = _sae(g, "GatedToySAE")
    with torch.no_grad():
        sae.b_gate.copy_(torch.tensor([[0.2, -0.3, 0.1], [-0.1, 0.4, 0.0]]))
        sae.r_mag.copy_(torch.tensor([[0.5, 0.0, -0.5], [0.1, 0.2, 0.3]]))
    torch.manual_seed(3)
    h = torch.randn(5, 2, 2)
    out = sae(h)
    if not isinstance(out, tuple) or len(out) != 4:
        raise CheckFailed("forward should return a tuple (loss_dict, loss, acts, h_reconstructed)")
    loss_dict, loss, acts, rec = out
    if not isinstance(loss_dict, dict) or sorted(loss_dict) != ["L_aux", "L_reconstruction", "L_sparsity"]:
        raise CheckFailed("GatedToySAE.forward: loss_dict should have the keys 'L_aux', 'L_reconstruction', 'L_sparsity'")
    check_shape(acts, (5, 2, 3), "GatedToySAE.forward: acts")
    check_shape(rec, (5, 2, 2), "GatedToySAE.forward: h_reconstructed")
    W, b_dec = sae.W_gate.detach(), sae.b_dec.detach()
    for bi in range(5):
        for k in range(2):
            for j in range(3):
                pre = sum(float(h[bi, k, d] - b_dec[k, d]) * float(W[k, d, j]) for d in range(2))
                gate = pre + float(sae.b_gate[k, j].detach())
                mag = pre * math.exp(float(sae.r_mag[k, j].detach())) + float(sae.b_mag[k, j].detach())
                want = _relu(mag) if gate > 0 else 0.0
                if abs(float(acts[bi, k, j].detach()) - want) > 1e-4:
                    raise CheckFailed(f"GatedToySAE.forward: acts[{bi}, {k}, {j}] is {float(acts[bi, k, j].detach()):.4f}, "
                                      f"expected {want:.4f}")
    parts = loss_dict["L_reconstruction"] + 0.5 * loss_dict["L_sparsity"] + loss_dict["L_aux"]
    _close(torch.as_tensor(loss).reshape(()), parts.sum() / 5, "GatedToySAE.forward: loss from its three terms")
    loss.backward()
    if sae.r_mag.grad is None or sae.b_gate.grad is None:
        raise CheckFailed("GatedToySAE: the loss should give gradients to both r_mag and b_gate")


@register("jumprelu_sae")
def _check_jumprelu_sae(g: dict) -> None:
    sae = _sae(g, "JumpReLUToySAE", jumprelu_bandwidth=0.5)
    with torch.no_grad():
        sae.log_theta.fill_(math.log(0.3))
        sae.b_enc.fill_(0.2)
    torch.manual_seed(4)
    h = torch.randn(6, 2, 2)
    out = sae(h)
    if not isinstance(out, tuple) or len(out) != 4:
        raise CheckFailed("forward should return a tuple (loss_dict, loss, acts, h_reconstructed)")
    loss_dict, loss, acts, rec = out
    if not isinstance(loss_dict, dict) or sorted(loss_dict) != ["L_reconstruction", "L_sparsity"]:
        raise CheckFailed("JumpReLUToySAE.forward: loss_dict should have the keys 'L_reconstruction' and 'L_sparsity'")
    check_shape(acts, (6, 2, 3), "JumpReLUToySAE.forward: acts")
    W, b_dec = sae.W_enc.detach(), sae.b_dec.detach()
    count = torch.zeros(6, 2)
    for bi in range(6):
        for k in range(2):
            for j in range(3):
                pre = sum(float(h[bi, k, d] - b_dec[k, d]) * float(W[k, d, j]) for d in range(2)) + 0.2
                want = pre if pre > 0.3 else 0.0
                count[bi, k] += pre > 0.3
                if abs(float(acts[bi, k, j].detach()) - want) > 1e-4:
                    raise CheckFailed(f"JumpReLUToySAE.forward: acts[{bi}, {k}, {j}] is {float(acts[bi, k, j].detach()):.4f}, "
                                      f"expected {want:.4f} (threshold theta = 0.3)")
    _close(loss_dict["L_sparsity"], count, "JumpReLUToySAE.forward: L_sparsity (the number of active latents)")
    loss.backward()
    if sae.log_theta.grad is None or float(sae.log_theta.grad.abs().sum()) == 0:
        raise CheckFailed("JumpReLUToySAE: the loss should give log_theta a non-zero gradient (through the "
                          "pseudo-derivatives of JumpReLU and Heaviside)")


__all__ = ["check", "register", "CheckFailed", "assert_close", "check_shape"]
