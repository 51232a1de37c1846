"""Public tests for section 1.5.1: call ``check("exercise_name")`` in the notebook.

They check shapes and properties every correct answer has, and compare with
independent computations (hand-made examples, the model's own cache,
TransformerLens's ``FactoredMatrix``, a pseudo-inverse instead of ``lstsq``).
They are a subset of what grading checks; passing them is a good sign, not a
guarantee.
"""

from __future__ import annotations


import torch

from autograder.checks import CheckFailed, assert_close, assert_equal, check_shape
from autograder.public_checks import PublicChecks

CHECKS = PublicChecks(no_grad=True)
register, check = CHECKS.register, CHECKS.check
_CACHE: dict[str, object] = {}

# Hand-checked examples: (string, balanced, goes negative somewhere, total elevation non-zero).
EXAMPLES = [
    ("", True, False, False), ("()", True, False, False), ("(())()", True, False, False),
    ("((()))", True, False, False), (")(", False, True, False), ("())(", False, True, False),
    ("(()", False, False, True), ("(((", False, False, True), ("())", False, True, True),
    (")", False, True, True), ("()())((", False, True, True), ("(()(()))", True, False, False),
]


# ----------------------------------------------------------------------------- shared pieces


def prepare() -> None:
    """Load what the checks share, once: a warm grading worker calls this before it forks
    the programs that re-run these checks for feedback, so they inherit it."""
    _model()


def _model():
    if "model" not in _CACHE:
        from brackets_helpers import PROFILE, load_model

        _CACHE["model"] = load_model(PROFILE)
    return _CACHE["model"]


def _data():
    if "data" not in _CACHE:
        from brackets_helpers import PROFILE, BracketsDataset, task_info

        _CACHE["data"] = BracketsDataset.generate(150, seed=99, max_len=task_info(PROFILE)["max_len"])
    return _CACHE["data"]


def _cache():
    if "cache" not in _CACHE:
        _, cache = _model().run_with_cache(_data().toks)
        _CACHE["cache"] = cache
    return _CACHE["cache"]


def _tuple(value, n: int, what: str):
    if not isinstance(value, (tuple, list)) or len(value) != n:
        raise CheckFailed(f"{what}: expected a tuple of {n} values")
    return value


def _as_bool(value, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype == torch.bool:
        return bool(value)
    raise CheckFailed(f"{what}: expected True or False, got {value!r}")


def _pinv_fit(inp: torch.Tensor, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least squares by the pseudo-inverse (another method than the notebook's)."""
    x = torch.cat([inp.double(), torch.ones(len(inp), 1, dtype=torch.float64)], 1)
    sol = torch.linalg.pinv(x) @ out.double()
    return sol[:-1], sol[-1]


# ----------------------------------------------------------------------------- 1. balanced or not


@register("is_balanced_forloop")
def _check_is_balanced_forloop(g: dict) -> None:
    for s, balanced, _, _ in EXAMPLES:
        got = _as_bool(g["is_balanced_forloop"](s), f"is_balanced_forloop({s!r})")
        assert_equal(got, balanced, what=f"is_balanced_forloop({s!r})")


@register("is_balanced_vectorized")
def _check_is_balanced_vectorized(g: dict) -> None:
    from brackets_helpers import SimpleTokenizer

    tok = SimpleTokenizer()
    for s, balanced, _, _ in EXAMPLES:
        for width in (len(s), len(s) + 3):  # without and with [pad] tokens at the end
            toks = tok.tokenize(s, max_len=width)[0]
            got = _as_bool(g["is_balanced_vectorized"](toks), f"is_balanced_vectorized on {toks.tolist()}")
            assert_equal(got, balanced, what=f"is_balanced_vectorized on the tokens {toks.tolist()} of {s!r}")


# ----------------------------------------------------------------------------- 2. directions and the LayerNorm fit


@register("get_post_final_ln_dir")
def _check_get_post_final_ln_dir(g: dict) -> None:
    model, cache = _model(), _cache()
    u = g["get_post_final_ln_dir"](model)
    check_shape(u, (model.cfg.d_model,), "get_post_final_ln_dir")
    logits = model(_data().toks)[:, 0]
    diff = logits[:, 0] - logits[:, 1] - (model.b_U[0] - model.b_U[1])
    assert_close(cache["ln_final.hook_normalized"][:, 0] @ u, diff, atol=1e-3, rtol=1e-3,
                 what="ln_final output @ direction (should be logit[unbalanced] - logit[balanced], bias removed)")


@register("get_ln_fit")
def _check_get_ln_fit(g: dict) -> None:
    model, data, cache = _model(), _data(), _cache()
    d = model.cfg.d_model
    W, b, r2 = _tuple(g["get_ln_fit"](model, data, model.ln_final, 0), 3, "get_ln_fit")
    check_shape(W, (d, d), "W")
    check_shape(b, (d,), "b")
    if not isinstance(r2, float):
        raise CheckFailed(f"r2: expected a Python float, got {type(r2).__name__}")
    inp = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"][:, 0]
    out = cache["ln_final.hook_normalized"][:, 0]
    W2, b2 = _pinv_fit(inp, out)
    assert_close(inp @ W.float() + b.float(), (inp.double() @ W2 + b2).float(), atol=2e-3, rtol=1e-3,
                 what="the fit's predictions for ln_final at position 0 (compared with a pseudo-inverse fit)")
    fit = inp.double() @ W2 + b2
    r2_want = (1 - (out - fit).pow(2).sum(0) / (out - out.mean(0)).pow(2).sum(0)).mean()
    assert_close(torch.tensor(r2), r2_want.float(), atol=1e-4, what="r2 of the fit (mean over output dimensions)")
    W, b, r2_all = _tuple(g["get_ln_fit"](model, data, model.blocks[1].ln1, None), 3, "get_ln_fit")
    inp = cache["blocks.1.hook_resid_pre"].flatten(0, 1)
    W2, b2 = _pinv_fit(inp, cache["blocks.1.ln1.hook_normalized"].flatten(0, 1))
    assert_close(inp @ W.float() + b.float(), (inp.double() @ W2 + b2).float(), atol=2e-3, rtol=1e-3,
                 what="the fit's predictions for blocks.1.ln1 over all positions (seq_pos=None)")


@register("get_pre_final_ln_dir")
def _check_get_pre_final_ln_dir(g: dict) -> None:
    model, data, cache = _model(), _data(), _cache()
    d = g["get_pre_final_ln_dir"](model, data)
    check_shape(d, (model.cfg.d_model,), "get_pre_final_ln_dir")
    inp = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"][:, 0]
    W2, _ = _pinv_fit(inp, cache["ln_final.hook_normalized"][:, 0])
    want = (W2 @ (model.W_U[:, 0] - model.W_U[:, 1]).double()).float()
    assert_close(inp @ d, inp @ want, atol=1e-3 * float((inp @ want).abs().max()), rtol=1e-3,
                 what="residual stream at position 0 @ your direction (compared with a pseudo-inverse fit)")


@register("get_out_by_components")
def _check_get_out_by_components(g: dict) -> None:
    model, data, cache = _model(), _data(), _cache()
    out = g["get_out_by_components"](model, data)
    n = 1 + model.cfg.n_layers * (model.cfg.n_heads + 1)
    check_shape(out, (n, len(data), model.cfg.d_model), "get_out_by_components")
    total = out.sum(0) + model.b_O.sum(0)
    assert_close(total, cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"][:, 0], atol=1e-4,
                 what="the components (plus every layer's b_O) should add up to the final residual stream at position 0")
    assert_close(out[3], cache["blocks.0.hook_mlp_out"][:, 0], what="component 3 (MLP 0)")
    head = cache["blocks.1.attn.hook_z"][:, 0, 1] @ model.W_O[1, 1]
    assert_close(out[5], head, what="component 5 (head 1.1)")


# ----------------------------------------------------------------------------- 3. failure modes


@register("get_elevation_failures")
def _check_get_elevation_failures(g: dict) -> None:
    from brackets_helpers import SimpleTokenizer

    strs = [e[0] for e in EXAMPLES]
    neg, tot = _tuple(g["get_elevation_failures"](SimpleTokenizer().tokenize(strs)), 2, "get_elevation_failures")
    check_shape(neg, (len(strs),), "negative_failure")
    check_shape(tot, (len(strs),), "total_elevation_failure")
    for i, (s, _, want_neg, want_tot) in enumerate(EXAMPLES):
        assert_equal(bool(neg[i]), want_neg, what=f"negative_failure of {s!r}")
        assert_equal(bool(tot[i]), want_tot, what=f"total_elevation_failure of {s!r}")


# ----------------------------------------------------------------------------- 4. attention and OV


@register("get_attn_probs")
def _check_get_attn_probs(g: dict) -> None:
    from brackets_helpers import PAD

    model, data, cache = _model(), _data(), _cache()
    n, seq = data.toks.shape
    for layer, head in [(0, 1), (model.cfg.n_layers - 1, 0)]:
        probs = g["get_attn_probs"](model, data, layer, head)
        check_shape(probs, (n, seq, seq), f"get_attn_probs(model, data, {layer}, {head})")
        assert_close(probs.sum(-1), torch.ones(n, seq), what="attention probabilities should sum to 1 over keys")
        pads = (data.toks == PAD)[:, None, :].expand(n, seq, seq)
        assert_close(probs[pads], torch.zeros(int(pads.sum())), what="attention to [pad] keys should be 0")
        assert_close(probs, cache["pattern", layer][:, head], what=f"attention probabilities of head {layer}.{head}")


@register("get_WOV")
def _check_get_WOV(g: dict) -> None:
    model = _model()
    for layer, head in [(0, 0), (model.cfg.n_layers - 1, model.cfg.n_heads - 1)]:
        got = g["get_WOV"](model, layer, head)
        check_shape(got, (model.cfg.d_model, model.cfg.d_model), f"get_WOV(model, {layer}, {head})")
        assert_close(got, model.OV[layer, head].AB, what=f"W_OV of head {layer}.{head} (compared with model.OV)")


@register("get_pre_20_dir")
def _check_get_pre_20_dir(g: dict) -> None:
    model, data, cache = _model(), _data(), _cache()
    layer, head, pos = model.cfg.n_layers - 1, 0, 1
    got = g["get_pre_20_dir"](model, data, layer, head, pos)
    check_shape(got, (model.cfg.d_model,), "get_pre_20_dir")
    last = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"][:, 0]
    W_final, _ = _pinv_fit(last, cache["ln_final.hook_normalized"][:, 0])
    final_dir = W_final @ (model.W_U[:, 0] - model.W_U[:, 1]).double()
    inp = cache[f"blocks.{layer}.hook_resid_pre"][:, pos]
    W_ln1, _ = _pinv_fit(inp, cache[f"blocks.{layer}.ln1.hook_normalized"][:, pos])
    want = (W_ln1 @ model.OV[layer, head].AB.double() @ final_dir).float()
    assert_close(inp @ got, inp @ want, atol=1e-3 * float((inp @ want).abs().max()), rtol=1e-3,
                 what=f"residual stream at position {pos} @ get_pre_20_dir(model, data, {layer}, {head}, {pos})")


# ----------------------------------------------------------------------------- 5. neurons


@register("get_out_by_neuron")
def _check_get_out_by_neuron(g: dict) -> None:
    model, data, cache = _model(), _data(), _cache()
    small = data[list(range(5))]
    n, seq = small.toks.shape
    d_mlp, d_model = model.cfg.d_mlp, model.cfg.d_model
    out = g["get_out_by_neuron"](model, small, 1)
    check_shape(out, (n, seq, d_mlp, d_model), "get_out_by_neuron(model, data, 1) (all positions)")
    _, small_cache = model.run_with_cache(small.toks)
    assert_close(out.sum(2) + model.b_out[1], small_cache["blocks.1.hook_mlp_out"], atol=1e-4,
                 what="summed over neurons (plus b_out), the outputs should give the MLP's output")
    out = g["get_out_by_neuron"](model, data, 0, 2)
    check_shape(out, (len(data), d_mlp, d_model), "get_out_by_neuron(model, data, 0, seq_pos=2)")
    assert_close(out.sum(1) + model.b_out[0], cache["blocks.0.hook_mlp_out"][:, 2], atol=1e-4,
                 what="summed over neurons (plus b_out), the outputs at position 2 should give the MLP's output")


def _check_in_dir(fn, what: str) -> None:
    model, data, cache = _model(), _data(), _cache()
    direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(5))
    for layer, pos in [(0, 1), (model.cfg.n_layers - 1, 3)]:
        got = fn(model, data, layer, direction, pos)
        check_shape(got, (len(data), model.cfg.d_mlp), f"{what}(model, data, {layer}, direction, {pos})")
        total = (cache[f"blocks.{layer}.hook_mlp_out"][:, pos] - model.b_out[layer]) @ direction
        assert_close(got.sum(-1), total, atol=1e-3, what="summed over neurons: (MLP output - b_out) @ direction")
        acts = cache[f"blocks.{layer}.mlp.hook_post"][:, pos]
        assert_close(got[acts == 0], torch.zeros(int((acts == 0).sum())),
                     what="neurons with activation 0 should contribute 0")


@register("get_out_by_neuron_in_20_dir")
def _check_get_out_by_neuron_in_20_dir(g: dict) -> None:
    _check_in_dir(g["get_out_by_neuron_in_20_dir"], "get_out_by_neuron_in_20_dir")


@register("get_out_by_neuron_in_20_dir_less_memory")
def _check_get_out_by_neuron_in_20_dir_less_memory(g: dict) -> None:
    _check_in_dir(g["get_out_by_neuron_in_20_dir_less_memory"], "get_out_by_neuron_in_20_dir_less_memory")


# ----------------------------------------------------------------------------- 6. queries and keys


@register("get_q_and_k_for_given_input")
def _check_get_q_and_k_for_given_input(g: dict) -> None:
    from brackets_helpers import SimpleTokenizer

    model = _model()
    tok = SimpleTokenizer()
    for parens, layer in [("(()())", 0), ("())(", model.cfg.n_layers - 1)]:
        q, k = _tuple(g["get_q_and_k_for_given_input"](model, tok, parens, layer), 2, "get_q_and_k_for_given_input")
        shape = (len(parens) + 1, model.cfg.n_heads, model.cfg.d_head)
        check_shape(q, shape, f"q on {parens!r}")
        check_shape(k, shape, f"k on {parens!r}")
        _, cache = model.run_with_cache(tok.tokenize(parens))
        assert_close(q, cache["q", layer][0], what=f"q of layer {layer} on {parens!r}")
        assert_close(k, cache["k", layer][0], what=f"k of layer {layer} on {parens!r}")
