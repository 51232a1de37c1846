"""Hidden tests for 1.2 Intro to Mechanistic Interpretability.

Every expected value comes from the reference solution, run here on the
trusted copy of the same checkpoint (``hooked``), on the same inputs. Which
heads are induction or previous-token heads is never written down: tests
derive it from the reference, or renumber the heads and check the answer
moves with them. Student functions get the student's own model
(``student.model``, loaded by the release's setup cell) and, where they take a
cache, an ``ActivationCache`` built in the student process from the trusted
cache's tensors. Dependencies are swapped for the reference
(``student.use_reference``) so a bug costs only the exercise it is in.
"""

from __future__ import annotations

import torch
from transformer_lens import ActivationCache, FactoredMatrix

import mi_helpers
from autograder.checks import CheckFailed, assert_close, assert_equal, check_float, check_shape
from autograder.testing import fixture, grades

# ----------------------------------------------------------------------------- fixtures


@fixture
def hooked(profile, device):
    model = mi_helpers.load_model(profile, device=str(device))
    model.set_use_attn_result(True)
    return model


@fixture
def story_tokens(hooked):
    return hooked.to_tokens(mi_helpers.story_prompt())


@fixture
def story_cache(hooked, story_tokens):
    with torch.no_grad():
        _, cache = hooked.run_with_cache(story_tokens, remove_batch_dim=True)
    return cache


def repeated(hooked, seed: int, seq_len: int, batch: int):
    gen = torch.Generator().manual_seed(seed)
    half = torch.randint(0, hooked.cfg.d_vocab, (batch, seq_len), generator=gen)
    bos = torch.full((batch, 1), hooked.tokenizer.bos_token_id)
    return torch.cat([bos, half, half], dim=1).to(hooked.cfg.device)


@fixture
def rep_tokens(hooked, seed):
    return repeated(hooked, seed, 20, 4)


@fixture
def rep_cache(hooked, rep_tokens):
    with torch.no_grad():
        _, cache = hooked.run_with_cache(rep_tokens)
    return cache


def student_cache(student, cache: ActivationCache):
    """The same activations, as an ActivationCache in the student process over the student's model."""
    tensors = {k: v.detach().clone() for k, v in cache.cache_dict.items()}
    return student.ActivationCache(tensors, student.model, has_batch_dim=cache.has_batch_dim)


def gen(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda *shape, scale=1.0: torch.randn(*shape, generator=g) * scale


def heads_list(value, what):
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise CheckFailed(f"{what}: expected a list of strings like '1.4', got {str(value)[:150]}")
    return sorted(value)


# ----------------------------------------------------------------------------- part 1


@grades("count_correct_predictions")
def test_count_correct_story(student, reference, hooked, story_tokens):
    with torch.no_grad():
        expected = reference.count_correct_predictions(hooked, story_tokens)
    got = student.count_correct_predictions(student.model, story_tokens)
    assert_equal(int(check_float(got, "count_correct_predictions")), int(expected), what="count_correct_predictions on a story")


@grades("count_correct_predictions")
def test_count_correct_batch(student, reference, hooked, rep_tokens):
    with torch.no_grad():
        expected = reference.count_correct_predictions(hooked, rep_tokens)
    got = student.count_correct_predictions(student.model, rep_tokens)
    assert_equal(int(check_float(got, "count_correct_predictions")), int(expected),
                 what="count_correct_predictions on a batch of 4 repeated random sequences")


@grades("attention_pattern_from_qk")
def test_attention_pattern_single(student, reference, hooked, story_cache):
    cache = student_cache(student, story_cache)
    for layer in range(hooked.cfg.n_layers):
        assert_close(student.attention_pattern_from_qk(cache, layer), story_cache["pattern", layer],
                     what=f"attention_pattern_from_qk(cache, {layer}) on a story (no batch dimension)")


@grades("attention_pattern_from_qk")
def test_attention_pattern_batched(student, hooked, rep_cache):
    cache = student_cache(student, rep_cache)
    layer = hooked.cfg.n_layers - 1
    assert_close(student.attention_pattern_from_qk(cache, layer), rep_cache["pattern", layer],
                 what=f"attention_pattern_from_qk(cache, {layer}) on a batch of 4")


def synthetic_cache(hooked, seed: int, seq: int = 14) -> ActivationCache:
    """Random causal patterns; some heads pulled towards the current, previous or first token by random amounts."""
    g = torch.Generator().manual_seed(seed)
    n_heads = hooked.cfg.n_heads
    causal = torch.tril(torch.ones(seq, seq, dtype=torch.bool))
    targets = [torch.eye(seq), torch.diag(torch.ones(seq - 1), -1), torch.zeros(seq, seq).index_fill_(1, torch.tensor([0]), 1.0)]
    targets[1][0, 0] = 1.0
    cache = {}
    for layer in range(hooked.cfg.n_layers):
        scores = torch.randn(n_heads, seq, seq, generator=g) * 1.5
        pattern = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        kinds = torch.randint(0, 4, (n_heads,), generator=g)
        amounts = torch.rand(n_heads, generator=g) * 0.9 + 0.05
        for head in range(n_heads):
            if int(kinds[head]) < 3:
                a = float(amounts[head])
                pattern[head] = (1 - a) * pattern[head] + a * targets[int(kinds[head])]
        cache[f"blocks.{layer}.attn.hook_pattern"] = pattern.to(hooked.cfg.device)
    return ActivationCache(cache, hooked, has_batch_dim=False)


def _detector_tests(name):
    @grades(name, name=f"{name} on hand-made random patterns")
    def synthetic(student, reference, hooked, seed):
        for i, threshold in enumerate([0.4, 0.4, 0.25]):
            cache = synthetic_cache(hooked, seed + i)
            expected = sorted(getattr(reference, name)(cache, threshold=threshold))
            got = heads_list(getattr(student, name)(student_cache(student, cache), threshold=threshold), name)
            if got != expected:
                raise CheckFailed(f"{name}(cache, threshold={threshold}) on random patterns: expected {expected}, got {got}")

    @grades(name, name=f"{name} with a threshold just under the strongest head")
    def margin(student, reference, hooked, seed):
        # The threshold is found from the reference alone (no score is recomputed here): the
        # largest on a fine grid that still selects a head. An answer whose scores are off by a
        # few percent (averaging over the wrong number of positions) then misses that head.
        cache = synthetic_cache(hooked, seed + 3)
        threshold = next(t for t in torch.arange(0.99, 0.0, -0.002).tolist() if getattr(reference, name)(cache, threshold=t))
        expected = sorted(getattr(reference, name)(cache, threshold=threshold))
        got = heads_list(getattr(student, name)(student_cache(student, cache), threshold=threshold), name)
        if got != expected:
            raise CheckFailed(
                f"{name}(cache, threshold={threshold:.3f}) on random patterns, the threshold just under the strongest "
                f"head's score: expected {expected}, got {got}; check exactly which query positions you average over"
            )

    @grades(name, name=f"{name} on the model's patterns")
    def real(student, reference, story_cache):
        expected = sorted(getattr(reference, name)(story_cache))
        got = heads_list(getattr(student, name)(student_cache(student, story_cache)), name)
        if got != expected:
            raise CheckFailed(f"{name} on the model's attention on a story: expected {expected}, got {got}")

    return synthetic, margin, real


test_current_synthetic, test_current_margin, test_current_real = _detector_tests("current_attn_detector")
test_prev_synthetic, test_prev_margin, test_prev_real = _detector_tests("prev_attn_detector")
test_first_synthetic, test_first_margin, test_first_real = _detector_tests("first_attn_detector")


# ----------------------------------------------------------------------------- part 2


@grades("generate_repeated_tokens")
def test_generate_repeated_tokens_properties(student, hooked, seed):
    student.seed(seed)
    fn = student.generate_repeated_tokens
    tokens = fn(student.model, 25, 6)
    check_shape(tokens, (6, 51), "generate_repeated_tokens(model, seq_len=25, batch=6)")
    if tokens.dtype not in (torch.int64, torch.int32):
        raise CheckFailed(f"generate_repeated_tokens: tokens should be an integer tensor, got {tokens.dtype}")
    if not bool((tokens[:, 0] == hooked.tokenizer.bos_token_id).all()):
        raise CheckFailed("generate_repeated_tokens: every row must start with the BOS token")
    if not torch.equal(tokens[:, 1:26], tokens[:, 26:]):
        raise CheckFailed("generate_repeated_tokens: after BOS, the second half must repeat the first")
    if len({tuple(r) for r in tokens.tolist()}) < 6:
        raise CheckFailed("generate_repeated_tokens: rows repeat each other; each row must be random")
    if tokens.min() < 0 or tokens.max() >= hooked.cfg.d_vocab:
        raise CheckFailed("generate_repeated_tokens: tokens outside the vocabulary")


@grades("generate_repeated_tokens")
def test_generate_repeated_tokens_uniform(student, hooked, seed):
    student.seed(seed + 1)
    draws = torch.cat([student.generate_repeated_tokens(student.model, 60, 10)[:, 1:61].flatten() for _ in range(3)])
    vocab = hooked.cfg.d_vocab
    expected_distinct = vocab * (1 - (1 - 1 / vocab) ** draws.numel())
    distinct = draws.unique().numel()
    if distinct < 0.8 * expected_distinct or draws.max() < 0.9 * vocab or draws.float().mean() < 0.4 * vocab:
        raise CheckFailed(
            f"generate_repeated_tokens: {draws.numel()} random tokens covered {distinct} distinct ids "
            f"(largest {int(draws.max())}); uniform draws over the vocabulary of {vocab} would cover about "
            f"{expected_distinct:.0f}. Draw from the whole vocabulary."
        )
    student.seed(seed)
    first = student.generate_repeated_tokens(student.model, 10, 2)
    again = student.generate_repeated_tokens(student.model, 10, 2)
    if torch.equal(first, again):
        raise CheckFailed("generate_repeated_tokens returns the same tokens on every call; use torch's random generator")


@grades("run_and_cache_model_repeated_tokens")
def test_run_and_cache(student, reference, hooked, seed):
    student.use_reference("generate_repeated_tokens", reference.generate_repeated_tokens)
    torch.manual_seed(seed)
    out = student.run_and_cache_model_repeated_tokens(student.model, 12, 3)
    if not (isinstance(out, tuple) and len(out) == 3):
        raise CheckFailed("run_and_cache_model_repeated_tokens should return a tuple (tokens, logits, cache)")
    tokens, logits, cache = out
    check_shape(tokens, (3, 25), "tokens returned by run_and_cache_model_repeated_tokens(model, 12, 3)")
    if not torch.equal(tokens[:, 1:13], tokens[:, 13:]):
        raise CheckFailed("run_and_cache_model_repeated_tokens: the returned tokens are not repeated random tokens")
    with torch.no_grad():
        expected_logits, expected_cache = hooked.run_with_cache(tokens)
    assert_close(logits, expected_logits, what="logits (the model run on the tokens you returned)")
    if getattr(cache, "remote_type", None) != "ActivationCache":
        raise CheckFailed(f"the third value returned should be an ActivationCache, got {getattr(cache, 'remote_type', type(cache).__name__)}")
    got = cache.cache_dict
    for layer in range(hooked.cfg.n_layers):
        key = f"blocks.{layer}.attn.hook_pattern"
        if key not in got:
            raise CheckFailed(f"the cache has no {key!r}")
        assert_close(got[key], expected_cache[key], what=f"cached {key} (the model run on the tokens you returned, batch dimension kept)")


@grades("get_log_probs")
def test_get_log_probs(student, reference, hooked, seed):
    r = gen(seed)
    logits = r(3, 9, hooked.cfg.d_vocab, scale=3.0)
    tokens = torch.randint(0, hooked.cfg.d_vocab, (3, 9), generator=torch.Generator().manual_seed(seed))
    assert_close(student.get_log_probs(logits, tokens), reference.get_log_probs(logits, tokens), what="get_log_probs on random logits")


@grades("get_log_probs")
def test_get_log_probs_model(student, reference, hooked, rep_tokens):
    with torch.no_grad():
        logits = hooked(rep_tokens)
    assert_close(student.get_log_probs(logits, rep_tokens), reference.get_log_probs(logits, rep_tokens),
                 what="get_log_probs on the model's logits for repeated tokens")


def reference_induction_scores(reference, model, tokens):
    reference.induction_score_store.zero_()
    with torch.no_grad():
        model.run_with_hooks(tokens, return_type=None, fwd_hooks=[
            (f"blocks.{layer}.attn.hook_pattern", reference.induction_score_hook) for layer in range(model.cfg.n_layers)])
    return reference.induction_score_store.clone()


@grades("induction_score_hook")
def test_induction_score_hook(student, reference, hooked, seed):
    for seq_len, batch in [(20, 4), (33, 2)]:
        tokens = repeated(hooked, seed + seq_len, seq_len, batch)
        expected = reference_induction_scores(reference, hooked, tokens)
        student.model.run_with_hooks(tokens, return_type=None, fwd_hooks=[
            (f"blocks.{layer}.attn.hook_pattern", student.induction_score_hook) for layer in range(hooked.cfg.n_layers)])
        assert_close(student.induction_score_store, expected, atol=1e-4, rtol=1e-3,
                     what=f"induction_score_store after running your hook on every layer (seq_len={seq_len}, batch={batch})")


def _scores(reference, model, seed, seq_len: int = 40, batch: int = 10):
    """Every head's induction score on the tokens the student's function will see (same seed)."""
    torch.manual_seed(seed)
    tokens = reference.generate_repeated_tokens(model, seq_len, batch)
    return reference_induction_scores(reference, model, tokens)


def _separating_threshold(scores) -> float:
    """A threshold derived from the reference scores that selects only *some* heads (between 2 and
    n_heads // 2 of them) and sits in the widest gap between consecutive scores there, so that
    float noise (~1e-6) cannot flip a head. Whichever heads these are, renumbering layer 1 moves them."""
    s = sorted(scores.flatten().tolist(), reverse=True)
    k = max(range(2, len(s) // 4 + 1), key=lambda i: s[i - 1] - s[i])
    return (s[k - 1] + s[k]) / 2


@fixture
def permuted(reference, hooked, profile, device, seed):
    """The same model with layer 1's heads renumbered so that the selected heads move (derived, not assumed)."""
    threshold = _separating_threshold(_scores(reference, hooked, seed))
    original = _find(reference, hooked, seed, threshold)
    g = torch.Generator().manual_seed(seed)
    for _ in range(50):
        perm = torch.randperm(hooked.cfg.n_heads, generator=g).tolist()
        moved = sorted(f"1.{perm.index(int(n[2:]))}" if n.startswith("1.") else n for n in original)
        if moved != original:
            break
    state = mi_helpers.permuted_heads_state_dict(hooked, 1, perm)
    other = mi_helpers.load_model(profile, device=str(device))
    other.set_use_attn_result(True)
    other.load_state_dict(state)
    return state, other, threshold


def _find(reference, model, seed, threshold: float = 0.4):
    torch.manual_seed(seed)
    with torch.no_grad():
        return sorted(reference.find_induction_heads(model, seq_len=40, batch=10, threshold=threshold))


@fixture
def induction_heads(reference, hooked, seed):
    """The reference's answer on the model: once per grading run, not per submission."""
    return _find(reference, hooked, seed)


@fixture
def renumbered_induction_heads(reference, permuted, seed):
    _, other, threshold = permuted
    return _find(reference, other, seed, threshold)


@grades("find_induction_heads")
def test_find_induction_heads(student, reference, induction_heads, seed):
    student.use_reference("generate_repeated_tokens", reference.generate_repeated_tokens)
    expected = induction_heads
    torch.manual_seed(seed)
    got = heads_list(student.find_induction_heads(student.model, seq_len=40, batch=10), "find_induction_heads")
    if got != expected:
        raise CheckFailed(f"find_induction_heads(model, seq_len=40, batch=10): expected {expected}, got {got}")


@grades("find_induction_heads")
def test_find_induction_heads_renumbered(student, reference, permuted, renumbered_induction_heads, seed):
    state, _, threshold = permuted
    student.use_reference("generate_repeated_tokens", reference.generate_repeated_tokens)
    student.model.load_state_dict(state)
    expected = renumbered_induction_heads
    torch.manual_seed(seed)
    got = heads_list(student.find_induction_heads(student.model, seq_len=40, batch=10, threshold=threshold),
                     "find_induction_heads")
    if got != expected:
        raise CheckFailed(
            f"find_induction_heads(model, seq_len=40, batch=10, threshold={threshold:.3f}) on a copy of the model "
            f"whose layer-1 heads are numbered differently: expected {expected}, got {got}. Compute the answer "
            "from the model and use the threshold you are given; never hard-code head indices."
        )


# ----------------------------------------------------------------------------- part 3


@grades("logit_attribution")
def test_logit_attribution_random(student, reference, seed):
    r = gen(seed)
    seq, n_heads, d_model, d_vocab = 7, 3, 10, 30
    args = (r(seq, d_model), r(seq, n_heads, d_model), r(seq, n_heads, d_model), r(d_model, d_vocab),
            torch.randint(0, d_vocab, (seq,), generator=torch.Generator().manual_seed(seed)))
    assert_close(student.logit_attribution(*args), reference.logit_attribution(*args), what="logit_attribution on random inputs")


@grades("logit_attribution")
def test_logit_attribution_model(student, reference, hooked, story_cache, story_tokens):
    args = (story_cache["embed"], story_cache["result", 0], story_cache["result", 1], hooked.W_U, story_tokens[0])
    assert_close(student.logit_attribution(*args), reference.logit_attribution(*args), atol=1e-4, rtol=1e-3,
                 what="logit_attribution on the model's activations for a story")


def _hooked_logits(model, tokens, hook_name, fn):
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=[(hook_name, fn)])


@grades("ablation_hooks", name="zero ablation hook")
def test_zero_ablation_hook(student, reference, hooked, rep_tokens):
    import functools

    for layer in range(hooked.cfg.n_layers):
        head = (3 * layer + 1) % hooked.cfg.n_heads
        name = f"blocks.{layer}.attn.hook_z"
        expected = _hooked_logits(hooked, rep_tokens, name, functools.partial(reference.head_zero_ablation_hook, head_index_to_ablate=head))
        hook = student.functools.partial(student.head_zero_ablation_hook, head_index_to_ablate=head)
        got = student.model.run_with_hooks(rep_tokens, fwd_hooks=[(name, hook)])
        assert_close(got, expected, what=f"logits with head {layer}.{head} zero-ablated by your hook")


@grades("ablation_hooks", name="mean ablation hook")
def test_mean_ablation_hook(student, reference, hooked, rep_tokens):
    import functools

    for layer in range(hooked.cfg.n_layers):
        head = (5 * layer + 2) % hooked.cfg.n_heads
        name = f"blocks.{layer}.attn.hook_z"
        expected = _hooked_logits(hooked, rep_tokens, name, functools.partial(reference.head_mean_ablation_hook, head_index_to_ablate=head))
        hook = student.functools.partial(student.head_mean_ablation_hook, head_index_to_ablate=head)
        got = student.model.run_with_hooks(rep_tokens, fwd_hooks=[(name, hook)])
        assert_close(got, expected, what=f"logits with head {layer}.{head} mean-ablated by your hook (batch of 4)")


def _ablation_setup(student, reference):
    for name in ("get_log_probs", "head_zero_ablation_hook", "head_mean_ablation_hook"):
        student.use_reference(name, getattr(reference, name))


@fixture
def ablation_scores(reference, hooked, rep_tokens):
    """The reference's scores for each ablation: once per grading run, not per submission."""
    with torch.no_grad():
        return {kind: reference.get_ablation_scores(hooked, rep_tokens, getattr(reference, f"head_{kind}_ablation_hook"))
                for kind in ("zero", "mean")}


@grades("get_ablation_scores")
def test_ablation_scores_zero(student, reference, ablation_scores, rep_tokens):
    _ablation_setup(student, reference)
    expected = ablation_scores["zero"]
    got = student.get_ablation_scores(student.model, rep_tokens, ablation_function=student.head_zero_ablation_hook)
    assert_close(got, expected, atol=1e-4, rtol=1e-3, what="get_ablation_scores with zero ablation")


@grades("get_ablation_scores")
def test_ablation_scores_mean(student, reference, ablation_scores, rep_tokens):
    _ablation_setup(student, reference)
    expected = ablation_scores["mean"]
    got = student.get_ablation_scores(student.model, rep_tokens, ablation_function=student.head_mean_ablation_hook)
    assert_close(got, expected, atol=1e-4, rtol=1e-3, what="get_ablation_scores with mean ablation")


# ----------------------------------------------------------------------------- part 4


def remote_factored(value, what):
    if getattr(value, "remote_type", None) != "FactoredMatrix":
        raise CheckFailed(f"{what}: expected a FactoredMatrix, got {getattr(value, 'remote_type', type(value).__name__)}")
    return value.A, value.B


@grades("get_full_ov_circuit")
def test_full_ov_circuit(student, reference, hooked, seed):
    probe = gen(seed)(hooked.cfg.d_vocab, 6).to(hooked.cfg.device)
    for layer, head in [(1, seed % hooked.cfg.n_heads), (0, (seed + 3) % hooked.cfg.n_heads)]:
        ref = reference.get_full_ov_circuit(hooked, layer, head)
        A, B = remote_factored(student.get_full_ov_circuit(student.model, layer, head), "get_full_ov_circuit")
        if A.shape[0] != hooked.cfg.d_vocab or B.shape[-1] != hooked.cfg.d_vocab:
            raise CheckFailed(f"get_full_ov_circuit: shape {(A.shape[0], B.shape[-1])}, expected ({hooked.cfg.d_vocab}, {hooked.cfg.d_vocab})")
        assert_close(A @ (B @ probe), ref.A @ (ref.B @ probe), atol=1e-3, rtol=1e-3,
                     what=f"full OV circuit of head {layer}.{head} times random vectors")


@grades("top_1_acc")
def test_top_1_acc_synthetic(student, reference, seed):
    r = gen(seed)
    left = r(301, 16)
    A, B = left, left.T + r(16, 301, scale=0.35)
    for batch_size in (64, 301, 1000):
        expected = reference.top_1_acc(FactoredMatrix(A, B), batch_size=batch_size)
        got = check_float(student.top_1_acc(student.FactoredMatrix(A, B), batch_size=batch_size), "top_1_acc")
        assert_close(torch.tensor(got), torch.tensor(float(expected)), atol=1e-9, rtol=0,
                     what=f"top_1_acc on a 301x301 factored matrix, batch_size={batch_size}")


@grades("top_1_acc")
def test_top_1_acc_model(student, reference, hooked, seed):
    torch.manual_seed(seed)
    scores = reference_induction_scores(reference, hooked, repeated(hooked, seed, 30, 6))
    layer, head = divmod(int(scores.flatten().argmax()), hooked.cfg.n_heads)
    fm = reference.get_full_ov_circuit(hooked, layer, head)
    expected = reference.top_1_acc(fm, batch_size=200)
    got = check_float(student.top_1_acc(student.FactoredMatrix(fm.A, fm.B), batch_size=200), "top_1_acc")
    assert_close(torch.tensor(got), torch.tensor(float(expected)), atol=1e-9, rtol=0,
                 what=f"top_1_acc of the full OV circuit of head {layer}.{head}")


@grades("pos_by_pos_pattern")
def test_pos_by_pos_pattern(student, reference, hooked):
    for head in range(hooked.cfg.n_heads):
        expected = reference.pos_by_pos_pattern(hooked, 0, head)
        assert_close(student.pos_by_pos_pattern(student.model, 0, head), expected, atol=1e-5, rtol=1e-3,
                     what=f"pos_by_pos_pattern(model, 0, {head})")


@grades("decompose_qk_input")
def test_decompose_qk_input_story(student, reference, story_cache):
    expected = reference.decompose_qk_input(story_cache)
    assert_close(student.decompose_qk_input(student_cache(student, story_cache)), expected, atol=1e-5, rtol=1e-4,
                 what="decompose_qk_input on a story")


@grades("decompose_qk_input")
def test_decompose_qk_input_repeated(student, reference, rep_cache):
    single = ActivationCache({k: v[1] for k, v in rep_cache.cache_dict.items()}, rep_cache.model, has_batch_dim=False)
    expected = reference.decompose_qk_input(single)
    assert_close(student.decompose_qk_input(student_cache(student, single)), expected, atol=1e-5, rtol=1e-4,
                 what="decompose_qk_input on repeated random tokens")


@grades("decompose_q_k")
def test_decompose_q_k(student, reference, hooked, story_cache):
    qk_input = reference.decompose_qk_input(story_cache)
    for head in (0, hooked.cfg.n_heads - 1, hooked.cfg.n_heads // 2):
        assert_close(student.decompose_q(qk_input, head, student.model), reference.decompose_q(qk_input, head, hooked),
                     atol=1e-5, rtol=1e-4, what=f"decompose_q for head 1.{head}")
        assert_close(student.decompose_k(qk_input, head, student.model), reference.decompose_k(qk_input, head, hooked),
                     atol=1e-5, rtol=1e-4, what=f"decompose_k for head 1.{head}")


@grades("decompose_attn_scores")
def test_decompose_attn_scores(student, reference, seed):
    r = gen(seed)
    for n_q, n_k, seq, d_head in [(4, 3, 6, 16), (10, 10, 9, 8)]:
        dq, dk = r(n_q, seq, d_head), r(n_k, seq, d_head)
        assert_close(student.decompose_attn_scores(dq, dk), reference.decompose_attn_scores(dq, dk),
                     what=f"decompose_attn_scores with {n_q} query and {n_k} key components, d_head={d_head}")


@grades("get_comp_score")
def test_get_comp_score(student, reference, seed):
    r = gen(seed)
    for shape_a, shape_b in [((12, 12), (12, 12)), ((9, 5), (5, 7)), ((16, 16), (16, 16))]:
        a, b = r(*shape_a), r(*shape_b)
        if shape_a == (16, 16):
            a[:, 8:] = 0.0  # partly aligned: rank-deficient writer
        expected = reference.get_comp_score(a, b)
        got = check_float(student.get_comp_score(a, b), "get_comp_score")
        assert_close(torch.tensor(got), torch.tensor(float(expected)), what=f"get_comp_score of matrices of shapes {shape_a} and {shape_b}")


@fixture
def composition_scores(reference, hooked):
    return reference.composition_scores(hooked)


@grades("composition_scores")
def test_composition_scores(student, reference, composition_scores):
    student.use_reference("get_comp_score", reference.get_comp_score)
    expected = composition_scores
    got = student.composition_scores(student.model)
    if not isinstance(got, dict) or sorted(got) != ["K", "Q", "V"]:
        raise CheckFailed(f"composition_scores should return a dict with keys 'Q', 'K', 'V', got {str(got)[:100]}")
    for kind in "QKV":
        assert_close(got[kind], expected[kind], atol=1e-5, rtol=1e-4, what=f"composition_scores(model)[{kind!r}]")


RANDOM_COMP_SHAPE = (48, 8)  # d_model, d_head


@fixture
def random_comp_scores(reference, seed):
    """1500 scores of the reference's random matrices: drawn once per grading run, not per submission."""
    torch.manual_seed(seed)
    return torch.tensor([reference.generate_single_random_comp_score(*RANDOM_COMP_SHAPE) for _ in range(1500)])


@grades("generate_single_random_comp_score")
def test_random_comp_score_distribution(student, reference, random_comp_scores, seed):
    student.use_reference("get_comp_score", reference.get_comp_score)
    d_model, d_head = RANDOM_COMP_SHAPE
    ref = random_comp_scores
    student.seed(seed)
    values = student.generate_single_random_comp_score.repeat(300, d_model, d_head)
    values = torch.tensor([check_float(v, "generate_single_random_comp_score") for v in values])
    if values.std() < 1e-6:
        raise CheckFailed("generate_single_random_comp_score returns the same value on every call; draw new random matrices each time")
    allowed = 5 * ref.std() * (1 / 300 + 1 / 1500) ** 0.5 + 1e-3
    if abs(values.mean() - ref.mean()) > allowed:
        raise CheckFailed(
            f"generate_single_random_comp_score({d_model}, {d_head}): your 300 scores average {values.mean():.4f}; "
            f"scores of random rank-{d_head} matrices built as described average {ref.mean():.4f} (allowed deviation ±{allowed:.4f})"
        )


@grades("get_batched_comp_scores")
def test_batched_comp_scores_random(student, reference, seed):
    r = gen(seed)
    A1, B1, A2, B2 = r(4, 12, 3), r(4, 3, 12), r(3, 12, 3), r(3, 3, 12)
    expected = reference.get_batched_comp_scores(FactoredMatrix(A1, B1), FactoredMatrix(A2, B2))
    got = student.get_batched_comp_scores(student.FactoredMatrix(A1, B1), student.FactoredMatrix(A2, B2))
    assert_close(got, expected, atol=1e-5, rtol=1e-4, what="get_batched_comp_scores on random stacks of 4 and 3 matrices")


@grades("get_batched_comp_scores")
def test_batched_comp_scores_model(student, reference, hooked):
    ov0, qk1 = hooked.OV[0], hooked.QK[1].T
    expected = reference.get_batched_comp_scores(ov0, qk1)
    got = student.get_batched_comp_scores(student.FactoredMatrix(ov0.A, ov0.B), student.FactoredMatrix(qk1.A, qk1.B))
    assert_close(got, expected, atol=1e-5, rtol=1e-4, what="get_batched_comp_scores of layer-0 OV with layer-1 QK.T (K-composition)")
