"""Public tests for section 1.1: call ``check("exercise_name")`` in the notebook.

They check shapes, dtypes and agreement with independent implementations
(PyTorch built-ins, TransformerLens's GPT-2 on the same weights) and say what
is wrong. They are a subset of what grading checks; passing them is a good
sign, not a guarantee.
"""

from __future__ import annotations


import torch

from autograder.checks import CheckFailed, assert_close, check_shape
from autograder.public_checks import PublicChecks

CHECKS = PublicChecks()
register, check = CHECKS.register, CHECKS.check
_CACHE: dict[str, object] = {}


def prepare() -> None:
    """Load what the checks share, once: a warm grading worker calls this before it forks
    the programs that re-run these checks for feedback, so they inherit it."""
    demo_weights()


def lite_model():
    """The lite (or full, by AUTOGRADER_PROFILE) GPT-2 as a TransformerLens model, loaded once."""
    if "model" not in _CACHE:
        from tfs_helpers import PROFILE, load_hooked_gpt2

        _CACHE["model"] = load_hooked_gpt2(PROFILE)
    return _CACHE["model"]


def demo_weights():
    if "weights" not in _CACHE:
        from tfs_helpers import demo_state_dict

        _CACHE["weights"] = demo_state_dict(lite_model())
    return _CACHE["weights"]


def notebook_config(g: dict):
    """The notebook's Config, filled in from the lite model."""
    from tfs_helpers import config_kwargs

    return g["Config"](**config_kwargs(lite_model()))


def sub_state(prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in demo_weights().items() if k.startswith(prefix)}


def sample_tokens(batch: int = 2, length: int = 12) -> torch.Tensor:
    from tfs_helpers import PROFILE, load_tokenizer

    tok = load_tokenizer(PROFILE)
    texts = ["Once upon a time, a small fox lived in a garden.", "The owl went to the river to look for shells."]
    ids = [[tok.bos_token_id] + tok.encode(t) for t in texts[:batch]]
    return torch.tensor([i[:length] for i in ids])


# ----------------------------------------------------------------------------- part A: the model's modules
# (to be appended to public_tests.py; uses register, lite_model, demo_weights,
# notebook_config, sub_state, sample_tokens, CheckFailed, assert_close, check_shape)

import copy

import torch.nn.functional as F


def _lite_run():
    """Tokens and TransformerLens's cached activations on them, computed once."""
    if "run_a" not in _CACHE:
        toks = sample_tokens(2, 12)
        with torch.no_grad():
            logits_tl, act_cache = lite_model().run_with_cache(toks)
        _CACHE["run_a"] = (toks, logits_tl, act_cache)
    return _CACHE["run_a"]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _load_into(module, state: dict, what: str) -> None:
    """Load ``state`` into the student's module, explaining a mismatch of parameter names."""
    theirs = set(module.state_dict().keys())
    ours = set(state.keys())
    if theirs != ours:
        missing = sorted(ours - theirs)
        extra = sorted(theirs - ours)
        msg = f"{what}'s state dict does not have the expected entries."
        if missing:
            msg += f" Missing: {missing}."
        if extra:
            msg += f" Unexpected: {extra} (keep extra tensors as plain attributes, not parameters or persistent buffers)."
        raise CheckFailed(msg)
    for name, value in module.state_dict().items():
        check_shape(value, state[name].shape, f"{what}.{name}")
    module.load_state_dict(state)


def _scramble(module, seed: int, scale: float = 0.5):
    """Give every parameter of ``module`` random values (zero biases and unit scales hide bugs)."""
    gen = _generator(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return module


def _compare_on_random_weights(g, class_name: str, tl_module, seed: int, input_len: int, what: str,
                               keep=lambda name: True, tl_call=None) -> None:
    """Give a copy of TransformerLens's module random weights, load them into the student's class, compare outputs."""
    tl_module = _scramble(copy.deepcopy(tl_module), seed, scale=0.3)
    cfg = notebook_config(g)
    mine = g[class_name](cfg)
    _load_into(mine, {k: v for k, v in tl_module.state_dict().items() if keep(k)}, class_name)
    inp = torch.randn(2, input_len, cfg.d_model, generator=_generator(seed + 1))
    with torch.no_grad():
        want = tl_call(tl_module, inp) if tl_call else tl_module(inp)
        got = mine(inp)
    assert_close(got, want, what=f"{what} (compared with TransformerLens)")


@register("layernorm")
def _check_layernorm(g):
    cfg = notebook_config(g)
    ln = g["LayerNorm"](cfg)
    _load_into(ln, {"w": torch.ones(cfg.d_model), "b": torch.zeros(cfg.d_model)}, "LayerNorm")
    _scramble(ln, 11)
    w, b = ln.w.detach().clone(), ln.b.detach().clone()
    gen = _generator(12)
    inp = torch.randn(2, 5, cfg.d_model, generator=gen) * 2.5 + 1.0
    with torch.no_grad():
        got = ln(inp)
    want = F.layer_norm(inp, (cfg.d_model,), w, b, cfg.layer_norm_eps)
    assert_close(got, want, what="LayerNorm output on random inputs (compared with torch.nn.functional.layer_norm)")
    flat = torch.randn(3, 4, cfg.d_model, generator=gen) * 1e-3 - 0.3
    with torch.no_grad():
        got = ln(flat)
    want = F.layer_norm(flat, (cfg.d_model,), w, b, cfg.layer_norm_eps)
    assert_close(got, want, what="LayerNorm output on rows whose variance is close to eps (where does eps go?)")


@register("embed")
def _check_embed(g):
    cfg = notebook_config(g)
    emb = g["Embed"](cfg)
    _load_into(emb, sub_state("embed."), "Embed")
    toks, _, act_cache = _lite_run()
    with torch.no_grad():
        got = emb(toks)
    check_shape(got, (*toks.shape, cfg.d_model), "Embed output")
    assert_close(got, act_cache["hook_embed"], what="Embed output (compared with TransformerLens's hook_embed)")


@register("pos_embed")
def _check_pos_embed(g):
    cfg = notebook_config(g)
    pe = g["PosEmbed"](cfg)
    _load_into(pe, sub_state("pos_embed."), "PosEmbed")
    table = lite_model().pos_embed.W_pos.detach()
    gen = _generator(21)
    for n_batch, n_pos in [(3, 6), (1, 9), (2, cfg.n_ctx)]:
        toks = torch.randint(0, cfg.d_vocab, (n_batch, n_pos), generator=gen)
        with torch.no_grad():
            got = pe(toks)
        check_shape(got, (n_batch, n_pos, cfg.d_model), f"PosEmbed output for tokens of shape {(n_batch, n_pos)}")
        for i in range(n_batch):
            assert_close(got[i], table[:n_pos], what=f"PosEmbed output, sequence {i} of a batch of shape {(n_batch, n_pos)}")
    # It must not depend on the token values.
    a = torch.zeros(2, 5, dtype=torch.long)
    with torch.no_grad():
        diff = (pe(a) - pe(a + 7)).abs().max().item()
    if diff > 0:
        raise CheckFailed("PosEmbed output changes when the token ids change; it should only depend on positions.")


@register("apply_causal_mask")
def _check_apply_causal_mask(g):
    cfg = notebook_config(g)
    attn = g["Attention"](cfg)
    gen = _generator(31)
    n = 6
    scores = torch.randn(2, cfg.n_heads, n, n, generator=gen) * 3.0
    got = attn.apply_causal_mask(scores.clone())
    check_shape(got, scores.shape, "apply_causal_mask output")
    for qi in range(n):
        for ki in range(n):
            vals = got[:, :, qi, ki]
            if ki > qi and not bool((vals <= -1e4).all()):
                raise CheckFailed(
                    f"apply_causal_mask: the score of query {qi} for the later key {ki} is not masked; "
                    "keys after the query must get a very negative score (e.g. self.IGNORE)."
                )
            if ki <= qi and not torch.equal(vals, scores[:, :, qi, ki]):
                raise CheckFailed(
                    f"apply_causal_mask: the score of query {qi} for key {ki} changed, but a query may "
                    "attend to itself and to earlier keys: only keys strictly after the query are masked."
                )
    probs = got.softmax(dim=-1)
    if not torch.isfinite(probs).all():
        raise CheckFailed("apply_causal_mask: the softmax of your masked scores contains NaN or inf.")


@register("attention_forward")
def _check_attention_forward(g):
    cfg = notebook_config(g)
    toks, _, act_cache = _lite_run()
    attn = g["Attention"](cfg)
    _load_into(attn, sub_state("blocks.0.attn."), "Attention")
    with torch.no_grad():
        # (TransformerLens's hook_normalized is taken before the scale w and shift b, so apply ln1 here.)
        inp = lite_model().blocks[0].ln1(act_cache["blocks.0.hook_resid_pre"])
        got = attn(inp)
    check_shape(got, inp.shape, "Attention output")
    assert_close(got, act_cache["blocks.0.hook_attn_out"],
                 what="Attention output with layer 0's weights (compared with TransformerLens's blocks.0.hook_attn_out)")
    # Random weights and biases, so that a forgotten bias or scale shows up clearly.
    _compare_on_random_weights(
        g, "Attention", lite_model().blocks[0].attn, 32, 7, "Attention output with random weights and biases",
        keep=lambda name: name[:2] in ("W_", "b_"), tl_call=lambda attn, x: attn(x, x, x),
    )


@register("mlp")
def _check_mlp(g):
    cfg = notebook_config(g)
    toks, _, act_cache = _lite_run()
    mlp = g["MLP"](cfg)
    _load_into(mlp, sub_state("blocks.0.mlp."), "MLP")
    with torch.no_grad():
        got = mlp(lite_model().blocks[0].ln2(act_cache["blocks.0.hook_resid_mid"]))
    assert_close(got, act_cache["blocks.0.hook_mlp_out"],
                 what="MLP output with layer 0's weights (compared with TransformerLens's blocks.0.hook_mlp_out)")
    _compare_on_random_weights(g, "MLP", lite_model().blocks[0].mlp, 41, 5, "MLP output with random weights and biases")


@register("transformer_block")
def _check_transformer_block(g):
    cfg = notebook_config(g)
    toks, _, act_cache = _lite_run()
    last = cfg.n_layers - 1
    blk = g["TransformerBlock"](cfg)
    _load_into(blk, sub_state(f"blocks.{last}."), "TransformerBlock")
    with torch.no_grad():
        got = blk(act_cache[f"blocks.{last}.hook_resid_pre"])
    try:
        assert_close(got, act_cache[f"blocks.{last}.hook_resid_post"],
                     what=f"TransformerBlock output with block {last}'s weights (compared with TransformerLens's hook_resid_post)")
    except CheckFailed as exc:
        raise CheckFailed(f"{exc}\n  (this uses your LayerNorm, Attention and MLP: make sure their checks pass first)") from None


@register("unembed")
def _check_unembed(g):
    cfg = notebook_config(g)
    toks, logits_tl, act_cache = _lite_run()
    ue = g["Unembed"](cfg)
    _load_into(ue, sub_state("unembed."), "Unembed")
    with torch.no_grad():
        final_resid = act_cache[f"blocks.{cfg.n_layers - 1}.hook_resid_post"]
        got = ue(lite_model().ln_final(final_resid))
    check_shape(got, logits_tl.shape, "Unembed output")
    assert_close(got, logits_tl, what="Unembed output (compared with TransformerLens's logits)")
    # The model's b_U is all zeros; try a non-zero one.
    _compare_on_random_weights(
        g, "Unembed", lite_model().unembed, 51, 4, "Unembed output with a random W_U and a non-zero b_U"
    )


@register("demo_transformer")
def _check_demo_transformer(g):
    cfg = notebook_config(g)
    toks, logits_tl, _ = _lite_run()
    model = g["DemoTransformer"](cfg)
    _load_into(model, demo_weights(), "DemoTransformer")
    model.eval()
    with torch.no_grad():
        got = model(toks)
    check_shape(got, logits_tl.shape, "DemoTransformer output")
    try:
        assert_close(got, logits_tl, what="DemoTransformer logits (compared with TransformerLens's GPT-2 on the same weights)")
    except CheckFailed as exc:
        raise CheckFailed(f"{exc}\n  (this uses all your modules: make sure their checks pass first)") from None


# ----------------------------------------------------------------------------- part 2-4: training, sampling, KV cache
import math

# (appended to public_tests.py; relies on register, lite_model, sample_tokens, CheckFailed, assert_close, check_shape)


def _tfs_tokenizer():
    if "tokenizer" not in _CACHE:
        from tfs_helpers import PROFILE, load_tokenizer

        _CACHE["tokenizer"] = load_tokenizer(PROFILE)
    return _CACHE["tokenizer"]


def _as_int(value, what: str) -> int:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise CheckFailed(f"{what}: expected a single token id, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckFailed(f"{what}: expected a Python int (a token id), got {type(value).__name__} {value!r}")
    return value


def _draw_counts(fn, n: int, size: int, what: str, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    counts = torch.zeros(size, dtype=torch.float64)
    for _ in range(n):
        token = _as_int(fn(), what)
        if not 0 <= token < size:
            raise CheckFailed(f"{what}: drew token id {token}, outside the vocabulary [0, {size})")
        counts[token] += 1
    return counts


def _compare_frequencies(counts: torch.Tensor, probs: torch.Tensor, what: str) -> None:
    n = counts.sum()
    freqs = counts / n
    for token in range(len(probs)):
        p = float(probs[token])
        if p == 0 and counts[token] > 0:
            raise CheckFailed(
                f"{what}: drew token {token} {int(counts[token])} times out of {int(n)}, but it should never be drawn"
            )
        allowed = 5 * math.sqrt(p * (1 - p) / float(n)) + 0.01
        if abs(float(freqs[token]) - p) > allowed:
            raise CheckFailed(
                f"{what}: token {token} was drawn with frequency {float(freqs[token]):.3f}, "
                f"but its probability is {p:.3f}"
            )


# Probabilities with a clear order, spread over a small vocabulary (ids are not sorted by probability).
_SMALL_PROBS = torch.tensor([0.05, 0.30, 0.02, 0.20, 0.15, 0.01, 0.12, 0.10, 0.04, 0.01])


@register("get_log_probs")
def _check_get_log_probs(g: dict) -> None:
    fn = g["get_log_probs"]
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 11, generator=gen) * 3
    tokens = torch.randint(0, 11, (2, 6), generator=gen)
    out = fn(logits, tokens)
    check_shape(out, (2, 5), "get_log_probs(logits of shape (2, 6, 11), tokens of shape (2, 6))")
    # Independent: cross-entropy of the prediction at i against the token at i + 1, one position at a time.
    expected = torch.stack(
        [-torch.nn.functional.cross_entropy(logits[:, pos], tokens[:, pos + 1], reduction="none") for pos in range(5)],
        dim=1,
    )
    if torch.allclose(out, expected.exp(), atol=1e-4):
        raise CheckFailed("get_log_probs: you returned probabilities; return their logarithm (use log_softmax).")
    wrong_shift = torch.stack(
        [-torch.nn.functional.cross_entropy(logits[:, pos + 1], tokens[:, pos + 1], reduction="none") for pos in range(5)],
        dim=1,
    )
    if torch.allclose(out, wrong_shift, atol=1e-4):
        raise CheckFailed(
            "get_log_probs: entry [b, i] should use the logits at position i (which predict token i + 1), "
            "but you used the logits at position i + 1."
        )
    assert_close(out, expected, what="get_log_probs output")


class _BigramModel(torch.nn.Module):
    """A tiny stand-in language model: the logits for the next token depend only on the current token."""

    def __init__(self, vocab: int = 7):
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, generator=gen))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table[tokens]


@register("training_step")
def _check_training_step(g: dict) -> None:
    fn = g["training_step"]
    gen = torch.Generator().manual_seed(2)
    tokens = torch.randint(0, 7, (3, 9), generator=gen)
    model = _BigramModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    # The same steps, computed here by hand with plain SGD.
    table = _BigramModel().table.detach().clone()
    for step in (1, 2):
        leaf = table.clone().requires_grad_(True)
        flat_logits = leaf[tokens[:, :-1]].reshape(-1, 7)
        target = torch.nn.functional.cross_entropy(flat_logits, tokens[:, 1:].reshape(-1))
        target.backward()
        table = table - 0.5 * leaf.grad
        loss = fn(model, opt, tokens)
        if not isinstance(loss, torch.Tensor):
            raise CheckFailed(f"training_step: return the loss as a tensor, got {type(loss).__name__}")
        if loss.requires_grad:
            raise CheckFailed("training_step: detach the loss you return from the computation graph")
        assert_close(loss.reshape(()), target.detach(), what=f"loss returned by training_step (step {step})")
        if step == 1 and torch.allclose(model.table.detach(), _BigramModel().table.detach()):
            raise CheckFailed("training_step: the parameters did not change; did you let the optimizer take its step?")
        try:
            assert_close(model.table.detach(), table, what=f"parameters after step {step}")
        except CheckFailed as exc:
            hint = (" The first step was right, so the gradients probably accumulated: "
                    "reset them (zero_grad) once per step.") if step == 2 else ""
            raise CheckFailed(f"training_step: {exc}{hint}") from None


def _sampler_class(g: dict):
    return g["TransformerSampler"]


@register("greedy_search")
def _check_greedy_search(g: dict) -> None:
    fn = _sampler_class(g).greedy_search
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        logits = torch.randn(50, generator=gen)
        best = max(range(50), key=lambda i: float(logits[i]))
        got = _as_int(fn(logits), "greedy_search")
        if got != best:
            raise CheckFailed(f"greedy_search: returned token {got}, but the most likely token is {best}")


@register("apply_temperature")
def _check_apply_temperature(g: dict) -> None:
    fn = _sampler_class(g).apply_temperature
    logits = torch.tensor([2.0, -1.0, 0.5, 4.0])
    for temperature, expected in [(2.0, [1.0, -0.5, 0.25, 2.0]), (0.5, [4.0, -2.0, 1.0, 8.0])]:
        got = fn(logits.clone(), temperature)
        assert_close(got, torch.tensor(expected), what=f"apply_temperature(logits, temperature={temperature})")
    print("  (the entropy of softmax(logits / T) grows with T: low T is close to greedy, high T to uniform)")


@register("apply_frequency_penalty")
def _check_apply_frequency_penalty(g: dict) -> None:
    fn = _sampler_class(g).apply_frequency_penalty
    input_ids = torch.tensor([4, 1, 4, 0, 4, 1])
    logits = torch.tensor([0.5, 1.0, -1.0, 2.0, 3.0, 0.0, 1.5])
    got = fn(input_ids, logits.clone(), 0.25)
    # token 0 once, token 1 twice, token 4 three times; tokens 2, 3, 5, 6 never (and token 6 is past max(input_ids)).
    expected = torch.tensor([0.25, 0.5, -1.0, 2.0, 2.25, 0.0, 1.5])
    check_shape(got, (7,), "apply_frequency_penalty output (one logit per vocabulary item: use minlength)")
    assert_close(got, expected, what="apply_frequency_penalty(input_ids, logits, freq_penalty=0.25)")


@register("sample_basic")
def _check_sample_basic(g: dict) -> None:
    fn = _sampler_class(g).sample_basic
    logits = _SMALL_PROBS.log() + 1.7  # a constant shift changes nothing
    counts = _draw_counts(lambda: fn(logits), 2000, len(logits), "sample_basic")
    _compare_frequencies(counts, _SMALL_PROBS, "sample_basic")


@register("top_k_sampling")
def _check_top_k_sampling(g: dict) -> None:
    fn = _sampler_class(g).top_k_sampling
    logits = _SMALL_PROBS.log()
    for k in (1, 3):
        keep = _SMALL_PROBS >= sorted(_SMALL_PROBS.tolist(), reverse=True)[k - 1]
        probs = torch.where(keep, _SMALL_PROBS, torch.zeros_like(_SMALL_PROBS))
        counts = _draw_counts(lambda: fn(logits, k), 1500, len(logits), f"top_k_sampling(k={k})", seed=k)
        _compare_frequencies(counts, probs / probs.sum(), f"top_k_sampling(k={k})")


@register("top_p_sampling")
def _check_top_p_sampling(g: dict) -> None:
    fn = _sampler_class(g).top_p_sampling
    logits = _SMALL_PROBS.log()
    # sorted: 0.30 (id 1), 0.20 (id 3), 0.15 (id 4), 0.12 (id 6), ...
    cases = [
        (dict(top_p=0.45), [1, 3], "0.30 < 0.45, so the token that crosses the threshold (0.20) is kept too"),
        (dict(top_p=0.5), [1, 3], "0.30 + 0.20 reaches 0.5: nothing more is needed"),
        (dict(top_p=0.6), [1, 3, 4], ""),
        (dict(top_p=0.1, min_tokens_to_keep=3), [1, 3, 4], "min_tokens_to_keep=3"),
    ]
    for kwargs, kept, note in cases:
        probs = torch.zeros_like(_SMALL_PROBS)
        probs[kept] = _SMALL_PROBS[kept]
        label = f"top_p_sampling({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
        counts = _draw_counts(lambda: fn(logits, **kwargs), 1500, len(logits), label, seed=7)
        try:
            _compare_frequencies(counts, probs / probs.sum(), label)
        except CheckFailed as exc:
            drawn = sorted(int(i) for i in torch.nonzero(counts).flatten())
            raise CheckFailed(f"{exc}. Expected to draw from tokens {kept} ({note or 'see the text above'}), "
                              f"you drew tokens {drawn}.") from None


class _ScriptedModel(torch.nn.Module):
    """A fake model whose greedy choice at each length follows a script (used to test stopping)."""

    def __init__(self, script: list[int], start_len: int, vocab: int, n_ctx: int = 64):
        super().__init__()
        import types

        self.cfg = types.SimpleNamespace(n_ctx=n_ctx, d_vocab=vocab)
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.script = script
        self.start_len = start_len

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, length = tokens.shape
        logits = torch.zeros(batch, length, self.cfg.d_vocab)
        step = min(length - self.start_len, len(self.script) - 1)
        logits[:, -1, self.script[step]] = 5.0
        return logits


def _greedy_reference(model, tokenizer, prompt: str, n: int, banned_ngram: int | None = None):
    """Greedy decoding written independently: (sum of log-probs, text without BOS)."""
    seq = [tokenizer.bos_token_id] + tokenizer.encode(prompt)
    total = 0.0
    with torch.no_grad():
        for _ in range(n):
            lp = model(torch.tensor([seq[-model.cfg.n_ctx:]]))[0, -1].log_softmax(-1)
            if banned_ngram:
                m = banned_ngram
                for start in range(0, len(seq) - m + 1):
                    if tuple(seq[start:start + m - 1]) == tuple(seq[len(seq) - m + 1:]):
                        lp[seq[start + m - 1]] = -math.inf
            choice = int(torch.argmax(lp))
            total += float(lp[choice])
            seq.append(choice)
            if choice == tokenizer.eos_token_id:
                break
    return total, tokenizer.decode(seq[1:])


@register("sample")
def _check_sample(g: dict) -> None:
    tokenizer = _tfs_tokenizer()
    cls = _sampler_class(g)
    model = lite_model()
    prompt = "The little bird"
    got = cls(model, tokenizer).sample(prompt, max_tokens_generated=15, temperature=0.0)
    if not isinstance(got, str):
        raise CheckFailed(f"sample: return the decoded text (a str), got {type(got).__name__}")
    _, expected = _greedy_reference(model, tokenizer, prompt, 15)
    if got.startswith(tokenizer.decode([tokenizer.bos_token_id])):
        raise CheckFailed("sample: leave the leading BOS token out of the returned text")
    if got != expected:
        raise CheckFailed(f"sample at temperature 0 (greedy): expected {expected!r}, got {got!r}")
    # Stopping: a fake model that produces two tokens, then end-of-text, then more tokens.
    start = len([tokenizer.bos_token_id] + tokenizer.encode(prompt))
    a, b = tokenizer.encode(" cat")[0], tokenizer.encode(" dog")[0]
    eos = tokenizer.eos_token_id
    fake = _ScriptedModel([a, b, eos, a, a], start, tokenizer.vocab_size)
    got = cls(fake, tokenizer).sample(prompt, max_tokens_generated=10, temperature=0.0)
    expected = tokenizer.decode(tokenizer.encode(prompt) + [a, b, eos])
    if got != expected:
        raise CheckFailed(f"sample should stop right after the end-of-text token (and keep it): expected "
                          f"{expected!r}, got {got!r}")
    got = cls(fake, tokenizer).sample(prompt, max_tokens_generated=1, temperature=0.0)
    expected = tokenizer.decode(tokenizer.encode(prompt) + [a])
    if got != expected:
        raise CheckFailed(f"sample(max_tokens_generated=1) should add exactly one token: expected {expected!r}, "
                          f"got {got!r}")


def _check_beam_output(out, n: int, what: str) -> None:
    if not isinstance(out, list) or len(out) != n:
        raise CheckFailed(f"{what}: expected a list of {n} (logprob_sum, text) pairs, got {str(out)[:200]}")
    for item in out:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], str)):
            raise CheckFailed(f"{what}: each item should be a (logprob_sum, text) pair, got {str(item)[:100]}")
    scores = [float(s) for s, _ in out]
    if scores != sorted(scores, reverse=True):
        raise CheckFailed(f"{what}: return the beams best first (highest logprob sum first); got scores {scores}")
    if any(s > 0 for s in scores):
        raise CheckFailed(f"{what}: a sum of log-probabilities can't be positive; got scores {scores}")


class _BigramTableModel(torch.nn.Module):
    """A fake model whose next-token distribution depends only on the last token: table[last] = {token: prob}."""

    def __init__(self, table: dict[int, dict[int, float]], vocab: int, n_ctx: int = 64):
        super().__init__()
        import types

        self.cfg = types.SimpleNamespace(n_ctx=n_ctx, d_vocab=vocab)
        rows = torch.zeros(vocab, vocab)
        for last in range(vocab):
            probs = table.get(last, {})
            rest = (1.0 - sum(probs.values())) / (vocab - len(probs))
            rows[last] = math.log(rest)
            for token, p in probs.items():
                rows[last, token] = math.log(p)
        self.rows = torch.nn.Parameter(rows)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.rows[tokens]


@register("beam_search")
def _check_beam_search(g: dict) -> None:
    tokenizer = _tfs_tokenizer()
    cls = _sampler_class(g)
    prompt = "The little bird"
    # 1. A fake model with known probabilities. After the prompt: a (0.55) or b (0.4); after a: end-of-text (0.9);
    #    after b: c (0.99); after c: d (0.99). With 2 beams, "a <eos>" finishes at step 2 (log 0.55 + log 0.9)
    #    and "b c d" is the best live beam at the end (log 0.4 + 2 log 0.99).
    prompt_ids = tokenizer.encode(prompt)
    a, b, c, d = (tokenizer.encode(w)[0] for w in (" cat", " dog", " ran", " away"))
    eos = tokenizer.eos_token_id
    table = {prompt_ids[-1]: {a: 0.55, b: 0.4}, a: {eos: 0.9}, b: {c: 0.99}, c: {d: 0.99}}
    sampler = cls(_BigramTableModel(table, tokenizer.vocab_size), tokenizer)
    finished = (math.log(0.55) + math.log(0.9), tokenizer.decode(prompt_ids + [a, eos]))
    live = (math.log(0.4) + 2 * math.log(0.99), tokenizer.decode(prompt_ids + [b, c, d]))
    for n_return, expected in [(1, [finished]), (2, [finished, live])]:
        what = f"beam_search on a toy model (num_return_sequences={n_return}, num_beams=2, max_new_tokens=3)"
        out = sampler.beam_search(prompt, num_return_sequences=n_return, num_beams=2, max_new_tokens=3)
        _check_beam_output(out, n_return, what)
        for i, ((score, text), (exp_score, exp_text)) in enumerate(zip(out, expected)):
            if text != exp_text:
                hint = ""
                if text == live[1]:
                    hint = " (a beam that ended with the end-of-text token is finished: keep it for the final answer)"
                raise CheckFailed(f"{what}: beam {i} should be {exp_text!r}, got {text!r}{hint}")
            assert_close(torch.tensor(float(score)), torch.tensor(exp_score), atol=1e-3,
                         what=f"{what}: score of beam {i} (the sum of the log-probabilities of its new tokens)")
    # 2. The real model: with one beam, beam search is greedy decoding (with banned repeats, if asked).
    model = lite_model()
    sampler = cls(model, tokenizer)
    for ngram in (None, 2):
        what = f"beam_search(num_return_sequences=1, num_beams=1, max_new_tokens=25, no_repeat_ngram_size={ngram})"
        out = sampler.beam_search(prompt, num_return_sequences=1, num_beams=1, max_new_tokens=25,
                                  no_repeat_ngram_size=ngram)
        _check_beam_output(out, 1, what)
        expected_score, expected_text = _greedy_reference(model, tokenizer, prompt, 25, banned_ngram=ngram)
        if out[0][1] != expected_text:
            raise CheckFailed(f"{what} should match greedy decoding{' with banned repeated bigrams' if ngram else ''}"
                              f": expected {expected_text!r}, got {out[0][1]!r}")
        assert_close(torch.tensor(float(out[0][0])), torch.tensor(expected_score), atol=1e-3,
                     what=f"{what}: sum of the log-probabilities of the generated tokens")
    # 3. Several beams: distinct sequences, best first, all starting with the prompt.
    what = "beam_search(num_return_sequences=3, num_beams=4, max_new_tokens=8)"
    out = sampler.beam_search("The cat sat on the", num_return_sequences=3, num_beams=4, max_new_tokens=8)
    _check_beam_output(out, 3, what)
    if len({text for _, text in out}) != 3:
        raise CheckFailed(f"{what}: the returned beams should be different sequences, got {[t for _, t in out]}")
    for score, text in out:
        if not text.startswith("The cat sat on the"):
            raise CheckFailed(f"{what}: each text should start with the prompt, got {text!r}")


@register("forward_with_cache")
def _check_forward_with_cache(g: dict) -> None:
    fn = g["forward_with_cache"]
    model = lite_model()
    tokens = sample_tokens(2, 12)
    with torch.no_grad():
        full = model(tokens)
    pieces, cache = [], None
    for lo, hi in [(0, 5), (5, 6), (6, 12)]:
        logits, cache = fn(model, tokens[:, lo:hi], cache)
        check_shape(logits, (2, hi - lo, full.shape[-1]), f"logits for tokens {lo}..{hi - 1}")
        if cache.seq_len != hi:
            raise CheckFailed(f"after processing tokens 0..{hi - 1} the cache should hold {hi} positions, "
                              f"but cache.seq_len is {cache.seq_len}")
        where = "with an empty cache" if lo == 0 else f"with {lo} cached positions"
        assert_close(logits, full[:, lo:hi], what=f"forward_with_cache logits for tokens {lo}..{hi - 1} ({where})")


__all__ = ["check", "register", "CheckFailed", "assert_close", "check_shape"]
