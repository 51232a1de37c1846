# %% [markdown]
# # 1.2 Intro to Mechanistic Interpretability: TransformerLens and induction heads
#
# A trained transformer is a pile of matrices. Mechanistic interpretability
# tries to read the algorithm those matrices implement. In this notebook you
# learn the standard tool for this, TransformerLens, and use it to find and
# take apart one of the best-understood circuits in language models: the
# **induction circuit**, two attention heads in different layers that
# together let a model continue a pattern it has seen earlier in its context
# ("... Harry Potter ... Harry" → "Potter").
#
# The plan:
#
# 1. **TransformerLens basics**: load a model, run it, read its activations
#    from an `ActivationCache`, recompute an attention pattern by hand.
# 2. **Finding induction heads**: attention-head detectors, repeated random
#    tokens, an induction score computed with a hook.
# 3. **Hooks for causal experiments**: direct logit attribution and ablation.
# 4. **Reverse-engineering the circuit**: `FactoredMatrix`, the OV and QK
#    circuits, decomposing attention scores, composition scores.
#
# **Models and profiles.** By default the notebook uses the *lite* profile: a
# 2-layer, attention-only transformer (8 heads per layer, d_model = 64,
# shortformer positional embeddings) trained for this course on short stories
# and on repeated random token sequences (`assets/train_lite.py`, weights in
# `assets/lite/`). It has the same architecture as TransformerLens's
# `attn-only-2l`, only smaller, and it really does contain induction heads (the
# measured evidence is in section 2). Everything runs offline on a CPU.
# Start Jupyter with `AUTOGRADER_PROFILE=full` to use the real models instead:
# `gpt2-small` for part 1 and `attn-only-2l` for the rest. They must be
# downloadable or in your Hugging Face cache, and together need about 2 GB of
# GPU (or CPU) memory.
#
# **How long.** With the lite profile every code cell runs in a second or two on a
# laptop CPU; the whole notebook, run top to bottom, takes under 2 minutes
# (most of it importing TransformerLens). Your time goes into thinking.
#
# **Checking your work.** After each exercise, `check("name")` runs public
# tests against your code and prints ✓ or what is wrong. Grading runs more
# thorough hidden tests. Which heads are "the" induction heads depends on the
# checkpoint, so never hard-code head indices in an answer: compute them.
#
# Write your code between the marked lines and keep the signatures.

# %% id="setup" autograder={"role": "setup"}
import functools
import math

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, FactoredMatrix, HookedTransformer, utils
from transformer_lens.hook_points import HookPoint

from mi_helpers import PROFILE, load_model
from public_tests import check

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.set_grad_enabled(False)  # we only ever run models forward here

# The model most of the notebook studies: the lite model, or attn-only-2l with AUTOGRADER_PROFILE=full.
model = load_model(PROFILE, device=str(device))
model.set_use_attn_result(True)  # cache each head's output separately ("result")

# Filled in by induction_score_hook (section 3): one score per (layer, head).
induction_score_store = torch.zeros((model.cfg.n_layers, model.cfg.n_heads), device=model.cfg.device)


def mask_scores(attn_scores: Float[Tensor, "query_pos key_pos"]) -> Float[Tensor, "query_pos key_pos"]:
    """Set the scores of every key after its query (the upper triangle) to -inf."""
    n_q, n_k = attn_scores.shape[-2:]
    future = torch.triu(torch.ones(n_q, n_k, dtype=torch.bool, device=attn_scores.device), diagonal=1)
    return attn_scores.masked_fill(future, float("-inf"))


# %% [markdown]
# ## 1. TransformerLens basics
#
# ### Loading and running a model
#
# `load_model` builds a `HookedTransformer`, TransformerLens's transformer
# class, and loads the profile's weights into it. (The course loads both
# profiles through this one function; for hub models it does what
# `HookedTransformer.from_pretrained` does.) In part 1 we look at a model
# trained on text: GPT-2 small in the full profile, the lite model otherwise.

# %%
gpt2_small = load_model(PROFILE, device=str(device), name="gpt2-small")
print(gpt2_small.cfg.model_name, "-", gpt2_small.cfg.n_layers, "layers,", gpt2_small.cfg.n_heads,
      "heads per layer, d_model =", gpt2_small.cfg.d_model, ", vocabulary of", gpt2_small.cfg.d_vocab)

# %% [markdown]
# The config (`model.cfg`) holds every hyperparameter. A few you will use
# constantly: `n_layers`, `n_heads`, `d_model`, `d_head`, `d_vocab`, `n_ctx`.
#
# A `HookedTransformer` takes a string, a list of strings, or a tensor of token
# ids of shape `(batch, seq)`. Strings are tokenized with a BOS token
# (`<|endoftext|>`) in front. `model.to_tokens`, `model.to_str_tokens` and
# `model.to_string` convert between the three forms. The `return_type`
# argument chooses what comes back: `"logits"` (default, shape
# `(batch, seq, d_vocab)`), `"loss"`, `"both"` or `None`.

# %%
from mi_helpers import story_prompt

text = story_prompt()
tokens = gpt2_small.to_tokens(text)
print(tokens.shape, gpt2_small.to_str_tokens(text)[:12])
loss = gpt2_small(text, return_type="loss")
print(f"mean next-token loss on the story: {loss.item():.3f}  (uniform guessing: {math.log(gpt2_small.cfg.d_vocab):.2f})")

# %% [markdown]
# ### Exercise: how many tokens does the model predict correctly?
#
# The logits at position `i` are the model's prediction for token `i + 1`.
# Count the positions where the most likely token (argmax) *is* the next
# token. A sequence of `seq` tokens gives `seq - 1` predictions; the logits at
# the last position predict a token we do not have.
#
# The off-by-one in this alignment is the most common bug in this whole
# field. Write it once, carefully.

# %% id="count_correct_predictions" autograder={"exercises": ["count_correct_predictions"]}
def count_correct_predictions(model: HookedTransformer, tokens: Int[Tensor, "batch seq"]) -> int:
    """Run `model` on `tokens` and return how many next-token predictions (argmax of the logits) are right."""
    ### BEGIN SOLUTION
    logits = model(tokens)  # batch seq d_vocab
    predictions = logits[:, :-1].argmax(dim=-1)
    return int((predictions == tokens[:, 1:]).sum().item())
    ### END SOLUTION


# %%
check("count_correct_predictions")
n_correct = count_correct_predictions(gpt2_small, tokens)
print(f"{n_correct} of {tokens.shape[1] - 1} next tokens predicted correctly")

# %% [markdown]
# Which ones? Print the tokens the model got right. In a story, names are
# usually wrong the first time they appear and right later: the model copies
# them from earlier in the context. That copying is what induction heads do,
# and finding them is the goal of this notebook.

# %%
logits = gpt2_small(tokens)
right = (logits[0, :-1].argmax(-1) == tokens[0, 1:])
str_tokens = gpt2_small.to_str_tokens(tokens[0])
print(" ".join(repr(str_tokens[i + 1]) for i in range(len(right)) if right[i]))

# %% [markdown]
# ### Caching activations
#
# `run_with_cache` runs the model and records every intermediate activation in
# an `ActivationCache`. Index it with the full hook name
# (`"blocks.0.attn.hook_pattern"`) or with a shorthand
# (`cache["pattern", 0]`; `utils.get_act_name("pattern", 0)` converts between
# them). With `remove_batch_dim=True` (a batch of one), the batch dimension
# is dropped from every entry.
#
# Useful entries of an attention layer, for a single prompt:
#
# | shorthand | shape | what |
# | --- | --- | --- |
# | `"q"`, `"k"`, `"v"` | `(seq, n_heads, d_head)` | queries, keys, values |
# | `"attn_scores"` | `(n_heads, seq_q, seq_k)` | scaled, masked scores |
# | `"pattern"` | `(n_heads, seq_q, seq_k)` | attention probabilities |
# | `"z"` | `(seq, n_heads, d_head)` | pattern-weighted values |
# | `"result"` | `(seq, n_heads, d_model)` | each head's output (needs `use_attn_result`) |

# %%
gpt2_logits, gpt2_cache = gpt2_small.run_with_cache(text, remove_batch_dim=True)
for name in ["embed", "q", "pattern", "z"]:
    key = utils.get_act_name(name, 0) if name != "embed" else "hook_embed"
    print(f"{key:30} {tuple(gpt2_cache[key].shape)}")

# %% [markdown]
# ### Exercise: recompute an attention pattern
#
# To be sure you know what the cache holds, recompute layer `layer`'s
# attention pattern from its queries and keys:
#
# 1. scores `q · k` for every (query, key) pair and head,
#    divided by `sqrt(d_head)`;
# 2. the causal mask: a query may not attend to later keys
#    (score `-inf`; a query *can* attend to itself);
# 3. softmax over the **key** dimension.
#
# Work for any leading batch dimensions (`...`): the cache may or may not
# have a batch dimension. Your result must match `cache["pattern", layer]`.

# %% id="attention_pattern_from_qk" autograder={"exercises": ["attention_pattern_from_qk"]}
def attention_pattern_from_qk(cache: ActivationCache, layer: int) -> Float[Tensor, "... n_heads seq_q seq_k"]:
    """Layer `layer`'s attention pattern, computed from the cached q and k."""
    q = cache["q", layer]  # (..., seq, n_heads, d_head)
    k = cache["k", layer]
    ### BEGIN SOLUTION
    scores = einops.einsum(q, k, "... q_pos n_heads d_head, ... k_pos n_heads d_head -> ... n_heads q_pos k_pos")
    scores = scores / math.sqrt(q.shape[-1])
    seq = scores.shape[-1]
    future = torch.triu(torch.ones(seq, seq, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    ### END SOLUTION


# %%
check("attention_pattern_from_qk")

# %% [markdown]
# ### Looking at attention patterns
#
# A heatmap per head shows where each query position looks. (The
# `circuitsvis` package draws interactive versions; plain matplotlib is
# enough here.)

# %%
import matplotlib.pyplot as plt


def plot_patterns(pattern, str_tokens, title, n_show=24):
    """One heatmap per head of a (n_heads, seq, seq) pattern, for the first n_show tokens."""
    n_heads = pattern.shape[0]
    cols = min(n_heads, 4)
    rows = math.ceil(n_heads / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for h in range(n_heads):
        ax = axes[h // cols][h % cols]
        ax.imshow(pattern[h, :n_show, :n_show].cpu(), cmap="Blues", vmin=0, vmax=1)
        ax.set_title(f"head {h}", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    for h in range(n_heads, rows * cols):
        axes[h // cols][h % cols].axis("off")
    fig.suptitle(title)
    plt.tight_layout()
    plt.show()


# %% [markdown]
# ## 2. Finding induction heads
#
# From here on we study `model`: the lite model, or `attn-only-2l` in the
# full profile. Both have two layers of attention and nothing else: no MLPs.
# Their positional embeddings are *shortformer* style: the position
# embedding is not added to the residual stream, only to the inputs of the
# queries and keys, just after `ln1`. Positions can change *where* a head
# looks, but never *what* it moves.

# %%
print(model.cfg.model_name, "| attention only:", model.cfg.attn_only,
      "| positional embeddings:", model.cfg.positional_embedding_type)
story_logits, story_cache = model.run_with_cache(text, remove_batch_dim=True)
story_str_tokens = model.to_str_tokens(text)
for layer in range(model.cfg.n_layers):
    plot_patterns(story_cache["pattern", layer], story_str_tokens, f"layer {layer} on the story")

# %% [markdown]
# Many heads have one of three simple shapes:
#
# - **current-token heads** attend mostly to their own position (the diagonal);
# - **previous-token heads** attend to the position just before (the sub-diagonal);
# - **first-token heads** attend to the BOS token (column 0); attending to
#   BOS is how a head does "nothing", since softmax must put its mass somewhere.
#
# ### Exercise: attention-head detectors
#
# Write a detector for each. The cache comes from a single prompt
# (`remove_batch_dim=True`), so `cache["pattern", layer]` has shape
# `(n_heads, seq_q, seq_k)`. A head's score is its average attention, over
# query positions, to the target:
#
# - current token: the mean of `pattern[q, q]` over all query positions;
# - previous token: the mean of `pattern[q, q - 1]` over query positions `1, ..., seq - 1`;
# - first token: the mean of `pattern[q, 0]` over all query positions.
#
# Return the heads whose score is **greater than** `threshold`, as strings
# `"layer.head"` (e.g. `"0.7"`), over all layers. `cache.model` is the model
# the cache came from.

# %% id="current_attn_detector" autograder={"exercises": ["current_attn_detector"]}
def current_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> list[str]:
    """Heads ("layer.head") whose average attention to the current token exceeds `threshold`."""
    ### BEGIN SOLUTION
    heads = []
    for layer in range(cache.model.cfg.n_layers):
        pattern = cache["pattern", layer]
        score = pattern.diagonal(dim1=-2, dim2=-1).mean(dim=-1)
        heads += [f"{layer}.{head}" for head in range(pattern.shape[0]) if score[head] > threshold]
    return heads
    ### END SOLUTION


# %% id="prev_attn_detector" autograder={"exercises": ["prev_attn_detector"]}
def prev_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> list[str]:
    """Heads ("layer.head") whose average attention to the previous token exceeds `threshold`."""
    ### BEGIN SOLUTION
    heads = []
    for layer in range(cache.model.cfg.n_layers):
        pattern = cache["pattern", layer]
        score = pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=-1)
        heads += [f"{layer}.{head}" for head in range(pattern.shape[0]) if score[head] > threshold]
    return heads
    ### END SOLUTION


# %% id="first_attn_detector" autograder={"exercises": ["first_attn_detector"]}
def first_attn_detector(cache: ActivationCache, threshold: float = 0.4) -> list[str]:
    """Heads ("layer.head") whose average attention to the first token exceeds `threshold`."""
    ### BEGIN SOLUTION
    heads = []
    for layer in range(cache.model.cfg.n_layers):
        pattern = cache["pattern", layer]
        score = pattern[:, :, 0].mean(dim=-1)
        heads += [f"{layer}.{head}" for head in range(pattern.shape[0]) if score[head] > threshold]
    return heads
    ### END SOLUTION


# %%
check("current_attn_detector")
check("prev_attn_detector")
check("first_attn_detector")
print("current-token heads: ", current_attn_detector(story_cache))
print("previous-token heads:", prev_attn_detector(story_cache))
print("first-token heads:   ", first_attn_detector(story_cache))

# %% [markdown]
# Compare with the heatmaps above. The detectors are crude: a threshold on one
# average. A head can do different things on different text, and a head that
# looks at the previous token only *sometimes* will be missed. They are a
# first filter, not a definition.
#
# ### Induction heads, on repeated random tokens
#
# An induction head at position `i` looks for an earlier occurrence of the
# current token `A`, attends to the token `B` that *followed* it, and
# predicts `B` again: `[A][B] ... [A] → [B]`. It needs help from a
# previous-token head in an earlier layer, which writes "the token before me
# was `A`" into `B`'s position; the induction head's query ("I am `A`") then
# matches that key. This two-layer collaboration is the **induction circuit**.
#
# The cleanest test: random tokens, repeated. The first copy is
# unpredictable (loss ≈ ln(d_vocab)); the second is perfectly predictable,
# but only by looking back at the first copy.
#
# ### Exercise: repeated random tokens
#
# `generate_repeated_tokens` returns, for each of `batch` rows, the BOS token
# (`model.tokenizer.bos_token_id`) followed by `seq_len` random tokens, drawn
# uniformly from the whole vocabulary (`torch.randint`), followed by the same
# `seq_len` tokens again: shape `(batch, 1 + 2 * seq_len)`. Use torch's
# random number generator (so `torch.manual_seed` makes it reproducible) and
# put the result on the model's device (`model.cfg.device`).
#
# `run_and_cache_model_repeated_tokens` generates such tokens and runs the
# model on them with a cache, returning `(tokens, logits, cache)`. Keep the
# batch dimension in the cache.

# %% id="generate_repeated_tokens" autograder={"exercises": ["generate_repeated_tokens"]}
def generate_repeated_tokens(model: HookedTransformer, seq_len: int, batch: int = 1) -> Int[Tensor, "batch full_seq"]:
    """BOS, then seq_len uniformly random tokens, then the same tokens again; one row per batch element."""
    ### BEGIN SOLUTION
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id, dtype=torch.long)
    random_half = torch.randint(0, model.cfg.d_vocab, (batch, seq_len), dtype=torch.long)
    return torch.cat([bos, random_half, random_half], dim=1).to(model.cfg.device)
    ### END SOLUTION


# %% id="run_and_cache_model_repeated_tokens" autograder={"exercises": ["run_and_cache_model_repeated_tokens"]}
def run_and_cache_model_repeated_tokens(
    model: HookedTransformer, seq_len: int, batch: int = 1
) -> tuple[Tensor, Tensor, ActivationCache]:
    """Generate repeated random tokens, run the model on them with a cache; return (tokens, logits, cache)."""
    ### BEGIN SOLUTION
    rep_tokens = generate_repeated_tokens(model, seq_len, batch)
    rep_logits, rep_cache = model.run_with_cache(rep_tokens)
    return rep_tokens, rep_logits, rep_cache
    ### END SOLUTION


# %%
check("generate_repeated_tokens")
check("run_and_cache_model_repeated_tokens")

# %% [markdown]
# ### Exercise: per-token log probabilities
#
# `get_log_probs(logits, tokens)` returns, for every position `i < seq - 1`,
# the log probability the model gave to the token that actually came next,
# `tokens[:, i + 1]`. Shape `(batch, seq - 1)`. Use `log_softmax` (not the
# log of a softmax: it is more accurate) and `gather` or indexing.

# %% id="get_log_probs" autograder={"exercises": ["get_log_probs"]}
def get_log_probs(logits: Float[Tensor, "batch seq d_vocab"], tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch seq_minus_1"]:
    """Log probability of each actual next token."""
    ### BEGIN SOLUTION
    log_probs = logits.log_softmax(dim=-1)
    return log_probs[:, :-1].gather(dim=-1, index=tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
    ### END SOLUTION


# %%
check("get_log_probs")
seq_len = 50
torch.manual_seed(0)
rep_tokens, rep_logits, rep_cache = run_and_cache_model_repeated_tokens(model, seq_len, batch=10)
rep_log_probs = get_log_probs(rep_logits, rep_tokens)
print(f"loss on the first copy:  {-rep_log_probs[:, :seq_len].mean():.2f}   (ln d_vocab = {math.log(model.cfg.d_vocab):.2f})")
print(f"loss on the second copy: {-rep_log_probs[:, seq_len + 1:].mean():.2f}")
plt.plot(-rep_log_probs.mean(0).cpu())
plt.axvline(seq_len, color="grey", ls="--")
plt.xlabel("position"), plt.ylabel("loss"), plt.title("loss per position on repeated random tokens")
plt.show()

# %% [markdown]
# The loss collapses in the second copy: the model does in-context copying.
# The patterns of the second layer show why. In the second half, some heads
# attend along a stripe `seq_len - 1` positions behind the diagonal: each
# token of the second copy attends to the token *after* its earlier
# occurrence.

# %%
plot_patterns(rep_cache["pattern", 1][0], model.to_str_tokens(rep_tokens[0]), "layer 1 on repeated tokens", n_show=2 * seq_len + 1)

# %% [markdown]
# ## 3. Hooks
#
# A hook is a function TransformerLens calls on an activation during the
# forward pass, with the signature `hook_fn(activation, hook)`, where `hook`
# is the `HookPoint` (its name is `hook.name`, its layer `hook.layer()`). A
# hook may read the activation, or change it by returning a new tensor (or
# editing it in place). Run with hooks using
#
# ```python
# model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(name_or_filter, hook_fn), ...])
# ```
#
# where `name_or_filter` is a hook name or a function `name -> bool`. Hooks
# are removed again after the run. `run_with_cache` is itself built from hooks.
#
# ### Exercise: an induction score, with a hook
#
# Write a hook for `blocks.{layer}.attn.hook_pattern` (activation of shape
# `(batch, n_heads, seq_q, seq_k)`, on repeated tokens BOS + `seq_len` +
# `seq_len`). It computes each head's **induction score** and writes it into
# the global `induction_score_store[layer]` (shape `(n_layers, n_heads)`).
#
# The induction score of a head is its average attention, over the batch and
# over the `seq_len` query positions of the second copy, to the key `seq_len - 1`
# positions back (the token after the query token's first occurrence). Derive
# `seq_len` from the pattern's shape. `Tensor.diagonal(offset=..., dim1=..., dim2=...)`
# picks a stripe; check which of its entries belong to the second copy.

# %% id="induction_score_hook" autograder={"exercises": ["induction_score_hook"]}
def induction_score_hook(pattern: Float[Tensor, "batch n_heads seq_q seq_k"], hook: HookPoint) -> None:
    """Write each head's induction score into induction_score_store[hook.layer()]."""
    ### BEGIN SOLUTION
    seq_len = (pattern.shape[-1] - 1) // 2
    stripe = pattern.diagonal(offset=1 - seq_len, dim1=-2, dim2=-1)[..., -seq_len:]  # batch n_heads seq_len
    induction_score_store[hook.layer(), :] = stripe.mean(dim=(0, -1))
    ### END SOLUTION


# %%
check("induction_score_hook")
induction_score_store.zero_()
model.run_with_hooks(rep_tokens, return_type=None,
                     fwd_hooks=[(lambda name: name.endswith("pattern"), induction_score_hook)])
plt.imshow(induction_score_store.cpu(), cmap="Reds", vmin=0, vmax=1)
plt.xlabel("head"), plt.ylabel("layer"), plt.colorbar(), plt.title("induction score")
plt.show()

# %% [markdown]
# ### Exercise: list the induction heads
#
# Put it together: `find_induction_heads` generates `batch` sequences of
# repeated random tokens, computes every head's induction score (as defined
# above), and returns the heads whose score is greater than `threshold`, as
# `"layer.head"` strings. It must *compute* its answer: graders run it on
# other models too, for instance one whose heads have been renumbered.
#
# You may run your hook inside it, or compute the same score from a cache.

# %% id="find_induction_heads" autograder={"exercises": ["find_induction_heads"]}
def find_induction_heads(model: HookedTransformer, seq_len: int = 50, batch: int = 10, threshold: float = 0.4) -> list[str]:
    """Heads ("layer.head") whose induction score on repeated random tokens exceeds `threshold`."""
    ### BEGIN SOLUTION
    tokens = generate_repeated_tokens(model, seq_len, batch)
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    heads = []
    for layer in range(model.cfg.n_layers):
        stripe = cache["pattern", layer].diagonal(offset=1 - seq_len, dim1=-2, dim2=-1)[..., -seq_len:]
        score = stripe.mean(dim=(0, -1))
        heads += [f"{layer}.{head}" for head in range(model.cfg.n_heads) if score[head] > threshold]
    return heads
    ### END SOLUTION


# %%
check("find_induction_heads")
induction_heads = find_induction_heads(model)
print("induction heads:", induction_heads)

# %% [markdown]
# **Measured evidence (lite checkpoint, `assets/lite/training_info.json`).**
# On 20 held-out sequences of BOS + 50 random tokens repeated twice, the lite
# model's loss is 7.07 nats on the first half (uniform guessing over 889
# tokens gives 6.79: random tokens cannot be predicted) and **2.14 nats on the
# second half**: it predicts the repeat. Every layer-1 head takes part: their
# induction scores are 0.36 (head 1.6) to 0.48 (head 1.3), against at most
# 0.014 for any layer-0 head. In layer 0, two heads (0.2 and 0.7, score about
# 0.26 each; every other head is below 0.06) attend to the previous token,
# less sharply than the detectors' default threshold of 0.4 asks, which is
# why the notebook lists them with `threshold=0.2` further down. These
# previous-token heads feed the layer-1 induction heads. Zero-ablating head
# 0.7 alone raises the second-half loss by about 2.5 nats, head 0.2 by about
# 0.6; any single layer-1 head by at most 0.2, because the eight share the
# work. On the training stories the model reaches a validation loss of 2.28
# nats (top-1 accuracy 0.50): it spent most of its short training on
# induction, so it is a mediocre story model, which does not matter here.
#
# These head numbers belong to this one checkpoint; a retrained model (or
# `attn-only-2l` in the full profile) puts its heads elsewhere, which is why
# your code must compute them.

# %% [markdown]
# ### Direct logit attribution
#
# The logits are a linear function of the final residual stream (up to the
# final LayerNorm's scale), and the residual stream is a sum: the token
# embedding plus every head's output. So each component's contribution to the
# logit of the correct next token can be read off directly: its output,
# dotted with the unembedding column of that token. This is **direct logit
# attribution** (DLA). It measures only a component's *direct* effect, not
# what it does through later layers.
#
# ### Exercise: `logit_attribution`
#
# Inputs, for one sequence of `seq` tokens: the embedding `(seq, d_model)`,
# the outputs of layer 0's and layer 1's heads `(seq, n_heads, d_model)`,
# the unembedding `W_U` `(d_model, d_vocab)` and the tokens `(seq,)`. For each
# of the `seq - 1` positions that have a next token, return the dot product of
# each component with `W_U[:, next token]`: shape `(seq - 1, 1 + 2 * n_heads)`,
# columns in the order embedding, layer-0 heads, layer-1 heads.

# %% id="logit_attribution" autograder={"exercises": ["logit_attribution"]}
def logit_attribution(
    embed: Float[Tensor, "seq d_model"],
    l1_results: Float[Tensor, "seq n_heads d_model"],
    l2_results: Float[Tensor, "seq n_heads d_model"],
    W_U: Float[Tensor, "d_model d_vocab"],
    tokens: Int[Tensor, "seq"],
) -> Float[Tensor, "seq_minus_1 n_components"]:
    """Direct contribution of the embedding and of each head to the logit of the correct next token."""
    ### BEGIN SOLUTION
    W_U_correct = W_U[:, tokens[1:]]  # d_model seq-1
    direct = einops.einsum(W_U_correct, embed[:-1], "d_model seq, seq d_model -> seq")
    l1 = einops.einsum(W_U_correct, l1_results[:-1], "d_model seq, seq n_heads d_model -> seq n_heads")
    l2 = einops.einsum(W_U_correct, l2_results[:-1], "d_model seq, seq n_heads d_model -> seq n_heads")
    return torch.cat([direct.unsqueeze(-1), l1, l2], dim=-1)
    ### END SOLUTION


# %% [markdown]
# Our models keep their final LayerNorm (shortformer models cannot fold it
# into the weights), so to make the attributions add up exactly we feed in the
# components the way the final LayerNorm sees them: centred, divided by its
# scale, and with its weight `w` folded into `W_U`. Then the attributions plus
# the constant bias terms give exactly the correct-token logits.

# %%
check("logit_attribution")
story_tokens = model.to_tokens(text)[0]
final_scale = story_cache["ln_final.hook_scale"]  # (seq, 1)


def as_seen_by_ln_final(x):
    x = x - x.mean(dim=-1, keepdim=True)
    return x / (final_scale if x.dim() == 2 else final_scale[:, None])


W_U_eff = model.ln_final.w[:, None] * model.W_U
attributions = logit_attribution(
    as_seen_by_ln_final(story_cache["embed"]),
    as_seen_by_ln_final(story_cache["result", 0]),
    as_seen_by_ln_final(story_cache["result", 1]),
    W_U_eff,
    story_tokens,
)
bias = sum(as_seen_by_ln_final(model.b_O[l].expand_as(story_cache["embed"])) for l in range(model.cfg.n_layers))
bias_logit = (bias[:-1] * W_U_eff[:, story_tokens[1:]].T).sum(-1) + (model.ln_final.b @ model.W_U)[story_tokens[1:]] + model.b_U[story_tokens[1:]]
correct_logits = story_logits[torch.arange(len(story_tokens) - 1), story_tokens[1:]]
print("max |sum of attributions + biases - correct logit|:", (attributions.sum(-1) + bias_logit - correct_logits).abs().max().item())

labels = ["embed"] + [f"0.{h}" for h in range(model.cfg.n_heads)] + [f"1.{h}" for h in range(model.cfg.n_heads)]
plt.figure(figsize=(10, 3))
plt.bar(labels, attributions.mean(0).cpu())
plt.xticks(rotation=90), plt.title("mean direct logit attribution on the story")
plt.show()

# %% [markdown]
# On repeated random tokens, the second copy is predicted almost entirely by
# the layer-1 induction heads' direct effect:

# %%
rep_scale = rep_cache["ln_final.hook_scale"][0]
rep_attr = logit_attribution(
    (rep_cache["embed"][0] - rep_cache["embed"][0].mean(-1, keepdim=True)) / rep_scale,
    (rep_cache["result", 0][0] - rep_cache["result", 0][0].mean(-1, keepdim=True)) / rep_scale[:, None],
    (rep_cache["result", 1][0] - rep_cache["result", 1][0].mean(-1, keepdim=True)) / rep_scale[:, None],
    W_U_eff,
    rep_tokens[0],
)
plt.figure(figsize=(10, 3))
plt.bar(labels, rep_attr[seq_len + 1:].mean(0).cpu())
plt.xticks(rotation=90), plt.title("mean direct logit attribution, second copy of repeated tokens")
plt.show()

# %% [markdown]
# ### Ablation
#
# DLA is correlational. To test whether a head *matters*, remove it and see
# what breaks. **Zero ablation** sets the head's output to zero;
# **mean ablation** replaces it with its average over the batch (position by
# position), which keeps the "typical" output and removes only the
# information specific to each sequence. Both are done on `hook_z`, shape
# `(batch, seq, n_heads, d_head)`: the head's output is `z @ W_O`, so
# changing `z[:, :, head]` changes exactly that head.
#
# ### Exercise: ablation hooks
#
# Both hooks change `z` in place for head `head_index_to_ablate` and return
# it. Bind the extra argument with `functools.partial` when you use them:
# `functools.partial(head_zero_ablation_hook, head_index_to_ablate=3)`.

# %% id="ablation_hooks" autograder={"exercises": ["ablation_hooks"]}
def head_zero_ablation_hook(
    z: Float[Tensor, "batch seq n_heads d_head"], hook: HookPoint, head_index_to_ablate: int
) -> Float[Tensor, "batch seq n_heads d_head"]:
    """Set one head's z to zero."""
    ### BEGIN SOLUTION
    z[:, :, head_index_to_ablate, :] = 0.0
    return z
    ### END SOLUTION


def head_mean_ablation_hook(
    z: Float[Tensor, "batch seq n_heads d_head"], hook: HookPoint, head_index_to_ablate: int
) -> Float[Tensor, "batch seq n_heads d_head"]:
    """Replace one head's z by its mean over the batch (separately at each position)."""
    ### BEGIN SOLUTION
    z[:, :, head_index_to_ablate, :] = z[:, :, head_index_to_ablate, :].mean(dim=0, keepdim=True)
    return z
    ### END SOLUTION


# %% [markdown]
# ### Exercise: ablation scores
#
# For every head, ablate it (with `ablation_function`, on `hook_z` of its
# layer) and measure how much the loss on the induction part of `tokens`
# rises. `tokens` are repeated random tokens (BOS + `seq_len` + `seq_len`);
# the loss is the mean of `-get_log_probs(logits, tokens)` over the last
# `seq_len - 1` predictions (the tokens of the second copy that can be
# predicted by copying), averaged over the batch. The score of a head is
# `ablated loss - clean loss`.

# %% id="get_ablation_scores" autograder={"exercises": ["get_ablation_scores"]}
def get_ablation_scores(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], ablation_function=head_zero_ablation_hook
) -> Float[Tensor, "n_layers n_heads"]:
    """Increase of the induction loss when each head is ablated."""
    ### BEGIN SOLUTION
    seq_len = (tokens.shape[1] - 1) // 2

    def induction_loss(logits):
        return -get_log_probs(logits, tokens)[:, -(seq_len - 1):].mean()

    clean_loss = induction_loss(model(tokens))
    scores = torch.zeros((model.cfg.n_layers, model.cfg.n_heads), device=model.cfg.device)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):  # every head of every layer
            hook_fn = functools.partial(ablation_function, head_index_to_ablate=head)
            logits = model.run_with_hooks(tokens, fwd_hooks=[(utils.get_act_name("z", layer), hook_fn)])
            scores[layer, head] = induction_loss(logits) - clean_loss
    return scores
    ### END SOLUTION


# %%
check("ablation_hooks")
check("get_ablation_scores")
zero_scores = get_ablation_scores(model, rep_tokens)
mean_scores = get_ablation_scores(model, rep_tokens, head_mean_ablation_hook)
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax, scores, name in zip(axes, [zero_scores, mean_scores], ["zero", "mean"]):
    im = ax.imshow(scores.cpu(), cmap="RdBu_r", vmin=-scores.abs().max(), vmax=scores.abs().max())
    ax.set_title(f"{name}-ablation: induction loss increase"), ax.set_xlabel("head"), ax.set_ylabel("layer")
    fig.colorbar(im, ax=ax)
plt.show()

# %% [markdown]
# The induction heads matter, as expected. So do the previous-token heads of
# layer 0, although their direct logit attribution is small: their effect
# goes *through* the induction heads. That is the circuit.
#
# ## 4. Reverse-engineering the induction circuit
#
# ### `FactoredMatrix`
#
# A head's weights come in pairs that only ever act as a product:
# `W_OV = W_V @ W_O` (what the head moves) and `W_QK = W_Q @ W_K.T` (where it
# looks). These are `d_model × d_model` matrices of rank at most `d_head`.
# Padded out to the vocabulary (`W_E @ W_OV @ W_U`) they become huge, but
# still low rank. `FactoredMatrix(A, B)` represents `A @ B` without ever
# multiplying it out: it supports `@` with matrices and other factored
# matrices, indexing and slicing (`fm[0:100]`), `.T`, `.norm()` (Frobenius),
# `.svd()`, and `.AB` to materialise the product when you really want it.
# `model.OV[layer, head]` and `model.QK[layer, head]` are ready-made ones.
#
# Conventions: TransformerLens multiplies row vectors on the left, so a head
# maps `x` to `x @ W_V @ W_O`, and the attention score between a query input
# `x_q` and a key input `x_k` is `x_q @ W_Q @ W_K.T @ x_k.T`.

# %%
A, B = torch.randn(5, 2), torch.randn(2, 5)
AB = FactoredMatrix(A, B)
print(AB.shape, AB.rdim, "| norm:", AB.norm().item(), "=", (A @ B).norm().item())
print("slicing keeps it factored:", AB[1:3].shape, type(AB[1:3]).__name__)

# %% [markdown]
# ### Exercise: the full OV circuit of a head, and how much it copies
#
# The **full OV circuit** of a head, `W_E @ W_V @ W_O @ W_U`
# (`d_vocab × d_vocab`), says: if the head attends to token `i`, how much
# does it raise the logit of token `j`? (This ignores the LayerNorms.) An
# induction head should *copy*: row `i`'s largest entry should be column `i`.
#
# - `get_full_ov_circuit(model, layer, head)` returns it as a `FactoredMatrix`
#   (never multiply it out: for GPT-2 it has 2.5 billion entries);
# - `top_1_acc(full_OV_circuit, batch_size)` returns the fraction of rows whose
#   largest entry is on the diagonal. Materialise at most `batch_size` rows at a
#   time (`full_OV_circuit[i:j].AB`); don't forget the last, shorter batch.

# %% id="get_full_ov_circuit" autograder={"exercises": ["get_full_ov_circuit"]}
def get_full_ov_circuit(model: HookedTransformer, layer: int, head: int) -> FactoredMatrix:
    """W_E @ W_V @ W_O @ W_U of one head, as a FactoredMatrix (d_vocab, d_vocab)."""
    ### BEGIN SOLUTION
    return model.W_E @ FactoredMatrix(model.W_V[layer, head], model.W_O[layer, head]) @ model.W_U
    ### END SOLUTION


# %% id="top_1_acc" autograder={"exercises": ["top_1_acc"]}
def top_1_acc(full_OV_circuit: FactoredMatrix, batch_size: int = 100) -> float:
    """Fraction of rows i whose largest entry is in column i."""
    ### BEGIN SOLUTION
    n_rows = full_OV_circuit.shape[0]
    n_correct = 0
    for start in range(0, n_rows, batch_size):
        rows = full_OV_circuit[start : start + batch_size].AB
        targets = torch.arange(start, start + rows.shape[0], device=rows.device)
        n_correct += int((rows.argmax(dim=-1) == targets).sum().item())
    return n_correct / n_rows
    ### END SOLUTION


# %%
check("get_full_ov_circuit")
check("top_1_acc")
for name in induction_heads:
    layer, head = map(int, name.split("."))
    print(f"head {name}: top-1 accuracy of its full OV circuit = {top_1_acc(get_full_ov_circuit(model, layer, head)):.3f}")

# %% [markdown]
# Several induction heads often share the copying work, each for part of the
# vocabulary. Their *combined* OV circuit (the sum of their OV matrices)
# copies better than any single one:

# %%
if induction_heads:
    layers_heads = [tuple(map(int, n.split("."))) for n in induction_heads]
    W_OV_sum = sum(model.W_V[l, h] @ model.W_O[l, h] for l, h in layers_heads)
    combined = model.W_E @ FactoredMatrix(W_OV_sum, torch.eye(model.cfg.d_model, device=W_OV_sum.device)) @ model.W_U
    print(f"combined induction heads {induction_heads}: top-1 accuracy {top_1_acc(combined):.3f}")

# %% [markdown]
# ### Exercise: the positional pattern of the previous-token head
#
# In a shortformer model a layer-0 head can only use the token embedding and
# the position embedding. A previous-token head should attend one position
# back *whatever the tokens are*, so its QK circuit restricted to positions,
# `W_pos @ W_Q @ W_K.T @ W_pos.T`, should do the job by itself.
#
# `pos_by_pos_pattern(model, layer, head)` returns the attention pattern that
# this positional term alone would produce: the `(n_ctx, n_ctx)` scores,
# divided by `sqrt(d_head)`, causally masked (`mask_scores`), softmaxed over
# keys. (It ignores biases and the token part of the input.)

# %% id="pos_by_pos_pattern" autograder={"exercises": ["pos_by_pos_pattern"]}
def pos_by_pos_pattern(model: HookedTransformer, layer: int, head: int) -> Float[Tensor, "n_ctx n_ctx"]:
    """Attention pattern from the positional embeddings alone."""
    ### BEGIN SOLUTION
    W_pos = model.W_pos
    scores = W_pos @ model.W_Q[layer, head] @ model.W_K[layer, head].T @ W_pos.T
    return mask_scores(scores / math.sqrt(model.cfg.d_head)).softmax(dim=-1)
    ### END SOLUTION


# %%
check("pos_by_pos_pattern")
# threshold=0.2: the lite model's previous-token heads spread their attention (see the evidence above)
prev_heads = [n for n in prev_attn_detector(rep_cache_single := ActivationCache(
    {k: v[0] for k, v in rep_cache.cache_dict.items()}, model, has_batch_dim=False), threshold=0.2) if n.startswith("0.")]
print("layer-0 previous-token heads on repeated tokens:", prev_heads)
for name in prev_heads:
    head = int(name.split(".")[1])
    pattern = pos_by_pos_pattern(model, 0, head)
    print(f"head {name}: average positional attention to the previous position = "
          f"{pattern.diagonal(offset=-1)[:100].mean():.3f}")
    plt.imshow(pattern[:30, :30].cpu(), cmap="Blues"), plt.title(f"positional pattern of head {name}")
    plt.show()

# %% [markdown]
# ### Decomposing the attention scores of an induction head
#
# Which parts of its input does an induction head use? Its query and key
# inputs are sums: the residual stream entering layer 1 is the token
# embedding plus the output of every layer-0 head (plus a constant bias), and
# in a shortformer model the position embedding is added to the queries' and
# keys' input *after* `ln1`:
#
# `qk_input = ln1(embed + Σ_h result_0h + b_O) + pos_embed`
#
# `ln1` is linear once its scale is fixed (the scale is a property of the
# whole residual vector at that position, so we read it from the cache):
# `ln1(x) = (x - mean(x)) / scale * w + b`. So each component `c` of the
# residual stream contributes `(c - mean(c)) / scale * w` to the input, and
# `pos_embed` contributes itself.
#
# ### Exercise: `decompose_qk_input`
#
# For a cache of one sequence (no batch dimension), return the contributions
# to layer 1's query/key input, stacked as `(2 + n_heads, seq, d_model)`: the
# embedding, the position embedding, then layer 0's heads in order. Use
# `cache["scale", 1, "ln1"]` for the scale and `cache.model.blocks[1].ln1.w`
# for the weight. Leave out the constant parts (`ln1`'s bias and layer 0's `b_O`).

# %% id="decompose_qk_input" autograder={"exercises": ["decompose_qk_input"]}
def decompose_qk_input(cache: ActivationCache) -> Float[Tensor, "n_components seq d_model"]:
    """Contributions of embed, pos_embed and each layer-0 head to layer 1's query/key input."""
    ### BEGIN SOLUTION
    scale = cache["scale", 1, "ln1"]  # seq 1
    w = cache.model.blocks[1].ln1.w

    def through_ln1(x, scale):
        return (x - x.mean(dim=-1, keepdim=True)) / scale * w

    embed = through_ln1(cache["embed"], scale)
    heads = through_ln1(cache["result", 0], scale[:, None])  # seq n_heads d_model
    return torch.cat([embed[None], cache["pos_embed"][None], heads.transpose(0, 1)], dim=0)
    ### END SOLUTION


# %% [markdown]
# ### Exercise: queries and keys, per component
#
# Project each component through head `ind_head_index` of layer 1:
# `decompose_q` with its `W_Q`, `decompose_k` with its `W_K`. Shape
# `(n_components, seq, d_head)`. Summed over components and with the biases
# added back, they give the cached `q` and `k`.

# %% id="decompose_q_k" autograder={"exercises": ["decompose_q_k"]}
def decompose_q(
    decomposed_qk_input: Float[Tensor, "n_components seq d_model"], ind_head_index: int, model: HookedTransformer
) -> Float[Tensor, "n_components seq d_head"]:
    """Each component's contribution to the queries of head 1.<ind_head_index>."""
    ### BEGIN SOLUTION
    return einops.einsum(decomposed_qk_input, model.W_Q[1, ind_head_index], "n seq d_model, d_model d_head -> n seq d_head")
    ### END SOLUTION


def decompose_k(
    decomposed_qk_input: Float[Tensor, "n_components seq d_model"], ind_head_index: int, model: HookedTransformer
) -> Float[Tensor, "n_components seq d_head"]:
    """Each component's contribution to the keys of head 1.<ind_head_index>."""
    ### BEGIN SOLUTION
    return einops.einsum(decomposed_qk_input, model.W_K[1, ind_head_index], "n seq d_model, d_model d_head -> n seq d_head")
    ### END SOLUTION


# %% [markdown]
# ### Exercise: decomposed attention scores
#
# The attention score is bilinear in the query and the key, so it splits
# into one term per *pair* (query component, key component):
# `decompose_attn_scores(decomposed_q, decomposed_k)` returns
# `(q_comp, k_comp, seq_q, seq_k)`, each term divided by `sqrt(d_head)` like
# the real scores (no mask).

# %% id="decompose_attn_scores" autograder={"exercises": ["decompose_attn_scores"]}
def decompose_attn_scores(
    decomposed_q: Float[Tensor, "q_comp seq d_head"], decomposed_k: Float[Tensor, "k_comp seq d_head"]
) -> Float[Tensor, "q_comp k_comp seq_q seq_k"]:
    """Attention score terms for every pair of query and key components."""
    ### BEGIN SOLUTION
    scores = einops.einsum(decomposed_q, decomposed_k, "qc q_pos d_head, kc k_pos d_head -> qc kc q_pos k_pos")
    return scores / math.sqrt(decomposed_q.shape[-1])
    ### END SOLUTION


# %%
check("decompose_qk_input")
check("decompose_q_k")
check("decompose_attn_scores")

# %% [markdown]
# Now find which pairs drive the score of the strongest induction head. A
# term that is nearly constant over positions cannot tell keys apart, so we
# measure each pair by the **standard deviation** of its term over the
# allowed (query ≥ key) positions, on one sequence of repeated tokens.

# %%
single = ActivationCache({k: v[0] for k, v in rep_cache.cache_dict.items()}, model, has_batch_dim=False)
top_layer, top_head = divmod(int(induction_score_store.flatten().argmax()), model.cfg.n_heads)
print(f"strongest induction head: {top_layer}.{top_head}")
qk_input = decompose_qk_input(single)
dq, dk = decompose_q(qk_input, top_head, model), decompose_k(qk_input, top_head, model)
terms = decompose_attn_scores(dq, dk)
allowed = torch.tril(torch.ones(terms.shape[-2:], dtype=torch.bool, device=terms.device))
importance = terms[..., allowed].std(dim=-1)
component_names = ["embed", "pos"] + [f"0.{h}" for h in range(model.cfg.n_heads)]
plt.imshow(importance.cpu(), cmap="Blues")
plt.xticks(range(len(component_names)), component_names, rotation=90)
plt.yticks(range(len(component_names)), component_names)
plt.xlabel("key component"), plt.ylabel("query component"), plt.colorbar()
plt.title(f"std of score terms, head {top_layer}.{top_head}")
plt.show()
q_best, k_best = divmod(int(importance.argmax()), importance.shape[1])
print(f"largest term: query {component_names[q_best]} x key {component_names[k_best]}")

# %% [markdown]
# The query side is dominated by the **token embedding** ("which token am I?")
# and the key side by the output of a **previous-token head** ("which token
# came before me?"). The key's information was put there by a head in an
# earlier layer: this is **K-composition**. The induction head's query and key
# meet when the current token equals the token before the key, exactly the
# induction rule.
#
# ### Composition scores
#
# We can measure composition from the weights alone. A layer-0 head A writes
# into the residual stream with `W_OV^A`; a layer-1 head B reads it with
# `W_QK^B` (through its query or its key) or `W_OV^B` (through its value).
# The **composition score** of two matrices,
#
# $$\frac{\lVert W_A W_B \rVert_F}{\lVert W_A \rVert_F \, \lVert W_B \rVert_F},$$
#
# is large when what A writes lies in the directions B reads. With `W_A = W_OV^A`:
# Q-composition uses `W_B = W_QK^B`, K-composition `W_B = (W_QK^B).T` (the key
# input sits on the right of `W_QK`), V-composition `W_B = W_OV^B`.
#
# ### Exercise: `get_comp_score`

# %% id="get_comp_score" autograder={"exercises": ["get_comp_score"]}
def get_comp_score(W_A: Float[Tensor, "in_A out_A"], W_B: Float[Tensor, "out_A out_B"]) -> float:
    """Composition score ||W_A @ W_B||_F / (||W_A||_F * ||W_B||_F)."""
    ### BEGIN SOLUTION
    return ((W_A @ W_B).norm() / (W_A.norm() * W_B.norm())).item()
    ### END SOLUTION


# %% [markdown]
# ### Exercise: Q-, K- and V-composition scores between all heads
#
# Return a dict with keys `"Q"`, `"K"`, `"V"`, each an `(n_heads, n_heads)`
# tensor whose entry `[i, j]` is the composition score of layer-0 head `i`
# (as `W_A = W_OV`) with layer-1 head `j`, using `get_comp_score`.

# %% id="composition_scores" autograder={"exercises": ["composition_scores"]}
def composition_scores(model: HookedTransformer) -> dict[str, Float[Tensor, "n_heads n_heads"]]:
    """Q-, K- and V-composition scores between each layer-0 head (rows) and each layer-1 head (columns)."""
    ### BEGIN SOLUTION
    W_OV = model.W_V @ model.W_O  # n_layers n_heads d_model d_model
    W_QK = model.W_Q @ model.W_K.transpose(-1, -2)
    n = model.cfg.n_heads  # heads per layer
    scores = {kind: torch.zeros((n, n), device=W_OV.device) for kind in "QKV"}
    for i in range(n):
        for j in range(n):
            scores["Q"][i, j] = get_comp_score(W_OV[0, i], W_QK[1, j])
            scores["K"][i, j] = get_comp_score(W_OV[0, i], W_QK[1, j].T)
            scores["V"][i, j] = get_comp_score(W_OV[0, i], W_OV[1, j])
    return scores
    ### END SOLUTION


# %%
check("get_comp_score")
check("composition_scores")
comp = composition_scores(model)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
for ax, kind in zip(axes, "QKV"):
    im = ax.imshow(comp[kind].cpu(), cmap="Purples", vmin=0)
    ax.set_title(f"{kind}-composition"), ax.set_xlabel("layer-1 head"), ax.set_ylabel("layer-0 head")
    fig.colorbar(im, ax=ax)
plt.show()

# %% [markdown]
# Are these numbers large? Compare with what two *random* matrices of the same
# shapes score.
#
# ### Exercise: a random baseline
#
# `generate_single_random_comp_score(d_model, d_head)` builds four random
# matrices, `W_A_left`, `W_B_left` of shape `(d_model, d_head)` and
# `W_A_right`, `W_B_right` of shape `(d_head, d_model)`, each initialised in
# place by `torch.nn.init.kaiming_uniform_` with `a=math.sqrt(5)` (PyTorch's
# default for linear layers), and returns the composition score of
# `W_A_left @ W_A_right` with `W_B_left @ W_B_right`: two random matrices of
# the same rank as real OV and QK matrices.

# %% id="generate_single_random_comp_score" autograder={"exercises": ["generate_single_random_comp_score"]}
def generate_single_random_comp_score(d_model: int, d_head: int) -> float:
    """Composition score of two random rank-d_head matrices of shape (d_model, d_model)."""
    ### BEGIN SOLUTION
    W_A_left, W_B_left = torch.empty(d_model, d_head), torch.empty(d_model, d_head)
    W_A_right, W_B_right = torch.empty(d_head, d_model), torch.empty(d_head, d_model)
    for W in (W_A_left, W_B_left, W_A_right, W_B_right):
        torch.nn.init.kaiming_uniform_(W, a=math.sqrt(5))
    return get_comp_score(W_A_left @ W_A_right, W_B_left @ W_B_right)
    ### END SOLUTION


# %%
check("generate_single_random_comp_score")
random_scores = torch.tensor([generate_single_random_comp_score(model.cfg.d_model, model.cfg.d_head) for _ in range(300)])
baseline = random_scores.mean().item()
print(f"random baseline: {baseline:.3f} ± {random_scores.std().item():.3f}")
plt.hist(random_scores, bins=30), plt.title("composition scores of random matrices"), plt.show()

# %% [markdown]
# ### Exercise: composition scores in batch
#
# The loop above is slow for big models. `get_batched_comp_scores` takes two
# *stacked* factored matrices, `W_As` of shape `(n_A, d, d)` and `W_Bs` of
# shape `(n_B, d, d)`, and returns the `(n_A, n_B)` composition scores of
# every pair at once, without materialising `d × d` products per pair. Give the
# factors new singleton dimensions so they broadcast (`FactoredMatrix(A[:, None], B[:, None])`),
# multiply, and use `.norm()`, which works on the last two dimensions.

# %% id="get_batched_comp_scores" autograder={"exercises": ["get_batched_comp_scores"]}
def get_batched_comp_scores(W_As: FactoredMatrix, W_Bs: FactoredMatrix) -> Float[Tensor, "n_A n_B"]:
    """Composition score of every (W_As[i], W_Bs[j]) pair."""
    ### BEGIN SOLUTION
    W_As = FactoredMatrix(W_As.A[:, None], W_As.B[:, None])
    W_Bs = FactoredMatrix(W_Bs.A[None, :], W_Bs.B[None, :])
    return (W_As @ W_Bs).norm() / (W_As.norm() * W_Bs.norm())
    ### END SOLUTION


# %%
check("get_batched_comp_scores")
batched_K = get_batched_comp_scores(model.OV[0], model.QK[1].T)
print("batched K-composition agrees with the loop:", torch.allclose(batched_K, comp["K"], atol=1e-4))
plt.imshow((comp["K"] > 2 * baseline).cpu(), cmap="Greys")
plt.title(f"K-composition above twice the random baseline"), plt.xlabel("layer-1 head"), plt.ylabel("layer-0 head")
plt.show()

# %% [markdown]
# The strongest K-composition pairs link the layer-0 previous-token heads to
# the layer-1 induction heads: the circuit you found with ablations and with
# the decomposition, read straight off the weights.
#
# ## Summary
#
# - `HookedTransformer` + `ActivationCache` give you every activation by name;
#   hooks let you read and change them during the forward pass.
# - Detectors, repeated random tokens and induction scores find candidate
#   heads; ablations show they matter; DLA shows their direct effect.
# - `FactoredMatrix` lets you study the OV and QK circuits from the weights
#   alone; decomposing attention scores and composition scores show *how* a
#   previous-token head and an induction head work together (K-composition).
