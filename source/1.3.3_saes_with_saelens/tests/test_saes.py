"""Hidden tests for 1.3.3 Sparse autoencoders with SAELens.

Every expected value comes from the reference solution (or from SAELens itself), run here on
the trusted copy of the same model and SAE (``hooked``, ``trusted_sae``) and the same inputs.
Nothing about the trained SAE is hard-coded: which feature is selective for "not", how sparse
the SAE is, what it does to the loss, is computed at grading time. Where several answers are
correct (the order of tied top activations) the tests check properties every correct answer
has. Student functions get the student's own model and SAE (``student.model``,
``student.sae``, loaded by the release's setup cell); no exercise calls another, so a bug
costs only the exercise it is in.
"""

from __future__ import annotations

import torch

import sae_helpers as sh
from autograder.checks import (
    CheckFailed,
    assert_close,
    assert_equal,
    assert_float,
    check_sequence,
    check_shape,
)
from autograder.testing import fixture, grades, one_thread

# ----------------------------------------------------------------------------- fixtures


@fixture
def hooked(profile, device):
    return sh.load_model(profile, device=str(device))


@fixture
def trusted_sae(profile, device):
    return sh.load_sae(profile, device=str(device))


@fixture
def data(hooked, seed):
    """A seeded subset of the balanced statements of every family, in one padded batch."""
    d = sh.make_dataset(hooked, seed=seed % 7)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(d["statements"]), generator=g)[:96].sort().values.to(d["tokens"].device)
    out = {k: v[pick] for k, v in d.items() if isinstance(v, torch.Tensor)}
    out["family"] = [d["family"][i] for i in pick.tolist()]
    # trim padding columns no prompt of the subset uses
    width = int(out["last_pos"].max()) + 1
    out["tokens"], out["mask"] = out["tokens"][:, :width], out["mask"][:, :width]
    return out


@fixture
def resid(hooked, trusted_sae, data):
    hook = trusted_sae.cfg.metadata.hook_name
    with torch.no_grad(), one_thread():
        _, cache = hooked.run_with_cache(data["tokens"], names_filter=hook)
    return cache[hook]


@fixture
def feats(reference, hooked, trusted_sae, data):
    """The reference's feature activations (batch, seq, d_sae) on the subset."""
    with one_thread():
        return reference.get_feature_acts(hooked, trusted_sae, data["tokens"])


def gen(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda *shape, scale=1.0: torch.randn(*shape, generator=g) * scale


def sparse_acts(seed, n, d_sae, density=0.1):
    """Non-negative, mostly zero feature activations (like an SAE's)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d_sae, generator=g).lt(density).float() * torch.rand(n, d_sae, generator=g) * 5


# ----------------------------------------------------------------------------- 1. sae_encode / sae_decode


@grades("sae_encode")
def test_encode_matches_saelens(student, reference, trusted_sae, resid):
    """(batch, seq, d_in) residual-stream activations: the same as SAELens's encode and the reference's."""
    with torch.no_grad():
        expected = trusted_sae.encode(resid)
        assert_close(reference.sae_encode(trusted_sae, resid), expected, atol=1e-5, rtol=1e-5,
                     what="the reference against SAELens (a grading problem, not yours)")
    got = student.sae_encode(student.sae, resid)
    assert_close(got, expected, atol=1e-4, rtol=1e-4, what="sae_encode on the residual stream at the SAE's hook, "
                 "against SAELens's sae.encode")


@grades("sae_encode")
def test_encode_off_distribution(student, reference, trusted_sae, seed):
    """Rows far from the data (many pre-activations negative, some large): the ReLU and both biases matter."""
    x = gen(seed)(40, trusted_sae.cfg.d_in, scale=float(trusted_sae.b_dec.norm()) / 4) + trusted_sae.b_dec.cpu()
    x = x.to(trusted_sae.W_enc.device)
    with torch.no_grad():
        expected = reference.sae_encode(trusted_sae, x)
    assert_close(student.sae_encode(student.sae, x), expected, atol=1e-4, rtol=1e-4,
                 what="sae_encode on random rows near b_dec, shape (40, d_in)")


@grades("sae_decode")
def test_decode_matches_saelens(student, reference, trusted_sae, resid):
    with torch.no_grad():
        f = trusted_sae.encode(resid)
        expected = trusted_sae.decode(f)
        assert_close(reference.sae_decode(trusted_sae, f), expected, atol=1e-5, rtol=1e-5,
                     what="the reference against SAELens (a grading problem, not yours)")
    assert_close(student.sae_decode(student.sae, f), expected, atol=1e-4, rtol=1e-4,
                 what="sae_decode of the SAE's own feature activations (batch, seq, d_sae), against SAELens's decode")


@grades("sae_decode")
def test_decode_random_features(student, reference, trusted_sae, seed):
    f = sparse_acts(seed, 30, trusted_sae.cfg.d_sae).to(trusted_sae.W_dec.device)
    with torch.no_grad():
        expected = reference.sae_decode(trusted_sae, f)
    assert_close(student.sae_decode(student.sae, f), expected, atol=1e-4, rtol=1e-4,
                 what="sae_decode of random sparse feature activations, shape (30, d_sae)")


# ----------------------------------------------------------------------------- 2. get_feature_acts


@grades("get_feature_acts")
def test_feature_acts_padded_batch(student, reference, hooked, trusted_sae, data, feats):
    with one_thread():
        got = student.get_feature_acts(student.model, student.sae, data["tokens"])
    assert_close(got, feats, atol=1e-4, rtol=1e-4,
                 what="feature activations (batch, seq, d_sae) for a padded batch of mixed statements")


@grades("get_feature_acts")
def test_feature_acts_single_prompt(student, reference, hooked, trusted_sae):
    tokens = hooked.to_tokens(sh.to_prompt("Rome is not in Spain."))
    with one_thread():
        expected = reference.get_feature_acts(hooked, trusted_sae, tokens)
        got = student.get_feature_acts(student.model, student.sae, tokens)
    assert_close(got, expected, atol=1e-4, rtol=1e-4, what="feature activations for one prompt, shape (1, seq, d_sae)")


# ----------------------------------------------------------------------------- 3. reconstruction_stats


def check_stats(student, reference, x, x_hat, f, what):
    got = check_sequence(student.reconstruction_stats(x, x_hat, f), 3, "reconstruction_stats")
    expected = reference.reconstruction_stats(x, x_hat, f)
    for name, g, e in zip(("mse", "l0", "fraction of variance explained"), got, expected):
        assert_float(g, e, f"{what}: {name}")


@grades("reconstruction_stats")
def test_stats_real_tokens(student, reference, trusted_sae, resid, data, feats):
    m = data["mask"]
    with torch.no_grad():
        x_hat = trusted_sae.decode(feats)
    check_stats(student, reference, resid[m], x_hat[m], feats[m], "the SAE on the real tokens of a padded batch")


@grades("reconstruction_stats")
def test_stats_synthetic(student, reference, seed):
    """Activations with a large common offset and a poor reconstruction (uncentred variance would look good)."""
    r = gen(seed + 1)
    x = r(50, 8) + r(8, scale=6.0)
    x_hat = x + r(50, 8, scale=0.7)
    f = sparse_acts(seed + 1, 50, 32, density=0.2)
    check_stats(student, reference, x, x_hat, f, "synthetic activations far from the origin")


# ----------------------------------------------------------------------------- 3. feature_density


@grades("feature_density")
def test_density_real_tokens(student, reference, data, feats):
    f = feats[data["mask"]]
    assert_close(student.feature_density(f), reference.feature_density(f), atol=1e-6, rtol=0,
                 what="feature densities on the real tokens of a padded batch")


@grades("feature_density")
def test_density_synthetic(student, reference, seed):
    f = sparse_acts(seed + 2, 64, 20, density=0.3)
    f[:, 3] = 0.0  # a dead feature
    f[:, 7] = 0.01 * torch.rand(64, generator=torch.Generator().manual_seed(seed)) + 1e-4  # fires everywhere, weakly
    assert_close(student.feature_density(f), reference.feature_density(f), atol=1e-6, rtol=0,
                 what="feature densities of synthetic activations (one dead feature, one weak but dense)")


# ----------------------------------------------------------------------------- 4. top_activating_tokens


def check_top(student, reference, acts, mask, feature, k, what):
    got = check_sequence(student.top_activating_tokens(acts, mask, feature, k), 3, "top_activating_tokens")
    values, rows, positions = (torch.as_tensor(v).detach().cpu() for v in got)
    ref_values, _, _ = reference.top_activating_tokens(acts, mask, feature, k)
    for t, name in ((values, "values"), (rows, "rows"), (positions, "positions")):
        check_shape(t, (k,), f"{what}: {name}")
    assert_close(values, ref_values.cpu(), atol=1e-6, rtol=0, what=f"{what}: the top {k} values, in decreasing order")
    rows, positions = rows.long(), positions.long()
    if len({(r, p) for r, p in zip(rows.tolist(), positions.tolist())}) != k:
        raise CheckFailed(f"{what}: the same (row, position) appears twice")
    if not bool(mask.cpu()[rows, positions].all()):
        raise CheckFailed(f"{what}: a returned (row, position) is padding (mask False)")
    assert_close(acts.cpu()[rows, positions, feature], values, atol=1e-6, rtol=0,
                 what=f"{what}: feature_acts[rows[i], positions[i], feature] should equal values[i]")


@grades("top_activating_tokens")
def test_top_tokens_model(student, reference, hooked, data, feats):
    """The feature most selective for "not" (found by the reference), the densest feature, and a median one."""
    f = feats[data["mask"]]
    is_not = sh.token_class_mask(hooked, data["tokens"], sh.TOKEN_CLASSES["not"])[data["mask"]]
    density = reference.feature_density(f)
    chosen = [int(reference.class_selectivity(f, is_not).argmax()), int(density.argmax()),
              int(density.argsort()[len(density) // 2])]
    for feature in chosen:
        check_top(student, reference, feats, data["mask"], feature, 8, f"feature {feature} on a padded batch")


@grades("top_activating_tokens")
def test_top_tokens_padding_wins(student, reference, seed):
    """Padding positions carry the largest activations: they must be skipped."""
    g = torch.Generator().manual_seed(seed + 3)
    acts = torch.rand(6, 9, 5, generator=g)
    lengths = torch.tensor([9, 4, 7, 2, 9, 5])
    mask = torch.arange(9)[None, :] < lengths[:, None]
    acts[~mask] += 10.0
    for feature, k in [(2, 5), (4, 12)]:
        check_top(student, reference, acts, mask, feature, k, f"synthetic (6, 9, 5) activations, feature {feature}, k {k}")
    # a sparse feature (mostly zero, like an SAE's) and k = every real token: the zeros returned must be real tokens
    sparse = acts * (torch.rand(6, 9, 5, generator=g) < 0.25)
    sparse[~mask] = 0.0
    check_top(student, reference, sparse, mask, 1, int(mask.sum()),
              "a sparse synthetic feature, k = the number of real tokens (ties at zero)")


# ----------------------------------------------------------------------------- 4. class_selectivity


@grades("class_selectivity")
def test_selectivity_word_classes(student, reference, hooked, data, feats):
    """For each word class: the same selectivities as the reference, hence the same most selective feature."""
    f = feats[data["mask"]]
    for name, words in sh.TOKEN_CLASSES.items():
        is_class = sh.token_class_mask(hooked, data["tokens"], words)[data["mask"]]
        expected = reference.class_selectivity(f, is_class)
        got = student.class_selectivity(f, is_class)
        assert_close(got, expected, atol=1e-5, rtol=1e-5, what=f"selectivity for the class {name!r}")
        assert_equal(int(torch.as_tensor(got).argmax()), int(expected.argmax()),
                     what=f"the most selective feature for {name!r}")


@grades("class_selectivity")
def test_selectivity_unbalanced(student, reference, seed):
    """A small class (10 of 80 rows): the mean over the other rows, not over all rows."""
    f = sparse_acts(seed + 4, 80, 16, density=0.4)
    is_class = torch.zeros(80, dtype=torch.bool)
    is_class[torch.randperm(80, generator=torch.Generator().manual_seed(seed))[:10]] = True
    f[is_class, 5] += 3.0
    assert_close(student.class_selectivity(f, is_class), reference.class_selectivity(f, is_class), atol=1e-5, rtol=1e-5,
                 what="selectivity on synthetic activations, a class of 10 rows out of 80")


# ----------------------------------------------------------------------------- 5. spliced_losses


def check_losses(student, reference, hooked, trusted_sae, tokens, last_pos, answers, what):
    with one_thread():
        expected = reference.spliced_losses(hooked, trusted_sae, tokens, last_pos, answers)
        got = check_sequence(student.spliced_losses(student.model, student.sae, tokens, last_pos, answers), 3, "spliced_losses")
    for name, g, e in zip(("clean", "with the SAE spliced in", "zero-ablated"), got, expected):
        assert_float(g, e, f"{what}: answer loss {name}", rtol=1e-3, atol=1e-5)


@grades("spliced_losses")
def test_spliced_losses_mixed(student, reference, hooked, trusted_sae, data):
    check_losses(student, reference, hooked, trusted_sae, data["tokens"], data["last_pos"], data["answers"],
                 "a padded batch of mixed statements")


@grades("spliced_losses")
def test_spliced_losses_one_family(student, reference, hooked, trusted_sae, data):
    rows = torch.tensor([i for i, f in enumerate(data["family"]) if f == "neg_city"][:16])
    width = int(data["last_pos"][rows].max()) + 1
    check_losses(student, reference, hooked, trusted_sae, data["tokens"][rows, :width], data["last_pos"][rows],
                 data["answers"][rows], "negated city statements")


# ----------------------------------------------------------------------------- 6. feature_logit_attribution


@grades("feature_logit_attribution")
def test_logit_attribution(student, reference, hooked, trusted_sae, data, feats, seed):
    density = reference.feature_density(feats[data["mask"]])
    g = torch.Generator().manual_seed(seed)
    chosen = [int(density.argmax())] + torch.randint(trusted_sae.cfg.d_sae, (3,), generator=g).tolist()
    for feature in chosen:
        assert_close(student.feature_logit_attribution(student.model, student.sae, feature),
                     reference.feature_logit_attribution(hooked, trusted_sae, feature), atol=1e-4, rtol=1e-4,
                     what=f"direct logit attribution of feature {feature}")


# ----------------------------------------------------------------------------- 6. steer_with_feature


@grades("steer_with_feature")
def test_steering_changes_logits_as_expected(student, reference, hooked, trusted_sae, data, feats):
    """The feature most selective for "not" (found by the reference) on a padded batch, two strengths."""
    f = feats[data["mask"]]
    is_not = sh.token_class_mask(hooked, data["tokens"], sh.TOKEN_CLASSES["not"])[data["mask"]]
    feature = int(reference.class_selectivity(f, is_not).argmax())
    tokens = data["tokens"][:24]
    for alpha in (3.0, -1.5):
        with one_thread():
            expected = reference.steer_with_feature(hooked, trusted_sae, tokens, feature, alpha)
            got = student.steer_with_feature(student.model, student.sae, tokens, feature, alpha)
        assert_close(got, expected, atol=1e-3, rtol=1e-4, what=f"logits steered with feature {feature}, alpha {alpha}")


@grades("steer_with_feature")
def test_steering_zero_alpha_and_other_feature(student, reference, hooked, trusted_sae, seed):
    tokens, _ = sh.tokenize_prompts(hooked, [sh.to_prompt(s) for s in ["Paris is in France.", "Two plus four is six."]])
    feature = int(torch.randint(trusted_sae.cfg.d_sae, (1,), generator=torch.Generator().manual_seed(seed)))
    for alpha in (0.0, 6.0):
        with one_thread():
            expected = reference.steer_with_feature(hooked, trusted_sae, tokens, feature, alpha)
            got = student.steer_with_feature(student.model, student.sae, tokens, feature, alpha)
        assert_close(got, expected, atol=1e-3, rtol=1e-4, what=f"logits steered with feature {feature}, alpha {alpha}")
