"""Public tests for section 1.5.3: call ``check("exercise_name")`` in the notebook.

They check shapes and properties every correct answer has, and compare with
independent computations (loops over squares, the model's own forward pass). They
are a subset of what grading checks; passing them is a good sign, not a guarantee.
"""

from __future__ import annotations

import functools
import math

import torch

from autograder.checks import CheckFailed, assert_close, check_shape
from autograder.public_checks import PublicChecks

CHECKS = PublicChecks(no_grad=True, one_thread=True)
register, check = CHECKS.register, CHECKS.check
_CACHE: dict[str, object] = {}


# ----------------------------------------------------------------------------- shared inputs


def prepare() -> None:
    """Load what the checks share, once: a warm grading worker calls this before it forks
    the programs that re-run these checks for feedback, so they inherit it."""
    _model()


def _model():
    if "model" not in _CACHE:
        from othello_helpers import PROFILE, load_model, load_probe

        model = load_model(PROFILE)
        model.requires_grad_(False)
        _CACHE["model"] = model
        _CACHE["probe"], _CACHE["probe_layer"] = load_probe(PROFILE)
    return _CACHE["model"]


def _probe():
    _model()
    return _CACHE["probe"], _CACHE["probe_layer"]


def _games():
    if "games" not in _CACHE:
        from othello_helpers import exercise_games

        _CACHE["games"] = exercise_games(8, seed=4242)
    return _CACHE["games"]


def _cache():
    if "cache" not in _CACHE:
        model = _model()
        _, cache = model.run_with_cache(_games()["tokens"][:4, :59])
        _CACHE["cache"] = {name: cache[name] for name in cache.keys()}
    return _CACHE["cache"]


def _rand(seed: int):
    gen = torch.Generator().manual_seed(seed)
    return lambda *shape: torch.randn(*shape, generator=gen)


def _tuple(value, n: int, what: str):
    if not isinstance(value, (tuple, list)) or len(value) != n:
        raise CheckFailed(f"{what}: expected a tuple of {n} values, got {type(value).__name__}")
    return value


def _unit_dirs(probe: torch.Tensor, a: list[float]) -> torch.Tensor:
    """Combination a[0]*blank + a[1]*mine + a[2]*theirs per square, unit length along d_model, by a loop."""
    d_model = probe.shape[0]
    out = torch.empty(d_model, 8, 8)
    for r in range(8):
        for c in range(8):
            v = sum(a[k] * probe[:, r, c, k] for k in range(3))
            out[:, r, c] = v / math.sqrt(float((v * v).sum()))
    return out


# ----------------------------------------------------------------------------- 2. probe


@register("apply_probe")
def _check_apply_probe(g: dict) -> None:
    r = _rand(0)
    probe = r(6, 8, 8, 3)
    x = r(2, 5, 6)
    got = g["apply_probe"](x, probe)
    check_shape(got, (2, 5, 8, 8), "apply_probe on (2, 5, d_model)")
    for b, p, row, col in [(0, 0, 0, 0), (1, 4, 7, 2), (0, 3, 2, 6)]:
        scores = [float((x[b, p] * probe[:, row, col, k]).sum()) for k in range(3)]
        want = max(range(3), key=lambda k: scores[k])
        if int(got[b, p, row, col]) != want:
            raise CheckFailed(f"apply_probe[{b}, {p}, {row}, {col}]: expected option {want}, got {int(got[b, p, row, col])}")
    check_shape(g["apply_probe"](x[0, 0], probe), (8, 8), "apply_probe on a single (d_model,) vector")
    # the shipped probe reads the model's board better than chance
    model = _model()
    probe, layer = _probe()
    states = _games()["states"][:4, :59]
    pred = g["apply_probe"](_cache()[f"blocks.{layer}.hook_resid_post"], probe)
    acc = float((pred == states).float().mean())
    if acc < 0.5:
        raise CheckFailed(f"the shipped probe reads only {acc:.0%} of squares right with your apply_probe; expected far more")


# ----------------------------------------------------------------------------- 3. directions


@register("get_probe_directions")
def _check_get_probe_directions(g: dict) -> None:
    probe = _rand(1)(5, 8, 8, 3)
    blank, mvt = _tuple(g["get_probe_directions"](probe), 2, "get_probe_directions")
    check_shape(blank, (5, 8, 8), "blank_dir")
    check_shape(mvt, (5, 8, 8), "mine_vs_theirs_dir")
    assert_close(mvt.norm(dim=0), torch.ones(8, 8), what="the norm of every square's mine_vs_theirs vector along d_model")
    assert_close(mvt, _unit_dirs(probe, [0.0, 1.0, -1.0]), what="mine_vs_theirs_dir (mine minus theirs, normalised)")
    assert_close(blank, _unit_dirs(probe, [1.0, -0.5, -0.5]), what="blank_dir (blank minus the mean of mine and theirs, normalised)")


# ----------------------------------------------------------------------------- 4. scaling


@register("apply_scale")
def _check_apply_scale(g: dict) -> None:
    r = _rand(2)
    resid, d = r(2, 4, 6), r(6) * 3.0
    before = resid.clone()
    out = g["apply_scale"](resid, d, 1.5, 2)
    check_shape(out, (2, 4, 6), "apply_scale")
    assert_close(resid, before, what="your input resid (apply_scale must not change it; clone first)")
    keep = [0, 1, 3]
    assert_close(out[:, keep], resid[:, keep], what="positions other than pos (they must not change)")
    unit = d / d.norm()
    for b in range(2):
        before_c = float(resid[b, 2] @ unit)
        after_c = float(out[b, 2] @ unit)
        if abs(after_c - (-1.5 * before_c)) > 1e-4 * max(1.0, abs(before_c)):
            raise CheckFailed(f"batch {b}: component along the (normalised) direction went from {before_c:.4f} to "
                              f"{after_c:.4f}; expected -scale times it, {-1.5 * before_c:.4f}")
        rest_before = resid[b, 2] - before_c * unit
        rest_after = out[b, 2] - after_c * unit
        assert_close(rest_after, rest_before, what="the part of resid[:, pos] orthogonal to the direction (must not change)")


# ----------------------------------------------------------------------------- 5. contributions


@register("probe_score_contributions")
def _check_contributions(g: dict) -> None:
    model, cache = _model(), _cache()
    d = _rand(3)(model.cfg.d_model) * 2.0
    attn, mlp = _tuple(g["calculate_attn_and_mlp_probe_score_contributions"](model, cache, d), 2,
                       "calculate_attn_and_mlp_probe_score_contributions")
    n, (b, p) = model.cfg.n_layers, cache["blocks.0.hook_resid_pre"].shape[:2]
    check_shape(attn, (n, b, p), "attn contributions")
    check_shape(mlp, (n, b, p), "mlp contributions")
    for layer in range(n):
        step = (cache[f"blocks.{layer}.hook_resid_post"] - cache[f"blocks.{layer}.hook_resid_pre"]) @ d
        assert_close(attn[layer] + mlp[layer], step, atol=1e-3, rtol=1e-3,
                     what=f"attn + mlp contributions of layer {layer} (should equal what the layer adds to the stream)")
        mid = (cache[f"blocks.{layer}.hook_resid_mid"] - cache[f"blocks.{layer}.hook_resid_pre"]) @ d
        assert_close(attn[layer], mid, atol=1e-3, rtol=1e-3, what=f"attention contribution of layer {layer}")


@register("accumulated_probe_score")
def _check_accumulated(g: dict) -> None:
    model, cache = _model(), _cache()
    dirs = _rand(4)(model.cfg.d_model, 8, 8)
    got = g["calculate_accumulated_probe_score"](model, cache, dirs)
    n, (b, p) = model.cfg.n_layers, cache["blocks.0.hook_resid_pre"].shape[:2]
    check_shape(got, (n + 1, b, p, 8, 8), "calculate_accumulated_probe_score")
    for idx, name in [(0, "blocks.0.hook_resid_pre"), (n, f"blocks.{n - 1}.hook_resid_post"), (1, "blocks.0.hook_resid_post")]:
        for row, col in [(0, 0), (3, 5), (7, 6)]:
            want = cache[name] @ dirs[:, row, col]
            assert_close(got[idx, :, :, row, col], want, atol=1e-3, rtol=1e-3, what=f"score [{idx}] ({name}) of square ({row}, {col})")


# ----------------------------------------------------------------------------- 6. neurons


@register("neuron_weights")
def _check_neuron_weights(g: dict) -> None:
    model = _model()
    for layer, neuron in [(0, 3), (model.cfg.n_layers - 1, model.cfg.d_mlp - 2)]:
        w_in = g["get_w_in"](model, layer, neuron, normalize=False)
        w_out = g["get_w_out"](model, layer, neuron, normalize=False)
        check_shape(w_in, (model.cfg.d_model,), "get_w_in")
        check_shape(w_out, (model.cfg.d_model,), "get_w_out")
        x = torch.zeros(model.cfg.d_model)
        x[5] = 1.0
        assert_close(w_in[5], (x @ model.W_in[layer])[neuron], what=f"get_w_in({layer}, {neuron})[5]")
        one_hot = torch.zeros(model.cfg.d_mlp)
        one_hot[neuron] = 1.0
        assert_close(w_out, one_hot @ model.W_out[layer], what=f"get_w_out({layer}, {neuron})")
        unit = g["get_w_in"](model, layer, neuron, normalize=True)
        assert_close(unit.norm(), torch.tensor(1.0), what="the norm of get_w_in(..., normalize=True)")
        assert_close(unit * w_in.norm(), w_in, what="get_w_in(..., normalize=True) times the norm")
        unit = g["get_w_out"](model, layer, neuron, normalize=True)
        assert_close(unit.norm(), torch.tensor(1.0), what="the norm of get_w_out(..., normalize=True)")


@register("neuron_probe_weights")
def _check_neuron_probe_weights(g: dict) -> None:
    model = _model()
    dirs = _unit_dirs(_rand(5)(model.cfg.d_model, 8, 8, 3), [0.0, 1.0, -1.0])
    layer, neuron = model.cfg.n_layers - 1, 7
    got_in = g["calculate_neuron_input_weights"](model, dirs, layer, neuron)
    got_out = g["calculate_neuron_output_weights"](model, dirs, layer, neuron)
    check_shape(got_in, (8, 8), "calculate_neuron_input_weights")
    check_shape(got_out, (8, 8), "calculate_neuron_output_weights")
    w_in = model.W_in[layer][:, neuron]
    w_out = model.W_out[layer][neuron]
    cos = torch.nn.functional.cosine_similarity
    for row, col in [(0, 1), (4, 4), (6, 2)]:
        assert_close(got_in[row, col], cos(w_in, dirs[:, row, col], dim=0), what=f"input weights · square ({row}, {col})")
        assert_close(got_out[row, col], cos(w_out, dirs[:, row, col], dim=0), what=f"output weights · square ({row}, {col})")


# ----------------------------------------------------------------------------- 7. patching


def _pair():
    if "pair" not in _CACHE:
        import othello_helpers as oh

        model = _model()
        pair = oh.patching_pair(_games()["squares"][1])
        clean_logits, clean_cache = model.run_with_cache(pair["clean"])
        corrupted_logits = model(pair["corrupted"])
        lp = lambda logits: float(torch.log(torch.softmax(logits[0, -1].double(), -1)[pair["target"]]))  # noqa: E731
        _CACHE["pair"] = (pair, {k: clean_cache[k] for k in clean_cache.keys()}, clean_logits, corrupted_logits,
                          lp(clean_logits), lp(corrupted_logits))
    return _CACHE["pair"]


@register("patching_metric")
def _check_patching_metric(g: dict) -> None:
    pair, _, clean_logits, corrupted_logits, clean_lp, corrupted_lp = _pair()
    metric = functools.partial(g["patching_metric"], target=pair["target"], clean_log_prob=clean_lp,
                               corrupted_log_prob=corrupted_lp)
    assert_close(torch.as_tensor(metric(clean_logits)).reshape(()), torch.tensor(1.0), atol=1e-3, rtol=1e-3,
                 what="the metric of the clean logits")
    assert_close(torch.as_tensor(metric(corrupted_logits)).reshape(()), torch.tensor(0.0), atol=1e-3, rtol=1e-3,
                 what="the metric of the corrupted logits")
    # adding a constant to every logit changes nothing (a log-softmax is shift-invariant)
    assert_close(torch.as_tensor(metric(clean_logits + 3.0)).reshape(()), torch.tensor(1.0), atol=1e-3, rtol=1e-3,
                 what="the metric of the clean logits + 3 (log-probabilities ignore a constant shift)")
    # only the last position counts
    mixed = clean_logits.clone()
    mixed[:, :-1] = corrupted_logits[:, :-1] - 5.0
    assert_close(torch.as_tensor(metric(mixed)).reshape(()), torch.tensor(1.0), atol=1e-3, rtol=1e-3,
                 what="the metric when only earlier positions change (only the last position counts)")


@register("patch_final_move_output")
def _check_patch_hook(g: dict) -> None:
    model = _model()
    games = _games()
    clean_tokens, other_tokens = games["tokens"][2:3, :30], games["tokens"][3:4, :30]
    _, clean_cache = model.run_with_cache(clean_tokens)
    name = "blocks.1.hook_resid_pre"
    hook = functools.partial(g["patch_final_move_output"], clean_cache={name: clean_cache[name]})
    seen = {}

    def spy(x, hook):
        seen["x"] = x.clone()

    got = model.run_with_hooks(other_tokens, fwd_hooks=[(name, hook), (name, spy)])
    _, other_cache = model.run_with_cache(other_tokens)
    assert_close(seen["x"][:, :-1], other_cache[name][:, :-1], what="the activation at earlier positions (must stay)")
    assert_close(seen["x"][:, -1], clean_cache[name][:, -1], what="the activation at the final position (the clean one)")
    check_shape(got, (1, 30, model.cfg.d_vocab_out), "logits of the patched run")


@register("get_act_patch_resid_pre")
def _check_act_patch(g: dict) -> None:
    import othello_helpers as oh

    model = _model()
    pair = oh.patching_pair(_games()["squares"][5], start=6, extra=3)
    clean_logits, cache = model.run_with_cache(pair["clean"])
    clean_cache = {k: cache[k] for k in cache.keys()}
    lp = lambda logits: torch.log_softmax(logits[0, -1], -1)[pair["target"]]  # noqa: E731
    clean_lp, corrupted_lp = float(lp(clean_logits)), float(lp(model(pair["corrupted"])))

    def metric(logits):
        return (lp(logits) - corrupted_lp) / (clean_lp - corrupted_lp)

    got = g["get_act_patch_resid_pre"](model, pair["corrupted"], clean_cache, metric)
    n, seq, T = model.cfg.n_layers, pair["corrupted"].shape[1], pair["T"]
    check_shape(got, (n, seq), "get_act_patch_resid_pre")
    if model._forward_hooks or any(hp._forward_hooks for hp in model.hook_dict.values()):
        model.reset_hooks()
        raise CheckFailed("hooks were left on the model after get_act_patch_resid_pre (use run_with_hooks)")
    want0 = torch.zeros(seq)
    want0[T] = 1.0
    assert_close(got[0], want0, atol=1e-3, rtol=1e-3,
                 what=f"layer 0 (only position T = {T}, where the games differ, should restore the clean run)")
    for layer, pos in [(min(1, n - 1), T + 1), (n - 1, seq - 1)]:
        name = f"blocks.{layer}.hook_resid_pre"

        def patch(x, hook, pos=pos, name=name):
            x[:, pos] = clean_cache[name][:, pos]
            return x

        want = metric(model.run_with_hooks(pair["corrupted"], fwd_hooks=[(name, patch)]))
        assert_close(got[layer, pos], want, atol=1e-3, rtol=1e-3, what=f"the result for layer {layer}, position {pos}")


# ----------------------------------------------------------------------------- 8. probe training


@register("linear_probe_trainer")
def _check_trainer(g: dict) -> None:
    r = _rand(6)
    d_model = 10
    x = r(20, d_model)
    y = torch.randint(0, 3, (20, 8, 8), generator=torch.Generator().manual_seed(7))
    with torch.enable_grad():
        trainer = g["LinearProbeTrainer"](d_model, lr=1e-2, seed=3)
        probe = trainer.probe.detach().clone()
        loss = trainer.loss(x, y)
        check_shape(loss, (), "loss")
        total = 0.0
        for i in range(20):
            for row in range(8):
                for col in range(8):
                    logits = x[i] @ probe[:, row, col]
                    total += float(torch.logsumexp(logits, 0) - logits[y[i, row, col]])
        assert_close(loss.detach(), torch.tensor(total / (20 * 64)), what="loss (mean cross-entropy over squares and examples)")
        zero = g["LinearProbeTrainer"](d_model, lr=1e-2, seed=3)
        with torch.no_grad():
            zero.probe.zero_()
        assert_close(zero.loss(x, y).detach(), torch.tensor(math.log(3)), what="the loss of an all-zero probe (log 3)")
        first = trainer.train_step(x, y)
        if not isinstance(first, float):
            raise CheckFailed(f"train_step should return a Python float, got {type(first).__name__}")
        assert_close(torch.tensor(first), torch.tensor(total / (20 * 64)), what="train_step's return value (the loss before the step)")
        if torch.equal(trainer.probe.detach(), probe):
            raise CheckFailed("train_step did not change the probe")
        losses = [trainer.train_step(x, y) for _ in range(30)]
        if not losses[-1] < first:
            raise CheckFailed(f"the loss did not go down over 30 steps on a fixed batch ({first:.3f} -> {losses[-1]:.3f})")
