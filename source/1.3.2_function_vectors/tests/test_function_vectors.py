"""Hidden tests for 1.3.2 Function vectors with nnsight.

Every expected value comes from the reference solution, run here on the trusted copy of the same model
(``nn_model``, an nnsight ``LanguageModel``) on the same inputs. Nothing about the trained model is hard-coded:
which heads have the largest indirect effects (hence which heads build the function vector) is computed by the
reference at grading time. Student functions get the student's own model (``student.model``, loaded by the
release's setup cell); no exercise calls another, and every input an exercise needs from an earlier one (the heads'
mean outputs, the function vector) is computed here by the reference, so a bug costs only the exercise it is in.
"""

from __future__ import annotations

import torch

import fv_helpers as fh
from autograder.checks import CheckFailed, assert_close, check_float, check_shape
from autograder.testing import fixture, grades, one_thread

# ----------------------------------------------------------------------------- fixtures


@fixture
def nn_model(profile, device):
    return fh.load_model(profile, device=str(device))


@fixture
def tasks(profile):
    return list(fh.tasks_for(profile))


@fixture
def mixed(nn_model, tasks, seed):
    """Prompts of every task with 4 examples, the tasks interleaved, in one batch (all the same length)."""
    parts = [fh.make_icl_dataset(nn_model, t, 4, 4, seed=seed % 97) for t in tasks]
    tokens = torch.cat([p["tokens"] for p in parts])
    answers = torch.cat([p["answers"] for p in parts])
    order = torch.randperm(len(answers), generator=torch.Generator().manual_seed(seed))
    return {"tokens": tokens[order], "answers": answers[order]}


@fixture
def zero_shot(nn_model, tasks, seed):
    parts = [fh.make_icl_dataset(nn_model, t, 4, 0, seed=seed % 89) for t in tasks]
    return {"tokens": torch.cat([p["tokens"] for p in parts]), "answers": torch.cat([p["answers"] for p in parts])}


@fixture
def pair(nn_model, tasks, seed):
    """Clean and corrupted (shuffled-label) prompts of the first task, row for row, 5 examples each."""
    task = tasks[0]
    clean = fh.make_icl_dataset(nn_model, task, 12, 5, seed=seed % 83)
    corrupt = fh.make_icl_dataset(nn_model, task, 12, 5, seed=seed % 83, shuffle_labels=True)
    return {"task": task, "clean": clean, "corrupt": corrupt}


@fixture
def means(reference, nn_model, pair):
    """The reference's mean head outputs over 32 clean prompts of the first task (n_layers, n_heads, d_head)."""
    clean = fh.make_icl_dataset(nn_model, pair["task"], 32, 5, seed=1)
    with one_thread(), torch.no_grad():
        return reference.head_outputs_at_last(nn_model, clean["tokens"]).mean(1)


@fixture
def effects(reference, nn_model, means, pair):
    with one_thread(), torch.no_grad():
        return reference.head_indirect_effects(nn_model, means, pair["corrupt"]["tokens"], pair["corrupt"]["answers"])


@fixture
def top_heads(nn_model, effects):
    """The 4 heads with the largest indirect effects (found by the reference now)."""
    order = effects.flatten().argsort(descending=True)[:4]
    H = fh.n_heads(nn_model)
    return [(int(i) // H, int(i) % H) for i in order]


@fixture
def fv(reference, nn_model, means, top_heads):
    with one_thread(), torch.no_grad():
        return reference.function_vector(nn_model, means, top_heads)


def fv_layer(nn_model) -> int:
    return fh.n_layers(nn_model) // 4 if fh.n_layers(nn_model) > 4 else 1


# ----------------------------------------------------------------------------- 1. reading the model


@grades("answer_logits")
def test_answer_logits_icl(student, reference, nn_model, mixed):
    with one_thread(), torch.no_grad():
        expected = reference.answer_logits(nn_model, mixed["tokens"], mixed["answers"])
        got = student.answer_logits(student.model, mixed["tokens"], mixed["answers"])
    check_shape(got, tuple(expected.shape), "answer_logits")
    assert_close(got, expected, atol=1e-4, rtol=1e-4, what="the right answer's logit for ICL prompts of every task")


@grades("answer_logits")
def test_answer_logits_zero_shot_other_answers(student, reference, nn_model, zero_shot, seed):
    """Zero-shot prompts, and answers that are not the model's favourites (random token ids)."""
    answers = torch.randint(nn_model.config.vocab_size, zero_shot["answers"].shape,
                            generator=torch.Generator().manual_seed(seed))
    with one_thread(), torch.no_grad():
        for a, what in ((zero_shot["answers"], "the right answers"), (answers, "random token ids")):
            expected = reference.answer_logits(nn_model, zero_shot["tokens"], a)
            got = student.answer_logits(student.model, zero_shot["tokens"], a)
            assert_close(got, expected, atol=1e-4, rtol=1e-4, what=f"answer logits of zero-shot prompts, {what}")


@grades("icl_accuracy")
def test_icl_accuracy_against_reference(student, reference, nn_model, mixed, zero_shot):
    with one_thread(), torch.no_grad():
        for d, what in ((mixed, "ICL prompts with 4 examples"), (zero_shot, "zero-shot prompts")):
            expected = reference.icl_accuracy(nn_model, d["tokens"], d["answers"])
            got = check_float(student.icl_accuracy(student.model, d["tokens"], d["answers"]), "icl_accuracy")
            if abs(got - expected) > 1e-6:
                raise CheckFailed(f"icl_accuracy on {what}: got {got:.4f}, expected {expected:.4f}")


@grades("icl_accuracy")
def test_icl_accuracy_known_fraction(student, reference, nn_model, mixed):
    """Answers set to the model's top prediction on 3 of every 8 rows and to its second choice on the others."""
    with one_thread(), nn_model.trace(mixed["tokens"]):
        last = nn_model.lm_head.output[:, -1].save()
    top2 = last.topk(2, dim=-1).indices.cpu()
    rows = torch.arange(len(top2))
    answers = torch.where(rows % 8 < 3, top2[:, 0], top2[:, 1])
    expected = float((rows % 8 < 3).float().mean())
    with one_thread(), torch.no_grad():
        got = check_float(student.icl_accuracy(student.model, mixed["tokens"], answers), "icl_accuracy")
    if abs(got - expected) > 1e-6:
        raise CheckFailed(f"icl_accuracy with answers the model gets right on {expected:.3f} of the rows: got {got:.4f}")


@grades("residual_at_last")
def test_residual_at_last(student, reference, nn_model, mixed, zero_shot):
    with one_thread(), torch.no_grad():
        for d, what in ((mixed, "ICL prompts"), (zero_shot, "zero-shot prompts")):
            expected = reference.residual_at_last(nn_model, d["tokens"])
            got = student.residual_at_last(student.model, d["tokens"])
            check_shape(got, tuple(expected.shape), f"residual_at_last on {what}")
            assert_close(got, expected, atol=1e-4, rtol=1e-4, what=f"the residual stream after each block, {what}")


@grades("head_outputs_at_last")
def test_head_outputs_at_last(student, reference, nn_model, mixed, zero_shot):
    with one_thread(), torch.no_grad():
        for d, what in ((mixed, "ICL prompts"), (zero_shot, "zero-shot prompts")):
            expected = reference.head_outputs_at_last(nn_model, d["tokens"])
            got = student.head_outputs_at_last(student.model, d["tokens"])
            check_shape(got, tuple(expected.shape), f"head_outputs_at_last on {what}")
            assert_close(got, expected, atol=1e-4, rtol=1e-4, what=f"every head's output z at the last position, {what}")


# ----------------------------------------------------------------------------- 2. patching


@grades("patch_residual_stream")
def test_patch_residual_stream(student, reference, nn_model, pair):
    clean, corrupt = pair["clean"], pair["corrupt"]
    with one_thread(), torch.no_grad():
        expected = reference.patch_residual_stream(nn_model, clean["tokens"], corrupt["tokens"], clean["answers"])
        got = student.patch_residual_stream(student.model, clean["tokens"], corrupt["tokens"], clean["answers"])
    check_shape(got, tuple(expected.shape), "patch_residual_stream")
    assert_close(got, expected, atol=1e-4, rtol=1e-4,
                 what="mean P(answer) with each block's output at the last position patched from the clean run")


@fixture
def swapped(reference, nn_model, tasks, seed):
    """Another task than ``pair``'s, 6 prompts, and the reference's patching with the roles swapped."""
    task = tasks[(seed % (len(tasks) - 1)) + 1]
    clean = fh.make_icl_dataset(nn_model, task, 6, 3, seed=seed % 71)
    corrupt = fh.make_icl_dataset(nn_model, task, 6, 3, seed=seed % 71, shuffle_labels=True)
    with one_thread(), torch.no_grad():
        expected = reference.patch_residual_stream(nn_model, corrupt["tokens"], clean["tokens"], clean["answers"])
    return {"task": task, "clean": clean, "corrupt": corrupt, "expected": expected}


@grades("patch_residual_stream")
def test_patch_residual_stream_other_task(student, swapped):
    """Another task, fewer prompts, the clean and corrupted roles swapped (clean -> corrupted at every layer)."""
    clean, corrupt = swapped["clean"], swapped["corrupt"]
    with one_thread(), torch.no_grad():
        got = student.patch_residual_stream(student.model, corrupt["tokens"], clean["tokens"], clean["answers"])
    assert_close(got, swapped["expected"], atol=1e-4, rtol=1e-4,
                 what=f"patching shuffled-label runs into clean ones ({swapped['task']})")


@grades("head_indirect_effects")
def test_head_indirect_effects(student, reference, nn_model, means, effects, pair):
    corrupt = pair["corrupt"]
    with one_thread(), torch.no_grad():
        got = student.head_indirect_effects(student.model, means, corrupt["tokens"], corrupt["answers"])
    check_shape(got, tuple(effects.shape), "head_indirect_effects")
    assert_close(got, effects, atol=1e-4, rtol=1e-4,
                 what="each head's indirect effect (its mean clean output patched into shuffled-label prompts)")


@fixture
def random_means_effects(reference, nn_model, pair, seed):
    """Random vectors in place of the heads' means, 4 corrupted prompts, and the reference's effects."""
    L, H, dh = fh.n_layers(nn_model), fh.n_heads(nn_model), fh.d_head(nn_model)
    fake = torch.randn(L, H, dh, generator=torch.Generator().manual_seed(seed)) * 2
    tokens, answers = pair["corrupt"]["tokens"][:4], pair["corrupt"]["answers"][:4]
    with one_thread(), torch.no_grad():
        expected = reference.head_indirect_effects(nn_model, fake, tokens, answers)
    return {"means": fake, "tokens": tokens, "answers": answers, "expected": expected}


@grades("head_indirect_effects")
def test_head_indirect_effects_random_means(student, random_means_effects):
    """Random vectors in place of the heads' means, on 4 prompts: large effects of both signs."""
    r = random_means_effects
    with one_thread(), torch.no_grad():
        got = student.head_indirect_effects(student.model, r["means"], r["tokens"], r["answers"])
    assert_close(got, r["expected"], atol=1e-4, rtol=1e-4, what="indirect effects with random vectors as the heads' means")


# ----------------------------------------------------------------------------- 3. the function vector


@grades("function_vector")
def test_function_vector_top_heads(student, reference, nn_model, means, top_heads, fv):
    got = student.function_vector(student.model, means, top_heads)
    check_shape(got, tuple(fv.shape), "function_vector")
    assert_close(got, fv, atol=1e-4, rtol=1e-4, what=f"the function vector of heads {top_heads}")


@grades("function_vector")
def test_function_vector_other_heads(student, reference, nn_model, seed):
    L, H, dh = fh.n_layers(nn_model), fh.n_heads(nn_model), fh.d_head(nn_model)
    g = torch.Generator().manual_seed(seed)
    fake = torch.randn(L, H, dh, generator=g)
    for heads in ([(L - 1, H - 1)], [(0, 1 % H), (0, 0), (L // 2, H - 1)]):
        expected = reference.function_vector(nn_model, fake, heads)
        got = student.function_vector(student.model, fake, heads)
        assert_close(got, expected, atol=1e-4, rtol=1e-4, what=f"a function vector of heads {heads}, random means")


@grades("add_vector_logits")
def test_add_function_vector(student, reference, nn_model, zero_shot, fv):
    layer = fv_layer(nn_model)
    with one_thread(), torch.no_grad():
        expected = reference.add_vector_logits(nn_model, zero_shot["tokens"], layer, fv)
        got = student.add_vector_logits(student.model, zero_shot["tokens"], layer, fv)
    check_shape(got, tuple(expected.shape), "add_vector_logits")
    assert_close(got, expected, atol=1e-3, rtol=1e-4, what=f"zero-shot logits with the function vector after block {layer}")


@grades("add_vector_logits")
def test_add_random_vector_other_layers(student, reference, nn_model, mixed, seed):
    g = torch.Generator().manual_seed(seed)
    vec = torch.randn(nn_model.config.n_embd, generator=g) * 5
    with one_thread(), torch.no_grad():
        for layer in (0, fh.n_layers(nn_model) - 1):
            expected = reference.add_vector_logits(nn_model, mixed["tokens"], layer, vec)
            got = student.add_vector_logits(student.model, mixed["tokens"], layer, vec)
            assert_close(got, expected, atol=1e-3, rtol=1e-4,
                         what=f"ICL prompts with a random vector added after block {layer}")


# ----------------------------------------------------------------------------- 4. generation


def check_ids(got, expected, what):
    got = torch.as_tensor(got).cpu()
    check_shape(got, tuple(expected.shape), what)
    if not torch.equal(got.long(), expected.cpu().long()):
        n = expected.shape[1]
        raise CheckFailed(f"{what}: the generated ids differ (got {got.tolist()}, expected {expected.tolist()}; "
                          f"sequences of length {n}, prompt included)")


@grades("generate_with_vector")
def test_generate_with_function_vector(student, reference, nn_model, zero_shot, fv):
    layer = fv_layer(nn_model)
    tokens = zero_shot["tokens"][::3][:6]
    with one_thread(), torch.no_grad():
        expected = reference.generate_with_vector(nn_model, tokens, layer, fv * 1.5, 3)
        got = student.generate_with_vector(student.model, tokens, layer, fv * 1.5, 3)
    check_ids(got, expected, f"3 tokens generated from zero-shot prompts, the function vector after block {layer}")


@grades("generate_with_vector")
def test_generate_with_random_vector(student, reference, nn_model, mixed, seed):
    g = torch.Generator().manual_seed(seed)
    vec = torch.randn(nn_model.config.n_embd, generator=g) * 8
    tokens = mixed["tokens"][:5]
    with one_thread(), torch.no_grad():
        expected = reference.generate_with_vector(nn_model, tokens, 0, vec, 4)
        got = student.generate_with_vector(student.model, tokens, 0, vec, 4)
    check_ids(got, expected, "4 tokens generated from ICL prompts with a large random vector after block 0")
