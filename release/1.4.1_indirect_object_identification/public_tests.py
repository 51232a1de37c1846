"""Public tests for section 1.4.1: call ``check("exercise_name")`` in the notebook.

They compare your code with small computations written out another way (loops over prompts and
heads, one prompt at a time, hand-made tensors) and check properties any correct answer has. They
are a subset of what grading checks; passing them is a good sign, not a guarantee.
"""

from __future__ import annotations


import torch

import ioi_helpers as ih
from autograder.checks import CheckFailed, assert_close, check_shape
from autograder.public_checks import PublicChecks

CHECKS = PublicChecks(no_grad=True)
register, check = CHECKS.register, CHECKS.check


def _small(g: dict, n: int = 6, seed: int = 5) -> dict:
    return ih.make_dataset(g["model"], n, seed=seed)


def _ld_by_hand(logits, io_tok, s_tok) -> torch.Tensor:
    return torch.tensor([float(logits[i, -1, int(io_tok[i])] - logits[i, -1, int(s_tok[i])]) for i in range(len(io_tok))])


@register("logits_to_ave_logit_diff")
def _check_logit_diff(g: dict) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 9, generator=gen)
    io, s = torch.tensor([1, 5, 8]), torch.tensor([2, 0, 8])
    want = _ld_by_hand(logits, io, s)
    got = g["logits_to_ave_logit_diff"](logits, io, s, per_prompt=True)
    check_shape(got, (3,), "logits_to_ave_logit_diff(..., per_prompt=True)")
    assert_close(got, want, what="per-prompt logit differences on random logits")
    assert_close(g["logits_to_ave_logit_diff"](logits, io, s), want.mean(), what="the mean logit difference")


@register("ioi_metric")
def _check_ioi_metric(g: dict) -> None:
    f = g["ioi_metric"]
    got = f(torch.tensor([3.0, -1.0, 1.0, 0.0]), 3.0, -1.0)
    assert_close(got, torch.tensor([1.0, 0.0, 0.5, 0.25]), what="ioi_metric([3, -1, 1, 0], clean 3, corrupted -1)")


@register("head_logit_attribution")
def _check_dla(g: dict) -> None:
    """The heads' direct contributions plus everything else add up to the logit difference."""
    model, d = g["model"], _small(g)
    logits, cache = model.run_with_cache(d["tokens"])
    got = g["head_logit_attribution"](model, cache, d["io_tok"], d["s_tok"])
    check_shape(got, (model.cfg.n_layers, model.cfg.n_heads), "head_logit_attribution")
    scale = cache["ln_final.hook_scale"][:, -1]
    resid = cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"][:, -1]
    rest = resid.clone()
    for lay, hd in ih.head_names(model):
        rest = rest - cache["z", lay][:, -1, hd] @ model.W_O[lay, hd]
    direction = (model.W_U[:, d["io_tok"]] - model.W_U[:, d["s_tok"]]).T  # (batch, d_model)
    rest_part = ((rest - rest.mean(-1, keepdim=True)) / scale * direction).sum(-1).mean()
    total = logits[torch.arange(len(d["io_tok"])), -1, d["io_tok"]] - logits[torch.arange(len(d["io_tok"])), -1, d["s_tok"]]
    assert_close(got.sum() + rest_part, total.mean(), atol=1e-3, rtol=1e-3,
                 what="sum of the heads' contributions + the rest (embeddings, MLPs, biases) vs the logit difference")


@register("attention_from_to")
def _check_attention(g: dict) -> None:
    model, d = g["model"], _small(g)
    _, cache = model.run_with_cache(d["tokens"])
    q = torch.tensor([14, 10, 14, 10, 14, 10])
    k = d["io_pos"]
    got = g["attention_from_to"](cache, model.cfg.n_layers, q, k)
    check_shape(got, (model.cfg.n_layers, model.cfg.n_heads), "attention_from_to")
    for lay, hd in ih.head_names(model):
        want = sum(float(cache["pattern", lay][i, hd, int(q[i]), int(k[i])]) for i in range(6)) / 6
        assert_close(got[lay, hd], torch.tensor(want), what=f"head {lay}.{hd}, mixed query positions")


@register("duplicate_token_scores")
def _check_dup(g: dict) -> None:
    model = g["model"]
    vocab = [model.to_single_token(" " + n) for n in ih.NAMES[:8]]
    bos = model.tokenizer.bos_token_id
    tokens = torch.tensor([[bos] + vocab[:4] + vocab[:4], [bos] + vocab[2:6] + [vocab[6]] * 4]).to(g["device"])
    got = g["duplicate_token_scores"](model, tokens)
    check_shape(got, (model.cfg.n_layers, model.cfg.n_heads), "duplicate_token_scores")
    _, cache = model.run_with_cache(tokens)
    for layer, head in ih.head_names(model):
        vals = []
        for b in range(2):
            for qp in range(tokens.shape[1]):
                earlier = [kp for kp in range(qp) if tokens[b, kp] == tokens[b, qp]]
                if earlier:
                    vals.append(sum(float(cache["pattern", layer][b, head, qp, kp]) for kp in earlier))
        assert_close(got[layer, head], torch.tensor(sum(vals) / len(vals)), what=f"head {layer}.{head} on repeated names")


def _patch_setup(g: dict):
    model, d = g["model"], _small(g, 4, seed=6)
    _, clean_cache = model.run_with_cache(d["tokens"])
    return model, d, clean_cache


def _ld(g, logits, d):
    return float(_ld_by_hand(logits, d["io_tok"], d["s_tok"]).mean())


@register("patch_residual_stream")
def _check_resid(g: dict) -> None:
    model, d, clean_cache = _patch_setup(g)
    got = g["patch_residual_stream"](model, d["corrupt_tokens"], clean_cache, d["io_tok"], d["s_tok"])
    check_shape(got, (model.cfg.n_layers, ih.SEQ_LEN), "patch_residual_stream")
    clean = _ld(g, model(d["tokens"]), d)
    corrupt = _ld(g, model(d["corrupt_tokens"]), d)
    # at layer 0, every position but S2 holds the same token in both runs: patching it changes nothing
    assert_close(got[0, 0], torch.tensor(corrupt), atol=1e-4, rtol=1e-4, what="patching position 0 before layer 0")
    assert_close(got[0, ih.POS["S2"]], torch.tensor(clean), atol=1e-4, rtol=1e-4,
                 what="patching S2 before layer 0 (the only difference between the prompts: the clean run again)")


@register("patch_head_outputs")
def _check_heads(g: dict) -> None:
    model, d, clean_cache = _patch_setup(g)
    got = g["patch_head_outputs"](model, d["corrupt_tokens"], clean_cache, d["io_tok"], d["s_tok"])
    check_shape(got, (model.cfg.n_layers, model.cfg.n_heads), "patch_head_outputs")
    layer, head = model.cfg.n_layers - 1, model.cfg.n_heads - 1

    def put(z, hook):
        keep = torch.arange(z.shape[2], device=z.device) != head
        return torch.where(keep[None, None, :, None], z, clean_cache[hook.name])

    want = _ld(g, model.run_with_hooks(d["corrupt_tokens"], fwd_hooks=[(f"blocks.{layer}.attn.hook_z", put)]), d)
    assert_close(got[layer, head], torch.tensor(want), atol=1e-4, rtol=1e-4, what=f"patching head {layer}.{head}")


@register("path_patch_to_queries")
def _check_path(g: dict) -> None:
    model, d, clean_cache = _patch_setup(g)
    _, corrupt_cache = model.run_with_cache(d["corrupt_tokens"])
    last = model.cfg.n_layers - 1
    receivers = [(last, 0), (last, 1)]
    got = g["path_patch_to_queries"](model, d["tokens"], clean_cache, corrupt_cache, receivers, d["io_tok"], d["s_tok"])
    check_shape(got, (model.cfg.n_layers, model.cfg.n_heads), "path_patch_to_queries")
    clean = _ld(g, model(d["tokens"]), d)
    assert_close(got[last], torch.full((model.cfg.n_heads,), clean), atol=1e-4, rtol=1e-4,
                 what="senders in the receivers' layer (they cannot reach the queries: the clean logit difference)")
    if torch.allclose(got[:last], torch.tensor(clean), atol=1e-3):
        raise CheckFailed("no earlier sender changes the logit difference at all: are the queries really patched?")


@register("head_means")
def _check_means(g: dict) -> None:
    model, d = g["model"], _small(g, 5, seed=7)
    got = g["head_means"](model, d["corrupt_tokens"])
    check_shape(got, (model.cfg.n_layers, ih.SEQ_LEN, model.cfg.n_heads, model.cfg.d_head), "head_means")
    one = model.run_with_cache(d["corrupt_tokens"][:1])[1]
    # the BOS position is the same in every prompt, so its mean is any prompt's value there
    assert_close(got[:, 0], torch.stack([one["z", l][0, 0] for l in range(model.cfg.n_layers)]), atol=1e-5, rtol=1e-4,
                 what="the means at position 0 (BOS: the same in every prompt)")
    _, cache = model.run_with_cache(d["corrupt_tokens"])
    pos = ih.POS["S2"]
    assert_close(got[0, pos], cache["z", 0][:, pos].mean(0), atol=1e-5, rtol=1e-4, what="the layer-0 means at S2")


@register("mean_ablate_heads")
def _check_ablate(g: dict) -> None:
    model, d = g["model"], _small(g, 6, seed=8)
    _, cache = model.run_with_cache(d["corrupt_tokens"])
    means = torch.stack([cache["z", l].mean(0) for l in range(model.cfg.n_layers)])
    every = ih.head_names(model)
    got = g["mean_ablate_heads"](model, d["tokens"], every, means, d["io_tok"], d["s_tok"])
    assert_close(got, torch.tensor(_ld(g, model(d["tokens"]), d)), atol=1e-4, rtol=1e-4,
                 what="keeping every head (nothing ablated: the clean logit difference)")
    got = g["mean_ablate_heads"](model, d["corrupt_tokens"][:1].expand(6, -1), [], means, d["io_tok"], d["s_tok"])
    if not torch.isfinite(torch.as_tensor(got)):
        raise CheckFailed("ablating every head gave a non-finite logit difference")
