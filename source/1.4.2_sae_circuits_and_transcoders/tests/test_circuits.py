"""Hidden tests for 1.4.2 SAE circuits and transcoders.

Every expected value comes from the reference solution (or SAELens itself), run here on the trusted copies of the same
models, transcoder and SAE and on the same inputs. Nothing about the trained checkpoints is hard-coded: which nodes
carry the attribution is found by the reference at grading time. Student functions get the student's own objects
(``student.lite_model``, ``student.transcoder``, ``student.lite_sae``, ``student.model``, ``student.sae``, loaded by
the release's setup cell). No exercise's solution calls another exercise, so a bug costs only its own exercise.
"""

from __future__ import annotations

import torch

import circuit_helpers as ch
from autograder.checks import CheckFailed, assert_close, assert_float, check_sequence, check_shape
from autograder.testing import fixture, grades, one_thread


def subset(d, n, seed):
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(d["statements"]), generator=g)[:n].sort().values.to(d["tokens"].device)
    out = {k: v[pick] for k, v in d.items() if isinstance(v, torch.Tensor)}
    out["family"] = [d["family"][i] for i in pick.tolist()]
    width = int(out["last_pos"].max()) + 1
    out["tokens"], out["mask"] = out["tokens"][:, :width], out["mask"][:, :width]
    return out


# ----------------------------------------------------------------------------- fixtures


@fixture
def lite(device):
    """(model, transcoder, SAE) of the lite profile: the transcoder exercises use them in every profile."""
    return ch.load_lite_circuit(device=str(device))


@fixture
def hooked(profile, device):
    return ch.load_model(profile, device=str(device))


@fixture
def trusted_sae(profile, device):
    return ch.load_sae(profile, device=str(device))


@fixture
def data(lite, seed):
    """A seeded subset of 48 balanced statements of every family for the lite model, padded on the right."""
    return subset(ch.make_dataset(lite[0], seed=seed % 7), 48, seed)


@fixture
def sdata(hooked, seed):
    """8 statements for the attribution exercises' model (the profile's), padded on the right."""
    return subset(ch.make_dataset(hooked, seed=(seed + 3) % 7), 8, seed + 1)


@fixture
def io(reference, lite, data):
    with one_thread():
        return reference.get_transcoder_io(lite[0], lite[1], data["tokens"])


@fixture
def ref_attribution(reference, hooked, trusted_sae, sdata):
    with one_thread():
        return reference.sae_attribution(hooked, trusted_sae, sdata["tokens"], sdata["last_pos"])


@fixture
def one_prompt(lite):
    tokens, last = ch.tokenize_prompts(lite[0], [ch.to_prompt("Madrid is not in Egypt.")])
    return tokens, last


@fixture
def ref_edges(reference, lite, one_prompt):
    with one_thread():
        return reference.transcoder_sae_edges(lite[0], lite[1], lite[2], one_prompt[0])


@fixture
def ref_graph_inputs(reference, lite, one_prompt, ref_edges):
    """The real graph of one prompt: edges, and the SAE nodes' attribution and gradient (lite)."""
    with one_thread():
        attr, grad = reference.sae_attribution(lite[0], lite[2], one_prompt[0], one_prompt[1])
    return ref_edges, attr[0], grad[0]


# ----------------------------------------------------------------------------- 1. transcoder_forward


def check_forward(student, reference, tc, x, what):
    got = check_sequence(student.transcoder_forward(student.transcoder, x), 2, "transcoder_forward")
    with torch.no_grad():
        ref_f, ref_out = reference.transcoder_forward(tc, x)
        assert_close(ref_f, tc.encode(x), atol=1e-5, rtol=1e-5, what="the reference against SAELens (a grading problem)")
    assert_close(got[0], ref_f, atol=1e-4, rtol=1e-4, what=f"{what}: feature activations")
    assert_close(got[1], ref_out, atol=1e-4, rtol=1e-4, what=f"{what}: predicted MLP output")


@grades("transcoder_forward")
def test_forward_on_mlp_inputs(student, reference, lite, io):
    check_forward(student, reference, lite[1], io[0], "the MLP's inputs (batch, seq, d_model)")


@grades("transcoder_forward")
def test_forward_off_distribution(student, reference, lite, seed):
    """Rows with a large offset: adding or subtracting a bias anywhere it does not belong shows."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(30, lite[1].cfg.d_in, generator=g) * 3 + torch.randn(lite[1].cfg.d_in, generator=g) * 4).to(lite[1].W_enc.device)
    check_forward(student, reference, lite[1], x, "random rows (30, d_in)")


# ----------------------------------------------------------------------------- 2. get_transcoder_io


@grades("get_transcoder_io")
def test_io_padded_batch(student, lite, data, io):
    with one_thread():
        got = check_sequence(student.get_transcoder_io(student.lite_model, student.transcoder, data["tokens"]), 2, "get_transcoder_io")
    assert_close(got[0], io[0], atol=1e-4, rtol=1e-4, what="the MLP's input on a padded batch")
    assert_close(got[1], io[1], atol=1e-4, rtol=1e-4, what="the MLP's output on a padded batch")


@grades("get_transcoder_io")
def test_io_one_prompt(student, reference, lite, one_prompt):
    with one_thread():
        expected = reference.get_transcoder_io(lite[0], lite[1], one_prompt[0])
        got = check_sequence(student.get_transcoder_io(student.lite_model, student.transcoder, one_prompt[0]), 2, "get_transcoder_io")
    for g, e, name in zip(got, expected, ("input", "output")):
        assert_close(g, e, atol=1e-4, rtol=1e-4, what=f"the MLP's {name} for one prompt")


# ----------------------------------------------------------------------------- 3. replacement_stats


def check_stats(student, reference, y, y_hat, f, what):
    got = check_sequence(student.replacement_stats(y, y_hat, f), 3, "replacement_stats")
    expected = reference.replacement_stats(y, y_hat, f)
    for name, g, e in zip(("mse", "l0", "fraction of variance explained"), got, expected):
        assert_float(g, e, f"{what}: {name}")


@grades("replacement_stats")
def test_stats_transcoder(student, reference, lite, data, io):
    m = data["mask"]
    with torch.no_grad():
        f = lite[1].encode(io[0])
        y_hat = lite[1].decode(f)
    check_stats(student, reference, io[1][m], y_hat[m], f[m], "the transcoder on the real tokens of a batch")


@grades("replacement_stats")
def test_stats_synthetic(student, reference, seed):
    g = torch.Generator().manual_seed(seed + 1)
    y = torch.randn(50, 8, generator=g) + torch.randn(8, generator=g) * 6
    y_hat = y + torch.randn(50, 8, generator=g) * 0.7
    f = (torch.rand(50, 32, generator=g) < 0.2).float() * torch.rand(50, 32, generator=g)
    check_stats(student, reference, y, y_hat, f, "synthetic outputs far from the origin")


# ----------------------------------------------------------------------------- 4. spliced_mlp_losses


def check_losses(student, reference, lite, d, what):
    args = (d["tokens"], d["last_pos"], d["answers"], d["mask"])
    with one_thread():
        expected = reference.spliced_mlp_losses(lite[0], lite[1], *args)
        got = check_sequence(student.spliced_mlp_losses(student.lite_model, student.transcoder, *args), 4, "spliced_mlp_losses")
    for name, g, e in zip(("clean", "with the transcoder", "zero-ablated", "mean-ablated"), got, expected):
        assert_float(g, e, f"{what}: answer loss {name}", rtol=1e-3, atol=1e-5)


@grades("spliced_mlp_losses")
def test_spliced_mixed(student, reference, lite, data):
    check_losses(student, reference, lite, data, "a padded batch of mixed statements")


@grades("spliced_mlp_losses")
def test_spliced_one_family(student, reference, lite, data):
    rows = torch.tensor([i for i, f in enumerate(data["family"]) if f in ("sum", "cmp")][:16])
    width = int(data["last_pos"][rows].max()) + 1
    d = {k: data[k][rows] for k in ("tokens", "last_pos", "answers", "mask")}
    # six extra columns of padding: statistics that include padding positions show
    pad = torch.full((len(rows), 6), int(lite[0].tokenizer.pad_token_id), dtype=d["tokens"].dtype, device=d["tokens"].device)
    d["tokens"] = torch.cat([d["tokens"][:, :width], pad], dim=1)
    d["mask"] = torch.cat([d["mask"][:, :width], torch.zeros_like(pad, dtype=torch.bool)], dim=1)
    check_losses(student, reference, lite, d, "number statements with extra padding")


# ----------------------------------------------------------------------------- 5. virtual_weights


@grades("virtual_weights")
def test_virtual_weights(student, reference, lite):
    expected = reference.virtual_weights(lite[1], lite[2])
    got = student.virtual_weights(student.transcoder, student.lite_sae)
    check_shape(got, tuple(expected.shape), "virtual_weights")
    assert_close(got, expected, atol=1e-4, rtol=1e-4, what="virtual weights (d_transcoder, d_sae)")


# ----------------------------------------------------------------------------- 6. transcoder_sae_edges


@grades("transcoder_sae_edges")
def test_edges_negated_city(student, lite, one_prompt, ref_edges):
    with one_thread():
        got = student.transcoder_sae_edges(student.lite_model, student.transcoder, student.lite_sae, one_prompt[0])
    check_shape(got, tuple(ref_edges.shape), "edges (seq, d_tc, d_sae)")
    assert_close(got, ref_edges, atol=1e-4, rtol=1e-4, what="direct edges for 'Madrid is not in Egypt.'")


@grades("transcoder_sae_edges")
def test_edges_sum(student, reference, lite):
    tokens, _ = ch.tokenize_prompts(lite[0], [ch.to_prompt("Four plus three is nine.")])
    with one_thread():
        expected = reference.transcoder_sae_edges(lite[0], lite[1], lite[2], tokens)
        got = student.transcoder_sae_edges(student.lite_model, student.transcoder, student.lite_sae, tokens)
    assert_close(got, expected, atol=1e-4, rtol=1e-4, what="direct edges for 'Four plus three is nine.'")


# ----------------------------------------------------------------------------- 7. sae_attribution


@grades("sae_attribution")
def test_attribution_batch(student, sdata, ref_attribution):
    with one_thread():
        got = check_sequence(student.sae_attribution(student.model, student.sae, sdata["tokens"], sdata["last_pos"]), 2,
                       "sae_attribution")
    assert_close(got[1], ref_attribution[1], atol=1e-3, rtol=1e-3, what="gradients on a padded batch of 8 prompts")
    assert_close(got[0], ref_attribution[0], atol=1e-3, rtol=1e-3, what="attributions on a padded batch of 8 prompts")


@grades("sae_attribution")
def test_attribution_one_prompt(student, reference, hooked, trusted_sae):
    tokens, last = ch.tokenize_prompts(hooked, [ch.to_prompt("Nine is smaller than two.")])
    with one_thread():
        expected = reference.sae_attribution(hooked, trusted_sae, tokens, last)
        got = check_sequence(student.sae_attribution(student.model, student.sae, tokens, last), 2, "sae_attribution")
    assert_close(got[0], expected[0], atol=1e-3, rtol=1e-3, what="attributions for one prompt")


# ----------------------------------------------------------------------------- 8. ablate_sae_features


def top_nodes(attr, k):
    flat = attr.abs().flatten().topk(k).indices
    return torch.stack([flat // attr.shape[-1], flat % attr.shape[-1]], dim=1)


@grades("ablate_sae_features")
def test_ablate_top_nodes(student, reference, hooked, trusted_sae, sdata, ref_attribution):
    """The 3 nodes with the largest |attribution| in the first prompt (found by the reference), in every prompt."""
    nodes = top_nodes(ref_attribution[0][0], 3)
    args = (sdata["tokens"], sdata["last_pos"], nodes)
    with one_thread():
        expected = reference.ablate_sae_features(hooked, trusted_sae, *args)
        got = student.ablate_sae_features(student.model, student.sae, *args)
    assert_close(got, expected, atol=1e-3, rtol=1e-3, what=f"logit differences with nodes {nodes.tolist()} ablated")


@grades("ablate_sae_features")
def test_ablate_one_node_and_none(student, reference, hooked, trusted_sae, sdata, ref_attribution):
    rows = slice(1, 4)
    tokens, last = sdata["tokens"][rows], sdata["last_pos"][rows]
    for nodes in (top_nodes(ref_attribution[0][1], 1), torch.zeros(0, 2, dtype=torch.long)):
        with one_thread():
            expected = reference.ablate_sae_features(hooked, trusted_sae, tokens, last, nodes)
            got = student.ablate_sae_features(student.model, student.sae, tokens, last, nodes)
        assert_close(got, expected, atol=1e-3, rtol=1e-3, what=f"logit differences with nodes {nodes.tolist()} ablated")


# ----------------------------------------------------------------------------- 9. prune_graph


def check_prune(student, reference, edges, attr, grad, k_down, k_up, what):
    got = check_sequence(student.prune_graph(edges, attr, grad, k_down, k_up), 3, "prune_graph")
    exp = reference.prune_graph(edges, attr, grad, k_down, k_up)
    down, up = torch.as_tensor(got[0]).long().cpu(), torch.as_tensor(got[1]).long().cpu()
    check_shape(down, (k_down, 2), f"{what}: down_nodes")
    check_shape(up, (k_up, 2), f"{what}: up_nodes")
    if down.tolist() != exp[0].cpu().tolist():
        raise CheckFailed(f"{what}: down_nodes {down.tolist()}, expected {exp[0].tolist()}")
    if up.tolist() != exp[1].cpu().tolist():
        raise CheckFailed(f"{what}: up_nodes {up.tolist()}, expected {exp[1].tolist()}")
    assert_close(torch.as_tensor(got[2]).float(), exp[2].float(), atol=1e-4, rtol=1e-4, what=f"{what}: up_attr")


@grades("prune_graph")
def test_prune_real_graph(student, reference, ref_graph_inputs):
    edges, attr, grad = ref_graph_inputs
    check_prune(student, reference, edges, attr, grad, 6, 6, "the graph of 'Madrid is not in Egypt.'")


@grades("prune_graph")
def test_prune_synthetic(student, reference, seed):
    g = torch.Generator().manual_seed(seed + 9)
    edges = torch.randn(5, 7, 9, generator=g) * (torch.rand(5, 7, 9, generator=g) < 0.5)
    attr, grad = torch.randn(5, 9, generator=g), torch.randn(5, 9, generator=g)
    check_prune(student, reference, edges, attr, grad, 4, 5, "random edges (5, 7, 9)")


# ----------------------------------------------------------------------------- 10. nodes_to_explain


@grades("nodes_to_explain")
def test_nodes_to_explain_real(student, reference, ref_attribution):
    attr = ref_attribution[0][0].flatten()
    for fraction in (0.5, 0.8, 0.95):
        got = student.nodes_to_explain(attr, fraction)
        expected = reference.nodes_to_explain(attr, fraction)
        if not isinstance(got, int) or isinstance(got, bool) or got != expected:
            raise CheckFailed(f"nodes_to_explain of one prompt's attributions, fraction {fraction}: {got!r}, "
                              f"expected {expected}")


@grades("nodes_to_explain")
def test_nodes_to_explain_synthetic(student, reference, seed):
    g = torch.Generator().manual_seed(seed + 5)
    attr = torch.randn(40, generator=g) * torch.rand(40, generator=g).pow(3)
    for fraction in (0.0, 0.3, 0.7, 0.99):
        got = student.nodes_to_explain(attr, fraction)
        expected = reference.nodes_to_explain(attr, fraction)
        if not isinstance(got, int) or isinstance(got, bool) or got != expected:
            raise CheckFailed(f"nodes_to_explain of 40 signed attributions, fraction {fraction}: {got!r}, expected {expected}")
