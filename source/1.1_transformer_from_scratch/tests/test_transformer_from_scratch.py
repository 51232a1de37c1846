"""Hidden tests for 1.1 Transformers from Scratch.

Every expected value is computed here, by the reference solution, on the same
weights, inputs and device as the student's code. Each test swaps the
exercise's dependencies for the reference (``student.use_reference``), so a bug
costs only the exercise it is in.
"""

from dataclasses import asdict

import torch

import tfs_helpers
from autograder.checks import (
    CheckFailed,
    assert_close,
    assert_equal,
    assert_frequencies,
    assert_metric,
    check_shape,
)
from autograder.testing import fixture, grades, load_weights

# ----------------------------------------------------------------------------- fixtures


@fixture
def hooked(profile, device):
    return tfs_helpers.load_hooked_gpt2(profile, device=str(device))


@fixture
def cfg(reference, hooked):
    return reference.Config(**tfs_helpers.config_kwargs(hooked))


@fixture
def weights(hooked):
    return tfs_helpers.demo_state_dict(hooked)


@fixture
def tokenizer(profile):
    return tfs_helpers.load_tokenizer(profile)


@fixture
def ref_model(reference, cfg, weights, device):
    model = reference.DemoTransformer(cfg).to(device)
    model.load_state_dict(weights)
    return model.eval()


@fixture
def prompts():
    return ["Once upon a time, a little", "The cat sat on the", "In the morning, Tom"]


@fixture
def text_tokens(tokenizer, prompts, device):
    """Real text, so the model's activations are in distribution."""
    ids = [[tokenizer.bos_token_id] + tokenizer.encode(p) for p in prompts]
    length = min(len(i) for i in ids)
    return torch.tensor([i[:length] for i in ids], device=device)


def gen(seed, device):
    g = torch.Generator().manual_seed(seed)
    return lambda *shape, scale=1.0: (torch.randn(*shape, generator=g) * scale).to(device)


def randomised(module, seed, device):
    """The module with every parameter random: zero biases and unit scales hide bugs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_((torch.randn(p.shape, generator=g) * 0.5).to(p.device))
    return module


def student_cfg(student, cfg):
    return student.Config(**asdict(cfg))


def sub_state(weights, prefix):
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


# ----------------------------------------------------------------------------- layers


@grades("layernorm")
def test_layernorm_random_input(student, reference, cfg, seed, device):
    ref = randomised(reference.LayerNorm(cfg).to(device), seed, device)
    mine = student.LayerNorm(student_cfg(student, cfg))
    load_weights(mine, ref.state_dict(), "LayerNorm")
    x = gen(seed, device)(2, 5, cfg.d_model, scale=3.0) + 1.5
    assert_close(mine(x), ref(x), what="LayerNorm output")


@grades("layernorm")
def test_layernorm_nearly_constant_rows(student, reference, cfg, seed, device):
    # Variance close to eps: only eps *inside* the square root gets this right.
    ref = randomised(reference.LayerNorm(cfg).to(device), seed + 1, device)
    mine = student.LayerNorm(student_cfg(student, cfg))
    load_weights(mine, ref.state_dict(), "LayerNorm")
    x = gen(seed + 1, device)(3, 4, cfg.d_model, scale=1e-3) + 0.7
    assert_close(mine(x), ref(x), what="LayerNorm output on nearly constant rows")


@grades("embed")
def test_embed(student, reference, cfg, weights, device, seed):
    ref = reference.Embed(cfg).to(device)
    ref.load_state_dict(sub_state(weights, "embed."))
    mine = student.Embed(student_cfg(student, cfg))
    load_weights(mine, ref.state_dict(), "Embed")
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, cfg.d_vocab, (3, 9), generator=g).to(device)
    assert_close(mine(tokens), ref(tokens), what="Embed output")


@grades("pos_embed")
def test_pos_embed(student, reference, cfg, weights, device, seed):
    ref = reference.PosEmbed(cfg).to(device)
    ref.load_state_dict(sub_state(weights, "pos_embed."))
    mine = student.PosEmbed(student_cfg(student, cfg))
    load_weights(mine, ref.state_dict(), "PosEmbed")
    g = torch.Generator().manual_seed(seed)
    for batch, length in [(3, 7), (1, cfg.n_ctx)]:
        tokens = torch.randint(0, cfg.d_vocab, (batch, length), generator=g).to(device)
        assert_close(mine(tokens), ref(tokens), what=f"PosEmbed output for tokens of shape {(batch, length)}")


@grades("apply_causal_mask")
def test_causal_mask(student, reference, cfg, seed, device):
    mine = student.Attention(student_cfg(student, cfg))
    scores = gen(seed, device)(2, cfg.n_heads, 6, 6, scale=2.0)
    out = mine.apply_causal_mask(scores.clone())
    check_shape(out, scores.shape, "apply_causal_mask output")
    future = torch.triu(torch.ones(6, 6, dtype=torch.bool, device=device), diagonal=1).expand_as(scores)
    masked_values = out[future]
    if not bool((masked_values <= -1e4).all()):
        q, k = [int(i) for i in torch.nonzero(future[0, 0] & (out[0, 0] > -1e4))[0]]
        raise CheckFailed(
            f"apply_causal_mask: query position {q} can still attend to the later key position {k}; "
            "scores of future keys must be -inf (or a very large negative number)."
        )
    # A changed score the mask should have kept, named by its (query, key) position: the flattened selection's
    # own index would mean nothing to the student. Looser than assert_close below, which has the last word.
    changed = ~future & ~torch.isclose(out, scores, rtol=1e-3, atol=1e-3)
    if bool(changed.any()):
        _, _, q, k = [int(i) for i in torch.nonzero(changed)[0]]
        raise CheckFailed(
            f"apply_causal_mask: the score of query position {q} for key position {k} changed, but a query may "
            "attend to itself and to every earlier key: only keys after the query (key > query) are masked."
        )
    assert_close(out[~future], scores[~future], what="apply_causal_mask: scores of the current and earlier keys")
    reference_masked = reference.Attention(cfg).to(device).apply_causal_mask(scores.clone())
    assert_close(out.softmax(-1), reference_masked.softmax(-1), what="softmax of your masked scores")


@grades("attention_forward")
def test_attention_random_weights(student, reference, cfg, seed, device):
    ref = randomised(reference.Attention(cfg).to(device), seed, device)
    student.use_reference("Attention.apply_causal_mask", ref.apply_causal_mask)
    mine = student.Attention(student_cfg(student, cfg))
    load_weights(mine, ref.state_dict(), "Attention")
    x = gen(seed, device)(2, 7, cfg.d_model)
    with torch.no_grad():
        expected = ref(x)
    assert_close(mine(x), expected, what="Attention output")


@grades("attention_forward")
def test_attention_model_weights(student, reference, cfg, weights, text_tokens, ref_model, device):
    ref = reference.Attention(cfg).to(device)
    ref.load_state_dict(sub_state(weights, "blocks.0.attn."))
    student.use_reference("Attention.apply_causal_mask", ref.apply_causal_mask)
    mine = student.Attention(student_cfg(student, cfg))
    load_weights(mine, ref.state_dict(), "Attention")
    with torch.no_grad():
        resid = ref_model.embed(text_tokens) + ref_model.pos_embed(text_tokens)
        x = ref_model.blocks[0].ln1(resid)
        expected = ref(x)
    assert_close(mine(x), expected, what="Attention output (layer 0 of the model, on real text)")


@grades("mlp")
def test_mlp(student, reference, cfg, seed, device):
    ref = randomised(reference.MLP(cfg).to(device), seed, device)
    mine = student.MLP(student_cfg(student, cfg))
    load_weights(mine, ref.state_dict(), "MLP")
    x = gen(seed, device)(2, 5, cfg.d_model)
    with torch.no_grad():
        expected = ref(x)
    assert_close(mine(x), expected, what="MLP output")


@grades("transformer_block")
def test_transformer_block(student, reference, cfg, weights, seed, device):
    for name in ["LayerNorm", "Attention", "MLP"]:
        student.use_reference(name, getattr(reference, name), config_class=reference.Config)
    ref = reference.TransformerBlock(cfg).to(device)
    ref.load_state_dict(sub_state(weights, "blocks.1."))
    mine = student.TransformerBlock(student_cfg(student, cfg))
    load_weights(mine, ref.state_dict(), "TransformerBlock")
    x = gen(seed, device)(2, 6, cfg.d_model)
    with torch.no_grad():
        expected = ref(x)
    assert_close(mine(x), expected, what="TransformerBlock output")


@grades("unembed")
def test_unembed(student, reference, cfg, seed, device):
    ref = randomised(reference.Unembed(cfg).to(device), seed, device)
    mine = student.Unembed(student_cfg(student, cfg))
    load_weights(mine, ref.state_dict(), "Unembed")
    x = gen(seed, device)(2, 4, cfg.d_model)
    with torch.no_grad():
        expected = ref(x)
    assert_close(mine(x), expected, what="Unembed output")


def _reference_parts(student, reference):
    """Make the student's DemoTransformer build itself from reference parts."""
    for name in ["Embed", "PosEmbed", "TransformerBlock", "LayerNorm", "Unembed"]:
        student.use_reference(name, getattr(reference, name), config_class=reference.Config)


@grades("demo_transformer")
def test_demo_transformer(student, reference, cfg, weights, ref_model, text_tokens):
    _reference_parts(student, reference)
    mine = student.DemoTransformer(student_cfg(student, cfg))
    load_weights(mine, weights, "DemoTransformer")
    with torch.no_grad():
        expected = ref_model(text_tokens)
    assert_close(mine(text_tokens), expected, what="DemoTransformer logits")


@grades("get_log_probs")
def test_get_log_probs(student, reference, cfg, seed, device):
    logits = gen(seed, device)(3, 8, cfg.d_vocab, scale=2.0)
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, cfg.d_vocab, (3, 8), generator=g).to(device)
    expected = reference.get_log_probs(logits, tokens)
    assert_close(student.get_log_probs(logits, tokens), expected, what="get_log_probs output")


def _reference_stand_in_model(student, reference, cfg, weights):
    """A DemoTransformer in the student process whose computation is the reference's."""
    student.use_reference("DemoTransformer", reference.DemoTransformer, config_class=reference.Config)
    model = student.DemoTransformer(student_cfg(student, cfg))
    model.load_state_dict(weights)
    return model


STAND_IN_WIDTH = 32


def _stand_in_language_model(nn, state):
    """A small language model made of torch's own layers (tokens -> logits), built with ``nn``:
    ``torch.nn`` here, or ``student.torch.nn`` to build it in the student's process.

    ``training_step`` needs nothing more from its model, and it is no exercise's
    solution, so it can run in the student's process: the step's forward and
    backward then cost no round trip to the grader.
    """
    vocab, width = state["0.weight"].shape
    model = nn.Sequential(nn.Embedding(vocab, width), nn.Linear(width, vocab))
    model.load_state_dict(state)
    return model


@fixture
def stand_in_state(cfg, seed, device):
    g = torch.Generator().manual_seed(seed)
    return {
        "0.weight": (torch.randn(cfg.d_vocab, STAND_IN_WIDTH, generator=g) * 0.5).to(device),
        "1.weight": (torch.randn(cfg.d_vocab, STAND_IN_WIDTH, generator=g) * 0.1).to(device),
        "1.bias": torch.zeros(cfg.d_vocab).to(device),
    }


def _student_stand_in(student, stand_in_state, device):
    return _stand_in_language_model(student.torch.nn, stand_in_state).to(str(device))


@fixture
def reference_training(reference, stand_in_state, text_tokens, device):
    """The reference's losses and parameters over two AdamW steps: the same for every submission."""
    model = _stand_in_language_model(torch.nn, stand_in_state).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = [torch.as_tensor(reference.training_step(model, opt, text_tokens)).reshape(()).detach()
              for _ in range(2)]  # two steps: forgetting zero_grad only shows on the second
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


@grades("training_step")
def test_training_step_matches_reference(student, reference, stand_in_state, text_tokens, reference_training, device):
    student.use_reference("get_log_probs", reference.get_log_probs)
    model = _student_stand_in(student, stand_in_state, device)
    opt = student.torch.optim.AdamW(model.parameters(), lr=1e-3)
    ref_losses, ref_params = reference_training
    for step, ref_loss in enumerate(ref_losses):
        loss = student.training_step(model, opt, text_tokens)
        assert_close(torch.as_tensor(loss).reshape(()), ref_loss, what=f"loss returned by training_step (step {step + 1})")
    mine = model.state_dict()
    for name, value in ref_params.items():
        assert_close(mine[name], value, what=f"parameter {name} after two training steps", atol=1e-5, rtol=1e-4)


@grades("training_step")
def test_training_step_reduces_loss(student, reference, stand_in_state, text_tokens, device):
    student.use_reference("get_log_probs", reference.get_log_probs)
    model = _student_stand_in(student, stand_in_state, device)
    opt = student.torch.optim.SGD(model.parameters(), lr=0.05)
    losses = [float(torch.as_tensor(student.training_step(model, opt, text_tokens))) for _ in range(6)]
    assert_metric(losses[-1], at_most=losses[0] - 1e-3, what=f"loss after 6 steps (losses: {[round(l, 3) for l in losses]})")


# ----------------------------------------------------------------------------- sampling

SAMPLER_PARTS = [
    "greedy_search",
    "apply_temperature",
    "apply_frequency_penalty",
    "sample_basic",
    "top_k_sampling",
    "top_p_sampling",
]


def _use_reference_sampler_parts(student, reference, keep=()):
    for name in SAMPLER_PARTS:
        if name not in keep:
            student.use_reference(f"TransformerSampler.{name}", getattr(reference.TransformerSampler, name))


@grades("greedy_search")
def test_greedy_search(student, reference, cfg, seed, device):
    fn = student.TransformerSampler.greedy_search
    # Flat logits (scale 1 over the whole vocabulary): the argmax has about 2% of the probability (6% at most),
    # so code that samples instead passes all four draws by chance about once in 10^7 runs. With
    # scale 3 and three draws that was about once in a hundred, and a CI run once hit it.
    for i in range(4):
        logits = gen(seed + i, device)(cfg.d_vocab, scale=1.0)
        assert_equal(fn(logits), int(reference.TransformerSampler.greedy_search(logits)), what="greedy_search token")


@grades("apply_temperature")
def test_apply_temperature(student, reference, cfg, seed, device):
    logits = gen(seed, device)(cfg.d_vocab)
    for temperature in [0.5, 2.0]:
        expected = reference.TransformerSampler.apply_temperature(logits.clone(), temperature)
        got = student.TransformerSampler.apply_temperature(logits.clone(), temperature)
        assert_close(got, expected, what=f"apply_temperature(temperature={temperature})")


@grades("apply_frequency_penalty")
def test_apply_frequency_penalty(student, reference, cfg, seed, device):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, 12, (30,), generator=g).to(device)  # many repeats
    logits = gen(seed, device)(cfg.d_vocab)
    expected = reference.TransformerSampler.apply_frequency_penalty(input_ids, logits.clone(), 0.7)
    got = student.TransformerSampler.apply_frequency_penalty(input_ids, logits.clone(), 0.7)
    assert_close(got, expected, what="apply_frequency_penalty(freq_penalty=0.7)")


def _peaked_logits(cfg, device):
    """A distribution with a clear head (so frequencies are measurable) and a long tail."""
    probs = torch.full((cfg.d_vocab,), 1e-6)
    head = torch.tensor([0.32, 0.22, 0.16, 0.11, 0.08, 0.05, 0.03, 0.02])
    ids = torch.arange(len(head)) * 7 + 3  # spread out, not the first ids
    probs[ids] = head
    probs = probs / probs.sum()
    return probs.log().to(device)


# Draws per frequency check. Every sampler bug the variants list draws a token that must never be
# drawn (an extra token, or a position instead of a token id), never draws one that has at least 0.2
# of the mass, or moves at least 0.2 of the mass; with 400 draws the 5-sigma band of assert_frequencies
# is at most +-0.135 (p = 0.5), so those bugs still fail and a correct sampler passes.
# The draws run in the student's process, one call each: they are most of this section's grading time.
DRAWS = 400


def _draws(student, name, n, *args, seed=0, **kwargs):
    student.seed(seed)
    fn = getattr(student.TransformerSampler, name)
    return fn.repeat(n, *args, **kwargs)


@grades("sample_basic")
def test_sample_basic_frequencies(student, cfg, seed, device):
    logits = _peaked_logits(cfg, device)
    draws = _draws(student, "sample_basic", DRAWS, logits, seed=seed)
    assert_frequencies(draws, logits.softmax(-1), what="sample_basic")


def _top_k_probs(logits, k):
    probs = torch.zeros_like(logits)
    top = logits.topk(k)
    probs[top.indices] = top.values.softmax(-1)
    return probs


def _top_p_probs(logits, top_p, min_keep):
    probs = logits.softmax(-1)
    sorted_probs, order = probs.sort(descending=True)
    before = sorted_probs.cumsum(-1) - sorted_probs  # mass strictly before each token
    keep = max(int((before < top_p).sum()), min_keep)
    kept = torch.zeros_like(probs)
    kept[order[:keep]] = sorted_probs[:keep]
    return kept / kept.sum()


@grades("top_k_sampling")
def test_top_k_frequencies(student, cfg, seed, device):
    logits = _peaked_logits(cfg, device)
    for k in [1, 3, 5]:
        draws = _draws(student, "top_k_sampling", DRAWS, logits, k, seed=seed + k)
        assert_frequencies(draws, _top_k_probs(logits, k), what=f"top_k_sampling(k={k})")


@grades("top_p_sampling")
def test_top_p_frequencies(student, cfg, seed, device):
    logits = _peaked_logits(cfg, device)
    for top_p in [0.5, 0.75]:
        draws = _draws(student, "top_p_sampling", DRAWS, logits, top_p, seed=seed)
        assert_frequencies(draws, _top_p_probs(logits, top_p, 1), what=f"top_p_sampling(top_p={top_p})")


@grades("top_p_sampling")
def test_top_p_min_tokens_to_keep(student, cfg, seed, device):
    logits = _peaked_logits(cfg, device)
    draws = _draws(student, "top_p_sampling", DRAWS, logits, 0.1, min_tokens_to_keep=4, seed=seed)
    assert_frequencies(draws, _top_p_probs(logits, 0.1, 4), what="top_p_sampling(top_p=0.1, min_tokens_to_keep=4)")


def _samplers(student, reference, cfg, weights):
    _use_reference_sampler_parts(student, reference)
    model = _reference_stand_in_model(student, reference, cfg, weights)
    return student.TransformerSampler(model, student.tokenizer)


@fixture
def reference_sampler(reference, ref_model):
    return reference.TransformerSampler(ref_model, reference.tokenizer)


@fixture
def greedy_cases(reference_sampler, prompts):
    """(prompt, length, the reference's greedy sample): computed once, not per submission."""
    with torch.no_grad():
        return [(prompt, n, reference_sampler.sample(prompt, max_tokens_generated=n, temperature=0.0))
                for prompt, n in [(prompts[0], 12), (prompts[1], 40)]]


@fixture
def beam_case(reference_sampler, prompts):
    kwargs = dict(num_return_sequences=3, num_beams=4, max_new_tokens=10)
    with torch.no_grad():
        return prompts[1], kwargs, reference_sampler.beam_search(prompts[1], **kwargs)


@fixture
def no_repeat_ngram_case(reference_sampler, prompts):
    """A setting where the constraint changes the reference's answer on this checkpoint,
    so that ignoring it cannot pass; derived, not hard-coded."""
    settings = [
        (prompt, dict(num_return_sequences=2, num_beams=3, max_new_tokens=length, no_repeat_ngram_size=size))
        for length in (14, 30) for size in (2, 3) for prompt in prompts
    ]
    ref = reference_sampler
    with torch.no_grad():
        def changes_answer(setting):
            prompt, kwargs = setting
            return ref.beam_search(prompt, **kwargs) != ref.beam_search(prompt, **{**kwargs, "no_repeat_ngram_size": None})

        prompt, kwargs = next(filter(changes_answer, settings), settings[0])
        return prompt, kwargs, ref.beam_search(prompt, **kwargs)


@grades("sample")
def test_sample_greedy(student, reference, cfg, weights, greedy_cases):
    mine = _samplers(student, reference, cfg, weights)
    for prompt, n, expected in greedy_cases:
        got = mine.sample(prompt, max_tokens_generated=n, temperature=0.0)
        assert_equal(got, expected, what=f"sample({prompt!r}, max_tokens_generated={n}, temperature=0.0)")


@grades("beam_search")
def test_beam_search(student, reference, cfg, weights, beam_case):
    _compare_beams(_samplers(student, reference, cfg, weights), *beam_case)


@grades("beam_search")
def test_beam_search_no_repeat_ngram(student, reference, cfg, weights, no_repeat_ngram_case):
    _compare_beams(_samplers(student, reference, cfg, weights), *no_repeat_ngram_case)


def _compare_beams(mine, prompt, kwargs, expected):
    got = mine.beam_search(prompt, **kwargs)
    what = f"beam_search({prompt!r}, {', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    if not isinstance(got, list) or len(got) != len(expected):
        raise CheckFailed(f"{what}: expected a list of {len(expected)} (logprob, text) pairs, got {str(got)[:200]}")
    for i, ((lp, text), item) in enumerate(zip(expected, got)):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise CheckFailed(f"{what}: item {i} should be a (logprob_sum, text) pair, got {str(item)[:100]}")
        assert_equal(item[1], text, what=f"{what}: text of beam {i}")
        assert_close(torch.tensor(float(item[0])), torch.tensor(float(lp)), atol=1e-3, rtol=1e-4,
                     what=f"{what}: log-probability of beam {i}")


# ----------------------------------------------------------------------------- KV cache


def _stand_in_for_cache(student, reference, cfg, weights):
    # The stand-in mirrors the reference's submodules, so `model.blocks[0].ln1(x)`
    # and `model.blocks[0].attn.W_Q` work as in a real DemoTransformer.
    return _reference_stand_in_model(student, reference, cfg, weights)


@grades("forward_with_cache")
def test_cached_logits_equal_full_forward(student, reference, cfg, weights, ref_model, text_tokens):
    model = _stand_in_for_cache(student, reference, cfg, weights)
    split = text_tokens.shape[1] // 2
    first, cache = student.forward_with_cache(model, text_tokens[:, :split], None)
    second, cache = student.forward_with_cache(model, text_tokens[:, split:], cache)
    with torch.no_grad():
        expected = ref_model(text_tokens)
    assert_close(first, expected[:, :split], what="forward_with_cache logits for the first chunk (empty cache)")
    assert_close(second, expected[:, split:], what="forward_with_cache logits for the second chunk (using the cache)")


@grades("forward_with_cache")
def test_cached_generation_matches_uncached(student, reference, cfg, weights, ref_model, text_tokens):
    model = _stand_in_for_cache(student, reference, cfg, weights)
    prompt = text_tokens[:1]
    with torch.no_grad():
        expected = prompt.clone()
        for _ in range(15):
            nxt = ref_model(expected)[0, -1].argmax()
            expected = torch.cat([expected, nxt.view(1, 1)], dim=1)
    logits, cache = student.forward_with_cache(model, prompt, None)
    generated = prompt.clone()
    for _ in range(15):
        nxt = torch.as_tensor(logits)[0, -1].argmax()
        generated = torch.cat([generated, nxt.view(1, 1).to(generated.device)], dim=1)
        logits, cache = student.forward_with_cache(model, nxt.view(1, 1), cache)
    assert_equal(generated[0].tolist(), expected[0].tolist(), what="tokens generated greedily with your cache")
