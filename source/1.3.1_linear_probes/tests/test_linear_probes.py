"""Hidden tests for 1.3.1 Linear probes and the geometry of truth.

Every expected value comes from the reference solution, run here on the trusted
copy of the same checkpoint (``hooked``) and the same inputs. Nothing about the
trained model is hard-coded: which layer is best, which family a direction comes
from, how well a probe does, is computed from the reference at grading time.
Where several answers are correct (the sign of a principal direction, a logistic
probe found by another optimiser) the tests check properties every correct answer
has. Student functions get the student's own model (``student.model``, loaded by
the release's setup cell); dependencies are swapped for the reference
(``student.use_reference``) so that a bug costs only the exercise it is in.
"""

from __future__ import annotations

import torch

import truth_helpers as th
from autograder.checks import (
    CheckFailed,
    assert_close,
    assert_equal,
    assert_float,
    assert_metric,
    check_sequence,
    check_shape,
)
from autograder.testing import fixture, grades, one_thread

# ----------------------------------------------------------------------------- fixtures


@fixture
def hooked(profile, device):
    return th.load_model(profile, device=str(device))


@fixture
def data(hooked):
    return {f: th.make_dataset(hooked, f) for f in th.FAMILIES}


@fixture
def mixed(hooked, data, seed):
    """A batch mixing every family (prompts of different lengths, padded on the right), in a seeded order."""
    g = torch.Generator().manual_seed(seed)
    texts, labels = [], []
    for f in th.FAMILIES:
        pick = torch.randperm(len(data[f]["statements"]), generator=g)[:5].tolist()
        texts += [data[f]["statements"][i] for i in pick]
        labels += [int(data[f]["labels"][i]) for i in pick]
    order = torch.randperm(len(texts), generator=g).tolist()
    texts, labels = [texts[i] for i in order], [labels[i] for i in order]
    tokens, last_pos = th.tokenize_prompts(hooked, [th.to_prompt(t) for t in texts])
    return dict(tokens=tokens, last_pos=last_pos, labels=torch.tensor(labels, device=tokens.device))


@fixture
def acts(reference, hooked, data):
    """Every family's activations at every layer (n_layers, n, d_model), on the CPU, by the reference."""
    layers = list(range(hooked.cfg.n_layers))
    with one_thread():
        return {f: reference.get_last_token_acts(hooked, d["tokens"], d["last_pos"], layers).cpu()
                for f, d in data.items()}


@fixture
def labels(data):
    return {f: d["labels"].cpu() for f, d in data.items()}


@fixture
def splits(labels, seed):
    return {f: th.train_test_split(len(y), 0.3, seed=seed + i) for i, (f, y) in enumerate(labels.items())}


@fixture
def best_layer(reference, acts, labels, splits):
    """The layer where the reference's probes read truth best, on average over the families."""
    by_family = torch.stack([reference.probe_accuracy_by_layer(acts[f], labels[f], *splits[f])[0] for f in th.FAMILIES])
    return int(by_family.mean(0).argmax())


def gen(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda *shape, scale=1.0: torch.randn(*shape, generator=g) * scale


def synthetic_classes(seed, n=60, d=6, offset=8.0, signal=1.2):
    """Two classes along a random axis, far from the origin (so a threshold at 0 is wrong), unbalanced."""
    r = gen(seed)
    y = (torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.35).long()
    axis = r(d)
    axis = axis / axis.norm()
    x = r(n, d) + offset * r(d) / 2 + signal * (2 * y[:, None] - 1) * axis
    return x, y


# ----------------------------------------------------------------------------- 0. get_logit_diff


@grades("get_logit_diff")
def test_logit_diff_random(student, reference, seed):
    logits = gen(seed)(5, 7, 11)
    last_pos = torch.tensor([6, 0, 3, 6, 2])
    for true_id, false_id in [(3, 9), (10, 0)]:
        assert_close(student.get_logit_diff(logits, last_pos, true_id, false_id),
                     reference.get_logit_diff(logits, last_pos, true_id, false_id),
                     what=f"get_logit_diff on random logits (true_id {true_id}, false_id {false_id})")


@grades("get_logit_diff")
def test_logit_diff_model(student, reference, hooked, mixed):
    with torch.no_grad(), one_thread():
        logits = hooked(mixed["tokens"])
    true_id, false_id = th.label_token_ids(hooked)
    assert_close(student.get_logit_diff(logits, mixed["last_pos"], true_id, false_id),
                 reference.get_logit_diff(logits, mixed["last_pos"], true_id, false_id),
                 what="get_logit_diff on the model's logits for a padded batch of mixed statements")


# ----------------------------------------------------------------------------- 1. get_last_token_acts


@grades("get_last_token_acts")
def test_last_token_acts_every_layer(student, reference, hooked, mixed):
    layers = list(range(hooked.cfg.n_layers))
    with one_thread():
        expected = reference.get_last_token_acts(hooked, mixed["tokens"], mixed["last_pos"], layers)
        got = student.get_last_token_acts(student.model, mixed["tokens"], mixed["last_pos"], layers)
    assert_close(got, expected, what="activations at every layer for a padded batch of mixed statements")


@grades("get_last_token_acts")
def test_last_token_acts_layer_order(student, reference, hooked, data):
    d = data["city"]
    layers = [hooked.cfg.n_layers - 1, 0, hooked.cfg.n_layers // 2]
    with one_thread():
        expected = reference.get_last_token_acts(hooked, d["tokens"][:12], d["last_pos"][:12], layers)
        got = student.get_last_token_acts(student.model, d["tokens"][:12], d["last_pos"][:12], layers)
    assert_close(got, expected, what=f"activations for layers {layers}, in that order (city statements)")


# ----------------------------------------------------------------------------- 2. pca_directions


def compare_pcs(got, x, k, reference, what):
    """Unit rows, orthogonal, and each component parallel (either sign) to the reference's where the spectrum
    separates it from its neighbours; otherwise the same subspace."""
    check_shape(got, (k, x.shape[-1]), what)
    got = got.detach().double()
    assert_close(got @ got.T, torch.eye(k, dtype=torch.float64), atol=1e-4, rtol=0,
                 what=f"{what}: dot products of the directions (they should be orthonormal)")
    want = reference.pca_directions(x, k).double()
    s = torch.linalg.svdvals((x - x.mean(0)).double())
    for i in range(k):
        gap = min(abs(s[i] - s[j]) / s[i] for j in (i - 1, i + 1) if 0 <= j < len(s))
        if gap > 0.02:
            cos = float((got[i] @ want[i]).abs())
            if cos < 0.995:
                raise CheckFailed(f"{what}: component {i} has |cos| {cos:.4f} with the expected one")
    overlap = float(torch.linalg.matrix_norm(got @ want.T) ** 2 / k)
    if overlap < 0.995 and float((s[k - 1] - s[k]) / s[k - 1]) > 0.02:
        raise CheckFailed(f"{what}: your {k} directions do not span the top-{k} principal subspace "
                          f"(overlap {overlap:.3f} of 1)")


@grades("pca_directions")
def test_pca_model_acts(student, reference, acts):
    for family, layer in [("cmp", -1), ("city", 1)]:
        x = acts[family][layer]
        compare_pcs(student.pca_directions(x, 3), x, 3, reference,
                    f"pca_directions of the {family} activations at layer {layer}, k = 3")


@grades("pca_directions")
def test_pca_offset_data(student, reference, seed):
    r = gen(seed + 1)
    basis, _ = torch.linalg.qr(r(8, 8))
    x = (r(300, 8) * torch.tensor([4.0, 2.5, 1.5, 1.0, 0.5, 0.3, 0.2, 0.1])) @ basis.T + r(8, scale=10.0)
    compare_pcs(student.pca_directions(x, 4), x, 4, reference, "pca_directions of synthetic data far from the origin")


# ----------------------------------------------------------------------------- 3. mass_mean_direction


@grades("mass_mean_direction")
def test_mass_mean_direction_model(student, reference, acts, labels):
    for family in th.FAMILIES:
        x, y = acts[family][-1], labels[family]
        assert_close(student.mass_mean_direction(x, y), reference.mass_mean_direction(x, y),
                     what=f"mass_mean_direction of the {family} statements at the last layer")


@grades("mass_mean_direction")
def test_mass_mean_direction_unbalanced(student, reference, seed):
    x, y = synthetic_classes(seed + 2)
    assert_close(student.mass_mean_direction(x, y), reference.mass_mean_direction(x, y),
                 what="mass_mean_direction with unbalanced classes far from the origin")


# ----------------------------------------------------------------------------- 3. mass_mean_accuracy


@grades("mass_mean_accuracy")
def test_mass_mean_accuracy_model(student, reference, acts, labels, splits):
    student.use_reference("mass_mean_direction", reference.mass_mean_direction)
    for family in ("cmp", "neg_city"):
        tr, te = splits[family]
        for layer in range(acts[family].shape[0]):
            x, y = acts[family][layer], labels[family]
            assert_float(student.mass_mean_accuracy(x[tr], y[tr], x[te], y[te]),
                         reference.mass_mean_accuracy(x[tr], y[tr], x[te], y[te]),
                         f"mass_mean_accuracy on the {family} statements at layer {layer}", rtol=0.0)


@grades("mass_mean_accuracy")
def test_mass_mean_accuracy_offset_and_shift(student, reference, seed):
    """Far from the origin (the threshold is not 0), and a test set shifted from the train set (the threshold
    must come from the train set)."""
    student.use_reference("mass_mean_direction", reference.mass_mean_direction)
    x, y = synthetic_classes(seed + 3, n=120, signal=1.0)
    train, test = slice(0, 70), slice(70, 120)
    shift = reference.mass_mean_direction(x[train], y[train])
    for name, test_x in [("far from the origin", x[test]), ("test set shifted along the direction", x[test] + 0.4 * shift)]:
        assert_float(student.mass_mean_accuracy(x[train], y[train], test_x, y[test]),
                     reference.mass_mean_accuracy(x[train], y[train], test_x, y[test]),
                     f"mass_mean_accuracy on synthetic data, {name}", rtol=0.0)


# ----------------------------------------------------------------------------- 4. train_logistic_probe


def check_probe(student, reference, x, y, test_x, test_y, kwargs, what):
    out = check_sequence(student.train_logistic_probe(x, y, **kwargs), 2, "train_logistic_probe")
    w, b = out[0], torch.as_tensor(out[1])
    check_shape(w, (x.shape[-1],), f"{what}: w")
    check_shape(b, (), f"{what}: b (a scalar tensor)")
    w, b = w.detach().to(x.dtype), b.detach().to(x.dtype)
    ref_w, ref_b = reference.train_logistic_probe(x, y, **kwargs)
    decay = kwargs["weight_decay"]
    with torch.no_grad():
        mine = float(reference.probe_objective(x, y, w, b, decay))
        best = float(reference.probe_objective(x, y, ref_w, ref_b, decay))
    assert_metric(mine, at_most=best + 2e-3 + 0.01 * best,
                  what=f"{what}: the objective (cross-entropy + weight decay) at your (w, b); the reference reaches {best:.4f}")
    accuracy = float((((test_x @ w + b) > 0).long() == test_y).float().mean())
    ref_accuracy = float((((test_x @ ref_w + ref_b) > 0).long() == test_y).float().mean())
    assert_metric(accuracy, at_least=ref_accuracy - 0.05,
                  what=f"{what}: test accuracy of your probe; the reference's is {ref_accuracy:.3f}")


@grades("train_logistic_probe")
def test_logistic_probe_model(student, reference, acts, labels, splits):
    for family, layer in [("cmp", 1), ("sum", -1)]:
        tr, te = splits[family]
        x, y = acts[family][layer], labels[family]
        check_probe(student, reference, x[tr], y[tr], x[te], y[te], dict(n_steps=300, lr=0.05, weight_decay=1e-3),
                    f"a probe for the {family} statements at layer {layer}")


@grades("train_logistic_probe")
def test_logistic_probe_synthetic(student, reference, seed):
    """Separable data far from the origin: the bias and the weight decay both matter."""
    x, y = synthetic_classes(seed + 4, n=150, d=5, signal=2.5)
    check_probe(student, reference, x[:100], y[:100], x[100:], y[100:], dict(n_steps=400, lr=0.1, weight_decay=1e-2),
                "a probe for separable synthetic data (n_steps 400, lr 0.1, weight_decay 0.01)")


# ----------------------------------------------------------------------------- 5. probe_accuracy_by_layer


@grades("probe_accuracy_by_layer")
def test_accuracy_by_layer_model(student, reference, acts, labels, splits):
    student.use_reference("mass_mean_accuracy", reference.mass_mean_accuracy)
    for family in th.FAMILIES:
        tr, te = splits[family]
        expected = reference.probe_accuracy_by_layer(acts[family], labels[family], tr, te)
        got = check_sequence(student.probe_accuracy_by_layer(acts[family], labels[family], tr, te), 2, "probe_accuracy_by_layer")
        assert_close(got[0], expected[0], atol=1e-6, rtol=0, what=f"accuracies by layer, {family} statements")
        assert_equal(got[1], expected[1], what=f"best layer, {family} statements")


@grades("probe_accuracy_by_layer")
def test_accuracy_by_layer_ties(student, reference, seed):
    """Two layers tie at the top: the first one is the best layer."""
    student.use_reference("mass_mean_accuracy", reference.mass_mean_accuracy)
    x, y = synthetic_classes(seed + 5, n=80, signal=0.3)
    strong, _ = synthetic_classes(seed + 5, n=80, signal=6.0)
    layers = torch.stack([x, strong, x * 0.5, strong])
    tr, te = torch.arange(0, 50), torch.arange(50, 80)
    expected = reference.probe_accuracy_by_layer(layers, y, tr, te)
    got = check_sequence(student.probe_accuracy_by_layer(layers, y, tr, te), 2, "probe_accuracy_by_layer")
    assert_close(got[0], expected[0], atol=1e-6, rtol=0, what="accuracies by layer, synthetic layers")
    assert_equal(got[1], expected[1], what="best layer when layers 1 and 3 tie at the top")


# ----------------------------------------------------------------------------- 6. transfer_matrix


@grades("transfer_matrix")
def test_transfer_matrix_model(student, reference, acts, labels, splits, best_layer):
    student.use_reference("mass_mean_accuracy", reference.mass_mean_accuracy)
    args = ([acts[f][best_layer] for f in th.FAMILIES], [labels[f] for f in th.FAMILIES],
            [splits[f][0] for f in th.FAMILIES], [splits[f][1] for f in th.FAMILIES])
    assert_close(student.transfer_matrix(*args), reference.transfer_matrix(*args), atol=1e-6, rtol=0,
                 what=f"transfer matrix of the four families at layer {best_layer}")


@grades("transfer_matrix")
def test_transfer_matrix_synthetic(student, reference, seed):
    student.use_reference("mass_mean_accuracy", reference.mass_mean_accuracy)
    xs, ys, trs, tes = [], [], [], []
    for k, n in enumerate((40, 50, 30)):
        x, y = synthetic_classes(seed + 10 + k, n=n, d=4, signal=1.0 + k)
        xs.append(x), ys.append(y)
        trs.append(torch.arange(0, n - 15)), tes.append(torch.arange(n - 15, n))
    assert_close(student.transfer_matrix(xs, ys, trs, tes), reference.transfer_matrix(xs, ys, trs, tes),
                 atol=1e-6, rtol=0, what="transfer matrix of three synthetic families of different sizes")


# ----------------------------------------------------------------------------- 6. cosine_similarity_matrix


@grades("cosine_similarity_matrix")
def test_cosine_matrix_directions(student, reference, acts, labels, best_layer):
    d = torch.stack([reference.mass_mean_direction(acts[f][best_layer], labels[f]) for f in th.FAMILIES])
    assert_close(student.cosine_similarity_matrix(d), reference.cosine_similarity_matrix(d),
                 what=f"cosines of the four families' mass-mean directions at layer {best_layer}")


@grades("cosine_similarity_matrix")
def test_cosine_matrix_random(student, reference, seed):
    r = gen(seed + 6)
    d = r(5, 3) * torch.tensor([[0.1], [2.0], [7.0], [1.0], [0.5]])
    assert_close(student.cosine_similarity_matrix(d), reference.cosine_similarity_matrix(d),
                 what="cosine_similarity_matrix of 5 random vectors of different lengths (d_model 3)")


# ----------------------------------------------------------------------------- 7. steer_logit_diff


@grades("steer_logit_diff")
def test_steer_truth_direction(student, reference, hooked, mixed, acts, labels, best_layer):
    student.use_reference("get_logit_diff", reference.get_logit_diff)
    direction = reference.mass_mean_direction(acts["cmp"][best_layer], labels["cmp"]).to(mixed["tokens"].device)
    for alpha in (1.5, -1.0):
        with torch.no_grad(), one_thread():
            expected = reference.steer_logit_diff(hooked, mixed["tokens"], mixed["last_pos"], best_layer, direction, alpha)
            got = student.steer_logit_diff(student.model, mixed["tokens"], mixed["last_pos"], best_layer, direction, alpha)
        assert_close(got, expected, atol=1e-4, rtol=1e-4,
                     what=f"steered logit differences (cmp direction, layer {best_layer}, alpha {alpha}, padded batch)")


@grades("steer_logit_diff")
def test_steer_random_direction_each_layer(student, reference, hooked, mixed, seed):
    student.use_reference("get_logit_diff", reference.get_logit_diff)
    direction = gen(seed + 7)(hooked.cfg.d_model, scale=3.0).to(mixed["tokens"].device)
    for layer in range(hooked.cfg.n_layers):
        with torch.no_grad(), one_thread():
            expected = reference.steer_logit_diff(hooked, mixed["tokens"], mixed["last_pos"], layer, direction, 0.7)
            got = student.steer_logit_diff(student.model, mixed["tokens"], mixed["last_pos"], layer, direction, 0.7)
        assert_close(got, expected, atol=1e-4, rtol=1e-4, what=f"steered logit differences (random direction, layer {layer})")


# ----------------------------------------------------------------------------- 7. flip_rate


@grades("flip_rate")
def test_flip_rate_synthetic(student, reference, seed):
    r = gen(seed + 8)
    for k in range(3):
        before, after = r(40), r(40) + 0.3 * k
        y = (r(40) > 0).long()
        assert_float(student.flip_rate(before, after, y), reference.flip_rate(before, after, y),
                     f"flip_rate on 40 random statements (case {k})", rtol=0.0)


@grades("flip_rate")
def test_flip_rate_steered_model(student, reference, hooked, mixed, acts, labels, best_layer):
    direction = reference.mass_mean_direction(acts["sum"][best_layer], labels["sum"]).to(mixed["tokens"].device)
    with torch.no_grad(), one_thread():
        before = reference.steer_logit_diff(hooked, mixed["tokens"], mixed["last_pos"], best_layer, direction, 0.0)
        after = reference.steer_logit_diff(hooked, mixed["tokens"], mixed["last_pos"], best_layer, direction, 1.0)
    assert_float(student.flip_rate(before, after, mixed["labels"]), reference.flip_rate(before, after, mixed["labels"]),
                 "flip_rate of the mixed statements steered along the sum direction", rtol=0.0)
