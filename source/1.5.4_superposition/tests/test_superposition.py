"""Hidden tests for 1.5.4 Superposition (and toy SAEs).

Deterministic exercises are compared with the reference solution on the same
random weights and inputs. Random ones (batch generators, resampling) are
checked for properties every correct answer has: shapes, rates within binomial
tolerances, independence and correlation structure, what must and must not
change. Each test swaps the exercise's dependencies for the reference
(``student.use_reference``) or only uses given code, so a bug costs only the
exercise it is in.

Every comparison passes explicit tolerances, so these tests never depend on
global defaults.
"""

import math
from dataclasses import asdict

import torch
from torch.autograd.gradcheck import GradcheckError

from autograder.checks import CheckFailed, assert_close, assert_frequencies, check_shape
from autograder.testing import fixture, grades, load_weights

ATOL, RTOL = 1e-5, 1e-4


def close(actual, expected, what, atol=ATOL, rtol=RTOL):
    return assert_close(actual, expected.detach(), atol=atol, rtol=rtol, what=what)


def gen(seed):
    return torch.Generator().manual_seed(int(seed))


def randn(g, *shape, scale=1.0):
    return torch.randn(*shape, generator=g) * scale


def rand(g, *shape):
    return torch.rand(*shape, generator=g)


def randomise(module, g, scale=0.6):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module


def sub_cfg(student, cfg):
    return student.Config(**asdict(cfg))


def sae_cfg(student, cfg):
    return student.ToySAEConfig(**asdict(cfg))


def binomial_ok(count_rate, p, n, what, sigmas=5.0, slack=0.01):
    """A rate measured over n Bernoulli(p) trials lies within sigmas standard deviations (+ slack)."""
    allowed = sigmas * math.sqrt(max(p * (1 - p), 1e-12) / n) + slack
    if abs(count_rate - p) > allowed:
        raise CheckFailed(f"{what}: measured {count_rate:.4f} over {n} draws, expected {p:.4f} (allowed ±{allowed:.4f}).")


# ----------------------------------------------------------------------------- fixtures


@fixture
def toy_cfg(reference):
    return reference.Config(n_inst=3, n_features=5, d_hidden=2)


@fixture
def trained_toy_W(reference):
    """A small toy model trained briefly (seeded) on sparse features: its W has superposed features."""
    import sp_helpers

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only add overhead, a lot of it on a busy machine
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            cfg = reference.Config(n_inst=3, n_features=6, d_hidden=3)
            model = reference.ToyModel(cfg, feature_probability=torch.tensor([[0.5], [0.1], [0.03]]))
            sp_helpers.train_toy_model(model, steps=300, batch_size=256, lr=1e-2, seed=0)
    finally:
        torch.set_num_threads(threads)
    return model.W.detach().clone()


def _toy_pair(student, reference, cfg, seed, cls="ToyModel", **kwargs):
    ref = randomise(getattr(reference, cls)(cfg, **kwargs), gen(seed))
    mine = getattr(student, cls)(sub_cfg(student, cfg), **kwargs)
    load_weights(mine, ref.state_dict(), cls)
    return ref, mine


def _sparse_input(g, *shape, p=0.6, low=0.0):
    values = rand(g, *shape) * (1 - low) + low
    return values * (rand(g, *shape) < p)


# ----------------------------------------------------------------------------- toy model


@grades("toy_model_forward")
def test_toy_model_forward(student, reference, toy_cfg, seed):
    ref, mine = _toy_pair(student, reference, toy_cfg, seed)
    x = _sparse_input(gen(seed + 1), 8, toy_cfg.n_inst, toy_cfg.n_features)
    with torch.no_grad():
        expected = ref(x)
    close(mine(x), expected, "ToyModel.forward output for a (batch, inst, feats) input")


@grades("toy_model_forward", weight=0.5)
def test_toy_model_forward_extra_leading_dims(student, reference, toy_cfg, seed):
    ref, mine = _toy_pair(student, reference, toy_cfg, seed + 2)
    x = _sparse_input(gen(seed + 3), 2, 3, toy_cfg.n_inst, toy_cfg.n_features)
    with torch.no_grad():
        expected = ref(x)
    close(mine(x), expected, "ToyModel.forward output for a (2, 3, inst, feats) input")


GEN_PROBS = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5], [0.3] * 5, [0.05, 0.1, 0.15, 0.2, 0.25]])


def _check_sparse_batch(batch, probs, n, what, low=0.0):
    """Rates, independence and uniform values of a (n, inst, feats) batch with presence probabilities probs."""
    check_shape(batch, (n, *probs.shape), what)
    if not torch.isfinite(batch).all() or batch.min() < low or batch.max() > 1:
        raise CheckFailed(f"{what}: values must lie in [{low:g}, 1], got min {batch.min():.4g}, max {batch.max():.4g}.")
    present = batch != 0
    rates = present.double().mean(0)
    for k in range(probs.shape[0]):
        for i in range(probs.shape[1]):
            binomial_ok(float(rates[k, i]), float(probs[k, i]), n,
                        f"{what}: fraction of examples in which feature {i} of instance {k} is present")
    # Independence: each pair of features of an instance is present together as often as chance says.
    for k in range(probs.shape[0]):
        for i in range(probs.shape[1]):
            for j in range(i + 1, probs.shape[1]):
                both = float((present[:, k, i] & present[:, k, j]).double().mean())
                binomial_ok(both, float(rates[k, i] * rates[k, j]), n,
                            f"{what}: features {i} and {j} of instance {k} should be present independently; "
                            f"fraction present together")
    values = batch[present]
    if low == 0.0:
        mean, q = float(values.mean()), float((values < 0.25).double().mean())
        if abs(mean - 0.5) > 0.02 or abs(q - 0.25) > 0.02:
            raise CheckFailed(f"{what}: present values should be uniform on [0, 1] (mean 0.5, a quarter below 0.25); "
                              f"got mean {mean:.3f}, {q:.1%} below 0.25.")
    return present


@grades("generate_batch")
def test_generate_batch_distribution(student, reference, toy_cfg, seed):
    mine = student.ToyModel(sub_cfg(student, toy_cfg), feature_probability=GEN_PROBS)
    student.seed(seed)
    batch = mine.generate_batch(4000)
    _check_sparse_batch(batch, GEN_PROBS, 4000, "generate_batch")


@grades("generate_batch", weight=0.5)
def test_generate_batch_extremes(student, reference, toy_cfg, seed):
    probs = torch.tensor([1.0, 0.0, 0.5]).unsqueeze(1).expand(3, 5)
    mine = student.ToyModel(sub_cfg(student, toy_cfg), feature_probability=probs.clone())
    student.seed(seed + 1)
    batch = mine.generate_batch(500)
    check_shape(batch, (500, 3, 5), "generate_batch")
    if not bool((batch[:, 0] != 0).all()):
        raise CheckFailed("generate_batch: with feature_probability 1, every feature must be present (non-zero).")
    if bool((batch[:, 1] != 0).any()):
        raise CheckFailed("generate_batch: with feature_probability 0, no feature may be present.")


@grades("calculate_loss")
def test_calculate_loss(student, reference, toy_cfg, seed):
    g = gen(seed)
    importance = rand(g, toy_cfg.n_inst, toy_cfg.n_features) + 0.1
    ref = reference.ToyModel(toy_cfg, importance=importance)
    mine = student.ToyModel(sub_cfg(student, toy_cfg), importance=importance)
    for batch_size in (7, 12):
        out, batch = rand(g, batch_size, toy_cfg.n_inst, toy_cfg.n_features), rand(g, batch_size, toy_cfg.n_inst, toy_cfg.n_features)
        expected = ref.calculate_loss(out, batch)
        got = mine.calculate_loss(out, batch)
        got = torch.as_tensor(got)
        if got.numel() != 1:
            raise CheckFailed(f"calculate_loss: return a scalar (one number), got a tensor of shape {tuple(got.shape)}.")
        close(got.reshape(()), expected, f"calculate_loss on a batch of {batch_size}")


# ----------------------------------------------------------------------------- correlated features


def _pair_batch(student, name, seed, probs, n=5000, n_pairs=3):
    student.seed(seed)
    batch = getattr(student, name)(n, n_pairs, probs.clone())
    check_shape(batch, (n, probs.shape[0], 2 * n_pairs), name)
    if not torch.isfinite(batch).all() or batch.min() < 0 or batch.max() > 1:
        raise CheckFailed(f"{name}: values must lie in [0, 1].")
    values = batch[batch != 0]
    if values.numel() and (abs(float(values.mean()) - 0.5) > 0.03):
        raise CheckFailed(f"{name}: present values should be uniform on [0, 1] (mean 0.5), got mean {values.mean():.3f}.")
    return batch, batch != 0


@grades("correlated_features")
def test_correlated_features(student, seed):
    probs = torch.tensor([0.3, 0.1])
    n = 5000
    batch, present = _pair_batch(student, "generate_correlated_features", seed, probs, n)
    a, b = present[..., 0::2], present[..., 1::2]
    if not bool((a == b).all()):
        raise CheckFailed("generate_correlated_features: features 2k and 2k+1 must be either both present or both 0 "
                          f"(found {int((a != b).sum())} cases with only one present).")
    for k, p in enumerate(probs.tolist()):
        for pair in range(3):
            binomial_ok(float(a[:, k, pair].double().mean()), p, n,
                        f"generate_correlated_features: fraction of examples with pair {pair} of instance {k} present")
        both = float((a[:, k, 0] & a[:, k, 1]).double().mean())
        binomial_ok(both, p * p, n, f"generate_correlated_features: different pairs should be independent; "
                                     f"fraction with pairs 0 and 1 both present (instance {k})")
    va, vb = batch[..., 0::2][a], batch[..., 1::2][a]
    if float((va == vb).double().mean()) > 0.01:
        raise CheckFailed("generate_correlated_features: the two features of a pair share their presence, "
                          "but their values must be drawn independently (they are equal).")
    corr = torch.corrcoef(torch.stack([va, vb]))[0, 1]
    if abs(float(corr)) > 0.1:
        raise CheckFailed(f"generate_correlated_features: the values of the two features of a pair should be independent "
                          f"(correlation {float(corr):.2f}).")


@grades("correlated_features")
def test_anticorrelated_features(student, seed):
    probs = torch.tensor([0.3, 0.1])
    n = 5000
    batch, present = _pair_batch(student, "generate_anticorrelated_features", seed + 1, probs, n)
    a, b = present[..., 0::2], present[..., 1::2]
    if bool((a & b).any()):
        raise CheckFailed("generate_anticorrelated_features: the two features of a pair must never both be present "
                          f"(found {int((a & b).sum())} cases).")
    for k, p in enumerate(probs.tolist()):
        for f in range(6):
            binomial_ok(float(present[:, k, f].double().mean()), p, n,
                        f"generate_anticorrelated_features: fraction of examples with feature {f} of instance {k} present")
        on0, on1 = a[:, k, 0] | b[:, k, 0], a[:, k, 1] | b[:, k, 1]
        binomial_ok(float((on0 & on1).double().mean()), (2 * p) ** 2, n,
                    f"generate_anticorrelated_features: different pairs should be independent; fraction with "
                    f"pairs 0 and 1 both on (instance {k})")


# ----------------------------------------------------------------------------- neuron models


@grades("neuron_model")
def test_neuron_model_forward(student, reference, toy_cfg, seed):
    cfg = reference.Config(n_inst=3, n_features=6, d_hidden=4)
    ref, mine = _toy_pair(student, reference, cfg, seed, cls="NeuronModel")
    x = _sparse_input(gen(seed + 1), 10, cfg.n_inst, cfg.n_features)
    with torch.no_grad():
        expected = ref(x)
    close(mine(x), expected, "NeuronModel.forward output")


@fixture
def abs_cfg(reference):
    return reference.Config(n_inst=3, n_features=6, d_hidden=4)


@grades("neuron_computation")
def test_neuron_computation_forward(student, reference, abs_cfg, seed):
    ref, mine = _toy_pair(student, reference, abs_cfg, seed, cls="NeuronComputationModel")
    x = _sparse_input(gen(seed + 1), 10, abs_cfg.n_inst, abs_cfg.n_features) * 2 - 1
    with torch.no_grad():
        expected = ref(x)
    close(mine(x), expected, "NeuronComputationModel.forward output")


@grades("neuron_computation")
def test_neuron_computation_generate_batch(student, abs_cfg, seed):
    probs = torch.tensor([[0.7], [0.3], [0.1]]).expand(3, abs_cfg.n_features).clone()
    mine = student.NeuronComputationModel(sub_cfg(student, abs_cfg), feature_probability=probs)
    student.seed(seed)
    n = 4000
    batch = mine.generate_batch(n)
    check_shape(batch, (n, *probs.shape), "NeuronComputationModel.generate_batch")
    if not torch.isfinite(batch).all() or batch.min() < -1 or batch.max() > 1:
        raise CheckFailed("NeuronComputationModel.generate_batch: values must lie in [-1, 1].")
    present = batch != 0
    rates = present.double().mean(0)
    for k in range(3):
        for i in range(abs_cfg.n_features):
            binomial_ok(float(rates[k, i]), float(probs[k, i]), n,
                        f"NeuronComputationModel.generate_batch: fraction with feature {i} of instance {k} present")
    values = batch[present]
    neg, mag = float((values < 0).double().mean()), float(values.abs().mean())
    if abs(neg - 0.5) > 0.02 or abs(mag - 0.5) > 0.02:
        raise CheckFailed("NeuronComputationModel.generate_batch: present values should be uniform on [-1, 1] "
                          f"(half negative, mean |x| of 0.5); got {neg:.1%} negative, mean |x| {mag:.3f}.")


@grades("neuron_computation")
def test_neuron_computation_loss(student, reference, abs_cfg, seed):
    g = gen(seed)
    importance = rand(g, abs_cfg.n_inst, abs_cfg.n_features) + 0.1
    ref = reference.NeuronComputationModel(abs_cfg, importance=importance)
    mine = student.NeuronComputationModel(sub_cfg(student, abs_cfg), importance=importance)
    out = rand(g, 9, abs_cfg.n_inst, abs_cfg.n_features)
    batch = rand(g, 9, abs_cfg.n_inst, abs_cfg.n_features) * 2 - 1
    got = torch.as_tensor(mine.calculate_loss(out, batch))
    if got.numel() != 1:
        raise CheckFailed(f"NeuronComputationModel.calculate_loss: return a scalar, got shape {tuple(got.shape)}.")
    close(got.reshape(()), ref.calculate_loss(out, batch), "NeuronComputationModel.calculate_loss")


# ----------------------------------------------------------------------------- dimensionality


@grades("feature_dimensionality")
def test_dimensionality_random(student, reference, seed):
    W = randn(gen(seed), 3, 4, 7)
    close(student.compute_dimensionality(W), reference.compute_dimensionality(W),
          "compute_dimensionality on a random W of shape (3, 4, 7)")


@grades("feature_dimensionality")
def test_dimensionality_known_geometries(student):
    # Instance 0: two orthogonal features of different lengths (D = 1 each) and an antipodal pair (D = 1/2 each).
    # Instance 1: three features at 120 degrees in a plane, lengths 1 (D = 2/3 each) and a lone axis (D = 1).
    W = torch.zeros(2, 3, 4)
    W[0, 0, 0], W[0, 1, 1] = 2.0, 0.5
    W[0, 2, 2], W[0, 2, 3] = 0.8, -0.8
    for f in range(3):
        angle = 2 * math.pi * f / 3
        W[1, 0, f], W[1, 1, f] = math.cos(angle), math.sin(angle)
    W[1, 2, 3] = 1.3
    expected = torch.tensor([[1.0, 1.0, 0.5, 0.5], [2 / 3, 2 / 3, 2 / 3, 1.0]])
    close(student.compute_dimensionality(W), expected,
          "compute_dimensionality on hand-built geometries (orthogonal: 1, antipodal: 1/2, triangle: 2/3)")


@grades("feature_dimensionality")
def test_dimensionality_trained_model(student, reference, trained_toy_W):
    close(student.compute_dimensionality(trained_toy_W), reference.compute_dimensionality(trained_toy_W),
          "compute_dimensionality on the W of a trained toy model")


# ----------------------------------------------------------------------------- toy SAE


@fixture
def small_sae_cfg(reference):
    return reference.ToySAEConfig(n_inst=2, d_in=3, d_sae=5, sparsity_coeff=0.3)


def _sae_pair(student, reference, cfg, seed, cls="ToySAE"):
    ref = randomise(getattr(reference, cls)(cfg), gen(seed))
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name in ("b_enc", "b_gate", "b_mag"):
                p.sub_(0.3)  # some latents off, some on
    mine = getattr(student, cls)(sae_cfg(student, cfg))
    load_weights(mine, ref.state_dict(), cls)
    return ref, mine


@grades("sae_normalized_decoder")
def test_normalized_decoder_untied(student, reference, small_sae_cfg, seed):
    ref, mine = _sae_pair(student, reference, small_sae_cfg, seed)
    close(mine.W_dec_normalized, ref.W_dec_normalized, "W_dec_normalized")


@grades("sae_normalized_decoder")
def test_normalized_decoder_tied_and_zero_row(student, reference, small_sae_cfg, seed):
    cfg = reference.ToySAEConfig(**{**asdict(small_sae_cfg), "tied_weights": True})
    ref, mine = _sae_pair(student, reference, cfg, seed + 1)
    close(mine.W_dec_normalized, ref.W_dec_normalized, "W_dec_normalized with tied weights (W_dec = W_enc transposed)")
    ref, mine = _sae_pair(student, reference, small_sae_cfg, seed + 2)
    with torch.no_grad():
        ref._W_dec[0, 1] = 0.0
    load_weights(mine, ref.state_dict(), "ToySAE")
    close(mine.W_dec_normalized, ref.W_dec_normalized,
          "W_dec_normalized when a latent's decoder row is all zeros (the eps keeps it finite)")


def _pinned(reference, cls, student_normalized):
    """A reference SAE class that decodes with the student's normalised decoder."""

    class Pinned(getattr(reference, cls)):
        @property
        def W_dec_normalized(self):
            return self._pinned_dec

    Pinned.__name__ = cls
    return Pinned


def _student_normalized(mine, shape):
    try:
        value = mine.W_dec_normalized
    except Exception as exc:  # noqa: BLE001
        raise CheckFailed(f"forward decodes with W_dec_normalized, which raised an error: {exc}") from None
    check_shape(value, shape, "W_dec_normalized (used by forward)")
    return value


def _compare_sae_outputs(got, expected, keys, what):
    if not isinstance(got, (tuple, list)) or len(got) != 4:
        raise CheckFailed(f"{what}: forward should return (loss_dict, loss, acts, h_reconstructed), got {type(got).__name__}.")
    loss_dict, loss, acts, h_rec = got
    e_dict, e_loss, e_acts, e_rec = expected
    if not isinstance(loss_dict, dict) or sorted(loss_dict) != sorted(keys):
        raise CheckFailed(f"{what}: loss_dict should have exactly the keys {sorted(keys)}, "
                          f"got {sorted(loss_dict) if isinstance(loss_dict, dict) else type(loss_dict).__name__}.")
    close(acts, e_acts, f"{what}: acts (the latents)")
    close(h_rec, e_rec, f"{what}: h_reconstructed")
    for key in keys:
        close(loss_dict[key], e_dict[key], f"{what}: loss_dict[{key!r}] (shape (batch, n_inst))")
    loss = torch.as_tensor(loss)
    if loss.numel() != 1:
        raise CheckFailed(f"{what}: loss should be a scalar, got shape {tuple(loss.shape)}.")
    close(loss.reshape(()), e_loss, f"{what}: loss")


def _expected_with_student_decoder(reference, cls, cfg, ref, normalized, h):
    pinned = _pinned(reference, cls, normalized)(cfg)
    pinned.load_state_dict(ref.state_dict())
    pinned._pinned_dec = normalized
    with torch.no_grad():
        return pinned(h)


def _sae_input(seed, cfg, batch=16):
    return randn(gen(seed), batch, cfg.n_inst, cfg.d_in)


@grades("sae_forward")
def test_sae_forward(student, reference, small_sae_cfg, seed):
    ref, mine = _sae_pair(student, reference, small_sae_cfg, seed)
    with torch.no_grad():
        ref.b_dec.mul_(2.0)
    load_weights(mine, ref.state_dict(), "ToySAE")
    normalized = _student_normalized(mine, ref.W_dec.shape)
    h = _sae_input(seed + 1, small_sae_cfg)
    expected = _expected_with_student_decoder(reference, "ToySAE", small_sae_cfg, ref, normalized, h)
    _compare_sae_outputs(mine(h), expected, ["L_reconstruction", "L_sparsity"], "ToySAE.forward")


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@grades("resample_simple")
def test_resample_simple(student, reference, seed):
    cfg = reference.ToySAEConfig(n_inst=2, d_in=4, d_sae=240)
    ref, mine = _sae_pair(student, reference, cfg, seed)
    g = gen(seed + 1)
    # Category 0: never fired (dead); 1: fired at one step only; 2: fired at every step.
    category = torch.stack([torch.randperm(cfg.d_sae, generator=g) % 3 for _ in range(cfg.n_inst)])
    window = torch.zeros(3, cfg.n_inst, cfg.d_sae)
    window[1][category == 1] = 0.004
    window[:, category == 2] = 0.2
    dead = category == 0
    before = _state(ref)
    student.seed(seed)
    mine.resample_simple(window.clone(), 0.3)
    after = mine.state_dict()
    _check_alive_untouched(before, after, ~dead, "resample_simple")
    dec = after["_W_dec"][dead]  # (n_dead, d_in)
    enc = after["W_enc"].transpose(-1, -2)[dead]
    if bool((dec == before["_W_dec"][dead]).all(-1).any()):
        raise CheckFailed("resample_simple: some dead latents kept their old decoder direction; resample every dead latent.")
    close(dec.norm(dim=-1), torch.ones(len(dec)), "resample_simple: norms of the new decoder rows (should be 1)")
    close(enc, dec * 0.3, "resample_simple: new encoder columns (decoder direction * resample_scale)")
    close(after["b_enc"][dead], torch.zeros(int(dead.sum())), "resample_simple: encoder biases of resampled latents")
    cos = dec @ dec.T
    same = (cos > 0.9999).float().sum() - len(dec)
    if same > 0.01 * len(dec) ** 2:
        raise CheckFailed("resample_simple: many resampled latents got the same direction; draw a new random "
                          "direction for each dead latent.")
    mean = dec.mean(0)
    if float(mean.abs().max()) > 0.25:
        raise CheckFailed(f"resample_simple: the new directions should point every way (a normalised standard Gaussian), "
                          f"but their average is {[round(v, 2) for v in mean.tolist()]}, far from 0.")


def _check_alive_untouched(before, after, alive, what):
    names = {"W_enc": lambda t: t.transpose(-1, -2)[alive], "_W_dec": lambda t: t[alive], "b_enc": lambda t: t[alive],
             "b_dec": lambda t: t}
    for name, pick in names.items():
        if name not in after:
            raise CheckFailed(f"{what}: the SAE has no parameter {name!r} any more.")
        if not torch.equal(pick(after[name]), pick(before[name])):
            raise CheckFailed(f"{what}: {name} changed for latents that are alive (or b_dec changed); "
                              "only latents that never fired in the whole window are dead.")


@grades("resample_advanced")
def test_resample_advanced(student, reference, seed):
    cfg = reference.ToySAEConfig(n_inst=2, d_in=3, d_sae=1000)
    g = gen(seed)
    ref = reference.ToySAE(cfg)
    dead = torch.stack([torch.randperm(cfg.d_sae, generator=g) >= 100 for _ in range(cfg.n_inst)])  # 900 dead each
    with torch.no_grad():
        ref.W_enc.copy_(randn(g, *ref.W_enc.shape))
        ref.W_enc.mul_(torch.where(dead, 3.0, 1.0).unsqueeze(1))  # dead latents' norms differ from alive ones'
        ref._W_dec.copy_(randn(g, *ref._W_dec.shape))
        ref.b_enc.fill_(-100.0)  # no latent fires on the batch below: h_reconstructed = b_dec
        ref.b_dec.copy_(randn(g, *ref.b_dec.shape, scale=0.2))
    mine = student.ToySAE(sae_cfg(student, cfg))
    load_weights(mine, ref.state_dict(), "ToySAE")
    # A batch of three inputs per instance whose reconstruction errors have norms 1, 2 and 3.
    u = randn(g, 3, cfg.n_inst, cfg.d_in)
    u = u / u.norm(dim=-1, keepdim=True)
    batch = ref.b_dec.detach() + u * torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1)

    def fixed_batch(*args, **kwargs):
        return batch.clone()

    student.use_reference("ToySAE.generate_batch", fixed_batch)
    student.use_reference("ToySAE.forward", ref.forward)
    window = torch.zeros(2, cfg.n_inst, cfg.d_sae)
    window[0][~dead] = 0.05
    with torch.no_grad():
        _, _, _, h_rec = ref(batch)
    sq_err = (batch - h_rec).pow(2).sum(-1)  # (3, inst)
    probs = sq_err / sq_err.sum(0, keepdim=True)
    before = _state(ref)
    student.seed(seed)
    mine.resample_advanced(window.clone(), 0.2, 3)
    after = mine.state_dict()
    _check_alive_untouched(before, after, ~dead, "resample_advanced")
    close(after["b_enc"][dead], torch.zeros(int(dead.sum())), "resample_advanced: encoder biases of resampled latents")
    directions = batch / batch.norm(dim=-1, keepdim=True)  # (3, inst, d_in)
    for k in range(cfg.n_inst):
        dec = after["_W_dec"][k][dead[k]]  # (n_dead, d_in)
        close(dec.norm(dim=-1), torch.ones(len(dec)), f"resample_advanced: norms of the new decoder rows (instance {k})")
        cos = dec @ directions[:, k].T  # (n_dead, 3)
        best = cos.max(-1)
        if bool((best.values < 1 - 1e-4).any()):
            raise CheckFailed("resample_advanced: a new decoder row is not the (normalised) input h of any example in "
                              "the batch from generate_batch; use the sampled example's input.")
        assert_frequencies(best.indices.tolist(), probs[:, k],
                           what=f"resample_advanced: which example each dead latent was given (instance {k}; "
                                "probabilities proportional to the squared reconstruction error)")
        alive_norm = before["W_enc"][k][:, ~dead[k]].norm(dim=0).mean()
        enc = after["W_enc"][k][:, dead[k]].T
        close(enc, dec * 0.2 * alive_norm,
              f"resample_advanced: new encoder columns (direction * resample_scale * mean norm of the living "
              f"latents' encoder columns), instance {k}")


# ----------------------------------------------------------------------------- autograd functions


def _trusted_vjp(fn, inputs, grad_output, *extra):
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*leaves, *extra)
    grads = torch.autograd.grad(out, leaves, grad_output, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]


def _step_inputs(seed, eps, dtype=torch.float32):
    """z near the thresholds (inside, at the edge of and outside the kernel's window), and positive thresholds."""
    g = gen(seed)
    theta = (rand(g, 2, 6) * 0.4 + 0.2).to(dtype)
    u = (rand(g, 50, 2, 6) * 4 - 2).to(dtype)  # (z - theta) / eps in [-2, 2]
    z = theta + u * eps
    return z, theta


def _student_gradcheck(student, fn_name, z, theta, eps, what):
    """torch.autograd.gradcheck w.r.t. z, here, of the student's forward and backward (run in their process)."""
    fn = getattr(student, fn_name).apply

    class StudentFn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.as_tensor(fn(x.detach(), theta, eps)).to(torch.float64)

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            grads = student.vjp(fn, [x.detach(), theta], grad_output.detach(), eps)
            return torch.as_tensor(grads[0]).to(torch.float64)

    try:
        torch.autograd.gradcheck(StudentFn.apply, (z.detach().clone().requires_grad_(True),),
                                 eps=1e-6, atol=1e-5, rtol=1e-3, check_undefined_grad=False, fast_mode=True)
    except GradcheckError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckFailed(f"{what}: torch.autograd.gradcheck w.r.t. z failed away from the threshold: "
                          f"your gradient for z is not the true derivative there ({first}).") from None


def _check_step_function(student, reference, name, seed):
    eps = 0.1
    z, theta = _step_inputs(seed, eps)
    fn = getattr(reference, name).apply
    mine = getattr(student, name).apply
    close(torch.as_tensor(mine(z, theta, eps)), fn(z, theta, eps), f"{name}.forward")
    g_out = randn(gen(seed + 1), *z.shape)
    expected = _trusted_vjp(fn, [z, theta], g_out, eps)
    got = student.vjp(mine, [z, theta], g_out, eps)
    close(got[0], expected[0], f"{name}.backward: gradient w.r.t. z (times a random grad_output)")
    close(got[1], expected[1], f"{name}.backward: gradient w.r.t. theta (times a random grad_output), summed over the batch",
          atol=1e-4)


def _check_step_gradcheck(student, name, seed):
    eps = 0.1
    z, theta = _step_inputs(seed + 7, eps, torch.float64)
    z, theta = z[:3, :, :3], theta[:, :3]
    z = torch.where((z - theta).abs() < 1e-3, theta + 0.01, z)  # keep finite differences off the jump
    _student_gradcheck(student, name, z, theta, eps, name)


@grades("heaviside", weight=2.0)
def test_heaviside_matches_reference(student, reference, seed):
    _check_step_function(student, reference, "Heaviside", seed)


@grades("heaviside")
def test_heaviside_gradcheck(student, seed):
    _check_step_gradcheck(student, "Heaviside", seed)


@grades("jumprelu_function", weight=2.0)
def test_jumprelu_matches_reference(student, reference, seed):
    _check_step_function(student, reference, "JumpReLU", seed)


@grades("jumprelu_function")
def test_jumprelu_gradcheck(student, seed):
    _check_step_gradcheck(student, "JumpReLU", seed)


# ----------------------------------------------------------------------------- gated and JumpReLU SAEs


def _check_sae_variant(student, reference, cls, cfg, keys, seed, prepare=None):
    ref, mine = _sae_pair(student, reference, cfg, seed, cls=cls)
    if prepare is not None:
        prepare(ref)
        load_weights(mine, ref.state_dict(), cls)
    normalized = _student_normalized(mine, ref.W_dec.shape)
    h = _sae_input(seed + 1, cfg)
    expected = _expected_with_student_decoder(reference, cls, cfg, ref, normalized, h)
    _compare_sae_outputs(mine(h), expected, keys, f"{cls}.forward")
    # Gradients of the loss for every parameter. Those of _W_dec pass through W_dec_normalized, so they are
    # compared only when your W_dec_normalized is right (it is graded on its own).
    pinned = _pinned(reference, cls, normalized)(cfg)
    pinned.load_state_dict(ref.state_dict())
    pinned._pinned_dec = normalized.detach()
    expected_grads = {n: p.grad for n, p in _with_grads(pinned, h).named_parameters() if p.grad is not None}
    got = student.param_grads(mine, h)
    if torch.allclose(normalized, ref.W_dec_normalized.detach(), atol=1e-6):
        expected_grads["_W_dec"] = _with_grads(ref, h)._W_dec.grad
    for name, grad in expected_grads.items():
        if name not in got:
            raise CheckFailed(f"{cls}: the loss gave no gradient to parameter {name!r}.")
        close(got[name], grad, f"{cls}: gradient of the loss w.r.t. {name}")


def _with_grads(module, h):
    module.zero_grad()
    module(h)[1].backward()
    return module


@grades("gated_sae")
def test_gated_sae(student, reference, small_sae_cfg, seed):
    _check_sae_variant(student, reference, "GatedToySAE", small_sae_cfg, ["L_reconstruction", "L_sparsity", "L_aux"], seed)


@grades("jumprelu_sae")
def test_jumprelu_sae(student, reference, seed):
    student.use_reference("JumpReLU.apply", reference.JumpReLU.apply)
    student.use_reference("Heaviside.apply", reference.Heaviside.apply)
    cfg = reference.ToySAEConfig(n_inst=2, d_in=3, d_sae=6, sparsity_coeff=0.3, jumprelu_bandwidth=0.5)

    def prepare(ref):
        with torch.no_grad():
            ref.log_theta.copy_(torch.log(rand(gen(seed + 5), *ref.log_theta.shape) * 0.4 + 0.2))
            ref.b_enc.add_(0.3)

    _check_sae_variant(student, reference, "JumpReLUToySAE", cfg, ["L_reconstruction", "L_sparsity"], seed, prepare)
