"""Public tests for section 1.3.4: call ``check("exercise_name")`` in the notebook.

They compare your code with small computations written out another way (loops, hand-made numbers, TransformerLens's
cache read by hand) and check properties any correct answer has. They are a subset of what grading checks.
"""

from __future__ import annotations

import torch

import oracle_helpers as oh
from autograder.checks import CheckFailed, assert_close, check_shape
from autograder.public_checks import PublicChecks

CHECKS = PublicChecks(no_grad=True)
register, check = CHECKS.register, CHECKS.check


def _statements():
    return ["Paris is in France.", "Seven is larger than three.", "Rome is not in Spain.", "Two plus four is six."]


@register("statement_vectors")
def _check_statement_vectors(g: dict) -> None:
    target = g["target"]
    tokens, last = oh.tokenize_statements(target, _statements())
    got = g["statement_vectors"](target, tokens, last, 1)
    if not isinstance(got, (list, tuple)) or len(got) != len(last):
        raise CheckFailed(f"statement_vectors: expected a list of {len(last)} tensors, one per prompt")
    _, cache = target.run_with_cache(tokens)
    for i, v in enumerate(got):
        check_shape(v, (int(last[i]), target.cfg.d_model), f"statement_vectors(...)[{i}]")
        assert_close(v[-1], cache["blocks.1.hook_resid_post"][i, int(last[i])], atol=1e-5, rtol=1e-5,
                     what=f"prompt {i}'s last vector: the residual stream after block 1 at its last token")
        assert_close(v[0], cache["blocks.1.hook_resid_post"][i, 1], atol=1e-5, rtol=1e-5,
                     what=f"prompt {i}'s first vector: the first token after BOS")


@register("oracle_prompt")
def _check_oracle_prompt(g: dict) -> None:
    oracle = g["oracle"]
    out = g["oracle_prompt"](oracle, "country", 3)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("oracle_prompt: expected a tuple (tokens, positions)")
    tokens, positions = out
    words = [w.strip() for w in oracle.to_str_tokens(tokens[0])]
    if oh.PROFILE == "lite":
        expected = [oh.EOT, "layer", "3", ":", "?", "?", "?", "which", "country", "?"]
        if words != expected:
            raise CheckFailed(f"oracle_prompt(oracle, 'country', 3): the prompt reads {words}, expected {expected}")
    first = len(oracle.to_tokens(oh.prompt_prefix())[0])
    if [int(p) for p in positions] != [first, first + 1, first + 2]:
        raise CheckFailed(f"oracle_prompt(oracle, 'country', 3): placeholder positions {positions.tolist()}, expected "
                          f"{[first, first + 1, first + 2]}: right after BOS and the prefix's {first - 1} tokens (the "
                          "question's own '?' is not a placeholder)")
    if {words[int(p)] for p in positions} != {oh.PLACEHOLDER.strip()}:
        raise CheckFailed(f"oracle_prompt: the tokens at your positions are {[words[int(p)] for p in positions]}, not placeholders")


@register("norm_matched_injection")
def _check_norm_matched_injection(g: dict) -> None:
    resid = torch.tensor([[[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]]])  # (1, 3, 2)
    vectors = torch.tensor([[[0.0, 10.0]]])  # (1, 1, 2): one vector, for position 1
    before = resid.clone()
    got = g["norm_matched_injection"](resid, torch.tensor([1]), vectors)
    check_shape(got, (1, 3, 2), "norm_matched_injection")
    expected = torch.tensor([[[3.0, 4.0], [1.0, 1.0], [0.0, 2.0]]])  # position 1: (1, 0) + |(1, 0)| * (0, 1)
    assert_close(got, expected, atol=1e-6, rtol=1e-6, what="a hand-made example (norm 1 at position 1, vector (0, 10))")
    if not torch.equal(resid, before):
        raise CheckFailed("norm_matched_injection changed its input resid; return a new tensor instead")


@register("ask_oracle")
def _check_ask_oracle(g: dict) -> None:
    target, oracle = g["target"], g["oracle"]
    tokens, last = oh.tokenize_statements(target, ["Paris is in France.", "Tokyo is in Japan."])
    _, cache = target.run_with_cache(tokens)
    hook = f"blocks.{oh.READ_LAYER[oh.PROFILE]}.hook_resid_post"
    vectors = torch.stack([cache[hook][i, int(last[i])] for i in range(2)])[:, None]  # (2, 1, d)
    got = g["ask_oracle"](oracle, "truth", vectors)
    check_shape(got, (2, oracle.cfg.d_vocab), "ask_oracle")
    prompt = oracle.to_tokens(oh.prompt_prefix() + oh.PLACEHOLDER + " " + oh.question_text("truth"))
    at = len(oracle.to_tokens(oh.prompt_prefix())[0])  # the placeholder, after BOS and the prefix
    for i in range(2):
        def inject(resid, hook, v=vectors[i, 0]):
            resid = resid.clone()
            resid[0, at] += resid[0, at].norm() * v / v.norm()
            return resid

        one = oracle.run_with_hooks(prompt, fwd_hooks=[(f"blocks.{oh.INJECT_LAYER}.hook_resid_pre", inject)])[0, -1]
        assert_close(got[i], one, atol=1e-4, rtol=1e-4, what=f"row {i}: the logits at the last position, asked one at a time")


@register("score_answers")
def _check_score_answers(g: dict) -> None:
    logits = torch.tensor([[0.0, 5.0, 1.0, 2.0, 9.0], [0.0, 1.0, 3.0, 2.0, 9.0], [7.0, 1.0, 0.0, 2.0, 9.0]])
    candidates = torch.tensor([1, 2, 3])  # token 4 scores highest but is not a candidate
    out = g["score_answers"](logits, candidates, torch.tensor([0, 2, 2]))
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("score_answers: expected a tuple (choice, accuracy)")
    if [int(c) for c in out[0]] != [0, 1, 2]:
        raise CheckFailed(f"score_answers: choices {out[0].tolist()} on a hand-made example, expected [0, 1, 2] "
                          "(indices into candidates, only candidates compared)")
    if not isinstance(out[1], float) or abs(out[1] - 2 / 3) > 1e-6:
        raise CheckFailed(f"score_answers: accuracy {out[1]!r}, expected 2/3 as a Python float")


@register("diff_of_means_probe")
def _check_diff_of_means_probe(g: dict) -> None:
    train_x = torch.tensor([[5.0, 1.0], [7.0, 1.0], [6.0, 4.0], [1.0, 1.0], [3.0, 1.0]])
    train_y = torch.tensor([1, 1, 1, 0, 0])  # means (6, 2) and (2, 1): direction (4, 1), threshold 4 * 4 + 1 * 1.5 = 17.5
    test_x = torch.tensor([[4.0, 1.4], [4.0, 1.6], [0.0, 0.0], [10.0, 0.0]])
    got = g["diff_of_means_probe"](train_x, train_y, test_x)
    check_shape(got, (4,), "diff_of_means_probe")
    if [bool(x) for x in got] != [False, True, False, True]:
        raise CheckFailed(f"diff_of_means_probe: {got.tolist()} on a hand-made example, expected [False, True, False, True] "
                          "(direction mean_true - mean_false, threshold at the midpoint of the two means)")


@register("oracle_loss")
def _check_oracle_loss(g: dict) -> None:
    logits = torch.zeros(2, 3, 4)
    logits[0, 1] = torch.tensor([0.0, 2.0, 0.0, 0.0])  # row 0 answers at position 1
    logits[1, 2] = torch.tensor([1.0, 0.0, 0.0, 3.0])  # row 1 at position 2
    logits.requires_grad_(True)
    with torch.enable_grad():
        got = g["oracle_loss"](logits, torch.tensor([1, 2]), torch.tensor([1, 3]))
    if not isinstance(got, torch.Tensor) or got.dim() != 0:
        raise CheckFailed("oracle_loss: expected a scalar tensor")
    by_hand = (-torch.log_softmax(torch.tensor([0.0, 2, 0, 0]), 0)[1] - torch.log_softmax(torch.tensor([1.0, 0, 0, 3]), 0)[3]) / 2
    assert_close(got.detach(), by_hand, atol=1e-5, rtol=1e-5, what="a hand-made example of two rows answering at positions 1 and 2")
    if not got.requires_grad:
        raise CheckFailed("oracle_loss: the loss lost its gradient (no .item(), .detach() or torch.no_grad() inside)")
