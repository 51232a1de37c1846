"""Public tests for section 1.3.2: call ``check("exercise_name")`` in the notebook.

They compare your code with the same computation written another way: plain PyTorch forward hooks on the Hugging
Face model that nnsight wraps (``model._module``), one prompt at a time, or hand-made inputs. They are a subset of
what grading checks; passing them is a good sign, not a guarantee.
"""

from __future__ import annotations


import torch

import fv_helpers as fh
from autograder.checks import CheckFailed, assert_close, check_shape
from autograder.public_checks import PublicChecks

CHECKS = PublicChecks(no_grad=True)
register, check = CHECKS.register, CHECKS.check


def _float(value, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise CheckFailed(f"{what}: expected a Python float, got {type(value).__name__}")
    return float(value)


# ------------------------------------------------------------------ the same computations with plain hooks


def _hf(model):
    return model._module  # the transformers GPT2LMHeadModel inside the nnsight LanguageModel


def _run(model, tokens, edits=(), pre_edits=()):
    """The HF model's logits (batch, seq, vocab), with forward hooks ``edits`` and forward pre-hooks ``pre_edits``."""
    hf = _hf(model)
    handles = [m.register_forward_hook(fn) for m, fn in edits] + [m.register_forward_pre_hook(fn) for m, fn in pre_edits]
    try:
        return hf(tokens.to(hf.device)).logits
    finally:
        for h in handles:
            h.remove()


def _blocks(model):
    return _hf(model).transformer.h


def _data(model, n_prompts=6, n_examples=3, seed=11, task=None, shuffle=False):
    task = task or list(fh.tasks_for(fh.PROFILE))[0]
    return fh.make_icl_dataset(model, task, n_prompts, n_examples, seed=seed, shuffle_labels=shuffle)


@register("answer_logits")
def _check_answer_logits(g: dict) -> None:
    model = g["model"]
    d = _data(model)
    got = g["answer_logits"](model, d["tokens"], d["answers"])
    check_shape(got, (len(d["answers"]),), "answer_logits")
    for i in range(len(d["answers"])):
        alone = _run(model, d["tokens"][i:i + 1])[0, -1, d["answers"][i]]
        assert_close(got[i], alone, atol=1e-4, rtol=1e-4, what=f"the answer's logit for prompt {i}, run alone")


@register("icl_accuracy")
def _check_icl_accuracy(g: dict) -> None:
    model = g["model"]
    d = _data(model, n_prompts=8)
    logits = _run(model, d["tokens"])[:, -1]
    got = _float(g["icl_accuracy"](model, d["tokens"], d["answers"]), "icl_accuracy")
    want = float((logits.argmax(-1) == d["answers"].to(logits.device)).float().mean())
    if abs(got - want) > 1e-6:
        raise CheckFailed(f"icl_accuracy: got {got:.4f}, expected {want:.4f}")
    # answers that are the model's own top predictions: accuracy 1
    top = logits.argmax(-1).cpu()
    if abs(_float(g["icl_accuracy"](model, d["tokens"], top), "icl_accuracy") - 1.0) > 1e-6:
        raise CheckFailed("icl_accuracy: with answers set to the model's own top predictions it should be 1.0")


@register("residual_at_last")
def _check_residual_at_last(g: dict) -> None:
    model = g["model"]
    d = _data(model)
    got = g["residual_at_last"](model, d["tokens"])
    L, D = model.config.n_layer, model.config.n_embd
    check_shape(got, (L, len(d["answers"]), D), "residual_at_last")
    box = {}

    def store(layer):
        return lambda module, args, out: box.__setitem__(layer, (out[0] if isinstance(out, tuple) else out)[:, -1])

    _run(model, d["tokens"], edits=[(b, store(i)) for i, b in enumerate(_blocks(model))])
    assert_close(got, torch.stack([box[i] for i in range(L)]), atol=1e-4, rtol=1e-4,
                 what="the output of each block at the last position (forward hooks on the blocks)")


@register("head_outputs_at_last")
def _check_head_outputs_at_last(g: dict) -> None:
    model = g["model"]
    d = _data(model)
    got = g["head_outputs_at_last"](model, d["tokens"])
    L, H = model.config.n_layer, model.config.n_head
    dh = model.config.n_embd // H
    check_shape(got, (L, len(d["answers"]), H, dh), "head_outputs_at_last")
    box = {}

    def store(layer):
        return lambda module, args: box.__setitem__(layer, args[0][:, -1])

    _run(model, d["tokens"], pre_edits=[(b.attn.c_proj, store(i)) for i, b in enumerate(_blocks(model))])
    for layer in range(L):
        for head in range(H):
            assert_close(got[layer, :, head], box[layer][:, head * dh:(head + 1) * dh], atol=1e-4, rtol=1e-4,
                         what=f"head {layer}.{head}: its slice of attn.c_proj's input at the last position")


@register("patch_residual_stream")
def _check_patch_residual_stream(g: dict) -> None:
    model = g["model"]
    task = list(fh.tasks_for(fh.PROFILE))[0]
    clean, corrupt = _data(model, task=task), _data(model, task=task, shuffle=True)
    got = g["patch_residual_stream"](model, clean["tokens"], corrupt["tokens"], clean["answers"])
    L = model.config.n_layer
    check_shape(got, (L,), "patch_residual_stream")
    box = {}
    last = L - 1
    _run(model, clean["tokens"], edits=[(_blocks(model)[last], lambda m, a, out: box.__setitem__("v", out[:, -1].clone()))])

    def put(m, a, out):
        out = out.clone()
        out[:, -1] = box["v"]
        return out

    logits = _run(model, corrupt["tokens"], edits=[(_blocks(model)[last], put)])[:, -1]
    rows = torch.arange(len(clean["answers"]))
    want = logits.softmax(-1)[rows, clean["answers"]].mean()
    clean_p = _run(model, clean["tokens"])[:, -1].softmax(-1)[rows, clean["answers"]].mean()
    assert_close(got[last], want, atol=1e-4, rtol=1e-4, what="the patch at the last layer")
    assert_close(got[last], clean_p, atol=1e-4, rtol=1e-4,
                 what="patching the last block's output at the last position gives the clean run's P(answer)")


@register("head_indirect_effects")
def _check_head_indirect_effects(g: dict) -> None:
    model = g["model"]
    L, H = model.config.n_layer, model.config.n_head
    dh = model.config.n_embd // H
    task = list(fh.tasks_for(fh.PROFILE))[0]
    corrupt = _data(model, task=task, shuffle=True)
    means = torch.randn(L, H, dh, generator=torch.Generator().manual_seed(3))
    got = g["head_indirect_effects"](model, means, corrupt["tokens"], corrupt["answers"])
    check_shape(got, (L, H), "head_indirect_effects")
    rows = torch.arange(len(corrupt["answers"]))
    base = _run(model, corrupt["tokens"])[:, -1].softmax(-1)[rows, corrupt["answers"]]
    layer, head = L - 1, 1 % H

    def put(m, args):
        x = args[0].clone()
        x[:, -1, head * dh:(head + 1) * dh] = means[layer, head].to(x.device)
        return (x,)

    patched = _run(model, corrupt["tokens"], pre_edits=[(_blocks(model)[layer].attn.c_proj, put)])[:, -1]
    want = (patched.softmax(-1)[rows, corrupt["answers"]] - base).mean()
    assert_close(got[layer, head], want, atol=1e-4, rtol=1e-4,
                 what=f"the effect of head {layer}.{head} set to a random vector, by a forward pre-hook on c_proj")


@register("function_vector")
def _check_function_vector(g: dict) -> None:
    model = g["model"]
    L, H, D = model.config.n_layer, model.config.n_head, model.config.n_embd
    dh = D // H
    means = torch.randn(L, H, dh, generator=torch.Generator().manual_seed(4))
    heads = [(0, 0), (L - 1, H - 1)]
    got = g["function_vector"](model, means, heads)
    check_shape(got, (D,), "function_vector")
    want = torch.zeros(D)
    for lh in heads:  # c_proj on a vector holding only this head's output, minus the bias
        c_proj = _blocks(model)[lh[0]].attn.c_proj
        z = torch.zeros(D)
        z[lh[1] * dh:(lh[1] + 1) * dh] = means[lh[0], lh[1]]
        want += (c_proj(z.to(c_proj.weight.device)) - c_proj.bias).cpu()
    assert_close(got, want, atol=1e-4, rtol=1e-4, what="two heads' outputs written into the residual stream, summed")


@register("add_vector_logits")
def _check_add_vector_logits(g: dict) -> None:
    model = g["model"]
    d = _data(model, n_examples=0)
    D = model.config.n_embd
    vec = torch.randn(D, generator=torch.Generator().manual_seed(5)) * 3
    got = g["add_vector_logits"](model, d["tokens"], 0, vec)
    check_shape(got, (len(d["answers"]), model.config.vocab_size), "add_vector_logits")

    def add(m, a, out):
        out = out.clone()
        out[:, -1] += vec.to(out.device)
        return out

    want = _run(model, d["tokens"], edits=[(_blocks(model)[0], add)])[:, -1]
    assert_close(got, want, atol=1e-4, rtol=1e-4, what="vector added after block 0 at the last position")
    zero = g["add_vector_logits"](model, d["tokens"], 1, torch.zeros(D))
    assert_close(zero, _run(model, d["tokens"])[:, -1], atol=1e-4, rtol=1e-4, what="a zero vector changes nothing")


@register("generate_with_vector")
def _check_generate_with_vector(g: dict) -> None:
    model = g["model"]
    d = _data(model, n_prompts=3, n_examples=2)
    D = model.config.n_embd
    vec = torch.randn(D, generator=torch.Generator().manual_seed(6)) * 4
    got = torch.as_tensor(g["generate_with_vector"](model, d["tokens"], 1, vec, 3)).cpu()
    n = d["tokens"].shape[1]
    check_shape(got, (3, n + 3), "generate_with_vector")
    # greedy by hand, without a cache: the vector at the prompt's last position and at every generated one

    ids = d["tokens"].clone()
    for _ in range(3):
        def add(m, a, out, start=n - 1):
            out = out.clone()
            out[:, start:] += vec.to(out.device)
            return out

        nxt = _run(model, ids, edits=[(_blocks(model)[1], add)])[:, -1].argmax(-1).cpu()
        ids = torch.cat([ids, nxt[:, None]], 1)
    if not torch.equal(got, ids):
        raise CheckFailed(f"generate_with_vector: got {got[:, n:].tolist()}, expected {ids[:, n:].tolist()} "
                          "(greedy, the vector added at the last position of every step)")


__all__ = ["check", "register", "CheckFailed", "assert_close", "check_shape"]
