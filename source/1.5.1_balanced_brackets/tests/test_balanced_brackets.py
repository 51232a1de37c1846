"""Hidden tests for 1.5.1 Balanced Brackets.

Every expected value is computed here by the reference solution, on the
trusted copy of the same checkpoint (``hooked``) and the same strings. Which
head matters (the "key head", the head that best separates the two failure
modes, the key position) is never written down: fixtures derive it from the
reference's computations on this model. Student functions get the student's
own model (``student.model``, loaded by the release's setup cell) and
datasets built in the student process from the same strings. Dependencies are
swapped for the reference (``student.use_reference``) so that a bug costs only
the exercise it is in; the stand-ins map the student's model, dataset,
LayerNorm and tokenizer handles to their trusted twins.
"""

from __future__ import annotations

import inspect

import torch

import brackets_helpers
from autograder.checks import CheckFailed, assert_close, check_float, check_is_tensor, check_sequence, check_shape
from autograder.grade.student import Remote
from autograder.testing import fixture, grades, one_thread

N_STRINGS = 96

# ----------------------------------------------------------------------------- fixtures


@fixture
def hooked(profile, device):
    return brackets_helpers.load_model(profile, device=str(device))


@fixture
def max_len(profile):
    return brackets_helpers.task_info(profile)["max_len"]


@fixture
def data(seed, max_len):
    return brackets_helpers.BracketsDataset.generate(N_STRINGS, seed=seed, max_len=max_len)


@fixture
def data_other(seed, max_len):
    """Another sample, with more near misses and shorter strings (a different padding width)."""
    mix = {"balanced": 0.3, "zero_total_goes_negative": 0.35, "never_negative_nonzero_total": 0.35}
    return brackets_helpers.BracketsDataset.generate(40, seed=seed + 1, max_len=max(4, max_len - 4), mix=mix)


@fixture
def data_small(seed, max_len):
    return brackets_helpers.BracketsDataset.generate(6, seed=seed + 2, max_len=max_len)


@fixture
def pre_final_ln_dir(reference, hooked, data, memo):
    return ref(memo, reference, hooked, "get_pre_final_ln_dir", hooked, data)


@fixture
def in_unbalanced_dir(reference, hooked, data, pre_final_ln_dir, memo):
    """(component, batch): each component's output along the unbalanced direction, balanced mean removed."""
    values = ref(memo, reference, hooked, "get_out_by_components", hooked, data) @ pre_final_ln_dir
    return values - values[:, data.isbal].mean(-1, keepdim=True)


def _head_rows(hooked):
    """[(row in get_out_by_components, layer, head)] for every head."""
    n_heads = hooked.cfg.n_heads
    return [(1 + layer * (n_heads + 1) + h, layer, h) for layer in range(hooked.cfg.n_layers) for h in range(n_heads)]


@fixture
def key_head(hooked, data, in_unbalanced_dir):
    """The final-layer head whose output differs most between unbalanced and balanced strings (as in the notebook)."""
    last = hooked.cfg.n_layers - 1
    rows = [(r, layer, h) for r, layer, h in _head_rows(hooked) if layer == last]
    gap = [float(in_unbalanced_dir[r, ~data.isbal].mean() / in_unbalanced_dir[r, data.isbal].std().clamp_min(1e-6))
           for r, _, _ in rows]
    _, layer, head = rows[max(range(len(rows)), key=gap.__getitem__)]
    return layer, head


@fixture
def separating_head(reference, hooked, data, in_unbalanced_dir):
    """The head whose output best separates 'goes negative only' from 'total non-zero only' strings."""
    neg, tot = reference.get_elevation_failures(data.toks)
    a, b = neg & ~tot, tot & ~neg
    if a.sum() < 2 or b.sum() < 2:
        raise RuntimeError("the test data holds too few strings of each failure type")
    best, score = None, -1.0
    for r, layer, h in _head_rows(hooked):
        v = in_unbalanced_dir[r]
        s = float((v[a].mean() - v[b].mean()).abs() / (0.5 * (v[a].var() + v[b].var())).sqrt().clamp_min(1e-6))
        if s > score:
            best, score = (layer, h), s
    return best


@fixture
def key_pos(reference, hooked, data, key_head, memo):
    """The key position the key head attends to most from position 0."""
    return int(ref(memo, reference, hooked, "get_attn_probs", hooked, data, *key_head)[:, 0].mean(0).argmax())


# ----------------------------------------------------------------------------- reference results, computed once


@fixture
def memo():
    """Reference results by (function, inputs), shared by every submission of the session: grading a
    submission then costs only the student's own computations (the reference is deterministic)."""
    return {}


def _key(value, hooked):
    if isinstance(value, brackets_helpers.BracketsDataset):
        return ("data", tuple(value.strs))
    if isinstance(value, torch.nn.Module):
        return ("module", next(n for n, m in hooked.named_modules() if m is value))
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), tuple(value.flatten().tolist()))
    if isinstance(value, brackets_helpers.SimpleTokenizer):
        return ("tokenizer",)
    return ("value", repr(value))


def ref(memo, reference, hooked, name, *args):
    """``reference.<name>(*args)``, memoised; tensors in the result are cloned for the caller."""
    key = (name,) + tuple(_key(a, hooked) for a in args)
    if key not in memo:
        with one_thread():
            memo[key] = getattr(reference, name)(*args)
    value = memo[key]
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, tuple):
        return tuple(v.clone() if isinstance(v, torch.Tensor) else v for v in value)
    return value


# ----------------------------------------------------------------------------- student-side objects and stand-ins


def student_data(student, data):
    """The same strings as a BracketsDataset in the student process."""
    return student.BracketsDataset.from_strings(list(data.strs))


def student_ln(student, name):
    return student.model.get_submodule(name)


def _trusted(value, student, hooked):
    """The trusted twin of a handle the student's code passed to a stand-in."""
    if not isinstance(value, Remote):
        return value
    kind = value.remote_type
    if kind == "HookedTransformer":
        return hooked
    if kind == "BracketsDataset":
        return brackets_helpers.BracketsDataset.from_strings(list(value.strs))
    if kind == "SimpleTokenizer":
        return brackets_helpers.SimpleTokenizer()
    if kind.startswith("LayerNorm"):
        _, out_name = student.LN_hook_names(student.model, value)
        return hooked.get_submodule(out_name.rsplit(".", 1)[0])
    raise CheckFailed(f"your code passed a {kind} where the exercise expects the model, a dataset or a LayerNorm")


def use_reference(student, reference, hooked, memo, *names):
    """Bind each of ``names`` in the student program to the (memoised) reference, called on trusted twins."""
    for name in names:
        params = list(inspect.signature(getattr(reference, name)).parameters.values())

        def stand_in(*args, _name=name, _params=params, **kwargs):
            args = [_trusted(a, student, hooked) for a in args]
            for p in _params[len(args):]:  # keyword or default arguments, in signature order
                args.append(_trusted(kwargs.pop(p.name), student, hooked) if p.name in kwargs else p.default)
            if kwargs:
                raise TypeError(f"{_name}() got unexpected keyword arguments {sorted(kwargs)}")
            return ref(memo, reference, hooked, _name, *args)

        student.use_reference(name, stand_in)


def as_bool(value, what):
    if isinstance(value, bool):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype == torch.bool:
        return bool(value)
    raise CheckFailed(f"{what}: expected a bool (True or False), got {str(value)[:80]}")


EDGE_CASES = ["", "(", ")", "()", ")(", "(())", "())(", "(()", "())", "()()()", "((()))", ")()(", "(()))(()",
              "((((((", "))))))", "()(()())((()))"]


def _strings(data, max_len, n=60):
    return [s for s in EDGE_CASES if len(s) <= max_len] + list(data.strs[:n])


# ----------------------------------------------------------------------------- 1. balanced or not


@grades("is_balanced_forloop")
def test_is_balanced_forloop(student, reference, data, max_len):
    for s in _strings(data, max_len):
        got = as_bool(student.is_balanced_forloop(s), f"is_balanced_forloop({s!r})")
        want = reference.is_balanced_forloop(s)
        if got != want:
            raise CheckFailed(f"is_balanced_forloop({s!r}) returned {got}, expected {want}")


@grades("is_balanced_vectorized")
def test_is_balanced_vectorized_padded(student, reference, data):
    """Rows of a padded batch: most strings end in [pad] tokens."""
    for i in range(60):
        toks = data.toks[i]
        got = as_bool(student.is_balanced_vectorized(toks), f"is_balanced_vectorized(tokens of {data.strs[i]!r})")
        if got != reference.is_balanced_vectorized(toks):
            raise CheckFailed(f"is_balanced_vectorized on the tokens of {data.strs[i]!r} (padded to {len(toks)} "
                              f"tokens: {toks.tolist()}) returned {got}, expected {not got}")


@grades("is_balanced_vectorized")
def test_is_balanced_vectorized_edge_cases(student, reference, max_len):
    tokenizer = brackets_helpers.SimpleTokenizer()
    for s in [s for s in EDGE_CASES if len(s) <= max_len]:
        for toks in (tokenizer.tokenize(s)[0], tokenizer.tokenize(s, max_len=max_len)[0]):
            got = as_bool(student.is_balanced_vectorized(toks), f"is_balanced_vectorized(tokens of {s!r})")
            if got != reference.is_balanced_vectorized(toks):
                raise CheckFailed(f"is_balanced_vectorized on the tokens {toks.tolist()} of {s!r} returned {got}, "
                                  f"expected {not got}")


# ----------------------------------------------------------------------------- 2. directions and the LayerNorm fit


@grades("get_post_final_ln_dir")
def test_get_post_final_ln_dir(student, reference, hooked, data, memo):
    got = student.get_post_final_ln_dir(student.model)
    assert_close(got, reference.get_post_final_ln_dir(hooked), what="get_post_final_ln_dir(model)")


def _check_ln_fit(student, reference, hooked, memo, data, ln_name, seq_pos, what):
    sdata = student_data(student, data)
    got = check_sequence(student.get_ln_fit(student.model, sdata, student_ln(student, ln_name), seq_pos), 3, "get_ln_fit")
    layernorm = hooked.get_submodule(ln_name)
    W_want, b_want, r2_want = ref(memo, reference, hooked, "get_ln_fit", hooked, data, layernorm, seq_pos)
    W, b = check_is_tensor(got[0], "W"), check_is_tensor(got[1], "b")
    d = hooked.cfg.d_model
    check_shape(W, (d, d), f"W ({what})")
    check_shape(b, (d,), f"b ({what})")
    r2 = check_float(got[2], f"r2 ({what})")
    # Compare what the fit predicts on the inputs it was fitted to: every least-squares solution agrees there.
    inp_name, _ = reference.LN_hook_names(hooked, layernorm)
    inp = ref(memo, reference, hooked, "get_activations", hooked, data.toks, inp_name)
    inp = inp.flatten(0, 1) if seq_pos is None else inp[:, seq_pos]
    assert_close(inp @ W.float() + b.float(), inp @ W_want + b_want, atol=2e-3, rtol=1e-3,
                 what=f"the fit's predictions inp @ W + b ({what})")
    assert_close(torch.tensor(r2), torch.tensor(r2_want), atol=1e-4, rtol=0, what=f"r2 ({what})")


@grades("get_ln_fit", weight=2)
def test_get_ln_fit_final_ln_position_0(student, reference, hooked, data, memo):
    _check_ln_fit(student, reference, hooked, memo, data, "ln_final", 0, "ln_final at position 0")


@grades("get_ln_fit")
def test_get_ln_fit_ln1_key_position(student, reference, hooked, data, key_head, key_pos, memo):
    layer = key_head[0]
    pos = key_pos if key_pos != 0 else 1
    _check_ln_fit(student, reference, hooked, memo, data, f"blocks.{layer}.ln1", pos, f"blocks.{layer}.ln1 at position {pos}")


@grades("get_ln_fit")
def test_get_ln_fit_all_positions(student, reference, hooked, data_other, memo):
    _check_ln_fit(student, reference, hooked, memo, data_other, "blocks.1.ln2", None, "blocks.1.ln2 over all positions")


def _check_pre_final(student, reference, hooked, memo, data, what):
    use_reference(student, reference, hooked, memo, "get_ln_fit", "get_post_final_ln_dir")
    want = ref(memo, reference, hooked, "get_pre_final_ln_dir", hooked, data)
    got = student.get_pre_final_ln_dir(student.model, student_data(student, data))
    assert_close(got, want, atol=1e-4 * float(want.abs().max()), rtol=1e-3, what=f"get_pre_final_ln_dir ({what})")


@grades("get_pre_final_ln_dir")
def test_get_pre_final_ln_dir(student, reference, hooked, data, memo):
    _check_pre_final(student, reference, hooked, memo, data, f"{len(data)} strings")


@grades("get_pre_final_ln_dir")
def test_get_pre_final_ln_dir_other_data(student, reference, hooked, data_other, memo):
    _check_pre_final(student, reference, hooked, memo, data_other, f"{len(data_other)} near misses")


@grades("get_out_by_components", weight=2)
def test_get_out_by_components(student, reference, hooked, data, memo):
    want = ref(memo, reference, hooked, "get_out_by_components", hooked, data)
    got = student.get_out_by_components(student.model, student_data(student, data))
    assert_close(got, want, what="get_out_by_components (component, batch, d_model)")


@grades("get_out_by_components")
def test_get_out_by_components_other_data(student, reference, hooked, data_other, memo):
    want = ref(memo, reference, hooked, "get_out_by_components", hooked, data_other)
    got = student.get_out_by_components(student.model, student_data(student, data_other))
    assert_close(got, want, what="get_out_by_components on near misses")


# ----------------------------------------------------------------------------- 3. failure modes


def _check_failures(student, reference, strs, what):
    toks = brackets_helpers.SimpleTokenizer().tokenize(strs)
    got = check_sequence(student.get_elevation_failures(toks), 2, "get_elevation_failures")
    want = reference.get_elevation_failures(toks)
    for name, g, w in zip(("negative_failure", "total_elevation_failure"), got, want):
        g = check_is_tensor(g, name)
        check_shape(g, w.shape, f"{name} ({what})")
        if g.dtype != torch.bool:
            raise CheckFailed(f"{name}: expected a bool tensor, got dtype {g.dtype}")
        wrong = torch.nonzero(g.cpu() != w.cpu()).flatten()
        if len(wrong):
            i = int(wrong[0])
            raise CheckFailed(f"{name} ({what}): wrong for {len(wrong)} of {len(strs)} strings, e.g. {strs[i]!r} "
                              f"(tokens padded to width {toks.shape[1]}): got {bool(g[i])}, expected {bool(w[i])}")


@grades("get_elevation_failures")
def test_get_elevation_failures(student, reference, data):
    _check_failures(student, reference, list(data.strs), f"{len(data)} padded strings")


@grades("get_elevation_failures")
def test_get_elevation_failures_edge_cases(student, reference, max_len):
    strs = [s for s in EDGE_CASES if len(s) <= max_len]
    _check_failures(student, reference, strs, "edge cases")


# ----------------------------------------------------------------------------- 4. attention and OV


@grades("get_attn_probs")
def test_get_attn_probs_key_head(student, reference, hooked, data, key_head, memo):
    want = ref(memo, reference, hooked, "get_attn_probs", hooked, data, *key_head)
    got = student.get_attn_probs(student.model, student_data(student, data), *key_head)
    assert_close(got, want, what=f"get_attn_probs of head {key_head[0]}.{key_head[1]}")


@grades("get_attn_probs")
def test_get_attn_probs_other_heads(student, reference, hooked, data_other, separating_head, memo):
    heads = sorted({separating_head, (0, hooked.cfg.n_heads - 1)})
    sdata = student_data(student, data_other)
    for layer, head in heads:
        want = ref(memo, reference, hooked, "get_attn_probs", hooked, data_other, layer, head)
        assert_close(student.get_attn_probs(student.model, sdata, layer, head), want,
                     what=f"get_attn_probs of head {layer}.{head}")


@grades("get_WOV")
def test_get_WOV(student, reference, hooked, memo):
    for layer in range(hooked.cfg.n_layers):
        for head in range(hooked.cfg.n_heads):
            assert_close(student.get_WOV(student.model, layer, head), reference.get_WOV(hooked, layer, head),
                         what=f"get_WOV(model, {layer}, {head})")


def _check_pre_20(student, reference, hooked, memo, data, layer, head, pos):
    use_reference(student, reference, hooked, memo, "get_ln_fit", "get_WOV", "get_pre_final_ln_dir")
    want = ref(memo, reference, hooked, "get_pre_20_dir", hooked, data, layer, head, pos)
    got = student.get_pre_20_dir(student.model, student_data(student, data), layer, head, pos)
    assert_close(got, want, atol=1e-4 * float(want.abs().max()), rtol=1e-3,
                 what=f"get_pre_20_dir for head {layer}.{head} at position {pos}")


@grades("get_pre_20_dir", weight=2)
def test_get_pre_20_dir_key_head(student, reference, hooked, data, key_head, key_pos, memo):
    _check_pre_20(student, reference, hooked, memo, data, *key_head, key_pos)


@grades("get_pre_20_dir")
def test_get_pre_20_dir_other_head(student, reference, hooked, data, key_head, memo):
    layer = key_head[0]
    _check_pre_20(student, reference, hooked, memo, data, layer, (key_head[1] + 1) % hooked.cfg.n_heads, 1)


# ----------------------------------------------------------------------------- 5. neurons


@grades("get_out_by_neuron")
def test_get_out_by_neuron_one_position(student, reference, hooked, data, key_pos, memo):
    for layer in (1,):
        want = ref(memo, reference, hooked, "get_out_by_neuron", hooked, data, layer, key_pos)
        got = student.get_out_by_neuron(student.model, student_data(student, data), layer, key_pos)
        assert_close(got, want, what=f"get_out_by_neuron(layer={layer}, seq_pos={key_pos})")


@grades("get_out_by_neuron")
def test_get_out_by_neuron_all_positions(student, reference, hooked, data_small, memo):
    layer = hooked.cfg.n_layers - 1
    want = ref(memo, reference, hooked, "get_out_by_neuron", hooked, data_small, layer)
    got = student.get_out_by_neuron(student.model, student_data(student, data_small), layer)
    assert_close(got, want, what=f"get_out_by_neuron(layer={layer}) at every position, {len(data_small)} strings")


@fixture
def pre_20_dir(reference, hooked, data, key_head, key_pos, memo):
    return ref(memo, reference, hooked, "get_pre_20_dir", hooked, data, *key_head, key_pos)


def _cases(pre_20_dir, key_pos, seed, d_model):
    """(what, layer, direction, position): the key head's direction at its key position, and a random one."""
    g = torch.Generator().manual_seed(seed)
    return [("pre_20_dir of the key head", 0, pre_20_dir, key_pos),
            ("a random direction", 1, torch.randn(d_model, generator=g) * 3, 1)]


@grades("get_out_by_neuron_in_20_dir")
def test_get_out_by_neuron_in_20_dir(student, reference, hooked, data, pre_20_dir, key_pos, seed, memo):
    use_reference(student, reference, hooked, memo, "get_out_by_neuron")
    sdata = student_data(student, data)
    for what, layer, direction, pos in _cases(pre_20_dir, key_pos, seed, hooked.cfg.d_model):
        want = ref(memo, reference, hooked, "get_out_by_neuron_in_20_dir", hooked, data, layer, direction, pos)
        got = student.get_out_by_neuron_in_20_dir(student.model, sdata, layer, direction, pos)
        assert_close(got, want, atol=1e-4 * float(want.abs().max()) + 1e-5, rtol=1e-3,
                     what=f"get_out_by_neuron_in_20_dir, layer {layer}, position {pos}, {what}")


@grades("get_out_by_neuron_in_20_dir_less_memory")
def test_get_out_by_neuron_in_20_dir_less_memory(student, reference, hooked, data, pre_20_dir, key_pos, seed, memo):
    sdata = student_data(student, data)
    for what, layer, direction, pos in _cases(pre_20_dir, key_pos, seed + 1, hooked.cfg.d_model):
        want = ref(memo, reference, hooked, "get_out_by_neuron_in_20_dir_less_memory", hooked, data, layer, direction, pos)
        got = student.get_out_by_neuron_in_20_dir_less_memory(student.model, sdata, layer, direction, pos)
        assert_close(got, want, atol=1e-4 * float(want.abs().max()) + 1e-5, rtol=1e-3,
                     what=f"get_out_by_neuron_in_20_dir_less_memory, layer {layer}, position {pos}, {what}")


# ----------------------------------------------------------------------------- 6. queries and keys


@grades("get_q_and_k_for_given_input")
def test_get_q_and_k_for_given_input(student, reference, hooked, data, max_len, memo):
    tokenizer = brackets_helpers.SimpleTokenizer()
    cases = [("()" * (max_len // 2), 0), (data.strs[0], hooked.cfg.n_layers - 1), ("(()", 1)]
    for parens, layer in cases:
        want = ref(memo, reference, hooked, "get_q_and_k_for_given_input", hooked, tokenizer, parens, layer)
        got = check_sequence(student.get_q_and_k_for_given_input(student.model, student.tokenizer, parens, layer), 2,
                       "get_q_and_k_for_given_input")
        assert_close(got[0], want[0], what=f"q of layer {layer} on {parens!r}")
        assert_close(got[1], want[1], what=f"k of layer {layer} on {parens!r}")
