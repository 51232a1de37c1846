"""Hidden tests for 1.4.1 Indirect object identification: finding a circuit.

Every expected value comes from the reference solution, run here on the trusted copy of the
same checkpoint (``hooked``) and the same inputs. Which heads are name movers, duplicate-token
heads or senders is never written down: the receivers and circuits used below are derived from
the reference at grading time. Student functions get the student's own model (``student.model``,
loaded by the release's setup cell) and, where they take a cache, an ``ActivationCache`` built in
the student process from the trusted cache's tensors. Dependencies (the logit difference) are
swapped for the reference (``student.use_reference``) so that a bug costs only its own exercise.
"""

from __future__ import annotations

import torch
from transformer_lens import ActivationCache

import ioi_helpers as ih
from autograder.checks import assert_close, check_shape
from autograder.testing import fixture, grades, one_thread


@fixture
def hooked(profile, device):
    return ih.load_model(profile, device=str(device))


@fixture
def data(hooked, seed):
    return ih.make_dataset(hooked, 24, seed=seed)


@fixture
def caches(hooked, data):
    with torch.no_grad(), one_thread():
        clean_logits, clean = hooked.run_with_cache(data["tokens"])
        _, corrupt = hooked.run_with_cache(data["corrupt_tokens"])
    return clean_logits, clean, corrupt


def student_cache(student, cache: ActivationCache):
    """The same activations, as an ActivationCache in the student process over the student's model."""
    tensors = {k: v.detach().clone() for k, v in cache.cache_dict.items()}
    return student.ActivationCache(tensors, student.model, has_batch_dim=cache.has_batch_dim)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def shape_of(hooked):
    return (hooked.cfg.n_layers, hooked.cfg.n_heads)


# ----------------------------------------------------------------------------- logit difference and metric


@grades("logits_to_ave_logit_diff")
def test_logit_diff_random(student, reference, seed):
    g = gen(seed)
    logits = torch.randn(5, 7, 11, generator=g)
    io, s = torch.randint(11, (5,), generator=g), torch.randint(11, (5,), generator=g)
    for per_prompt in (True, False):
        want = reference.logits_to_ave_logit_diff(logits, io, s, per_prompt=per_prompt)
        got = student.logits_to_ave_logit_diff(logits, io, s, per_prompt=per_prompt)
        check_shape(got, tuple(want.shape), f"logits_to_ave_logit_diff(per_prompt={per_prompt})")
        assert_close(got, want, what=f"logit differences on random logits, per_prompt={per_prompt}")


@grades("logits_to_ave_logit_diff")
def test_logit_diff_model(student, reference, data, caches):
    logits = caches[0]
    assert_close(student.logits_to_ave_logit_diff(logits, data["io_tok"], data["s_tok"], per_prompt=True),
                 reference.logits_to_ave_logit_diff(logits, data["io_tok"], data["s_tok"], per_prompt=True),
                 what="per-prompt logit differences of the model on IOI prompts")
    assert_close(student.logits_to_ave_logit_diff(logits, data["io_tok"], data["s_tok"]),
                 reference.logits_to_ave_logit_diff(logits, data["io_tok"], data["s_tok"]),
                 what="the mean logit difference of the model on IOI prompts")


@grades("ioi_metric")
def test_ioi_metric(student, reference, seed):
    g = gen(seed)
    x = torch.randn(3, 4, generator=g) * 3
    for clean, corrupt in [(2.5, -0.5), (4.0, 1.0), (torch.tensor(3.0), torch.tensor(0.2))]:
        assert_close(student.ioi_metric(x, clean, corrupt), reference.ioi_metric(x, clean, corrupt),
                     what=f"ioi_metric on random values, clean {float(clean)}, corrupted {float(corrupt)}")


# ----------------------------------------------------------------------------- attribution and attention


@grades("head_logit_attribution")
def test_dla(student, reference, hooked, data, caches):
    want = reference.head_logit_attribution(hooked, caches[1], data["io_tok"], data["s_tok"])
    got = student.head_logit_attribution(student.model, student_cache(student, caches[1]), data["io_tok"], data["s_tok"])
    check_shape(got, shape_of(hooked), "head_logit_attribution")
    assert_close(got, want, atol=1e-4, rtol=1e-3, what="direct logit attribution per head on clean prompts")


@grades("head_logit_attribution")
def test_dla_corrupted_answers_swapped(student, reference, hooked, data, caches):
    """On the corrupted prompts, with IO and S swapped: a different final LayerNorm scale and direction."""
    want = reference.head_logit_attribution(hooked, caches[2], data["s_tok"], data["io_tok"])
    got = student.head_logit_attribution(student.model, student_cache(student, caches[2]), data["s_tok"], data["io_tok"])
    assert_close(got, want, atol=1e-4, rtol=1e-3, what="direct logit attribution on corrupted prompts, IO and S swapped")


@grades("attention_from_to")
def test_attention_ioi_positions(student, reference, hooked, data, caches):
    n = len(data["io_tok"])
    end, s2 = torch.full((n,), data["end_pos"]), torch.full((n,), data["s2_pos"])
    cache = student_cache(student, caches[1])
    for name, q, k in [("END -> IO", end, data["io_pos"]), ("END -> S1", end, data["s1_pos"]), ("S2 -> S1", s2, data["s1_pos"])]:
        want = reference.attention_from_to(caches[1], hooked.cfg.n_layers, q, k)
        got = student.attention_from_to(cache, hooked.cfg.n_layers, q, k)
        check_shape(got, shape_of(hooked), f"attention_from_to ({name})")
        assert_close(got, want, atol=1e-5, rtol=1e-4, what=f"mean attention {name}")


@grades("attention_from_to")
def test_attention_random_positions(student, reference, hooked, data, caches, seed):
    g = gen(seed)
    n = len(data["io_tok"])
    q = torch.randint(5, ih.SEQ_LEN, (n,), generator=g)
    k = (torch.rand(n, generator=g) * (q + 1)).long()
    want = reference.attention_from_to(caches[1], hooked.cfg.n_layers, q, k)
    got = student.attention_from_to(student_cache(student, caches[1]), hooked.cfg.n_layers, q, k)
    assert_close(got, want, atol=1e-5, rtol=1e-4, what="mean attention between random (query, key) positions per prompt")


@grades("duplicate_token_scores")
def test_duplicate_tokens_ioi(student, reference, hooked, data):
    with one_thread():
        want = reference.duplicate_token_scores(hooked, data["tokens"])
    got = student.duplicate_token_scores(student.model, data["tokens"])
    check_shape(got, shape_of(hooked), "duplicate_token_scores")
    assert_close(got, want, atol=1e-5, rtol=1e-4, what="duplicate-token scores on IOI prompts")


@grades("duplicate_token_scores")
def test_duplicate_tokens_random_names(student, reference, hooked, seed):
    """Random sequences of names with many repeats (some tokens three times, some never repeated)."""
    names = torch.tensor([ih.name_token(hooked, n) for n in ih.NAMES[:10]])
    g = gen(seed)
    tokens = names[torch.randint(len(names), (6, 12), generator=g)]
    tokens = torch.cat([torch.full((6, 1), hooked.tokenizer.bos_token_id), tokens], 1).to(hooked.cfg.device)
    with one_thread():
        want = reference.duplicate_token_scores(hooked, tokens)
    got = student.duplicate_token_scores(student.model, tokens)
    assert_close(got, want, atol=1e-5, rtol=1e-4, what="duplicate-token scores on random sequences of names")


# ----------------------------------------------------------------------------- patching


def small(data, n=12):
    return {k: (v[:n] if isinstance(v, torch.Tensor) else v) for k, v in data.items()}


def small_cache(cache, hooked, n=12):
    return ActivationCache({k: v[:n] for k, v in cache.cache_dict.items()}, hooked)


# The reference's answers below are fixtures: computed once per grading run (same model, inputs and
# device as every submission's), not once per submission.


@fixture
def residual_patching(reference, hooked, data, caches):
    d = small(data)
    with one_thread():
        return reference.patch_residual_stream(hooked, d["corrupt_tokens"], small_cache(caches[1], hooked),
                                               d["io_tok"], d["s_tok"])


@fixture
def head_patching(reference, hooked, data, caches):
    with one_thread():
        return reference.patch_head_outputs(hooked, data["corrupt_tokens"], caches[1], data["io_tok"], data["s_tok"])


@grades("patch_residual_stream")
def test_patch_residual_stream(student, reference, hooked, data, caches, residual_patching):
    student.use_reference("logits_to_ave_logit_diff", reference.logits_to_ave_logit_diff)
    d = small(data)
    clean = small_cache(caches[1], hooked)
    want = residual_patching
    got = student.patch_residual_stream(student.model, d["corrupt_tokens"], student_cache(student, clean), d["io_tok"], d["s_tok"])
    check_shape(got, (hooked.cfg.n_layers, ih.SEQ_LEN), "patch_residual_stream")
    assert_close(got, want, atol=1e-4, rtol=1e-3, what="mean logit difference after patching resid_pre (layer, position)")


@grades("patch_head_outputs")
def test_patch_head_outputs(student, reference, hooked, data, caches, head_patching):
    student.use_reference("logits_to_ave_logit_diff", reference.logits_to_ave_logit_diff)
    want = head_patching
    got = student.patch_head_outputs(student.model, data["corrupt_tokens"], student_cache(student, caches[1]),
                                     data["io_tok"], data["s_tok"])
    check_shape(got, shape_of(hooked), "patch_head_outputs")
    assert_close(got, want, atol=1e-4, rtol=1e-3, what="mean logit difference after patching each head's hook_z")


def top_heads(values, hooked, k, min_layer=0):
    heads = [lh for lh in ih.head_names(hooked) if lh[0] >= min_layer]
    return sorted(heads, key=lambda lh: -float(values[lh]))[:k]


@fixture
def name_mover_path_patching(reference, hooked, data, caches):
    """Receivers: the two heads (after layer 0) with the largest direct effect, found by the reference now."""
    dla = reference.head_logit_attribution(hooked, caches[1], data["io_tok"], data["s_tok"])
    receivers = top_heads(dla, hooked, 2, min_layer=1)
    with one_thread():
        return receivers, reference.path_patch_to_queries(hooked, data["tokens"], caches[1], caches[2], receivers,
                                                          data["io_tok"], data["s_tok"])


@grades("path_patch_to_queries")
def test_path_patch_name_movers(student, reference, hooked, data, caches, name_mover_path_patching):
    student.use_reference("logits_to_ave_logit_diff", reference.logits_to_ave_logit_diff)
    receivers, want = name_mover_path_patching
    got = student.path_patch_to_queries(student.model, data["tokens"], student_cache(student, caches[1]),
                                        student_cache(student, caches[2]), receivers, data["io_tok"], data["s_tok"])
    check_shape(got, shape_of(hooked), "path_patch_to_queries")
    assert_close(got, want, atol=1e-4, rtol=1e-3, what=f"path patching to the queries of {receivers}")


@fixture
def one_head_per_layer_path_patching(reference, hooked, data, caches, seed):
    d = small(data)
    g = gen(seed)
    receivers = [(layer, int(torch.randint(hooked.cfg.n_heads, (1,), generator=g))) for layer in range(1, hooked.cfg.n_layers)]
    with one_thread():
        return receivers, reference.path_patch_to_queries(hooked, d["tokens"], small_cache(caches[1], hooked),
                                                          small_cache(caches[2], hooked), receivers, d["io_tok"], d["s_tok"])


@grades("path_patch_to_queries")
def test_path_patch_one_head_of_each_later_layer(student, reference, hooked, data, caches, one_head_per_layer_path_patching):
    student.use_reference("logits_to_ave_logit_diff", reference.logits_to_ave_logit_diff)
    d = small(data)
    clean, corrupt = small_cache(caches[1], hooked), small_cache(caches[2], hooked)
    receivers, want = one_head_per_layer_path_patching
    got = student.path_patch_to_queries(student.model, d["tokens"], student_cache(student, clean),
                                        student_cache(student, corrupt), receivers, d["io_tok"], d["s_tok"])
    assert_close(got, want, atol=1e-4, rtol=1e-3, what=f"path patching to the queries of {receivers}")


@fixture
def random_sequences_path_patching(reference, hooked, seed):
    """Random token sequences as the clean and the corrupted run, with the reference's answer."""
    g = gen(seed + 1)
    bos = hooked.tokenizer.bos_token_id
    runs = []
    for _ in range(2):
        t = torch.randint(hooked.cfg.d_vocab, (10, ih.SEQ_LEN), generator=g)
        t[:, 0] = bos
        runs.append(t.to(hooked.cfg.device))
    io = torch.randint(hooked.cfg.d_vocab, (10,), generator=g).to(hooked.cfg.device)
    s = torch.randint(hooked.cfg.d_vocab, (10,), generator=g).to(hooked.cfg.device)
    with torch.no_grad(), one_thread():
        _, clean = hooked.run_with_cache(runs[0])
        _, corrupt = hooked.run_with_cache(runs[1])
    receivers = [(1, 0), (hooked.cfg.n_layers - 1, 0)]
    with one_thread():
        want = reference.path_patch_to_queries(hooked, runs[0], clean, corrupt, receivers, io, s)
    return dict(tokens=runs[0], io=io, s=s, clean=clean, corrupt=corrupt, receivers=receivers, want=want)


@grades("path_patch_to_queries")
def test_path_patch_random_sequences(student, reference, random_sequences_path_patching):
    """In the lite model the receivers' queries barely matter on IOI prompts (its late heads find S2 by
    position), so random sequences are where freezing the other heads, patching only the receivers, and
    patching queries rather than keys make a clear difference."""
    student.use_reference("logits_to_ave_logit_diff", reference.logits_to_ave_logit_diff)
    r = random_sequences_path_patching
    got = student.path_patch_to_queries(student.model, r["tokens"], student_cache(student, r["clean"]),
                                        student_cache(student, r["corrupt"]), r["receivers"], r["io"], r["s"])
    assert_close(got, r["want"], atol=1e-4, rtol=1e-3,
                 what=f"path patching to the queries of {r['receivers']} on random tokens")


# ----------------------------------------------------------------------------- mean ablation


@grades("head_means")
def test_head_means(student, reference, hooked, data):
    for name in ("corrupt_tokens", "tokens"):
        with one_thread():
            want = reference.head_means(hooked, data[name])
        got = student.head_means(student.model, data[name])
        check_shape(got, tuple(want.shape), "head_means")
        assert_close(got, want, atol=1e-5, rtol=1e-4, what=f"mean hook_z per layer, position and head ({name})")


@fixture
def mean_ablations(reference, hooked, data, head_patching, seed):
    """(what, heads kept, the reference's logit difference) for three sets of heads, and the head means."""
    with one_thread():
        means = reference.head_means(hooked, data["corrupt_tokens"])
    heads = ih.head_names(hooked)
    g = gen(seed)
    keeps = {
        "the heads whose patching restores most (found by the reference now)": top_heads(head_patching, hooked, 4),
        "a random half of the heads": [heads[i] for i in torch.randperm(len(heads), generator=g)[: len(heads) // 2].tolist()],
        "no head": [],
    }
    with one_thread():
        cases = [(what, keep, reference.mean_ablate_heads(hooked, data["tokens"], keep, means, data["io_tok"], data["s_tok"]))
                 for what, keep in keeps.items()]
    return means, cases


@grades("mean_ablate_heads")
def test_mean_ablate_heads(student, reference, data, mean_ablations):
    student.use_reference("logits_to_ave_logit_diff", reference.logits_to_ave_logit_diff)
    means, cases = mean_ablations
    for what, keep, want in cases:
        got = student.mean_ablate_heads(student.model, data["tokens"], keep, means, data["io_tok"], data["s_tok"])
        assert_close(got, want, atol=1e-4, rtol=1e-3, what=f"logit difference keeping {what}: {keep}")
