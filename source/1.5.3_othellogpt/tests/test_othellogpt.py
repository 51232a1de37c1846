"""Hidden tests for 1.5.3 OthelloGPT.

Every expected value comes from the reference solution, run here on the trusted
copy of the same checkpoint and probe (``hooked``, ``probe``), on the same inputs.
Nothing about the trained model is hard-coded: which square, neuron or game a test
looks at is derived from the reference on the same model (the square just played,
the neuron whose output weights align best with a blank direction) or drawn from
the grading seed. Student functions get the student's own model (``student.model``,
loaded by the release's setup cell) and, where they take a cache, a plain dict from
hook names to tensors. Dependencies are swapped for the reference
(``student.use_reference``) so a bug costs only the exercise it is in.
"""

from __future__ import annotations

import torch

import othello_helpers as oh
from autograder.checks import CheckFailed, assert_close, assert_equal, check_sequence, check_shape
from autograder.testing import fixture, grades, one_thread

# ----------------------------------------------------------------------------- fixtures


@fixture
def hooked(profile, device):
    model = oh.load_model(profile, device=str(device))
    model.requires_grad_(False)
    return model


@fixture
def probe(profile, device):
    return oh.load_probe(profile, device=str(device))


@fixture
def games(seed):
    return oh.exercise_games(12, seed=seed)


@fixture
def cache_dict(hooked, games):
    """Every activation of 3 games, as a plain dict from hook names to tensors (distractors included)."""
    with torch.no_grad(), one_thread():
        _, cache = hooked.run_with_cache(games["tokens"][:3, :59].to(hooked.cfg.device))
    return {k: v.detach().clone() for k, v in cache.items()}


@fixture
def directions(reference, probe):
    return reference.get_probe_directions(probe[0])


@fixture
def probe_data(hooked, probe, games):
    """Residual vectors at the probe layer (flattened over 8 games x 59 positions) and their true states."""
    with torch.no_grad(), one_thread():
        _, cache = hooked.run_with_cache(games["tokens"][:8, :59].to(hooked.cfg.device))
    # on the CPU, where LinearProbeTrainer creates its probe
    resid = cache[f"blocks.{probe[1]}.hook_resid_post"].reshape(-1, hooked.cfg.d_model).detach().cpu().clone()
    states = games["states"][:8, :59].reshape(-1, 8, 8)
    return resid, states


def make_pairs(hooked, games, specs):
    """Clean / corrupted prefixes (game, start, extra), with the clean run's cache and both target log-probs."""
    out = []
    n = games["squares"].shape[0]
    for g, start, extra in specs:
        for k in range(n):  # the first game from g on that has such a pair
            try:
                pair = oh.patching_pair(games["squares"][(g + k) % n], start=start, extra=extra)
                break
            except ValueError:
                continue
        else:
            raise RuntimeError("no patching pair found in the test games")
        clean, corrupted = pair["clean"].to(hooked.cfg.device), pair["corrupted"].to(hooked.cfg.device)
        with torch.no_grad(), one_thread():
            clean_logits, cache = hooked.run_with_cache(clean)
            corrupted_logits = hooked(corrupted)
        clean_lp = float(clean_logits[0, -1].log_softmax(-1)[pair["target"]])
        corrupted_lp = float(corrupted_logits[0, -1].log_softmax(-1)[pair["target"]])
        resid_pre = {k: v.detach().clone() for k, v in cache.items() if k.endswith("hook_resid_pre")}
        out.append(dict(pair=pair, clean=clean, corrupted=corrupted, clean_logits=clean_logits,
                        corrupted_logits=corrupted_logits, clean_lp=clean_lp, corrupted_lp=corrupted_lp,
                        cache=resid_pre))
    return out


@fixture
def pairs(hooked, games):
    return make_pairs(hooked, games, [(0, 20, 4), (1, 30, 2), (2, 40, 5)])


@fixture
def short_pairs(hooked, games):
    """Short prefixes, so that a scan over every (layer, position) stays quick."""
    return make_pairs(hooked, games, [(3, 6, 3)])


@fixture
def scans(reference, hooked, short_pairs):
    """The reference's scan of the first short pair, with the norm of the logits as the metric."""
    p = short_pairs[0]
    with torch.no_grad(), one_thread():
        return reference.get_act_patch_resid_pre(hooked, p["corrupted"], p["cache"], torch.linalg.vector_norm)


PATCH_HOOK_TOKENS = dict(clean=4, other=5, length=35)


def patch_hook_names(n_layers):
    return ["blocks.0.hook_resid_pre", f"blocks.{n_layers // 2}.hook_attn_out", f"blocks.{n_layers - 1}.hook_mlp_out"]


@fixture
def patch_hook_expected(reference, hooked, games):
    """For each hook name: (the clean activation there, the logits with the reference hook patching it)."""
    import functools

    k = PATCH_HOOK_TOKENS
    clean_tokens = games["tokens"][k["clean"]: k["clean"] + 1, : k["length"]].to(hooked.cfg.device)
    other_tokens = games["tokens"][k["other"]: k["other"] + 1, : k["length"]].to(hooked.cfg.device)
    out = {}
    with torch.no_grad(), one_thread():
        _, clean = hooked.run_with_cache(clean_tokens)
        for name in patch_hook_names(hooked.cfg.n_layers):
            clean_cache = {name: clean[name].detach().clone()}
            logits = hooked.run_with_hooks(other_tokens, fwd_hooks=[
                (name, functools.partial(reference.patch_final_move_output, clean_cache=clean_cache))])
            out[name] = (clean_cache, logits)
    return other_tokens, out


def gen(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda *shape, scale=1.0: torch.randn(*shape, generator=g) * scale


def subset(cache, names):
    return {k: cache[k] for k in names}


# ----------------------------------------------------------------------------- 2. apply_probe


@grades("apply_probe")
def test_apply_probe_model(student, reference, probe, cache_dict, games):
    resid = cache_dict[f"blocks.{probe[1]}.hook_resid_post"]
    expected = reference.apply_probe(resid, probe[0])
    got = student.apply_probe(resid, probe[0])
    assert_equal(got, expected, what="the probe's predictions on the model's residual stream (batch, pos, 8, 8)")


@grades("apply_probe")
def test_apply_probe_shapes(student, reference, seed):
    r = gen(seed)
    probe = r(7, 8, 8, 3)
    for shape in [(7,), (5, 7), (2, 3, 7)]:
        x = r(*shape)
        assert_equal(student.apply_probe(x, probe), reference.apply_probe(x, probe),
                     what=f"apply_probe on resid of shape {shape} (random probe)")


# ----------------------------------------------------------------------------- 3. directions


@grades("get_probe_directions")
def test_probe_directions_model(student, reference, probe):
    expected = reference.get_probe_directions(probe[0])
    got = check_sequence(student.get_probe_directions(probe[0]), 2, "get_probe_directions")
    for name, mine, want in zip(["blank_dir", "mine_vs_theirs_dir"], got, expected):
        assert_close(mine, want, what=f"{name} (shipped probe)")


@grades("get_probe_directions")
def test_probe_directions_random(student, reference, seed):
    probe = gen(seed + 1)(9, 8, 8, 3, scale=3.0)
    expected = reference.get_probe_directions(probe)
    got = check_sequence(student.get_probe_directions(probe), 2, "get_probe_directions")
    for name, mine, want in zip(["blank_dir", "mine_vs_theirs_dir"], got, expected):
        assert_close(mine, want, what=f"{name} (random probe, d_model 9)")


# ----------------------------------------------------------------------------- 4. apply_scale


@grades("apply_scale")
def test_apply_scale_random(student, reference, seed):
    r = gen(seed + 2)
    for scale, pos in [(1.0, 0), (4.0, 3), (0.0, 5)]:
        resid, d = r(3, 6, 10), r(10, scale=2.5)
        assert_close(student.apply_scale(resid, d, scale, pos), reference.apply_scale(resid, d, scale, pos),
                     what=f"apply_scale with scale {scale} at pos {pos} (direction not unit length)")


@grades("apply_scale")
def test_apply_scale_model(student, reference, probe, cache_dict, games):
    resid = cache_dict[f"blocks.{probe[1]}.hook_resid_post"][:2]
    t = 25
    s = int(games["squares"][0, t])
    raw = probe[0][:, s // 8, s % 8, reference.MINE] - probe[0][:, s // 8, s % 8, reference.THEIRS]
    assert_close(student.apply_scale(resid, raw, 2.0, t), reference.apply_scale(resid, raw, 2.0, t),
                 what="apply_scale on the model's residual stream (flipping the square just played)")


# ----------------------------------------------------------------------------- 5. contributions


def contribution_names(n_layers):
    names = ["blocks.0.hook_resid_pre"]
    for l in range(n_layers):
        names += [f"blocks.{l}.hook_attn_out", f"blocks.{l}.hook_mlp_out", f"blocks.{l}.hook_resid_mid",
                  f"blocks.{l}.hook_resid_pre", f"blocks.{l}.hook_resid_post"]
    return names


@grades("probe_score_contributions")
def test_contributions_square_just_played(student, reference, hooked, cache_dict, directions, games):
    cache = subset(cache_dict, contribution_names(hooked.cfg.n_layers))
    s = int(games["squares"][0, 30])
    d = directions[1][:, s // 8, s % 8]
    expected = reference.calculate_attn_and_mlp_probe_score_contributions(hooked, cache, d)
    got = check_sequence(student.calculate_attn_and_mlp_probe_score_contributions(student.model, cache, d), 2,
                   "calculate_attn_and_mlp_probe_score_contributions")
    for name, mine, want in zip(["attention contributions", "MLP contributions"], got, expected):
        assert_close(mine, want, atol=1e-4, rtol=1e-3, what=f"{name} (mine-vs-theirs direction of a square)")


@grades("probe_score_contributions")
def test_contributions_unnormalised(student, reference, hooked, cache_dict, seed):
    cache = subset(cache_dict, contribution_names(hooked.cfg.n_layers))
    d = gen(seed + 3)(hooked.cfg.d_model, scale=0.7).to(hooked.cfg.device)
    expected = reference.calculate_attn_and_mlp_probe_score_contributions(hooked, cache, d)
    got = check_sequence(student.calculate_attn_and_mlp_probe_score_contributions(student.model, cache, d), 2,
                   "calculate_attn_and_mlp_probe_score_contributions")
    for name, mine, want in zip(["attention contributions", "MLP contributions"], got, expected):
        assert_close(mine, want, atol=1e-4, rtol=1e-3, what=f"{name} (a direction that is not unit length)")


# ----------------------------------------------------------------------------- 5. accumulated score


@grades("accumulated_probe_score")
def test_accumulated_probe_directions(student, reference, hooked, cache_dict, directions):
    cache = subset(cache_dict, contribution_names(hooked.cfg.n_layers))
    for name, dirs in [("mine_vs_theirs_dir", directions[1]), ("2 * blank_dir", 2 * directions[0])]:
        expected = reference.calculate_accumulated_probe_score(hooked, cache, dirs)
        got = student.calculate_accumulated_probe_score(student.model, cache, dirs)
        assert_close(got, expected, atol=1e-4, rtol=1e-3, what=f"accumulated probe score along {name}")


@grades("accumulated_probe_score")
def test_accumulated_random_directions(student, reference, hooked, cache_dict, seed):
    cache = subset(cache_dict, contribution_names(hooked.cfg.n_layers))
    dirs = gen(seed + 4)(hooked.cfg.d_model, 8, 8).to(hooked.cfg.device)
    expected = reference.calculate_accumulated_probe_score(hooked, cache, dirs)
    got = student.calculate_accumulated_probe_score(student.model, cache, dirs)
    assert_close(got, expected, atol=1e-4, rtol=1e-3, what="accumulated probe score along random directions")


# ----------------------------------------------------------------------------- 6. neurons


def neurons(hooked, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for layer in (0, hooked.cfg.n_layers - 1):
        out.append((layer, int(torch.randint(0, hooked.cfg.d_mlp, (1,), generator=g))))
    out.append((hooked.cfg.n_layers // 2, hooked.cfg.d_mlp - 1))
    return out


@grades("neuron_weights")
def test_get_w_in(student, reference, hooked, seed):
    for layer, neuron in neurons(hooked, seed):
        for normalize in (False, True):
            assert_close(student.get_w_in(student.model, layer, neuron, normalize),
                         reference.get_w_in(hooked, layer, neuron, normalize),
                         what=f"get_w_in(model, {layer}, {neuron}, normalize={normalize})")


@grades("neuron_weights")
def test_get_w_out(student, reference, hooked, seed):
    for layer, neuron in neurons(hooked, seed + 1):
        for normalize in (False, True):
            assert_close(student.get_w_out(student.model, layer, neuron, normalize),
                         reference.get_w_out(hooked, layer, neuron, normalize),
                         what=f"get_w_out(model, {layer}, {neuron}, normalize={normalize})")


def blank_neuron(hooked, directions, probe):
    """The neuron (after the probe layer) whose output weights align best with a blank direction, as the notebook picks it."""
    layer = min(probe[1] + 1, hooked.cfg.n_layers - 1)
    w = hooked.W_out[layer].detach()
    w = w / w.norm(dim=-1, keepdim=True)
    cos = torch.einsum("nd,drc->nrc", w, directions[0]).abs().flatten(1).max(-1).values
    return layer, int(cos.argmax())


def _use_reference_weights(student, reference):
    student.use_reference("get_w_in", reference.get_w_in)
    student.use_reference("get_w_out", reference.get_w_out)


@grades("neuron_probe_weights")
def test_neuron_input_weights(student, reference, hooked, directions, probe, seed):
    _use_reference_weights(student, reference)
    for layer, neuron in [blank_neuron(hooked, directions, probe)] + neurons(hooked, seed + 2)[:1]:
        for name, dirs in [("blank_dir", directions[0]), ("mine_vs_theirs_dir", directions[1])]:
            assert_close(student.calculate_neuron_input_weights(student.model, dirs, layer, neuron),
                         reference.calculate_neuron_input_weights(hooked, dirs, layer, neuron),
                         what=f"calculate_neuron_input_weights for neuron {layer}.{neuron} against {name}")


@grades("neuron_probe_weights")
def test_neuron_output_weights(student, reference, hooked, directions, probe, seed):
    _use_reference_weights(student, reference)
    for layer, neuron in [blank_neuron(hooked, directions, probe)] + neurons(hooked, seed + 3)[1:2]:
        for name, dirs in [("blank_dir", directions[0]), ("mine_vs_theirs_dir", directions[1])]:
            assert_close(student.calculate_neuron_output_weights(student.model, dirs, layer, neuron),
                         reference.calculate_neuron_output_weights(hooked, dirs, layer, neuron),
                         what=f"calculate_neuron_output_weights for neuron {layer}.{neuron} against {name}")


# ----------------------------------------------------------------------------- 7. patching


@grades("patching_metric")
def test_patching_metric_model(student, reference, pairs):
    for i, p in enumerate(pairs):
        args = (p["pair"]["target"], p["clean_lp"], p["corrupted_lp"])
        # float32 rounding of a log-prob (~1e-5), divided by the clean - corrupted gap
        atol = 1e-4 + 2e-5 / max(abs(p["clean_lp"] - p["corrupted_lp"]), 1e-3)
        # the clean and corrupted logits (1 and 0), and a blend of the two
        for what, logits in [("clean", p["clean_logits"]), ("corrupted", p["corrupted_logits"]),
                             ("half-way", 0.5 * (p["clean_logits"] + p["corrupted_logits"]))]:
            expected = reference.patching_metric(logits, *args)
            got = student.patching_metric(logits, *args)
            assert_close(torch.as_tensor(got).reshape(()), expected.reshape(()), atol=atol, rtol=1e-3,
                         what=f"patching_metric of the {what} logits (pair {i})")


@grades("patching_metric")
def test_patching_metric_batch(student, reference, seed):
    r = gen(seed + 5)
    logits = r(3, 7, 61, scale=2.0)
    for target, clean, corrupted in [(5, -1.0, -4.0), (60, -0.5, -2.0)]:
        expected = reference.patching_metric(logits, target, clean, corrupted)
        got = student.patching_metric(logits, target, clean, corrupted)
        assert_close(torch.as_tensor(got).reshape(()), expected.reshape(()), atol=1e-4, rtol=1e-3,
                     what=f"patching_metric on random logits of a batch of 3 (target {target})")


@grades("patch_final_move_output")
def test_patch_hook(student, patch_hook_expected):
    other_tokens, expected = patch_hook_expected  # the clean run is another game: every position differs
    for name, (clean_cache, logits) in expected.items():
        hook = student.functools.partial(student.patch_final_move_output, clean_cache=clean_cache)
        got = student.model.run_with_hooks(other_tokens, fwd_hooks=[(name, hook)])
        assert_close(got, logits, atol=1e-4, rtol=1e-3, what=f"logits with {name} patched by your hook")


@grades("get_act_patch_resid_pre")
def test_act_patch_resid_pre(student, short_pairs, scans):
    # The metric is a plain torch function, so that the whole scan runs inside the student program
    # (no callback to the grader per forward pass): the norm of all the logits, which any patch
    # changes from the patched position on.
    p = short_pairs[0]
    got = student.get_act_patch_resid_pre(student.model, p["corrupted"], p["cache"], student.torch.linalg.vector_norm)
    assert_close(torch.as_tensor(got), scans, atol=1e-3, rtol=1e-4,
                 what=f"get_act_patch_resid_pre (one result per layer and position, the games differ at position "
                      f"{p['pair']['T']}; metric: the norm of the patched logits)")


# ----------------------------------------------------------------------------- 8. probe training


def reference_trainer(reference, d_model, lr, init):
    with torch.enable_grad():
        trainer = reference.LinearProbeTrainer(d_model, lr=lr, seed=0)
        with torch.no_grad():
            trainer.probe.copy_(init)
    return trainer


@grades("linear_probe_trainer", name="loss")
def test_probe_loss(student, reference, probe_data, seed):
    resid, states = probe_data
    d_model = resid.shape[-1]
    trainer = student.LinearProbeTrainer(d_model, lr=1e-2, seed=seed)
    init = torch.as_tensor(trainer.probe).detach().clone()
    check_shape(init, (d_model, 8, 8, 3), "LinearProbeTrainer.probe")
    ref = reference_trainer(reference, d_model, 1e-2, init)
    for what, idx in [("all 472 examples", slice(None)), ("a batch of 37", slice(3, 40))]:
        with torch.no_grad():
            expected = ref.loss(resid[idx], states[idx])
        got = trainer.loss(resid[idx], states[idx])
        assert_close(torch.as_tensor(got).detach().reshape(()), expected.reshape(()), atol=1e-5, rtol=1e-4,
                     what=f"loss on the model's residual stream ({what})")


@grades("linear_probe_trainer", name="train_step", weight=2.0)
def test_probe_train_steps(student, reference, probe_data, seed):
    resid, states = probe_data
    d_model = resid.shape[-1]
    trainer = student.LinearProbeTrainer(d_model, lr=5e-3, seed=seed + 1)
    init = torch.as_tensor(trainer.probe).detach().clone()
    ref = reference_trainer(reference, d_model, 5e-3, init)
    g = torch.Generator().manual_seed(seed)
    for step in range(4):
        idx = torch.randint(0, resid.shape[0], (128,), generator=g)
        with torch.enable_grad():
            expected = ref.train_step(resid[idx], states[idx])
        got = trainer.train_step(resid[idx], states[idx])
        if not isinstance(got, (float, int)):
            raise CheckFailed(f"train_step should return a Python float (the loss before the step), got {type(got).__name__}")
        if abs(got - expected) > 1e-4 * max(1.0, abs(expected)):
            raise CheckFailed(f"train_step {step + 1}: returned loss {got:.6f}, expected {expected:.6f} "
                              "(the loss on this batch before the step)")
    assert_close(torch.as_tensor(trainer.probe).detach(), ref.probe.detach(), atol=1e-5, rtol=1e-4,
                 what="the probe after 4 train_steps (Adam, from the same start)")
