"""Public tests for section 1.4.2: call ``check("exercise_name")`` in the notebook.

They compare your code with SAELens itself, with small computations written out another way (loops, hand-picked
numbers, finite differences) and check properties any correct answer has. They are a subset of what grading checks.
"""

from __future__ import annotations


import torch

import circuit_helpers as ch
from autograder.checks import CheckFailed, assert_close, check_shape
from autograder.public_checks import PublicChecks

CHECKS = PublicChecks()
register, check = CHECKS.register, CHECKS.check


def _float(value, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise CheckFailed(f"{what}: expected a Python number, got {type(value).__name__}")
    return float(value)


def _near(actual, expected: float, what: str, tol: float = 1e-4) -> None:
    actual = _float(actual, what)
    if abs(actual - expected) > tol * max(1.0, abs(expected)):
        raise CheckFailed(f"{what}: got {actual:.6g}, expected {expected:.6g}")


def _prompts(model):
    prompts = [ch.to_prompt(s) for s in ["Paris is in France.", "Seven is larger than three.", "Rome is not in Spain."]]
    return ch.tokenize_prompts(model, prompts)


def _acts(model, hooks, tokens):
    box = {}

    def keep(a, hook):
        box[hook.name] = a.clone()

    model.run_with_hooks(tokens, fwd_hooks=[(h, keep) for h in hooks])
    return [box[h] for h in hooks]


@register("transcoder_forward")
def _check_transcoder_forward(g: dict) -> None:
    model, tc = g["lite_model"], g["transcoder"]
    tokens, _ = _prompts(model)
    with torch.no_grad():
        (x,) = _acts(model, [tc.cfg.metadata.hook_name], tokens)
        out = g["transcoder_forward"](tc, x)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("transcoder_forward: expected a tuple (feature_acts, mlp_out_hat)")
    check_shape(out[0], (*x.shape[:-1], tc.cfg.d_sae), "feature_acts")
    assert_close(out[0], tc.encode(x), atol=1e-4, rtol=1e-4, what="feature_acts against SAELens's transcoder.encode")
    assert_close(out[1], tc(x), atol=1e-4, rtol=1e-4, what="mlp_out_hat against SAELens's transcoder(x)")


@register("get_transcoder_io")
def _check_get_transcoder_io(g: dict) -> None:
    model, tc = g["lite_model"], g["transcoder"]
    tokens, _ = _prompts(model)
    out = g["get_transcoder_io"](model, tc, tokens)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("get_transcoder_io: expected a tuple (mlp_in, mlp_out)")
    with torch.no_grad():
        x, y = _acts(model, ch.transcoder_hooks(tc), tokens)
    assert_close(out[0], x, atol=1e-5, rtol=1e-5, what="the MLP's input")
    assert_close(out[1], y, atol=1e-5, rtol=1e-5, what="the MLP's output")
    norms = out[0].norm(dim=-1)
    assert_close(norms, torch.full_like(norms, model.cfg.d_model ** 0.5), atol=1e-2, rtol=1e-3,
                 what="the MLP's input is normalised (norm sqrt(d_model) at every position)")


@register("replacement_stats")
def _check_replacement_stats(g: dict) -> None:
    y = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])
    y_hat = torch.tensor([[1.0, 1.0], [3.0, 4.0], [4.0, 0.0]])
    f = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.5]])
    out = g["replacement_stats"](y, y_hat, f)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise CheckFailed("replacement_stats: expected a tuple (mse, l0, fve)")
    _near(out[0], 2 / 6, "mse on a hand-made example")
    _near(out[1], 4 / 3, "l0 on a hand-made example")
    _near(out[2], 1 - 2 / 16, "fraction of variance explained on a hand-made example (the variance is centred)")


@register("spliced_mlp_losses")
def _check_spliced_mlp_losses(g: dict) -> None:
    model, tc = g["lite_model"], g["transcoder"]
    d = ch.make_dataset(model, families=("city",))
    tokens, last, answers, mask = d["tokens"][:30], d["last_pos"][:30], d["answers"][:30], d["mask"][:30]
    out = g["spliced_mlp_losses"](model, tc, tokens, last, answers, mask)
    if not isinstance(out, (tuple, list)) or len(out) != 4:
        raise CheckFailed("spliced_mlp_losses: expected a tuple (clean, transcoder, zero_ablated, mean_ablated)")
    hook_in, hook_out = ch.transcoder_hooks(tc)
    with torch.no_grad():
        _near(out[0], ch.answer_loss(model(tokens), last, answers).item(), "the clean answer loss")
        x, = _acts(model, [hook_in], tokens)
        by_hand = model.run_with_hooks(tokens, fwd_hooks=[(hook_out, lambda a, hook: tc(x))])
        _near(out[1], ch.answer_loss(by_hand, last, answers).item(), "the loss with the transcoder", tol=1e-3)
        zeroed = model.run_with_hooks(tokens, fwd_hooks=[(hook_out, lambda a, hook: a * 0)])
        _near(out[2], ch.answer_loss(zeroed, last, answers).item(), "the loss with the MLP zero-ablated", tol=1e-3)


@register("virtual_weights")
def _check_virtual_weights(g: dict) -> None:
    tc, sae = g["transcoder"], g["lite_sae"]
    got = g["virtual_weights"](tc, sae)
    check_shape(got, (tc.cfg.d_sae, sae.cfg.d_sae), "virtual_weights")
    by_hand = sum(float(tc.W_dec[3, k]) * float(sae.W_enc[k, 7]) for k in range(tc.cfg.d_out))
    _near(got[3, 7], by_hand, "transcoder feature 3 -> SAE feature 7, as a sum over d_model", tol=1e-3)


@register("transcoder_sae_edges")
def _check_transcoder_sae_edges(g: dict) -> None:
    model, tc, sae = g["lite_model"], g["transcoder"], g["lite_sae"]
    tokens, _ = ch.tokenize_prompts(model, [ch.to_prompt("Rome is not in Spain.")])
    got = g["transcoder_sae_edges"](model, tc, sae, tokens)
    check_shape(got, (tokens.shape[1], tc.cfg.d_sae, sae.cfg.d_sae), "edges for one prompt")
    with torch.no_grad():
        x, r = _acts(model, [tc.cfg.metadata.hook_name, sae.cfg.metadata.hook_name], tokens)
        f, s = tc.encode(x)[0], sae.encode(r)[0]
    p = 2
    j = int(s[p].argmax())
    i = int(f[p].argmax())
    _near(got[p, i, j], float(f[p, i] * (tc.W_dec[i] @ sae.W_enc[:, j])), f"edge at position {p}, {i} -> {j}", tol=1e-3)
    dead = int((s[p] == 0).nonzero()[0])
    if float(got[p, :, dead].abs().max()) != 0.0:
        raise CheckFailed(f"SAE feature {dead} does not fire at position {p}: its edges must be 0")


def _graph_model(g):
    return g["model"], g["sae"]


@register("sae_attribution")
def _check_sae_attribution(g: dict) -> None:
    model, sae = _graph_model(g)
    tokens, last = _prompts(model)
    out = g["sae_attribution"](model, sae, tokens, last)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("sae_attribution: expected a tuple (attribution, grad)")
    attr, grad = out
    check_shape(attr, (*tokens.shape, sae.cfg.d_sae), "attribution")
    with torch.no_grad():
        (r,) = _acts(model, [sae.cfg.metadata.hook_name], tokens)
        f = sae.encode(r)
    assert_close(attr, f * grad, atol=1e-4, rtol=1e-4, what="attribution = feature activation x gradient")
    # finite difference for the node with the largest |attribution| in prompt 0
    flat = int(attr[0].abs().flatten().argmax())
    p, j = flat // sae.cfg.d_sae, flat % sae.cfg.d_sae
    eps = 1e-2

    def nudge(a, hook):
        a = a.clone()
        a[0, p] += eps * sae.W_dec[j]
        return a

    with torch.no_grad():
        base = ch.logit_diff(model, model(tokens), last)[0]
        moved = ch.logit_diff(model, model.run_with_hooks(tokens, fwd_hooks=[(sae.cfg.metadata.hook_name, nudge)]), last)[0]
    _near(grad[0, p, j], float((moved - base) / eps), f"gradient for feature {j} at position {p} (finite difference)",
          tol=5e-2)


@register("ablate_sae_features")
def _check_ablate_sae_features(g: dict) -> None:
    model, sae = _graph_model(g)
    tokens, last = _prompts(model)
    with torch.no_grad():
        clean = ch.logit_diff(model, model(tokens), last)
    none = g["ablate_sae_features"](model, sae, tokens, last, torch.zeros(0, 2, dtype=torch.long))
    assert_close(none, clean, atol=1e-3, rtol=1e-4, what="ablating no node leaves the logit difference clean")
    with torch.no_grad():
        (r,) = _acts(model, [sae.cfg.metadata.hook_name], tokens)
        f = sae.encode(r)
    j = int(f[0, 1].argmax())
    vec = f[:, 1, j, None] * sae.W_dec[j]

    def remove(a, hook):
        a = a.clone()
        a[:, 1] -= vec
        return a

    with torch.no_grad():
        expected = ch.logit_diff(model, model.run_with_hooks(tokens, fwd_hooks=[(sae.cfg.metadata.hook_name, remove)]), last)
    got = g["ablate_sae_features"](model, sae, tokens, last, torch.tensor([[1, j]]))
    assert_close(got, expected, atol=1e-3, rtol=1e-4, what=f"ablating feature {j} at position 1")


@register("prune_graph")
def _check_prune_graph(g: dict) -> None:
    edges = torch.zeros(2, 3, 2)
    edges[0, 1, 0], edges[1, 2, 1], edges[1, 0, 0], edges[0, 2, 1] = 2.0, -1.0, 5.0, 4.0
    down_attr = torch.tensor([[3.0, 0.1], [-4.0, 1.0]])
    down_grad = torch.tensor([[1.0, 1.0], [2.0, 3.0]])
    out = g["prune_graph"](edges, down_attr, down_grad, 2, 2)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise CheckFailed("prune_graph: expected a tuple (down_nodes, up_nodes, up_attr)")
    down, up, up_attr = out
    if torch.as_tensor(down).tolist() != [[1, 0], [0, 0]]:
        raise CheckFailed(f"down_nodes {torch.as_tensor(down).tolist()}, expected [[1, 0], [0, 0]] (by |attribution|)")
    # kept downstream: (1, 0) grad 2 and (0, 0) grad 1. Upstream (1, 0): 5 * 2 = 10; (0, 1): 2 * 1 = 2;
    # (0, 2) -> (0, 1) is not kept, so it counts 0.
    if torch.as_tensor(up).tolist() != [[1, 0], [0, 1]]:
        raise CheckFailed(f"up_nodes {torch.as_tensor(up).tolist()}, expected [[1, 0], [0, 1]]")
    assert_close(torch.as_tensor(up_attr, dtype=torch.float32), torch.tensor([10.0, 2.0]), atol=1e-5, rtol=0,
                 what="up_attr")


@register("nodes_to_explain")
def _check_nodes_to_explain(g: dict) -> None:
    attr = torch.tensor([1.0, -6.0, 2.0, 1.0])
    for fraction, expected in [(0.5, 1), (0.6, 1), (0.61, 2), (0.8, 2), (0.9, 3), (1.0, 4)]:
        got = g["nodes_to_explain"](attr, fraction)
        if not isinstance(got, int) or isinstance(got, bool) or got != expected:
            raise CheckFailed(f"nodes_to_explain([1, -6, 2, 1], {fraction}) = {got!r}, expected {expected}")


__all__ = ["check", "register", "CheckFailed", "assert_close", "check_shape"]
