"""Public tests for section 1.2: call ``check("exercise_name")`` in the notebook.

They compare your functions with independent computations (TransformerLens's
own cache, loops, weights edited by hand) on the notebook's ``model``, and
check properties every correct answer has. They are a subset of what grading
checks; passing them is a good sign, not a guarantee.
"""

from __future__ import annotations

import copy

import torch

from autograder.checks import CheckFailed, assert_close, assert_equal, check_shape
from autograder.public_checks import PublicChecks

CHECKS = PublicChecks(no_grad=True)
register, check = CHECKS.register, CHECKS.check
_CACHE: dict[str, object] = {}


# ----------------------------------------------------------------------------- shared inputs


def _fn(g: dict, name: str):
    if name not in g:
        raise KeyError(name)
    return g[name]


def _model(g: dict):
    return _fn(g, "model")


def _story_cache(g: dict):
    """The notebook model's cache on a story (no batch dimension), computed once."""
    key = ("story", id(_model(g)))
    if key not in _CACHE:
        from mi_helpers import story_prompt

        model = _model(g)
        tokens = model.to_tokens(story_prompt())
        _, cache = model.run_with_cache(tokens, remove_batch_dim=True)
        _CACHE[key] = (tokens[0], cache)
    return _CACHE[key]


def _repeated(g: dict, seq_len: int = 20, batch: int = 4, seed: int = 7):
    """BOS + random tokens twice, built here (not with your generator)."""
    model = _model(g)
    gen = torch.Generator().manual_seed(seed)
    half = torch.randint(1, model.cfg.d_vocab, (batch, seq_len), generator=gen)
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id)
    return torch.cat([bos, half, half], dim=1).to(model.cfg.device)


def _single_cache(g: dict, tokens):
    model = _model(g)
    _, cache = model.run_with_cache(tokens[:1], remove_batch_dim=True)
    return cache


def _induction_scores_by_loop(pattern_by_layer, seq_len: int):
    """Average attention from each second-copy position to the token after its first occurrence."""
    rows = []
    for pattern in pattern_by_layer:  # batch head q k
        total = 0.0
        for j in range(1, seq_len + 1):  # second copy: position seq_len + j holds token j
            total = total + pattern[:, :, seq_len + j, j + 1 if j < seq_len else seq_len + 1]
        rows.append((total / seq_len).mean(0))
    return torch.stack(rows)


def _as_heads(names, what: str) -> list[str]:
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise CheckFailed(f"{what}: expected a list of strings like '1.4', got {str(names)[:120]}")
    return sorted(names)


# ----------------------------------------------------------------------------- part 1


@register("count_correct_predictions")
def _check_count_correct(g):
    model = _model(g)
    tokens = _repeated(g, seq_len=15, batch=3)
    logits = model(tokens)
    expected = 0
    for b in range(tokens.shape[0]):
        for i in range(tokens.shape[1] - 1):
            expected += int(int(logits[b, i].argmax()) == int(tokens[b, i + 1]))
    got = _fn(g, "count_correct_predictions")(model, tokens)
    assert_equal(int(got), expected, what="count_correct_predictions on repeated random tokens (batch of 3)")


@register("attention_pattern_from_qk")
def _check_attention_pattern(g):
    fn = _fn(g, "attention_pattern_from_qk")
    _, cache = _story_cache(g)
    for layer in range(_model(g).cfg.n_layers):
        assert_close(fn(cache, layer), cache["pattern", layer], what=f"attention_pattern_from_qk(cache, {layer}) vs the cached pattern")
    _, batched = _model(g).run_with_cache(_repeated(g, 6, 2))
    assert_close(fn(batched, 1), batched["pattern", 1], what="attention_pattern_from_qk on a cache with a batch dimension")


def _synthetic_cache(g, kinds: dict[tuple[int, int], str], seq: int = 12):
    """A cache whose patterns are uniform over allowed keys, except the listed heads."""
    from transformer_lens import ActivationCache

    model = _model(g)
    n_heads = model.cfg.n_heads
    base = torch.tril(torch.ones(seq, seq))
    base = base / base.sum(-1, keepdim=True)
    targets = {
        "current": torch.eye(seq),
        "prev": torch.diag(torch.ones(seq - 1), -1) + torch.eye(seq) * (torch.arange(seq) == 0)[:, None],
        "first": torch.zeros(seq, seq).index_fill_(1, torch.tensor([0]), 1.0),
    }
    cache = {}
    for layer in range(model.cfg.n_layers):
        pattern = base.repeat(n_heads, 1, 1)
        for (lay, head), kind in kinds.items():
            if lay == layer:
                pattern[head] = targets[kind]
        cache[f"blocks.{layer}.attn.hook_pattern"] = pattern.to(model.cfg.device)
    return ActivationCache(cache, model, has_batch_dim=False)


def _detector_check(g, name: str, kind: str):
    model = _model(g)
    H = model.cfg.n_heads
    layout = {(0, 1): "current", (0, 2 % H): "prev", (1, 0): "first", (1, 3 % H): "current", (1, 5 % H): "prev", (0, 4 % H): "first"}
    cache = _synthetic_cache(g, layout)
    expected = sorted(f"{l}.{h}" for (l, h), k in layout.items() if k == kind)
    got = _as_heads(_fn(g, name)(cache), name)
    if got != expected:
        raise CheckFailed(
            f"{name}: on hand-made patterns where exactly the heads {expected} attend to the {kind} token, "
            f"your detector returned {got}."
        )


@register("current_attn_detector")
def _check_current(g):
    _detector_check(g, "current_attn_detector", "current")


@register("prev_attn_detector")
def _check_prev(g):
    _detector_check(g, "prev_attn_detector", "prev")


@register("first_attn_detector")
def _check_first(g):
    _detector_check(g, "first_attn_detector", "first")


# ----------------------------------------------------------------------------- part 2


@register("generate_repeated_tokens")
def _check_generate(g):
    model = _model(g)
    fn = _fn(g, "generate_repeated_tokens")
    torch.manual_seed(0)
    tokens = fn(model, 30, 4)
    check_shape(tokens, (4, 61), "generate_repeated_tokens(model, 30, batch=4)")
    if tokens.dtype not in (torch.int64, torch.int32):
        raise CheckFailed(f"generate_repeated_tokens: tokens should be integers, got {tokens.dtype}")
    if not bool((tokens[:, 0] == model.tokenizer.bos_token_id).all()):
        raise CheckFailed("generate_repeated_tokens: every row must start with the BOS token")
    if not torch.equal(tokens[:, 1:31], tokens[:, 31:]):
        raise CheckFailed("generate_repeated_tokens: the second half must repeat the first (after BOS)")
    if tokens.min() < 0 or tokens.max() >= model.cfg.d_vocab:
        raise CheckFailed("generate_repeated_tokens: tokens outside the vocabulary")
    if torch.equal(tokens[0], tokens[1]):
        raise CheckFailed("generate_repeated_tokens: all rows are the same; each row should be random")
    many = torch.cat([fn(model, 50, 8)[:, 1:51] for _ in range(3)]).flatten()
    if many.unique().numel() < 0.4 * min(model.cfg.d_vocab, many.numel()):
        raise CheckFailed("generate_repeated_tokens: too few distinct tokens; draw uniformly from the whole vocabulary")


@register("run_and_cache_model_repeated_tokens")
def _check_run_and_cache(g):
    model = _model(g)
    torch.manual_seed(1)
    out = _fn(g, "run_and_cache_model_repeated_tokens")(model, 10, 3)
    if not (isinstance(out, tuple) and len(out) == 3):
        raise CheckFailed("run_and_cache_model_repeated_tokens should return (tokens, logits, cache)")
    tokens, logits, cache = out
    check_shape(tokens, (3, 21), "tokens")
    expected_logits, expected_cache = model.run_with_cache(tokens)
    assert_close(logits, expected_logits, what="logits (compared with running the model on your tokens)")
    for layer in range(model.cfg.n_layers):
        assert_close(cache["pattern", layer], expected_cache["pattern", layer], what=f"cached pattern of layer {layer}")


@register("get_log_probs")
def _check_log_probs(g):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 7, 11, generator=gen) * 3
    tokens = torch.randint(0, 11, (2, 7), generator=gen)
    expected = -torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    assert_close(_fn(g, "get_log_probs")(logits, tokens), expected, what="get_log_probs on random logits")


@register("induction_score_hook")
def _check_induction_hook(g):
    model = _model(g)
    store = _fn(g, "induction_score_store")
    hook = _fn(g, "induction_score_hook")
    seq_len = 20
    tokens = _repeated(g, seq_len, 4)
    store.zero_()
    model.run_with_hooks(tokens, return_type=None,
                         fwd_hooks=[(f"blocks.{l}.attn.hook_pattern", hook) for l in range(model.cfg.n_layers)])
    _, cache = model.run_with_cache(tokens)
    expected = _induction_scores_by_loop([cache["pattern", l] for l in range(model.cfg.n_layers)], seq_len)
    assert_close(store.clone(), expected, what="induction_score_store after running your hook on every layer")


def _permuted_model(model, layer: int):
    from mi_helpers import permuted_heads_state_dict

    perm = list(range(model.cfg.n_heads))[::-1]
    other = copy.deepcopy(model)
    other.load_state_dict(permuted_heads_state_dict(model, layer, perm))
    return other, perm


@register("find_induction_heads")
def _check_find_induction_heads(g):
    model = _model(g)
    fn = _fn(g, "find_induction_heads")
    seq_len = 30
    tokens = _repeated(g, seq_len, 8)
    _, cache = model.run_with_cache(tokens)
    scores = _induction_scores_by_loop([cache["pattern", l] for l in range(model.cfg.n_layers)], seq_len)
    expected = sorted(f"{l}.{h}" for l, h in (scores > 0.4).nonzero().tolist())
    torch.manual_seed(0)
    got = _as_heads(fn(model, seq_len=seq_len, batch=8), "find_induction_heads")
    if got != expected:
        raise CheckFailed(f"find_induction_heads(model): expected {expected} (scores computed here), got {got}")
    other, perm = _permuted_model(model, 1)
    moved = sorted(f"{l}.{perm.index(h)}" if l == 1 else f"{l}.{h}" for l, h in (scores > 0.4).nonzero().tolist())
    got = _as_heads(fn(other, seq_len=seq_len, batch=8), "find_induction_heads")
    if got != moved:
        raise CheckFailed(
            f"find_induction_heads: on a copy of the model whose layer-1 heads are numbered in reverse, expected "
            f"{moved}, got {got}. Compute the answer; don't hard-code head indices."
        )


# ----------------------------------------------------------------------------- part 3


@register("logit_attribution")
def _check_logit_attribution(g):
    gen = torch.Generator().manual_seed(5)
    seq, n_heads, d_model, d_vocab = 6, 3, 8, 20
    embed = torch.randn(seq, d_model, generator=gen)
    l1 = torch.randn(seq, n_heads, d_model, generator=gen)
    l2 = torch.randn(seq, n_heads, d_model, generator=gen)
    W_U = torch.randn(d_model, d_vocab, generator=gen)
    tokens = torch.randint(0, d_vocab, (seq,), generator=gen)
    expected = torch.zeros(seq - 1, 1 + 2 * n_heads)
    for i in range(seq - 1):
        column = W_U[:, tokens[i + 1]]
        expected[i, 0] = embed[i] @ column
        for h in range(n_heads):
            expected[i, 1 + h] = l1[i, h] @ column
            expected[i, 1 + n_heads + h] = l2[i, h] @ column
    assert_close(_fn(g, "logit_attribution")(embed, l1, l2, W_U, tokens), expected, what="logit_attribution on random inputs")


@register("ablation_hooks")
def _check_ablation_hooks(g):
    model = _model(g)
    tokens = _repeated(g, 8, 3)
    layer, head = 1, 2 % model.cfg.n_heads
    hook = functools_partial(_fn(g, "head_zero_ablation_hook"), head)
    got = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])
    edited = copy.deepcopy(model)
    edited.blocks[layer].attn.W_O[head] = 0.0
    assert_close(got, edited(tokens), what="logits with your zero-ablation hook vs. with that head's W_O set to zero")
    gen = torch.Generator().manual_seed(11)
    z = torch.randn(4, 5, 3, 2, generator=gen)
    out = _fn(g, "head_mean_ablation_hook")(z.clone(), None, head_index_to_ablate=1)
    expected = z.clone()
    for b in range(4):
        expected[b, :, 1] = z[:, :, 1].sum(0) / 4
    assert_close(out, expected, what="head_mean_ablation_hook on a random z (batch 4)")


def functools_partial(fn, head):
    import functools

    return functools.partial(fn, head_index_to_ablate=head)


@register("get_ablation_scores")
def _check_ablation_scores(g):
    model = _model(g)
    seq_len = 10
    tokens = _repeated(g, seq_len, 3)

    def loss(m):
        logp = m(tokens).log_softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
        return -logp[:, seq_len + 1:].mean()

    clean = loss(model)
    expected = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            edited = copy.deepcopy(model)
            edited.blocks[layer].attn.W_O[head] = 0.0
            expected[layer, head] = loss(edited) - clean
    got = _fn(g, "get_ablation_scores")(model, tokens)
    assert_close(torch.as_tensor(got).cpu(), expected, atol=1e-4, rtol=1e-3,
                 what="get_ablation_scores (zero ablation) vs. zeroing each head's W_O")


# ----------------------------------------------------------------------------- part 4


def _probe(n: int, k: int = 4, seed: int = 0, device="cpu"):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed)).to(device)


def _as_factored(x, what: str):
    if type(x).__name__ != "FactoredMatrix":
        raise CheckFailed(f"{what}: expected a FactoredMatrix, got {type(x).__name__}")
    return x


@register("get_full_ov_circuit")
def _check_full_ov(g):
    model = _model(g)
    layer, head = 1, 3 % model.cfg.n_heads
    fm = _as_factored(_fn(g, "get_full_ov_circuit")(model, layer, head), "get_full_ov_circuit")
    check_shape(torch.empty(fm.shape), (model.cfg.d_vocab, model.cfg.d_vocab), "get_full_ov_circuit shape")
    v = _probe(model.cfg.d_vocab, device=model.cfg.device)
    expected = model.W_E @ (model.W_V[layer, head] @ (model.W_O[layer, head] @ (model.W_U @ v)))
    assert_close(fm.A @ (fm.B @ v), expected, atol=1e-3, rtol=1e-3, what="full OV circuit times random vectors")


@register("top_1_acc")
def _check_top_1(g):
    from transformer_lens import FactoredMatrix

    gen = torch.Generator().manual_seed(2)
    left = torch.randn(230, 12, generator=gen)
    matrix = FactoredMatrix(left, left.T + 0.3 * torch.randn(12, 230, generator=gen))
    dense = matrix.AB
    expected = sum(int(dense[i].argmax()) == i for i in range(230)) / 230
    for batch_size in (64, 230, 1000):
        got = _fn(g, "top_1_acc")(matrix, batch_size=batch_size)
        assert_close(torch.tensor(float(got)), torch.tensor(expected), atol=1e-9, rtol=0,
                     what=f"top_1_acc on a 230x230 matrix with batch_size={batch_size}")


@register("pos_by_pos_pattern")
def _check_pos_pattern(g):
    model = _model(g)
    head = 1 % model.cfg.n_heads
    got = _fn(g, "pos_by_pos_pattern")(model, 0, head)
    n = model.cfg.n_ctx
    check_shape(got, (n, n), "pos_by_pos_pattern")
    scores = (model.W_pos @ model.QK[0, head] @ model.W_pos.T).AB * model.cfg.d_head ** -0.5
    expected = _fn(g, "mask_scores")(scores).softmax(-1)
    assert_close(got, expected, atol=1e-4, rtol=1e-3, what="pos_by_pos_pattern(model, 0, head)")


def _constant_qk_input(model, cache):
    """ln1's bias plus the contribution of layer 0's b_O: what decompose_qk_input leaves out."""
    ln = model.blocks[1].ln1
    b_O = model.b_O[0] - model.b_O[0].mean()
    return ln.b + b_O / cache["scale", 1, "ln1"] * ln.w


@register("decompose_qk_input")
def _check_decompose_input(g):
    model = _model(g)
    tokens, cache = _story_cache(g)
    got = _fn(g, "decompose_qk_input")(cache)
    seq = tokens.shape[0]
    check_shape(got, (2 + model.cfg.n_heads, seq, model.cfg.d_model), "decompose_qk_input")
    assert_close(got[1], cache["pos_embed"], what="component 1 (the position embedding)")
    ln = model.blocks[1].ln1
    full_input = cache["normalized", 1, "ln1"] * ln.w + ln.b + cache["pos_embed"]
    assert_close(got.sum(0) + _constant_qk_input(model, cache), full_input, atol=1e-4, rtol=1e-3,
                 what="sum of your components + the constant parts vs. layer 1's query/key input")


@register("decompose_q_k")
def _check_decompose_q_k(g):
    model = _model(g)
    _, cache = _story_cache(g)
    qk_input = _fn(g, "decompose_qk_input")(cache)
    constant = _constant_qk_input(model, cache)
    for head in (0, model.cfg.n_heads - 1):
        dq = _fn(g, "decompose_q")(qk_input, head, model)
        dk = _fn(g, "decompose_k")(qk_input, head, model)
        q = dq.sum(0) + constant @ model.W_Q[1, head] + model.b_Q[1, head]
        k = dk.sum(0) + constant @ model.W_K[1, head] + model.b_K[1, head]
        assert_close(q, cache["q", 1][:, head], atol=1e-4, rtol=1e-3, what=f"decompose_q summed over components (head {head})")
        assert_close(k, cache["k", 1][:, head], atol=1e-4, rtol=1e-3, what=f"decompose_k summed over components (head {head})")


@register("decompose_attn_scores")
def _check_decompose_scores(g):
    gen = torch.Generator().manual_seed(4)
    dq, dk = torch.randn(3, 5, 4, generator=gen), torch.randn(2, 5, 4, generator=gen)
    got = _fn(g, "decompose_attn_scores")(dq, dk)
    check_shape(got, (3, 2, 5, 5), "decompose_attn_scores")
    assert_close(got.sum((0, 1)), dq.sum(0) @ dk.sum(0).T / 2.0, what="decomposed scores summed over all component pairs")
    assert_close(got[2, 1], dq[2] @ dk[1].T / 2.0, what="the term of query component 2 and key component 1")


@register("get_comp_score")
def _check_comp_score(g):
    fn = _fn(g, "get_comp_score")
    eye = torch.eye(16)
    assert_close(torch.tensor(float(fn(eye, eye))), torch.tensor(0.25), what="get_comp_score(I_16, I_16) (= 1/sqrt(16))")
    top, bottom = torch.zeros(16, 16), torch.zeros(16, 16)
    top[:8, :8], bottom[8:, 8:] = torch.randn(8, 8), torch.randn(8, 8)
    assert_close(torch.tensor(float(fn(top, bottom))), torch.tensor(0.0), atol=1e-6,
                 what="get_comp_score of matrices acting on orthogonal subspaces")
    gen = torch.Generator().manual_seed(9)
    a, b = torch.randn(10, 6, generator=gen), torch.randn(6, 7, generator=gen)
    expected = torch.linalg.matrix_norm(a @ b) / torch.linalg.matrix_norm(a) / torch.linalg.matrix_norm(b)
    assert_close(torch.tensor(float(fn(a, b))), expected, what="get_comp_score of random rectangular matrices")


@register("composition_scores")
def _check_composition_scores(g):
    model = _model(g)
    got = _fn(g, "composition_scores")(model)
    if not isinstance(got, dict) or sorted(got) != ["K", "Q", "V"]:
        raise CheckFailed("composition_scores should return a dict with keys 'Q', 'K', 'V'")
    n = model.cfg.n_heads
    for kind in "QKV":
        check_shape(got[kind], (n, n), f"composition_scores(model)[{kind!r}]")
    for i, j in [(0, 1 % n), (n - 1, 0)]:
        ov_a = model.OV[0, i]
        readers = {"Q": model.QK[1, j], "K": model.QK[1, j].T, "V": model.OV[1, j]}
        for kind, reader in readers.items():
            expected = (ov_a @ reader).norm() / (ov_a.norm() * reader.norm())
            assert_close(got[kind][i, j].reshape(()), expected.reshape(()), atol=1e-4, rtol=1e-3,
                         what=f"{kind}-composition of head 0.{i} with head 1.{j}")


@register("generate_single_random_comp_score")
def _check_random_comp(g):
    fn = _fn(g, "generate_single_random_comp_score")
    torch.manual_seed(0)
    values = torch.tensor([float(fn(64, 16)) for _ in range(200)])
    if not bool(((values > 0) & (values <= 1)).all()):
        raise CheckFailed("generate_single_random_comp_score: composition scores lie in (0, 1]")
    if values.std() < 1e-4:
        raise CheckFailed("generate_single_random_comp_score returns the same value every time; draw new matrices each call")
    gen = torch.Generator().manual_seed(1)
    ref = []
    for _ in range(400):  # Gaussian factors: the same distribution of scores up to small effects
        a = torch.randn(64, 16, generator=gen) @ torch.randn(16, 64, generator=gen)
        b = torch.randn(64, 16, generator=gen) @ torch.randn(16, 64, generator=gen)
        ref.append(float((a @ b).norm() / (a.norm() * b.norm())))
    ref = torch.tensor(ref)
    if abs(values.mean() - ref.mean()) > 0.1 * ref.mean():
        raise CheckFailed(
            f"generate_single_random_comp_score(64, 16): your scores average {values.mean():.4f}, but random "
            f"rank-16 matrices of shape (64, 64) average about {ref.mean():.4f}"
        )


@register("get_batched_comp_scores")
def _check_batched(g):
    from transformer_lens import FactoredMatrix

    gen = torch.Generator().manual_seed(6)
    A1, B1 = torch.randn(3, 10, 4, generator=gen), torch.randn(3, 4, 10, generator=gen)
    A2, B2 = torch.randn(2, 10, 4, generator=gen), torch.randn(2, 4, 10, generator=gen)
    got = _fn(g, "get_batched_comp_scores")(FactoredMatrix(A1, B1), FactoredMatrix(A2, B2))
    expected = torch.zeros(3, 2)
    for i in range(3):
        for j in range(2):
            x, y = A1[i] @ B1[i], A2[j] @ B2[j]
            expected[i, j] = torch.linalg.matrix_norm(x @ y) / (torch.linalg.matrix_norm(x) * torch.linalg.matrix_norm(y))
    assert_close(got, expected, atol=1e-4, rtol=1e-3, what="get_batched_comp_scores on random stacks (3 and 2 matrices)")
