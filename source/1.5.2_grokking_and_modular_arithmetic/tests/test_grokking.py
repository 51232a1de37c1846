"""Hidden tests for 1.5.2 Grokking and Modular Arithmetic.

Every expected value is computed here by the reference solution, on the same
checkpoint, inputs and device as the student's code. Nothing about the trained
model (its key frequencies, which neuron uses which frequency) is hard-coded:
the key frequencies come from the reference's neuron clustering of the same
checkpoint. Each test swaps the exercise's dependencies for the reference
(``student.use_reference``), so a bug costs only the exercise it is in.

The student program never needs TransformerLens: the graded functions take
tensors (and plain dicts of tensors), which the fixtures below compute once
per grading session from the trusted model.
"""

import torch

import grok_helpers
from autograder.checks import CheckFailed, assert_close, assert_equal, check_is_tensor, check_sequence, check_shape
from autograder.testing import fixture, grades

# ----------------------------------------------------------------------------- fixtures

# What the student's function needs, plus hooks of similar names and shapes as distractors.
CACHE_KEYS = ["blocks.0.attn.hook_attn_scores", "blocks.0.attn.hook_pattern", "blocks.0.mlp.hook_pre",
              "blocks.0.mlp.hook_post"]


@fixture
def model(profile, device):
    return grok_helpers.load_model(profile, device=str(device))


@fixture
def task(profile):
    return grok_helpers.task_info(profile)


@fixture
def p(task):
    return task["p"]


@fixture
def data(p, device):
    tokens, labels = grok_helpers.make_dataset(p)
    return tokens.to(device), labels.to(device)


@fixture
def split(task):
    return grok_helpers.train_test_split(task["p"], task["train_frac"], task["data_seed"])


@fixture
def checkpoints(profile, device):
    return grok_helpers.load_checkpoints(profile, device=str(device))


@fixture
def mid_step(checkpoints):
    """A checkpoint from the middle of training (chosen by position, not by number)."""
    steps = sorted(checkpoints)
    return steps[len(steps) // 2]


@fixture
def basis(reference, p):
    return reference.make_fourier_basis(p)[0]


@fixture
def basis7(reference):
    return reference.make_fourier_basis(7)[0]


def _cache_dict(model, tokens, state=None):
    saved = None
    if state is not None:
        saved = {k: v.clone() for k, v in model.state_dict().items()}
        model.load_state_dict(state)
    try:
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens)
    finally:
        if saved is not None:
            model.load_state_dict(saved)
    return {k: cache[k].detach().clone() for k in CACHE_KEYS}


@fixture
def cache_final(model, data):
    return _cache_dict(model, data[0])


@fixture
def cache_mid(model, data, checkpoints, mid_step):
    return _cache_dict(model, data[0], checkpoints[mid_step])


@fixture
def acts_final(reference, cache_final, p):
    return reference.get_activations(cache_final, p)


@fixture
def acts_mid(reference, cache_mid, p):
    return reference.get_activations(cache_mid, p)


@fixture
def fourier_acts_final(reference, acts_final, basis):
    return reference.fft2d(acts_final[1], basis)


@fixture
def fourier_acts_mid(reference, acts_mid, basis):
    return reference.fft2d(acts_mid[1], basis)


@fixture
def key_freqs(reference, fourier_acts_final):
    freqs, frac = reference.find_neuron_freqs(fourier_acts_final)
    keys = grok_helpers.key_frequencies(freqs, frac)
    if not keys:
        raise RuntimeError("the reference found no key frequencies in this checkpoint")
    return keys


@fixture
def ckpt_logits(model, checkpoints, data):
    return grok_helpers.checkpoint_logits(model, checkpoints, data[0])


def gen(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda *shape, scale=1.0: torch.randn(*shape, generator=g) * scale


# ----------------------------------------------------------------------------- 1. caching


def _check_activations(student, reference, cache, p, what):
    expected = reference.get_activations(cache, p)
    got = check_sequence(student.get_activations(cache, p), 3, "get_activations")
    for name, mine, want in zip(["attn_mat", "neuron_acts_post", "neuron_acts_pre"], got, expected):
        assert_close(mine, want, what=f"{name} ({what})")


@grades("get_activations")
def test_get_activations_final_model(student, reference, cache_final, p):
    _check_activations(student, reference, cache_final, p, "final model")


@grades("get_activations")
def test_get_activations_mid_training(student, reference, cache_mid, p, mid_step):
    _check_activations(student, reference, cache_mid, p, f"checkpoint of step {mid_step}")


# ----------------------------------------------------------------------------- 2. effective weights


def _weights(model):
    return dict(
        W_E=model.W_E.detach().clone(), W_Q=model.W_Q[0].detach().clone(), W_K=model.W_K[0].detach().clone(),
        W_V=model.W_V[0].detach().clone(), W_O=model.W_O[0].detach().clone(), W_in=model.W_in[0].detach().clone(),
        W_out=model.W_out[0].detach().clone(), W_U=model.W_U.detach().clone(),
    )


def _random_weights(seed, p=7, d_model=12, n_heads=3, d_head=5, d_mlp=10):
    r = gen(seed)
    return dict(
        W_E=r(p + 1, d_model), W_Q=r(n_heads, d_model, d_head), W_K=r(n_heads, d_model, d_head),
        W_V=r(n_heads, d_model, d_head), W_O=r(n_heads, d_head, d_model), W_in=r(d_model, d_mlp),
        W_out=r(d_mlp, d_model), W_U=r(d_model, p),
    )


@grades("effective_weights")
def test_W_logit(student, reference, model, seed):
    for what, w in [("model weights", _weights(model)), ("random weights", _random_weights(seed))]:
        assert_close(student.get_W_logit(w["W_out"], w["W_U"]), reference.get_W_logit(w["W_out"], w["W_U"]),
                     what=f"get_W_logit ({what})")


@grades("effective_weights")
def test_W_neur(student, reference, model, seed):
    for what, w in [("model weights", _weights(model)), ("random weights", _random_weights(seed + 1))]:
        args = (w["W_E"], w["W_V"], w["W_O"], w["W_in"])
        assert_close(student.get_W_neur(*args), reference.get_W_neur(*args), what=f"get_W_neur ({what})")


@grades("effective_weights")
def test_W_attn(student, reference, model, seed):
    for what, w in [("model weights", _weights(model)), ("random weights", _random_weights(seed + 2))]:
        args = (w["W_E"], w["W_Q"], w["W_K"])
        assert_close(student.get_W_attn(*args), reference.get_W_attn(*args), what=f"get_W_attn ({what})")


# ----------------------------------------------------------------------------- 3-4. Fourier basis and transforms


@grades("make_fourier_basis")
def test_make_fourier_basis(student, reference, p):
    for n in [p, 7, 11]:
        want, want_names = reference.make_fourier_basis(n)
        got = check_sequence(student.make_fourier_basis(n), 2, f"make_fourier_basis({n})")
        assert_close(got[0], want, what=f"make_fourier_basis({n}) basis")
        assert_equal(list(got[1]), want_names, what=f"make_fourier_basis({n}) names")


@grades("fft1d")
def test_fft1d(student, reference, model, basis, basis7, p, seed):
    r = gen(seed)
    cases = [
        ("the embedding W_E[:p]", model.W_E[:p].detach().clone(), basis),
        ("a vector of length p", r(p), basis),
        ("a (7, 3, 4) tensor", r(7, 3, 4), basis7),
    ]
    for what, x, b in cases:
        assert_close(student.fft1d(x, b), reference.fft1d(x, b), what=f"fft1d of {what}")


@grades("fft2d")
def test_fft2d(student, reference, acts_final, basis, basis7, p, seed):
    student.use_reference("fft1d", reference.fft1d)
    r = gen(seed)
    cases = [
        ("the neuron activations (p, p, d_mlp)", acts_final[1], basis),
        ("a (p, p) grid", r(p, p), basis),
        ("a (7, 7, 2, 3) tensor", r(7, 7, 2, 3), basis7),
    ]
    for what, x, b in cases:
        assert_close(student.fft2d(x, b), reference.fft2d(x, b), what=f"fft2d of {what}")


@grades("arrange_by_2d_freqs")
def test_arrange_by_2d_freqs(student, reference, fourier_acts_final, p, seed):
    r = gen(seed)
    cases = [
        ("the neurons' 2-D transform (p, p, d_mlp)", fourier_acts_final),
        ("a (p, p) tensor", r(p, p)),
        ("a (7, 7, 2) tensor", r(7, 7, 2)),
    ]
    for what, x in cases:
        assert_close(student.arrange_by_2d_freqs(x), reference.arrange_by_2d_freqs(x),
                     what=f"arrange_by_2d_freqs of {what}")


# ----------------------------------------------------------------------------- 6. neuron clustering


def _check_neuron_freqs(student, reference, fourier_acts, what):
    student.use_reference("arrange_by_2d_freqs", reference.arrange_by_2d_freqs)
    got = check_sequence(student.find_neuron_freqs(fourier_acts), 2, "find_neuron_freqs")
    freqs, frac = check_is_tensor(got[0], "neuron_freqs"), check_is_tensor(got[1], "neuron_frac_explained")
    d_mlp, half = fourier_acts.shape[-1], fourier_acts.shape[0] // 2
    check_shape(freqs, (d_mlp,), "neuron_freqs")
    check_shape(frac, (d_mlp,), "neuron_frac_explained")
    if freqs.dtype.is_floating_point and not torch.equal(freqs, freqs.round()):
        raise CheckFailed("neuron_freqs: expected whole numbers (frequencies k = 1 .. p // 2)")
    freqs = freqs.long().cpu()
    # The fraction of each neuron's non-constant power in every frequency, computed here.
    power = fourier_acts.pow(2).clone()
    power[0, 0] = 0.0
    table = reference.arrange_by_2d_freqs(power).sum(dim=(1, 2)) / power.sum(dim=(0, 1))  # (half, d_mlp)
    alive = power.sum(dim=(0, 1)) > 1e-6 * power.sum(dim=(0, 1)).max()
    _, want_frac = reference.find_neuron_freqs(fourier_acts)
    bad = alive & ((freqs < 1) | (freqs > half))
    if bad.any():
        n = int(torch.nonzero(bad)[0])
        raise CheckFailed(f"neuron_freqs[{n}] = {int(freqs[n])} is not a frequency: expected k in 1 .. {half} "
                          "(counted from 1, like the names 'cos 1', 'sin 1', ...)")
    chosen = table.gather(0, (freqs.clamp(1, half) - 1)[None].to(table.device))[0]
    worse = alive & (chosen < table.max(0).values - 1e-5)
    if worse.any():
        n = int(torch.nonzero(worse)[0])
        raise CheckFailed(f"neuron_freqs ({what}): neuron {n} is given frequency {int(freqs[n])}, which explains "
                          f"{float(chosen[n]):.3f} of its non-constant variance, but another frequency explains "
                          f"{float(table[:, n].max()):.3f}")
    assert_close(frac[alive], want_frac[alive], what=f"neuron_frac_explained of the neurons that fire ({what})")


@grades("find_neuron_freqs")
def test_find_neuron_freqs_final_model(student, reference, fourier_acts_final):
    _check_neuron_freqs(student, reference, fourier_acts_final, "final model")


@grades("find_neuron_freqs")
def test_find_neuron_freqs_mid_training(student, reference, fourier_acts_mid, mid_step):
    _check_neuron_freqs(student, reference, fourier_acts_mid, f"checkpoint of step {mid_step}")


# ----------------------------------------------------------------------------- 7. projections


@grades("project_onto_direction")
def test_project_onto_direction(student, reference, acts_final, basis, key_freqs, seed):
    r = gen(seed)
    flat = acts_final[1].flatten(0, 1)
    trig = reference.get_trig_sum_directions(key_freqs[0], basis)[0].flatten() * 3.0
    cases = [
        ("random vectors (6, 4) onto a direction of norm != 1", r(6, 4), r(6, scale=2.0)),
        ("the neuron activations onto 3 * cos(w(a+b))", flat, trig),
    ]
    for what, x, v in cases:
        assert_close(student.project_onto_direction(x, v), reference.project_onto_direction(x, v),
                     what=f"project_onto_direction of {what}")


@grades("project_onto_frequency")
def test_project_onto_frequency(student, reference, acts_final, basis, basis7, key_freqs, seed):
    student.use_reference("project_onto_direction", reference.project_onto_direction)
    r = gen(seed)
    flat = acts_final[1].flatten(0, 1)
    flat = flat - flat.mean(0)
    cases = [
        (f"the centred neuron activations, frequency {key_freqs[0]}", flat[:, :64], key_freqs[0], basis),
        ("random (49, 3) vectors, p = 7, frequency 2", r(49, 3), 2, basis7),
        ("random (49, 3) vectors, p = 7, frequency 3", r(49, 3), 3, basis7),
    ]
    for what, x, k, b in cases:
        assert_close(student.project_onto_frequency(x, k, b), reference.project_onto_frequency(x, k, b),
                     what=f"project_onto_frequency of {what}")


# ----------------------------------------------------------------------------- 8. trig-sum directions


@grades("get_trig_sum_directions")
def test_get_trig_sum_directions(student, reference, basis, basis7, key_freqs, p):
    cases = [(k, basis, p) for k in sorted({1, p // 2, *key_freqs})] + [(k, basis7, 7) for k in (1, 2, 3)]
    for k, b, n in cases:
        got = check_sequence(student.get_trig_sum_directions(k, b), 2, "get_trig_sum_directions")
        want = reference.get_trig_sum_directions(k, b)
        assert_close(got[0], want[0], what=f"cos_dir for k = {k}, p = {n}")
        assert_close(got[1], want[1], what=f"sin_dir for k = {k}, p = {n}")


# ----------------------------------------------------------------------------- 9. excluded loss


def _spread(n_total, n):
    """n indices spread over range(n_total), first and last included."""
    return sorted({round(i * (n_total - 1) / (n - 1)) for i in range(n)})


def _excluded_case(student, reference, logits, labels, idx, freqs, basis, what):
    student.use_reference("get_trig_sum_directions", reference.get_trig_sum_directions)
    student.use_reference("project_onto_direction", reference.project_onto_direction)
    want = reference.calculate_excluded_loss(logits, labels, idx, freqs, basis)
    got = student.calculate_excluded_loss(logits, labels, idx, freqs, basis)
    assert_close(got, want, atol=1e-4, rtol=1e-3, what=f"excluded loss ({what})")


@grades("calculate_excluded_loss", weight=2)
def test_excluded_loss_train_over_checkpoints(student, reference, ckpt_logits, data, split, key_freqs, basis):
    pick = _spread(ckpt_logits.shape[0], 3)
    _excluded_case(student, reference, ckpt_logits[pick], data[1], split[0], key_freqs, basis,
                   f"training pairs, key frequencies {key_freqs}, checkpoints number {pick}")


@grades("calculate_excluded_loss")
def test_excluded_loss_test_set_other_freq(student, reference, ckpt_logits, data, split, key_freqs, basis, p):
    other = next(k for k in range(1, p // 2 + 1) if k not in key_freqs)
    freqs = [key_freqs[-1], other]
    _excluded_case(student, reference, ckpt_logits[-2:], data[1], split[1], freqs, basis,
                   f"test pairs, frequencies {freqs}, last two checkpoints")


# ----------------------------------------------------------------------------- 10. embedding over training


@grades("fourier_norms_over_training")
def test_fourier_norms_over_training(student, reference, checkpoints, basis):
    student.use_reference("fft1d", reference.fft1d)
    # Only the tensors the exercise needs, and in *decreasing* order of step: the answer must sort.
    given = {s: {"embed.W_E": checkpoints[s]["embed.W_E"], "unembed.W_U": checkpoints[s]["unembed.W_U"]}
             for s in sorted(checkpoints, reverse=True)}
    want = reference.fourier_norms_over_training(given, basis)
    assert_close(student.fourier_norms_over_training(given, basis), want,
                 what="fourier_norms_over_training (rows by increasing step)")


@grades("fourier_norms_over_training")
def test_fourier_norms_over_training_small(student, reference, basis7, seed):
    student.use_reference("fft1d", reference.fft1d)
    r = gen(seed)
    given = {s: {"embed.W_E": r(8, 5)} for s in (30, 10, 20)}
    want = reference.fourier_norms_over_training(given, basis7)
    assert_close(student.fourier_norms_over_training(given, basis7), want,
                 what="fourier_norms_over_training on random (p = 7) embeddings given as steps 30, 10, 20")


# ----------------------------------------------------------------------------- 11. SVD


def _check_svd(student, reference, W_E, basis, n_components, what):
    student.use_reference("fft1d", reference.fft1d)
    want_S, want_power = reference.svd_fourier_power(W_E, basis, n_components)
    got = check_sequence(student.svd_fourier_power(W_E, basis, n_components), 2, "svd_fourier_power")
    S, power = check_is_tensor(got[0], "S"), check_is_tensor(got[1], "power")
    assert_close(S, want_S, atol=1e-4, rtol=1e-3, what=f"singular values ({what})")
    check_shape(power, want_power.shape, f"power ({what})")
    # Singular vectors are defined up to sign, and up to rotation within a group of (nearly) equal
    # singular values: compare the power summed over each such group, which every correct answer shares.
    gaps = (want_S[:-1] - want_S[1:]) > 1e-3 * want_S[0]
    start = 0
    for end in [i + 1 for i in range(n_components - 1) if gaps[i]] + [n_components]:
        assert_close(power[start:end].sum(0), want_power[start:end].sum(0), atol=2e-3, rtol=0,
                     what=f"power of left singular vectors {start}..{end - 1} ({what})")
        start = end


def _cut(S, lo, hi):
    """A number of components in [lo, hi] that ends at the largest relative gap of the spectrum."""
    rel = (S[lo - 1:hi] - S[lo:hi + 1]) / S[0]
    return lo + int(rel.argmax())


@grades("svd_fourier_power")
def test_svd_fourier_power_final_model(student, reference, model, basis, key_freqs, p):
    W_E = model.W_E[:p].detach().clone()
    n = _cut(torch.linalg.svdvals(W_E), 2, 2 * len(key_freqs) + 2)
    _check_svd(student, reference, W_E, basis, n, f"final model, {n} components")


@grades("svd_fourier_power")
def test_svd_fourier_power_mid_training(student, reference, checkpoints, mid_step, basis, p):
    W_E = checkpoints[mid_step]["embed.W_E"][:p].clone()
    n = _cut(torch.linalg.svdvals(W_E), 4, 12)
    _check_svd(student, reference, W_E, basis, n, f"checkpoint of step {mid_step}, {n} components")
