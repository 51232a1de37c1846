# %% [markdown]
# # 1.3.4 Activation oracles
#
# A linear probe (section 1.3.1) answers one question about an activation: the one it was
# trained on. To ask another, you collect new labels and train another probe. An
# **activation oracle** is a language model trained to answer *questions in words* about
# activations it is shown. You take a vector from the **target** model's residual stream,
# paste it into the oracle's residual stream at a placeholder token, and ask
# "which country ?" or "is this statement true ?". One oracle answers many questions,
# including combinations it was never trained on.
#
# How the vector gets in (Karvonen et al., 2025, building on SelfIE and Patchscopes):
#
# 1. The oracle reads a prompt with one placeholder token per vector,
#    `<BOS> layer 3 : ? ? ? which country ?`.
# 2. After its first block, at each placeholder position, the vector is **added** to the
#    residual stream, rescaled to the norm of what is already there:
#    $h' = h + \lVert h \rVert \, v / \lVert v \rVert$. Rescaling makes the injection the same
#    size whatever layer the vector comes from; adding (rather than replacing) keeps the
#    placeholder's own information, such as its position.
# 3. The oracle, fine-tuned on many (vectors, question, answer) examples, answers.
#
# The oracle usually starts as a copy of the target, so that it already "speaks the
# language" of the target's residual stream.
#
# In this section you:
#
# 1. read the target's activations (`statement_vectors`);
# 2. build the oracle's prompt and find its placeholders (`oracle_prompt`);
# 3. write the injection (`norm_matched_injection`) and ask the oracle a question through a
#    TransformerLens hook (`ask_oracle`);
# 4. score its answers (`score_answers`) against a **control**: the same questions asked
#    with another statement's vectors. An oracle that answers from the question alone, or
#    from what the answer usually is, does as well on the control;
# 5. compare it with a linear probe (`diff_of_means_probe`) on a question that the oracle
#    never saw asked about that kind of statement;
# 6. write the loss the oracle was fine-tuned with (`oracle_loss`).
#
# **The models.**
#
# * **lite** (default). The **target** is section 1.3.1's 4-layer GPT-2 (d_model 64, a
#   word-level vocabulary of 80 words), trained to answer " true" or " false" after
#   statements such as "Paris is not in France. This statement is". The **oracle** is a copy
#   of it with thirteen more words ("?", "layer", "which", "country", …) and 24 positions instead of 16,
#   fine-tuned by this section (`assets/train_lite.py`, 15,000 steps, about 40 minutes on
#   one core of a busy 2-core machine; you do not need to rerun it) on six questions about the target's residual stream after
#   its last block (`blocks.3.hook_resid_post`), injected entering block 1. Half its
#   training examples show only the prompt's last token's vector, half every token's. One
#   statement in five was never used in training, and the question "is this statement
#   true ?" was never asked about the negated city facts ("Paris is not in France."). Both
#   models ship in `assets/lite/` (about 2 MB). Why the last block: section 1.3.1's probes
#   read the target's verdict best there, and an oracle cannot report what the vectors do
#   not hold.
# * **full**: the target is `Qwen/Qwen3-8B` and the oracle is the same model with the
#   activation-oracle LoRA adapter of Karvonen et al. merged in by PEFT, both from the asset
#   cache (`autograder assets fetch --profile full --assignment 1.3.4`, then
#   `AUTOGRADER_PROFILE=full`). It reads the residual stream after layer 18 of 36. The two
#   models need about 66 GB in float32: a GPU with 80 GB. The prompt keeps this notebook's
#   layout (`Layer 18: ? ? ? Which country is named?`, without the chat template the
#   paper's oracle was trained inside), so expect its answers to be rougher than the
#   paper's. The full profile's loading and the reference solution are tested here on
#   small local checkpoints in the same formats, not on the real weights.
#
# **Measured evidence** (lite; `assets/lite/training_info.json`, re-measured by the
# course's tests from the shipped files), on statements the oracle never saw (for the truth
# question, as many true as false; for the negated city facts, all of them, since none of
# their truths was trained on): accuracy of the oracle's answer (the best of the
# question's candidate answers), given the last token's vector or every token's; the
# control (another statement's vectors, from any family the question applies to); and, for
# comparison, a logistic-regression probe trained for that one question on the same
# last-token vectors (statements of the training split).
#
# | question | family | last token | control | probe, last token | every token | control |
# | --- | --- | ---: | ---: | ---: | ---: | ---: |
# | truth | cmp | 100% | 63% | 100% | 100% | 60% |
# | truth | sum | 100% | 43% | 80% | 93% | 50% |
# | truth | city | 100% | 44% | 100% | 100% | 44% |
# | truth | neg_city | 100% | 46% | 100% | 100% | 46% |
# | kind | cmp | 91% | 4% | 89% | 93% | 4% |
# | kind | sum | 98% | 63% | 100% | 100% | 63% |
# | kind | city | 96% | 21% | 99% | 100% | 18% |
# | kind | neg_city | 97% | 15% | 97% | 100% | 15% |
# | country | city | 83% | 8% | 62% | 65% | 10% |
# | country | neg_city | 77% | 3% | 76% | 55% | 1% |
# | city | city | 20% | 1% | 29% | 100% | 2% |
# | city | neg_city | 23% | 3% | 28% | 99% | 5% |
# | first | cmp | 46% | 11% | 39% | 98% | 18% |
# | first | sum | 62% | 12% | 78% | 100% | 8% |
# | second | cmp | 57% | 2% | 41% | 27% | 9% |
# | second | sum | 30% | 13% | 39% | 93% | 12% |
#
# The negated city facts were never asked "is this statement true ?" about in training. There the oracle
# answers 100% right from the last token's vector (control 46%), and
# a difference-of-means probe trained on the other three families gets 100%.
#
# So the oracle reads the target's verdict and the kind of statement off the last token's
# vector, and the country at least as well as a probe trained for it on that same vector;
# the city it reads only off every token's vectors (the last one hardly holds it: the probe
# gets under 30% too), and the numbers mostly off every token's. Some rows are weak either way (a
# comparison's second number off every token's). It answers the question it was never
# asked about negations, but so does a simple probe: after the last block, truth lies along
# the direction the target writes its answer on, whatever the family. The oracle's strength
# is not any one question but that one model answers all six.
#
# **How long.** With the lite profile every cell runs in a few seconds on a laptop CPU.
#
# **Checking your work.** After each exercise, `check("name")` runs public tests. Grading
# runs more thorough hidden tests on the same models.

# %% autograder={"role": "setup"}
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

import oracle_helpers as oh
from oracle_helpers import INJECT_LAYER, PLACEHOLDER, PROFILE, QUESTIONS, load_oracle, load_target
from public_tests import check

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.set_grad_enabled(False)

target = load_target(PROFILE, device=str(device))
oracle = load_oracle(PROFILE, device=str(device))
READ_LAYER = oh.READ_LAYER[PROFILE]

# %% [markdown]
# ## 0. The statements and the questions
#
# The target reads a statement followed by " This statement is" and answers " true" or
# " false" (section 1.3.1). `oh.QUESTIONS` lists the six questions the oracle was trained
# on, the families of statements each applies to, and the candidate answers.
# `oh.examples(question, split)` gives `(statement, family, answer)` triples;
# `oh.split_of(statement)` says whether the oracle trained on it.

# %%
for name, (text, families, candidates) in QUESTIONS.items():
    print(f"{name:7s} {text!r:32s} asked about {', '.join(families):24s} {len(candidates)} candidate answers")
print("held out of training:", oh.HELD_OUT)
for statement, family, answer in oh.examples("country", "test")[:3] + oh.examples("first", "test")[:3]:
    print(f"{statement!r:40s} {family:9s} -> {answer}")

# %% [markdown]
# ## 1. Reading the target
#
# The oracle was trained on the target's residual stream **after** block `READ_LAYER`
# (`blocks.{READ_LAYER}.hook_resid_post`), at the statement's tokens: every token of the
# prompt except BOS, up to and including the last one (where the target answers). A batch of
# prompts is padded on the right, so each statement has its own number of vectors.
#
# ### Exercise: `statement_vectors`
#
# Run the target once on `tokens` and return a list with one tensor per prompt, of shape
# `(last_pos[i], d_model)`: the residual stream after block `layer` at positions
# `1 … last_pos[i]` (BOS and padding left out).

# %% id="statement_vectors" autograder={"exercises": ["statement_vectors"]}
def statement_vectors(target: HookedTransformer, tokens: Int[Tensor, "batch seq"], last_pos: Int[Tensor, "batch"],
                      layer: int) -> list[Float[Tensor, "n_tokens d_model"]]:
    """The residual stream after block ``layer`` at each prompt's tokens 1..last_pos[i]."""
    ### BEGIN SOLUTION
    hook_name = f"blocks.{layer}.hook_resid_post"
    _, cache = target.run_with_cache(tokens, names_filter=hook_name)
    resid = cache[hook_name]
    return [resid[i, 1 : int(last_pos[i]) + 1] for i in range(tokens.shape[0])]
    ### END SOLUTION


# %%
check("statement_vectors")

# %%
demo = [s for s, _, _ in oh.examples("country", "test")[:4]]
demo_tokens, demo_last = oh.tokenize_statements(target, demo)
demo_vectors = statement_vectors(target, demo_tokens, demo_last, READ_LAYER)
for s, v in zip(demo, demo_vectors):
    print(f"{s!r:32s} {tuple(v.shape)}  norms {v.norm(dim=-1).round().tolist()}")

# %% [markdown]
# ## 2. The oracle's prompt
#
# The oracle reads `<BOS>`, a short prefix that says where the vectors come from
# (`oh.prompt_prefix()`: `"layer 3 :"` in lite), then one placeholder per vector
# (`PLACEHOLDER`, `" ?"`), then the question:
#
# `<BOS> layer 3 : ? ? ? which country ?`
#
# The placeholders are the `n_vectors` tokens right after the prefix. Note that the
# question itself ends in `?`: looking for every `?` token would also find the question
# mark. Count the prefix's tokens instead (tokenize it on its own, with BOS).
#
# ### Exercise: `oracle_prompt`
#
# Return `(tokens, positions)`: `tokens` of shape `(1, seq)`, as `oracle.to_tokens` gives
# them for the text `prefix + PLACEHOLDER * n_vectors + " " + question words`, and
# `positions` of shape `(n_vectors,)`, the placeholders' positions. `question` is a key of
# `QUESTIONS` or any text (`oh.question_text` turns a key into its words).

# %% id="oracle_prompt" autograder={"exercises": ["oracle_prompt"]}
def oracle_prompt(oracle: HookedTransformer, question: str, n_vectors: int) -> tuple[Tensor, Tensor]:
    """(tokens (1, seq) of '<BOS> prefix ? … ? question', positions (n_vectors,) of the placeholders)."""
    ### BEGIN SOLUTION
    prefix = oh.prompt_prefix()
    tokens = oracle.to_tokens(prefix + PLACEHOLDER * n_vectors + " " + oh.question_text(question))
    first = oracle.to_tokens(prefix).shape[1]  # BOS and the prefix
    positions = torch.arange(first, first + n_vectors, device=tokens.device)
    return tokens, positions
    ### END SOLUTION


# %%
check("oracle_prompt")

# %%
demo_prompt, demo_positions = oracle_prompt(oracle, "country", 3)
print(oracle.to_str_tokens(demo_prompt[0]), demo_positions.tolist())

# %% [markdown]
# ## 3. Injecting the vectors
#
# At each placeholder position $p$, with the oracle's residual stream $h_p$ there and the
# vector $v$ to show it:
#
# $$ h_p' = h_p + \lVert h_p \rVert \, \frac{v}{\lVert v \rVert} $$
#
# (norms over `d_model`). Every other position is left as it is.
#
# ### Exercise: `norm_matched_injection`
#
# `resid` is `(batch, seq, d_model)`, `positions` `(k,)` (the same for every row) and
# `vectors` `(batch, k, d_model)`: row `b`'s `j`-th vector goes to position
# `positions[j]`. Return a **new** tensor; do not change `resid` (TransformerLens hands a hook
# the tensor the model goes on using, and other hooks may hold it).

# %% id="norm_matched_injection" autograder={"exercises": ["norm_matched_injection"]}
def norm_matched_injection(resid: Float[Tensor, "batch seq d_model"], positions: Int[Tensor, "k"],
                           vectors: Float[Tensor, "batch k d_model"]) -> Float[Tensor, "batch seq d_model"]:
    """resid with h + ||h|| v / ||v|| at each placeholder position."""
    ### BEGIN SOLUTION
    out = resid.clone()
    h = resid[:, positions]
    out[:, positions] = h + h.norm(dim=-1, keepdim=True) * vectors / vectors.norm(dim=-1, keepdim=True)
    return out
    ### END SOLUTION


# %%
check("norm_matched_injection")

# %% [markdown]
# ### Exercise: `ask_oracle`
#
# Put it together. For `vectors` of shape `(batch, k, d_model)`, all asked the same
# `question`: build the prompt (BOS, prefix, `k` placeholders, the question), run the oracle on
# it once per row (a batch of identical prompts), with a hook on
# `blocks.{INJECT_LAYER}.hook_resid_pre` that injects row `b`'s vectors at the placeholders
# as above, and return the logits at the **last** position, `(batch, d_vocab)`: the oracle's
# prediction of the answer's first token.
#
# Write the prompt and the injection inside this function (you may copy your code from
# above); it is graded on its own.

# %% id="ask_oracle" autograder={"exercises": ["ask_oracle"]}
def ask_oracle(oracle: HookedTransformer, question: str,
               vectors: Float[Tensor, "batch k d_model"]) -> Float[Tensor, "batch d_vocab"]:
    """The oracle's logits at its prompt's last position, with ``vectors`` injected at the placeholders."""
    ### BEGIN SOLUTION
    batch, k, _ = vectors.shape
    prefix = oh.prompt_prefix()
    tokens = oracle.to_tokens(prefix + PLACEHOLDER * k + " " + oh.question_text(question)).expand(batch, -1)
    first = oracle.to_tokens(prefix).shape[1]
    positions = torch.arange(first, first + k, device=tokens.device)

    def inject(resid, hook):
        out = resid.clone()
        h = resid[:, positions]
        out[:, positions] = h + h.norm(dim=-1, keepdim=True) * vectors / vectors.norm(dim=-1, keepdim=True)
        return out

    logits = oracle.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{INJECT_LAYER}.hook_resid_pre", inject)])
    return logits[:, -1]
    ### END SOLUTION


# %%
check("ask_oracle")

# %% [markdown]
# Ask about the four statements above, from every token's vectors (the statements have the
# same length here, so they stack) and from the last token's alone:

# %%
cands = oh.candidate_ids(oracle, "country")
words = QUESTIONS["country"][2]
stacked = torch.stack(demo_vectors)
for name, vecs in [("every token", stacked), ("last token", stacked[:, -1:])]:
    picks = ask_oracle(oracle, "country", vecs)[:, cands].argmax(-1)
    print(f"{name:12s}", [words[i] for i in picks.tolist()])

# %% [markdown]
# ## 4. Scoring, and the control
#
# The oracle answers by its highest logit among the question's candidate answers
# (`oh.candidate_ids(oracle, question)`), so an answer is always one of the candidates.
#
# ### Exercise: `score_answers`
#
# `logits` is `(batch, d_vocab)`, `candidates` `(n_candidates,)` token ids, `right`
# `(batch,)` the index *into `candidates`* of the right answer. Return `(choice, accuracy)`:
# `choice` `(batch,)`, the index into `candidates` of the highest-scoring candidate, and
# `accuracy` the fraction of rows where it is right, as a Python float.

# %% id="score_answers" autograder={"exercises": ["score_answers"]}
def score_answers(logits: Float[Tensor, "batch d_vocab"], candidates: Int[Tensor, "n_candidates"],
                  right: Int[Tensor, "batch"]) -> tuple[Tensor, float]:
    """(index of the best candidate per row, fraction of rows where it is the right one)."""
    ### BEGIN SOLUTION
    choice = logits[:, candidates].argmax(dim=-1)
    return choice, (choice == right).float().mean().item()
    ### END SOLUTION


# %%
check("score_answers")

# %% [markdown]
# How do we know the oracle reads the vectors, rather than answering from the question
# alone ("which kind of statement ?" → "plus" is right for every sum) or from what the
# answer usually is? The **control** asks the same questions about the same statements, but
# injects *another* statement's vectors. Whatever the oracle gets right on the control, it
# did not need the activations for.
#
# The table below asks every question about every held-out statement, from the last token's
# vector and from every token's, and runs the control. Read it with these questions in mind:
#
# * Which questions does the last token's vector answer? The target decides " true" or
#   " false" there, so its truth and the kind of statement should be there. Is the *city*?
# * What changes with every token's vectors?
# * The row `truth / neg_city`: the oracle never saw this question asked about negated
#   statements.

# %%
import matplotlib.pyplot as plt


def accuracy_table(seed=0):
    """Accuracy per (question, family) on oh.evaluation_examples, from the last token's vector and from every token's,
    and the control: each question asked with the vectors of a random other statement the question applies to."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for q, (_, families, cand_words) in QUESTIONS.items():
        cands = oh.candidate_ids(oracle, q)
        pool = [e[0] for f in families for e in oh.evaluation_examples(q, f)]
        toks, last = oh.tokenize_statements(target, pool)
        vectors_of = dict(zip(pool, statement_vectors(target, toks, last, READ_LAYER)))
        for f in families:
            ex = oh.evaluation_examples(q, f)
            right = torch.tensor([cand_words.index(e[2]) for e in ex], device=device)
            vecs = [vectors_of[e[0]] for e in ex]
            picks = [int(j) for j in torch.randint(len(pool), (len(ex),), generator=gen)]
            others = [vectors_of[pool[j if pool[j] != e[0] else (j + 1) % len(pool)]] for e, j in zip(ex, picks)]
            row = {"question": q, "family": f, "n": len(ex)}
            for mode in ("last", "all"):
                for control in (False, True):
                    chosen = others if control else vecs
                    chosen = [v[-1:] for v in chosen] if mode == "last" else chosen
                    correct = torch.zeros(len(ex), dtype=torch.bool, device=device)
                    for k in sorted({len(v) for v in chosen}):  # one batch per number of vectors
                        idx = [i for i, v in enumerate(chosen) if len(v) == k]
                        choice, _ = score_answers(ask_oracle(oracle, q, torch.stack([chosen[i] for i in idx])), cands, right[idx])
                        correct[idx] = choice == right[idx]
                    row[mode + (" control" if control else "")] = correct.float().mean().item()
            rows.append(row)
    return rows


table = accuracy_table()
print(f"{'question':8s} {'family':9s} {'n':>4s} {'last':>6s} {'ctrl':>6s} {'all':>6s} {'ctrl':>6s}")
for r in table:
    print(f"{r['question']:8s} {r['family']:9s} {r['n']:4d} {r['last']:6.2f} {r['last control']:6.2f} {r['all']:6.2f} {r['all control']:6.2f}")

labels = [f"{r['question']}/{r['family']}" for r in table]
x = torch.arange(len(table))
fig, ax = plt.subplots(figsize=(12, 4))
for i, (key, colour) in enumerate([("last", "tab:blue"), ("last control", "lightsteelblue"), ("all", "tab:orange"), ("all control", "navajowhite")]):
    ax.bar(x + (i - 1.5) * 0.2, [r[key] for r in table], width=0.2, color=colour, label=key)
ax.set_xticks(x, labels, rotation=60, ha="right")
ax.set_ylabel("accuracy on held-out statements")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. The oracle against a probe
#
# A linear probe for truth, trained on three families, must cope with the fourth, the
# negated city facts, that it never saw. The oracle has never been asked "is this statement
# true ?" about them either, but it has seen them with the other questions. (Negation is
# where truth probes trained on plain statements are known to break in large models; here,
# at the target's last block, see whether it does.)
#
# ### Exercise: `diff_of_means_probe`
#
# The simplest probe (section 1.3.1): its direction is the mean of the true rows minus the
# mean of the false rows of `train_x`; its threshold is the projection of the midpoint of
# the two means onto that direction. Return a boolean tensor `(n_test,)`: True where
# `test_x`'s projection is above the threshold.

# %% id="diff_of_means_probe" autograder={"exercises": ["diff_of_means_probe"]}
def diff_of_means_probe(train_x: Float[Tensor, "n d"], train_y: Tensor, test_x: Float[Tensor, "m d"]) -> Tensor:
    """Predicted labels (True = true) of test_x by the difference-of-means probe fitted on (train_x, train_y)."""
    ### BEGIN SOLUTION
    train_y = train_y.bool()
    mean_true, mean_false = train_x[train_y].mean(dim=0), train_x[~train_y].mean(dim=0)
    direction = mean_true - mean_false
    threshold = (mean_true + mean_false) / 2 @ direction
    return test_x @ direction > threshold
    ### END SOLUTION


# %%
check("diff_of_means_probe")

# %%
held_q, held_family = oh.HELD_OUT
train_rows = [r for f in oh.FAMILIES if f != held_family for r in oh.balanced_truth_examples("train", [f])]
test_rows = oh.evaluation_examples(held_q, held_family)  # every negated statement: none of their truths was trained on


def last_vectors(rows):
    toks, last = oh.tokenize_statements(target, [r[0] for r in rows])
    return torch.stack([v[-1] for v in statement_vectors(target, toks, last, READ_LAYER)])


test_y = torch.tensor([r[2] == "true" for r in test_rows], device=device)
probe_pred = diff_of_means_probe(last_vectors(train_rows), torch.tensor([r[2] == "true" for r in train_rows], device=device),
                                 last_vectors(test_rows))
oracle_row = next(r for r in table if (r["question"], r["family"]) == oh.HELD_OUT)
print(f"truth of the {len(test_rows)} held-out negated statements: probe {(probe_pred == test_y).float().mean().item():.2f}, "
      f"oracle {oracle_row['last']:.2f} (its control {oracle_row['last control']:.2f})")

# %% [markdown]
# ## 6. How the oracle was trained
#
# The oracle was fine-tuned on batches of `(vectors, question, answer)`, with the vectors
# injected as in `ask_oracle` and the cross-entropy of the answer word at the prompt's last
# position as the loss. The prompts of a batch have different numbers of placeholders, so
# they are padded on the right and each row's last position differs.
#
# ### Exercise: `oracle_loss`
#
# `logits` is `(batch, seq, d_vocab)`, `last_pos` `(batch,)` and `answers` `(batch,)` token
# ids. Return the mean over the batch of the cross-entropy of `answers[b]` predicted at
# position `last_pos[b]` (a scalar tensor that keeps its gradient). Padding positions and
# the placeholders carry no loss.

# %% id="oracle_loss" autograder={"exercises": ["oracle_loss"]}
def oracle_loss(logits: Float[Tensor, "batch seq d_vocab"], last_pos: Int[Tensor, "batch"],
                answers: Int[Tensor, "batch"]) -> Float[Tensor, ""]:
    """Mean cross-entropy of each row's answer at its last position."""
    ### BEGIN SOLUTION
    rows = torch.arange(logits.shape[0], device=logits.device)
    return torch.nn.functional.cross_entropy(logits[rows, last_pos], answers)
    ### END SOLUTION


# %%
check("oracle_loss")

# %% [markdown]
# The oracle's loss on a few held-out questions, with the right vectors and with the
# control's: a fine-tuned oracle should be far more confident of the right answer when it
# sees the right statement.

# %%
ex = oh.examples("country", "test")[:32]
toks, last = oh.tokenize_statements(target, [e[0] for e in ex])
vecs = torch.stack([v[-1:] for v in statement_vectors(target, toks, last, READ_LAYER)])
answer_ids = torch.tensor([oracle.to_single_token(e[2]) for e in ex], device=device)
for name, v in [("right vectors", vecs), ("control", vecs.roll(1, 0))]:
    logits = ask_oracle(oracle, "country", v)[:, None]  # (batch, 1, d_vocab): only the last position
    print(f"{name:14s} loss {oracle_loss(logits, torch.zeros(len(ex), dtype=torch.long, device=device), answer_ids).item():.3f}")

# %% [markdown]
# ## Take-aways
#
# * An oracle can only report what the vectors carry: the last token's vector holds the
#   target's verdict and the kind of statement, and hardly the city; every token's vectors
#   hold the city. Compare with a probe on the same vectors to tell "not there" from "not
#   learnt".
# * The control is not optional. Several rows score well above chance on the control alone,
#   because the question or the family gives the answer away ("plus" is the kind of most
#   statements in the pool).
# * One oracle answers many questions, and can answer a question about a kind of statement
#   it was never asked about, when what it learnt elsewhere carries over. A probe trained
#   for that one question may do as well, as here. When the oracle fails, it fails
#   silently: it still names a country. Always read its answers against a control.
