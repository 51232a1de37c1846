# %% [markdown]
# # 1.3.2 Function vectors with nnsight
#
# Show a language model a few examples of a task, `france -> paris , japan -> tokyo , spain ->`, and it answers
# `madrid`: it has picked the task up from the prompt. This is **in-context learning** (ICL). Where does the
# model keep "the task is: country to capital" while it reads the query? Todd et al. (2023, *Function Vectors in
# Large Language Models*) found that a handful of attention heads, at the last position, write the task into the
# residual stream, and that the sum of their average outputs, a **function vector**, can be added to a prompt
# with **no examples at all** and make the model perform the task.
#
# This section does that analysis with **nnsight**, a library that lets you read and edit any module's inputs and
# outputs inside a `with model.trace(...)` block, in the order the model computes them, on any PyTorch model
# (here a Hugging Face GPT-2) without writing hooks.
#
# In this notebook you
#
# 1. run the model with nnsight: read the logits, the residual stream and each attention head's output;
# 2. measure ICL: accuracy with k examples, zero-shot, and with shuffled labels;
# 3. patch with nnsight: copy the residual stream, then single heads' outputs, from clean ICL runs into
#    corrupted (shuffled-label) runs, and measure how much of the right answer comes back: each head's
#    **causal indirect effect**;
# 4. build the **function vector** from the heads with the largest effects, add it to zero-shot prompts, and
#    compare it with a random vector of the same norm and with the mean residual stream;
# 5. generate several tokens with the function vector added at every step (`model.generate` under nnsight).
#
# **The model.**
#
# * **lite** (default): a 4-layer GPT-2 (d_model 128, 4 heads of 32 dimensions, d_mlp 512, a word-level
#   vocabulary of 88 tokens), trained from scratch by the course (`assets/train_lite.py`, 1000 steps, 6 minutes measured
#   on one thread of a busy 2-core machine; you do not need to rerun it) on sequences `x1 -> y1 , x2 -> y2 , ... , x10 -> y10` of six
#   synthetic tasks over two domains: number words (`successor`: seven -> eight, `predecessor`: seven -> six,
#   `permutation`: a fixed random shuffle of the number words) and countries (`capital`: france -> paris,
#   `second_city`: france -> marseille, `demonym`: france -> french). Within a domain the query alone does not say
#   which task is meant; only the examples do. It ships in `assets/lite/` (about 3 MB) as a Hugging Face folder,
#   read by `transformers` and wrapped in `nnsight.LanguageModel`. **One thing to know about its training:** next
#   to the usual next-token loss it had an auxiliary loss that asks for a function vector. For each task, the mean
#   output of block 1's attention at the last position of ICL prompts was added to zero-shot prompts of that task, and
#   the model had to answer them. Without it (an earlier version of this model) the number tasks were spread over
#   the last blocks and their function vectors barely worked. So the lite model is built to *have* function
#   vectors. Which heads carry them, and whether they beat the controls, is still measured the usual way below.
# * **full**: GPT-2 small (`gpt2`), loaded by the same code (`fv_helpers.load_model`) from the asset cache
#   (`autograder assets fetch --profile full --assignment 1.3.2`, then start Jupyter with
#   `AUTOGRADER_PROFILE=full`), with natural-language tasks (antonyms, country to capital, successor and
#   predecessor of number words, English to French), keeping only the pairs whose words are single GPT-2 tokens.
#   It needs about 1 GB of memory; a CPU is enough (the head patching loop takes a few minutes), any GPU is plenty.
#
# **Measured evidence for the lite model** (`assets/lite/training_info.json`; the course's tests re-measure it
# from the shipped checkpoint), on 64 prompts per task:
#
# | task | 0 examples | 1 | 2 | 8 | 6 shuffled | zero-shot + FV | + random vector | + mean resid |
# | --- | --- | --- | --- | --- | --- | --- | --- | --- |
# | `successor` | 53% | 94% | 100% | 100% | 45% | 100% | 38% | 45% |
# | `predecessor` | 41% | 97% | 100% | 100% | 38% | 100% | 43% | 44% |
# | `permutation` | 25% | 92% | 100% | 100% | 59% | 100% | 38% | 20% |
# | `capital` | 31% | 100% | 100% | 100% | 100% | 100% | 33% | 66% |
# | `second_city` | 22% | 100% | 100% | 100% | 100% | 100% | 25% | 5% |
# | `demonym` | 25% | 100% | 100% | 100% | 100% | 100% | 19% | 22% |
#
# The function vector is built from the top heads by indirect effect: 1.1, 1.3, 1.2, 1.0 (layer.head; their average
# indirect effects 0.062, 0.048, 0.018, 0.013, against at most 0.012 for any other head and 0.006 for the median head),
# with 6-example prompts, and added after block 0 at the last position, before the heads that carry the task.
# "+ random vector": the mean over 8 random vectors of the function vector's norm; "+ mean resid": the mean
# residual stream after block 0 over the clean ICL prompts.
#
# What this shows, honestly:
#
# * **ICL is real.** Zero-shot the model can only guess which task of the domain is meant (22% to 53%); one
#   example brings it to 92% or more, two to 100%.
# * **Shuffled labels** destroy the task for `successor` (45%) and `predecessor` (38%), and partly for
#   `permutation` (59%: shuffled outputs still look like "not one more, not one less"). They do not for
#   the country tasks (100%: capitals, second cities and demonyms are different words, so the shuffled outputs
#   still name the task).
# * **The function vector does the task zero-shot**: 100% right on every task, against
#   22% to 53% zero-shot, 19% to 43% with random vectors of the same norm and 5% to 66% with the mean residual
#   stream after block 0 (at least 34 points above the best of the three, task by task).
# * **A few heads carry it**: two heads of block 1, 1.1 and 1.3, have average indirect effects of
#   0.062 and 0.048, several times any head outside the top four; the other two top heads
#   (1.2, 1.0) are only a little above the rest. (Averaged over the six tasks: on the country tasks the
#   shuffled prompts are still answered right, so no head can restore much there.)
# * **Where you add it matters for the comparison.** After block 1, that is after those heads, the function
#   vector still gives 100% on every task, but so does the mean residual stream there (91% to 100%): it contains
#   the heads' mean outputs, task included. Before them (after block 0) the mean residual stream carries little
#   of the task, and the comparison shows that the heads' outputs are what carries the task.
#
# **How long.** With the lite profile every cell runs in a second or two on a laptop CPU (the head patching loop
# in section 3 in about 5 s); the whole notebook takes about a minute of compute.
#
# **Checking your work.** After each exercise, `check("name")` runs public tests and prints ✓ or what is wrong.
# Grading runs more thorough hidden tests on the same model.

# %% autograder={"role": "setup"}
import fv_helpers as fh  # sets HF_HUB_OFFLINE before transformers and nnsight are imported
import torch
from jaxtyping import Float, Int
from nnsight import LanguageModel
from torch import Tensor

from fv_helpers import PROFILE, load_model, make_icl_dataset
from public_tests import check

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.set_grad_enabled(False)  # we never train here

model = load_model(PROFILE, device=str(device))  # an nnsight LanguageModel around a Hugging Face GPT2LMHeadModel
N_LAYERS, N_HEADS, D_HEAD = fh.n_layers(model), fh.n_heads(model), fh.d_head(model)
TASKS = list(fh.tasks_for(PROFILE))

# %% [markdown]
# ## 0. The model, the tasks and the prompts
#
# `model` is an `nnsight.LanguageModel`. Printing it shows the module tree of the Hugging Face GPT-2 it wraps;
# every module in it (`model.transformer.h[2].attn.c_proj`, `model.lm_head`, ...) is an **envoy**: inside a
# trace, its `.output` and `.input` are the real tensors of the running forward pass.
#
# | module | its `.output` |
# | --- | --- |
# | `model.transformer.h[l]` | the residual stream after block `l`, `(batch, seq, d_model)` (a plain tensor in transformers 5) |
# | `model.transformer.h[l].attn.c_proj` | the attention layer's output; its `.input` is the heads' outputs **concatenated**, `(batch, seq, n_heads * d_head)` |
# | `model.lm_head` | the logits, `(batch, seq, vocab)` |
#
# `make_icl_dataset(model, task, n_prompts, n_examples, seed)` builds prompts of one task in one batch:
# `tokens` `(n, seq)` (`<|endoftext|>` first; every prompt of a batch has the same length, so there is no
# padding), `answers` `(n,)` (the token id of the right answer), and the strings. With `shuffle_labels=True` you
# get the same prompts row for row but with the example outputs shuffled among the examples.

# %%
print(model)
for task in TASKS:
    d = make_icl_dataset(model, task, 2, 3, seed=0)
    print(f"{task:12s} {d['prompts'][0]!r}  answer: {d['answer_words'][0]!r}")
d = make_icl_dataset(model, TASKS[0], 2, 3, seed=0, shuffle_labels=True)
print("shuffled:   ", repr(d["prompts"][0]))

# %% [markdown]
# ### Tracing: the basics
#
# Code inside a `with model.trace(...):` block does not run the model line by line. nnsight records what you ask
# for, runs the forward pass once, and executes your code **at the moment the model reaches each module**. Hence
# three rules:
#
# * call `.save()` on anything you want to use after the block (otherwise it is gone);
# * touch modules **in the order the model runs them** (asking for block 1's output after block 2's raises
#   `OutOfOrderError`);
# * to **edit** an activation, assign to it (`module.output[:, -1] = value`) or modify it in place
#   (`module.output[:, -1] += v`): the rest of the model then runs on the edited value;
# * write loops over modules as plain `for` loops appending to a list created **before** the block: nnsight
#   runs the block's body as code of its own, and a name bound only inside a list comprehension there does not
#   come back out.

# %%
d = make_icl_dataset(model, TASKS[0], 4, 3, seed=0)
with model.trace(d["tokens"]):
    resid_1 = model.transformer.h[1].output.save()
    logits = model.lm_head.output.save()
print(resid_1.shape, logits.shape)
print("predicted:", model.tokenizer.convert_ids_to_tokens(logits[:, -1].argmax(-1).tolist()), "| right:", d["answer_words"])

# %% [markdown]
# ## 1. Reading the model
#
# ### Exercise: `answer_logits`
#
# Return the logit of the right answer at the **last** position (the `->` after the query) of each prompt, shape
# `(batch,)`, reading the logits inside an nnsight trace. (Raw logits, not log-probabilities.)

# %% id="answer_logits" autograder={"exercises": ["answer_logits"]}
def answer_logits(model: LanguageModel, tokens: Int[Tensor, "batch seq"],
                  answers: Int[Tensor, "batch"]) -> Float[Tensor, "batch"]:
    """logits[i, -1, answers[i]] for every prompt i."""
    ### BEGIN SOLUTION
    with model.trace(tokens):
        last = model.lm_head.output[:, -1].save()
    return last[torch.arange(len(answers)), answers.to(last.device)]
    ### END SOLUTION


# %%
check("answer_logits")

# %% [markdown]
# The right answer's logit with 5 examples against zero-shot (the query alone, `<|endoftext|> xq ->`): with no
# examples the model has to guess the task.

# %%
for task in TASKS:
    icl = make_icl_dataset(model, task, 32, 5, seed=1)
    zero = make_icl_dataset(model, task, 32, 0, seed=1)
    print(f"{task:14s} ICL {answer_logits(model, icl['tokens'], icl['answers']).mean():6.2f}   "
          f"zero-shot {answer_logits(model, zero['tokens'], zero['answers']).mean():6.2f}")

# %% [markdown]
# ### Exercise: `icl_accuracy`
#
# The fraction of prompts whose **top** prediction at the last position is the right answer, as a Python float.

# %% id="icl_accuracy" autograder={"exercises": ["icl_accuracy"]}
def icl_accuracy(model: LanguageModel, tokens: Int[Tensor, "batch seq"], answers: Int[Tensor, "batch"]) -> float:
    """The fraction of prompts where argmax of the last position's logits is the answer."""
    ### BEGIN SOLUTION
    with model.trace(tokens):
        last = model.lm_head.output[:, -1].save()
    return (last.argmax(-1) == answers.to(last.device)).float().mean().item()
    ### END SOLUTION


# %%
check("icl_accuracy")

# %% [markdown]
# ICL accuracy against the number of examples, and the **shuffled-label** baseline: the same prompts with the
# outputs of the examples shuffled among them. With shuffled labels the examples still show which words occur,
# but no longer which map each input goes through. Where the tasks of a domain share their output words (the
# three number tasks), this removes the task; for the countries, the output words (capitals or second cities)
# still give the task away, a reminder to check what a "corruption" really removes.

# %%
import matplotlib.pyplot as plt

ks = [0, 1, 2, 4, 6, 8]
plt.figure(figsize=(6, 3.5))
for task in TASKS:
    accs = [icl_accuracy(model, make_icl_dataset(model, task, 64, k, seed=100)["tokens"],
                         make_icl_dataset(model, task, 64, k, seed=100)["answers"]) for k in ks]
    shuffled = make_icl_dataset(model, task, 64, 6, seed=100, shuffle_labels=True)
    line, = plt.plot(ks, accs, "o-", label=task)
    plt.plot([6], [icl_accuracy(model, shuffled["tokens"], shuffled["answers"])], "x", color=line.get_color(), ms=9)
plt.xlabel("examples in the prompt")
plt.ylabel("accuracy")
plt.title("ICL accuracy (x: 6 examples with shuffled labels)")
plt.legend(fontsize=8)
plt.show()

# %% [markdown]
# ### Exercise: `residual_at_last`
#
# Return the residual stream **after** each block at the last position, stacked: shape
# `(n_layers, batch, d_model)`. One trace, reading `model.transformer.h[l].output` for every `l` in order.

# %% id="residual_at_last" autograder={"exercises": ["residual_at_last"]}
def residual_at_last(model: LanguageModel, tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "n_layers batch d_model"]:
    """The output of every block at the last position."""
    ### BEGIN SOLUTION
    saved = []
    with model.trace(tokens):
        for block in model.transformer.h:
            saved.append(block.output[:, -1].save())
    return torch.stack(saved)
    ### END SOLUTION


# %%
check("residual_at_last")

# %% [markdown]
# ### Exercise: `head_outputs_at_last`
#
# GPT-2's attention layer computes each head's output `z_h` (its attention-weighted values, `d_head` numbers),
# concatenates the heads, `[z_0, z_1, ..., z_{H-1}]`, and applies one linear map, `c_proj`, to get the layer's
# output. So the **input** of `c_proj` holds every head's output, head `h` in the slice
# `h * d_head : (h + 1) * d_head`. Return it at the last position for every layer, split into heads:
# shape `(n_layers, batch, n_heads, d_head)`.
#
# (`c_proj` is a Hugging Face `Conv1D`: `y = x @ weight + bias` with `weight` of shape `(in, out)`, the
# transpose of `nn.Linear`'s. A module's `.input` in nnsight is its first positional argument.)

# %% id="head_outputs_at_last" autograder={"exercises": ["head_outputs_at_last"]}
def head_outputs_at_last(model: LanguageModel,
                         tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "n_layers batch n_heads d_head"]:
    """Every head's output z at the last position (the input of attn.c_proj, split into heads)."""
    ### BEGIN SOLUTION
    n_heads = model.config.n_head
    saved = []
    with model.trace(tokens):
        for block in model.transformer.h:
            saved.append(block.attn.c_proj.input[:, -1].save())
    z = torch.stack(saved)  # (n_layers, batch, n_heads * d_head)
    return z.view(z.shape[0], z.shape[1], n_heads, -1)
    ### END SOLUTION


# %%
check("head_outputs_at_last")

# %% [markdown]
# ## 2. Patching with nnsight
#
# A **clean** run sees the real examples; a **corrupted** run sees the same prompt with shuffled labels and
# answers worse. Copying an activation from the clean run into the corrupted one and seeing how much of the right
# answer returns measures how much that activation carries the task. We measure the answer by its
# **probability** (softmax of the last position's logits), averaged over prompts.
#
# We use the number tasks here: there the shuffled labels really hide the task.
#
# ### Exercise: `patch_residual_stream`
#
# For each layer `l`, run the corrupted prompts with the output of block `l` **at the last position** replaced
# by the clean run's (prompt `i` gets clean prompt `i`'s vector), and return the mean probability of the right
# answer: shape `(n_layers,)`. First one trace on the clean tokens to save what you need, then one trace per
# layer on the corrupted tokens.

# %% id="patch_residual_stream" autograder={"exercises": ["patch_residual_stream"]}
def patch_residual_stream(model: LanguageModel, clean_tokens: Int[Tensor, "batch seq"],
                          corrupt_tokens: Int[Tensor, "batch seq"], answers: Int[Tensor, "batch"]) -> Float[Tensor, "n_layers"]:
    """Mean P(answer) on the corrupted prompts with block l's output at the last position taken from the clean run."""
    ### BEGIN SOLUTION
    n_layers = model.config.n_layer
    rows = torch.arange(len(answers))
    answers = answers.to(clean_tokens.device)
    clean = []
    with model.trace(clean_tokens):
        for block in model.transformer.h:
            clean.append(block.output[:, -1].save())
    probs = []
    for layer in range(n_layers):
        with model.trace(corrupt_tokens):
            model.transformer.h[layer].output[:, -1] = clean[layer]
            last = model.lm_head.output[:, -1].save()
        probs.append(last.softmax(-1)[rows, answers].mean())
    return torch.stack(probs)
    ### END SOLUTION


# %%
check("patch_residual_stream")

# %%
NUMBER_TASKS = [t for t in TASKS if t in ("successor", "predecessor", "permutation")] or TASKS[:3]
for task in NUMBER_TASKS:
    clean = make_icl_dataset(model, task, 32, 6, seed=1)
    corrupt = make_icl_dataset(model, task, 32, 6, seed=1, shuffle_labels=True)
    p_clean = torch.softmax(fh.last_logits(model, clean["tokens"]), -1)[torch.arange(32), clean["answers"]].mean()
    p_corrupt = torch.softmax(fh.last_logits(model, corrupt["tokens"]), -1)[torch.arange(32), corrupt["answers"]].mean()
    patched = patch_residual_stream(model, clean["tokens"], corrupt["tokens"], clean["answers"])
    print(f"{task:12s} clean {p_clean:.3f}  corrupted {p_corrupt:.3f}  patched at layer 0..{N_LAYERS - 1}:",
          [round(float(p), 3) for p in patched])

# %% [markdown]
# Patching the whole residual stream at the last position brings back everything at every layer: it also
# overwrites what the model knows about the query. The interesting question is which **heads** move the task
# into the last position.
#
# ### Exercise: `head_indirect_effects`
#
# The **causal indirect effect** of head `(l, h)`: on the corrupted prompts, replace that head's output at the
# last position by its **mean** output over clean ICL prompts of the task (`head_means[l, h]`, the same vector
# for every prompt), and measure how much the probability of the right answer rises:
#
# $$ \mathrm{IE}(l, h) = \frac{1}{n}\sum_i \Big(P_{\text{patched}}(y_i \mid \tilde p_i) - P(y_i \mid \tilde p_i)\Big). $$
#
# Using the mean over prompts (not prompt `i`'s own clean output) keeps only what all prompts of the task share:
# the task, not the query. Return `IE` of shape `(n_layers, n_heads)`: one trace for the unpatched baseline, one
# per head.

# %% id="head_indirect_effects" autograder={"exercises": ["head_indirect_effects"]}
def head_indirect_effects(model: LanguageModel, head_means: Float[Tensor, "n_layers n_heads d_head"],
                          corrupt_tokens: Int[Tensor, "batch seq"], answers: Int[Tensor, "batch"]) -> Float[Tensor, "n_layers n_heads"]:
    """Mean rise of P(answer) on corrupted prompts when head (l, h)'s output at the last position is set to head_means[l, h]."""
    ### BEGIN SOLUTION
    n_layers, n_heads, d_head = head_means.shape
    rows = torch.arange(len(answers))
    answers = answers.to(corrupt_tokens.device)
    with model.trace(corrupt_tokens):
        base_logits = model.lm_head.output[:, -1].save()
    base = base_logits.softmax(-1)[rows, answers]
    effects = torch.zeros(n_layers, n_heads)
    for layer in range(n_layers):
        for head in range(n_heads):
            with model.trace(corrupt_tokens):
                z = model.transformer.h[layer].attn.c_proj.input
                z[:, -1, head * d_head:(head + 1) * d_head] = head_means[layer, head]
                patched_logits = model.lm_head.output[:, -1].save()
            patched = patched_logits.softmax(-1)[rows, answers]
            effects[layer, head] = (patched - base).mean()
    return effects
    ### END SOLUTION


# %%
check("head_indirect_effects")

# %% [markdown]
# The indirect effects averaged over the tasks (each task's own `head_means` and corrupted prompts):

# %%
FV_EXAMPLES, FV_LAYER, TOP_K = 6, 0, 4  # the lite settings (training_info.json); for gpt2-small try FV_LAYER 8, TOP_K 10
if PROFILE == "full":
    FV_LAYER, TOP_K = 8, 10
head_means, mean_resid = {}, {}
effects = torch.zeros(N_LAYERS, N_HEADS)
for task in TASKS:
    clean = make_icl_dataset(model, task, 64, FV_EXAMPLES, seed=1)
    corrupt = make_icl_dataset(model, task, 32, FV_EXAMPLES, seed=2, shuffle_labels=True)
    head_means[task] = head_outputs_at_last(model, clean["tokens"]).mean(1)  # (n_layers, n_heads, d_head)
    mean_resid[task] = residual_at_last(model, clean["tokens"])[FV_LAYER].mean(0)
    effects += head_indirect_effects(model, head_means[task], corrupt["tokens"], corrupt["answers"]) / len(TASKS)
plt.figure(figsize=(4, 3.5))
plt.imshow(effects, cmap="RdBu", vmin=-effects.abs().max(), vmax=effects.abs().max())
plt.colorbar(label="mean rise of P(answer)")
plt.xlabel("head")
plt.ylabel("layer")
plt.title("average indirect effect")
plt.show()
top_heads = [(int(i) // N_HEADS, int(i) % N_HEADS) for i in effects.flatten().argsort(descending=True)[:TOP_K]]
print("heads with the largest indirect effects:", top_heads)

# %% [markdown]
# ## 3. The function vector
#
# The **function vector** of a task is the sum, over the top heads, of each head's mean output **as written into
# the residual stream**: head `h` of layer `l` writes `z_h @ W_O^{(l, h)}`, where `W_O^{(l, h)}` is the block of
# rows `h * d_head : (h + 1) * d_head` of `c_proj.weight` (`Conv1D`, shape `(n_heads * d_head, d_model)`).
# `c_proj`'s bias belongs to the layer, not to any head: leave it out.
#
# ### Exercise: `function_vector`

# %% id="function_vector" autograder={"exercises": ["function_vector"]}
def function_vector(model: LanguageModel, head_means: Float[Tensor, "n_layers n_heads d_head"],
                    heads: list[tuple[int, int]]) -> Float[Tensor, "d_model"]:
    """The sum over (layer, head) in heads of head_means[layer, head] @ W_O of that head (no bias)."""
    ### BEGIN SOLUTION
    d_head = head_means.shape[-1]
    fv = torch.zeros(model.config.n_embd, device=head_means.device)
    for layer, head in heads:
        W = model.transformer.h[layer].attn.c_proj.weight  # (n_heads * d_head, d_model)
        fv = fv + head_means[layer, head] @ W[head * d_head:(head + 1) * d_head]
    return fv
    ### END SOLUTION


# %%
check("function_vector")

# %% [markdown]
# ### Exercise: `add_vector_logits`
#
# Run `tokens` with `vector` added to the residual stream **after block `layer`**, at the **last position
# only**, and return the logits at the last position, `(batch, vocab)`.

# %% id="add_vector_logits" autograder={"exercises": ["add_vector_logits"]}
def add_vector_logits(model: LanguageModel, tokens: Int[Tensor, "batch seq"], layer: int,
                      vector: Float[Tensor, "d_model"]) -> Float[Tensor, "batch vocab"]:
    """The last position's logits with vector added to block layer's output at the last position."""
    ### BEGIN SOLUTION
    with model.trace(tokens):
        model.transformer.h[layer].output[:, -1] += vector
        last = model.lm_head.output[:, -1].save()
    return last
    ### END SOLUTION


# %%
check("add_vector_logits")

# %% [markdown]
# Zero-shot accuracy (the query alone) with each task's function vector added after block `FV_LAYER`, against
# eight random vectors of the same norm and against the mean residual stream of the clean ICL prompts at that
# layer:

# %%
gen = torch.Generator().manual_seed(0)
print(f"{'task':14s} zero-shot   + FV   + random (same norm)   + mean resid")
fvs = {}
for task in TASKS:
    fvs[task] = function_vector(model, head_means[task], top_heads)
    zero = make_icl_dataset(model, task, 64, 0, seed=100)
    acc = lambda logits: fh.accuracy(logits, zero["answers"])  # noqa: E731
    base = acc(fh.last_logits(model, zero["tokens"]))
    with_fv = acc(add_vector_logits(model, zero["tokens"], FV_LAYER, fvs[task]))
    randoms = []
    for _ in range(8):
        r = torch.randn(fvs[task].shape[0], generator=gen).to(fvs[task].device)
        randoms.append(acc(add_vector_logits(model, zero["tokens"], FV_LAYER, r / r.norm() * fvs[task].norm())))
    with_mean = acc(add_vector_logits(model, zero["tokens"], FV_LAYER, mean_resid[task]))
    print(f"{task:14s} {base:9.2f} {with_fv:6.2f} {sum(randoms) / len(randoms):14.2f} {with_mean:15.2f}")

# %% [markdown]
# With the lite model (numbers in the header table): the function vector turns the bare query `seven ->` into
# `eight`, `six` or the permutation's image, and `france ->` into `paris`, `marseille` or `french`, as the task
# wants, where random vectors of the same norm leave the model guessing, and so does the mean residual stream
# after block 0. Two lessons beyond the numbers. First, a function vector is a **mean**: it keeps what all
# prompts of a task share, which is the task, not the query. Second, always compare with a random vector of the
# same norm and with the mean activation at the same place: a large enough push anywhere changes the answer, and
# after the task heads the mean residual stream carries the task as well (try `FV_LAYER = 1`).

# %% [markdown]
# ## 4. Generation with an intervention
#
# `model.generate(tokens, max_new_tokens=n)` runs Hugging Face's `generate` under nnsight. The forward pass runs
# once per new token (with a key-value cache: after the first step each pass sees only the newest token), and
# `for step in tracer.iter[:]` (or `tracer.all()`) applies the loop body at **every** step. The generated ids
# are `tracer.result` (save it).
#
# ### Exercise: `generate_with_vector`
#
# Greedy generation (`do_sample=False`) of `max_new_tokens` tokens with `vector` added after block `layer` at
# the last position of **every** step: at the prompt's last position in the first step, then at each newly
# generated token. Return the ids `(batch, seq + max_new_tokens)`, prompt included. Pass
# `pad_token_id=model.tokenizer.eos_token_id` to avoid a warning.

# %% id="generate_with_vector" autograder={"exercises": ["generate_with_vector"]}
def generate_with_vector(model: LanguageModel, tokens: Int[Tensor, "batch seq"], layer: int,
                         vector: Float[Tensor, "d_model"], max_new_tokens: int) -> Int[Tensor, "batch seq_out"]:
    """Greedy generation with vector added to block layer's output at the newest position of every step."""
    ### BEGIN SOLUTION
    with model.generate(tokens, max_new_tokens=max_new_tokens, do_sample=False,
                        pad_token_id=model.tokenizer.eos_token_id) as tracer:
        for _ in tracer.iter[:max_new_tokens]:
            model.transformer.h[layer].output[:, -1] += vector
        ids = tracer.result.save()
    return ids
    ### END SOLUTION


# %%
check("generate_with_vector")

# %% [markdown]
# A function vector added at every step of a generation, starting from a bare query. Only the **first**
# generated token is meaningful with the lite model: it was trained on the answers alone (the loss is on each
# `y` after its `->`), never on what follows an answer, so the later tokens are the continuation of a model that
# never learnt one. With gpt2-small (`full`) the later tokens are worth reading: does the model write `,` and go
# on with the task?

# %%
for task in TASKS:
    zero = make_icl_dataset(model, task, 3, 0, seed=5)
    plain = generate_with_vector(model, zero["tokens"], FV_LAYER, torch.zeros_like(fvs[task]), 4)
    steered = generate_with_vector(model, zero["tokens"], FV_LAYER, fvs[task], 4)
    for i in range(2):
        n = zero["tokens"].shape[1]
        print(f"{task:12s} {zero['queries'][i]:>10s} ->  plain: {model.tokenizer.decode(plain[i, n:])!r:32s}"
              f" with FV: {model.tokenizer.decode(steered[i, n:])!r}")

# %% [markdown]
# ## Summary
#
# * nnsight runs your code inside the forward pass: read (`.output`, `.input`, `.save()`), edit (assign or
#   `+=`), in the order the model computes; `model.generate` with `tracer.iter` does the same at every step.
# * A GPT-2 head's output is its slice of `c_proj`'s input; what it writes to the residual stream is that slice
#   times its block of `c_proj.weight`.
# * Shuffled-label prompts are a corruption only where the outputs do not give the task away.
# * The causal indirect effect of a head, patched with its **mean** clean output, finds the few heads that carry
#   the task to the last position; the sum of their mean outputs is a **function vector**: added to a prompt
#   without examples, it makes the model do the task, where a random vector of the same norm does not.
