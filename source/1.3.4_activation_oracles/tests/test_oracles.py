"""Hidden tests for 1.3.4 Activation oracles.

Every expected value comes from the reference solution, run here on the trusted copies of the same target and oracle
and on the same inputs; nothing about the trained checkpoints is hard-coded. Student functions get the student's own
models (``student.target``, ``student.oracle``, loaded by the release's setup cell). No exercise's solution calls
another exercise, so a bug costs only its own exercise.
"""

from __future__ import annotations

import torch

import oracle_helpers as oh
from autograder.checks import CheckFailed, assert_close, assert_float, check_sequence, check_shape
from autograder.testing import fixture, grades, one_thread

# ----------------------------------------------------------------------------- fixtures


@fixture
def models(profile, device):
    """(target, oracle), trusted copies."""
    return oh.load_target(profile, device=str(device)), oh.load_oracle(profile, device=str(device))


@fixture
def read_layer(profile):
    return oh.READ_LAYER[profile]


def pick(rows, n, seed):
    g = torch.Generator().manual_seed(seed)
    return [rows[i] for i in torch.randperm(len(rows), generator=g)[:n].sort().values.tolist()]


@fixture
def mixed(models, seed):
    """12 held-out statements of every family, one padded batch: (statements, tokens, last_pos)."""
    rows = pick(oh.examples("truth", "test"), 12, seed)
    statements = [r[0] for r in rows]
    tokens, last = oh.tokenize_statements(models[0], statements)
    return statements, tokens, last


@fixture
def ref_vectors(reference, models, mixed, read_layer):
    with one_thread(), torch.no_grad():
        return reference.statement_vectors(models[0], mixed[1], mixed[2], read_layer)


# ----------------------------------------------------------------------------- 1. statement_vectors


def check_vectors(got, expected, what):
    if not isinstance(got, (list, tuple)) or len(got) != len(expected):
        raise CheckFailed(f"statement_vectors: expected a list of {len(expected)} tensors, got {type(got).__name__}"
                          + (f" of length {len(got)}" if isinstance(got, (list, tuple)) else ""))
    for i, (g, e) in enumerate(zip(got, expected)):
        check_shape(g, tuple(e.shape), f"{what}: prompt {i}")
        assert_close(g, e, atol=1e-4, rtol=1e-4, what=f"{what}: prompt {i}")


@grades("statement_vectors")
def test_vectors_padded_batch(student, mixed, ref_vectors, read_layer):
    with one_thread(), torch.no_grad():
        got = student.statement_vectors(student.target, mixed[1], mixed[2], read_layer)
    check_vectors(got, ref_vectors, f"12 statements of mixed lengths, layer {read_layer}")


@grades("statement_vectors")
def test_vectors_other_layers(student, reference, models, mixed):
    tokens, last = mixed[1][:3], mixed[2][:3]
    for layer in (0, models[0].cfg.n_layers - 1):
        with one_thread(), torch.no_grad():
            expected = reference.statement_vectors(models[0], tokens, last, layer)
            got = student.statement_vectors(student.target, tokens, last, layer)
        check_vectors(got, expected, f"layer {layer}")


# ----------------------------------------------------------------------------- 2. oracle_prompt


@grades("oracle_prompt")
def test_prompt_questions(student, reference, models):
    for question, n in (("truth", 1), ("country", 4), ("first", 9), ("which city ?", 2)):
        expected = reference.oracle_prompt(models[1], question, n)
        got = check_sequence(student.oracle_prompt(student.oracle, question, n), 2, "oracle_prompt")
        what = f"oracle_prompt(oracle, {question!r}, {n})"
        check_shape(got[0], tuple(expected[0].shape), f"{what}: tokens")
        if got[0].tolist() != expected[0].tolist():
            raise CheckFailed(f"{what}: tokens {models[1].to_str_tokens(got[0][0].to(torch.long))}, expected "
                              f"{models[1].to_str_tokens(expected[0][0])}")
        if [int(p) for p in got[1]] != expected[1].tolist():
            raise CheckFailed(f"{what}: positions {[int(p) for p in got[1]]}, expected {expected[1].tolist()}")


# ----------------------------------------------------------------------------- 3. norm_matched_injection


def check_injection(student, reference, resid, positions, vectors, what):
    expected = reference.norm_matched_injection(resid.clone(), positions, vectors)
    got = student.norm_matched_injection(resid, positions, vectors)
    check_shape(got, tuple(expected.shape), what)
    assert_close(got, expected, atol=1e-5, rtol=1e-5, what=what)
    # (whether the student's code changes its input in place cannot be seen from here: it gets a copy; the public
    # check tests it in the notebook)


@grades("norm_matched_injection")
def test_injection_random(student, reference, seed):
    g = torch.Generator().manual_seed(seed)
    resid = torch.randn(3, 7, 16, generator=g) * torch.rand(3, 7, 1, generator=g) * 5
    vectors = torch.randn(3, 4, 16, generator=g) * torch.rand(3, 4, 1, generator=g) * 40
    check_injection(student, reference, resid, torch.tensor([1, 2, 3, 4]), vectors, "random (3, 7, 16), 4 placeholders")


@grades("norm_matched_injection")
def test_injection_real(student, reference, models, ref_vectors, seed):
    """The oracle's own residual stream entering block INJECT_LAYER, and the target's vectors of one statement."""
    oracle = models[1]
    v = ref_vectors[0]
    tokens = oracle.to_tokens(oh.prompt_prefix() + oh.PLACEHOLDER * len(v) + " " + oh.question_text("kind"))
    first = len(oracle.to_tokens(oh.prompt_prefix())[0])
    with torch.no_grad():
        _, cache = oracle.run_with_cache(tokens.expand(2, -1), names_filter=f"blocks.{oh.INJECT_LAYER}.hook_resid_pre")
    resid = cache[f"blocks.{oh.INJECT_LAYER}.hook_resid_pre"].cpu()
    vectors = torch.stack([v, v.flip(0)]).cpu()
    check_injection(student, reference, resid, torch.arange(first, first + len(v)), vectors, "the oracle's residual stream")


@grades("norm_matched_injection")
def test_injection_scattered(student, reference, seed):
    g = torch.Generator().manual_seed(seed + 1)
    resid = torch.randn(2, 9, 8, generator=g) * 3
    vectors = torch.randn(2, 2, 8, generator=g) * 0.01
    check_injection(student, reference, resid, torch.tensor([6, 2]), vectors, "2 placeholders at positions [6, 2]")


# ----------------------------------------------------------------------------- 4. ask_oracle


def check_ask(student, reference, models, question, vectors, what):
    with one_thread(), torch.no_grad():
        expected = reference.ask_oracle(models[1], question, vectors)
        got = student.ask_oracle(student.oracle, question, vectors)
    check_shape(got, tuple(expected.shape), what)
    assert_close(got, expected, atol=1e-3, rtol=1e-3, what=what)


@grades("ask_oracle")
def test_ask_last_token(student, reference, models, ref_vectors):
    vectors = torch.stack([v[-1:] for v in ref_vectors])
    check_ask(student, reference, models, "truth", vectors, "'is this statement true ?' about 12 last-token vectors")


@grades("ask_oracle")
def test_ask_every_token(student, reference, models, mixed, ref_vectors):
    length = len(ref_vectors[0])
    same = [v for v in ref_vectors if len(v) == length]
    check_ask(student, reference, models, "kind", torch.stack(same), f"'which kind of statement ?' about {len(same)} statements' "
              f"{length} vectors each")


@grades("ask_oracle")
def test_ask_random_vectors(student, reference, models, seed):
    g = torch.Generator().manual_seed(seed + 2)
    vectors = torch.randn(3, 2, models[1].cfg.d_model, generator=g).to(models[1].cfg.device)
    check_ask(student, reference, models, "which city ?", vectors, "random vectors, 2 per row")


# ----------------------------------------------------------------------------- 5. score_answers


def check_scores(student, reference, logits, candidates, right, what):
    expected = reference.score_answers(logits, candidates, right)
    got = check_sequence(student.score_answers(logits, candidates, right), 2, "score_answers")
    if [int(c) for c in got[0]] != expected[0].tolist():
        raise CheckFailed(f"{what}: choices {[int(c) for c in got[0]]}, expected {expected[0].tolist()}")
    assert_float(got[1], expected[1], f"{what}: accuracy")


@grades("score_answers")
def test_scores_real(student, reference, models, ref_vectors):
    question = "truth"
    with one_thread(), torch.no_grad():
        logits = reference.ask_oracle(models[1], question, torch.stack([v[-1:] for v in ref_vectors])).cpu()
    candidates = oh.candidate_ids(models[1], question)
    right = torch.arange(len(ref_vectors)) % 2
    check_scores(student, reference, logits, candidates, right, "the oracle's logits on 12 statements")


@grades("score_answers")
def test_scores_synthetic(student, reference, seed):
    g = torch.Generator().manual_seed(seed + 3)
    logits = torch.randn(20, 30, generator=g)
    logits[:, 0] += 10  # the best token overall is never a candidate
    candidates = torch.tensor([17, 3, 25, 8])
    right = torch.randint(4, (20,), generator=g)
    check_scores(student, reference, logits, candidates, right, "random logits, candidates [17, 3, 25, 8]")


# ----------------------------------------------------------------------------- 6. diff_of_means_probe


def check_probe(student, reference, train_x, train_y, test_x, what):
    expected = reference.diff_of_means_probe(train_x, train_y, test_x)
    got = student.diff_of_means_probe(train_x, train_y, test_x)
    check_shape(got, tuple(expected.shape), what)
    if [bool(x) for x in got] != expected.tolist():
        wrong = sum(bool(a) != b for a, b in zip(got, expected.tolist()))
        raise CheckFailed(f"{what}: {wrong} of {len(expected)} predictions differ from the reference's")


@grades("diff_of_means_probe")
def test_probe_real_unbalanced(student, reference, models, read_layer, seed):
    """Training rows with three false statements for every true one, from the target's real vectors."""
    rows = pick(oh.examples("truth", "train", ["sum", "cmp", "city"]), 90, seed)
    test = pick(oh.examples("truth", "test", ["neg_city"]), 40, seed + 1)
    with one_thread(), torch.no_grad():
        def last(rs):
            toks, lp = oh.tokenize_statements(models[0], [r[0] for r in rs])
            _, cache = models[0].run_with_cache(toks, names_filter=f"blocks.{read_layer}.hook_resid_post")
            return cache[f"blocks.{read_layer}.hook_resid_post"][torch.arange(len(rs)), lp].cpu()
        train_x, test_x = last(rows), last(test)
    train_y = torch.tensor([r[2] == "true" for r in rows])
    check_probe(student, reference, train_x, train_y, test_x, f"{len(rows)} training rows ({int(train_y.sum())} true)")


@grades("diff_of_means_probe")
def test_probe_synthetic_offset(student, reference, seed):
    """Clusters far from the origin and unequal class sizes, with int labels."""
    g = torch.Generator().manual_seed(seed + 4)
    centre = torch.randn(6, generator=g) * 20
    true_x = centre + torch.randn(10, 6, generator=g) + 1.5
    false_x = centre + torch.randn(30, 6, generator=g) - 1.5
    train_x = torch.cat([true_x, false_x])
    train_y = torch.cat([torch.ones(10, dtype=torch.long), torch.zeros(30, dtype=torch.long)])
    test_x = centre + torch.randn(50, 6, generator=g) * 2
    check_probe(student, reference, train_x, train_y, test_x, "synthetic clusters around an offset centre")


# ----------------------------------------------------------------------------- 7. oracle_loss


def check_loss(student, reference, logits, last_pos, answers, what):
    expected = reference.oracle_loss(logits, last_pos, answers)
    got = student.oracle_loss(logits.clone().requires_grad_(True), last_pos, answers)
    if not isinstance(got, torch.Tensor) or got.dim() != 0:
        raise CheckFailed(f"{what}: expected a scalar tensor, got {type(got).__name__}")
    assert_float(got.detach().item(), expected.item(), what, rtol=1e-5, atol=1e-6)


@grades("oracle_loss")
def test_loss_real_padded(student, reference, models, ref_vectors):
    """Real oracle logits on prompts of different lengths, padded on the right."""
    oracle = models[1]
    rows, last_pos = [], []
    for i, v in enumerate(ref_vectors[:6]):
        k = 1 if i % 2 else len(v)
        rows.append(oracle.to_tokens(oh.prompt_prefix() + oh.PLACEHOLDER * k + " " + oh.question_text("kind"))[0])
        last_pos.append(len(rows[-1]) - 1)
    width = max(len(r) for r in rows)
    tokens = torch.stack([torch.cat([r, r.new_zeros(width - len(r))]) for r in rows])
    with torch.no_grad():
        logits = oracle(tokens).cpu()
    answers = oh.candidate_ids(oracle, "kind")[torch.tensor([2, 3, 4, 0, 1, 2])]
    check_loss(student, reference, logits, torch.tensor(last_pos), answers, "6 padded prompts of the oracle")


@grades("oracle_loss")
def test_loss_synthetic(student, reference, seed):
    g = torch.Generator().manual_seed(seed + 5)
    logits = torch.randn(5, 8, 11, generator=g) * 3
    check_loss(student, reference, logits, torch.tensor([7, 2, 5, 0, 3]), torch.randint(11, (5,), generator=g),
               "random logits (5, 8, 11), last positions [7, 2, 5, 0, 3]")

