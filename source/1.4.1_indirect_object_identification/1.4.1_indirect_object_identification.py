# %% [markdown]
# # 1.4.1 Indirect object identification (IOI): finding a circuit
#
# Read "When Mary and John went to the store , John gave a drink to". The next word
# is almost surely " Mary": the person who was named once (the **indirect object**,
# IO), not the one named twice (the **subject**, S). A language model that gets this
# right has to notice which name is repeated and then move the *other* name to the
# last position. That is a small algorithm, spread over several attention heads in
# several layers: a **circuit**. This section is about finding one, step by step,
# with tools that go from "where does something happen?" to "which head talks to which".
#
# In this notebook you
#
# 1. measure the behaviour: the **logit difference** logit(IO) − logit(S) at the last
#    token, and a normalised patching metric;
# 2. split the logit difference into each head's **direct contribution** (direct logit
#    attribution), and look at where the important heads attend;
# 3. find **duplicate-token heads** by their attention on repeated tokens;
# 4. **activation patching**: put clean activations into a corrupted run, first the
#    residual stream at each layer and position, then each head's output;
# 5. **path patching**: which earlier heads matter *through the queries* of the heads
#    that write the answer (composition);
# 6. **mean ablation**: keep only a candidate circuit, replace every other head by its
#    mean output, and measure how much of the behaviour the circuit alone keeps
#    (faithfulness), against random sets of heads of the same size.
#
# **The prompts.** Every prompt has the same 15-token shape (BOS first):
#
# | position | 0 | 1 | 2 | 3 | 4 | 5–6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 14 |
# | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
# | token | BOS | When | **A** | and | **B** | went to | the | store | , | **S2** | gave | a | drink | to (END) |
#
# In **ABBA** prompts the IO comes first (A = IO, B = S), in **BABA** prompts second.
# 4 openers × 4 verbs of going × 6 places × 6 verbs of giving × 6 objects make 3456
# templates; about a fifth of them were never seen in training, and every prompt in this
# notebook comes from those. The **corrupted** prompt of a clean one replaces S2 by a
# third name C ("When Mary and John went to the store , Sam gave a drink to"): nothing
# in it says which of Mary and John should come next, so its logit difference is near 0.
#
# **The model.**
#
# * **lite** (default): a 3-layer GPT-2 (d_model 64, 4 heads per layer, d_mlp 128, a
#   word-level vocabulary of 65 tokens, 32 names) that the course trained on IOI prompts of
#   the training templates (`assets/train_lite.py`, about 3 minutes on 2 CPU cores; you do
#   not need to rerun it), shipped in `assets/lite/` (under 1 MB).
# * **full**: `gpt2-small` (12 layers × 12 heads), loaded by the same code
#   (`ioi_helpers.load_model`) from the asset cache
#   (`autograder assets fetch --profile full --assignment 1.4.1`, then start Jupyter with
#   `AUTOGRADER_PROFILE=full`). Its forward passes need about 1.5 GB of memory; on a GPU
#   with 4 GB the whole notebook runs in about a minute (on a CPU, the per-head patching
#   loops take several minutes). GPT-2 small does IOI with its own, much larger circuit.
#
# **Measured evidence for the lite model** (`assets/lite/training_info.json`, measured on
# 256 held-out prompts; the course's tests re-measure it from the shipped checkpoint):
#
# | measure (lite model) | value |
# | --- | --- |
# | logit difference IO − S (mean) | clean 13.04, corrupted (ABC) 0.36; on training templates 13.28 |
# | answers correct (logit difference above zero) | held-out templates 100.0%, training templates 100.0% |
# | one head's output patched from clean into corrupted (fraction restored) | 2.3: 0.69; 2.1: 0.09; 2.2: 0.08; each layer-0 head between 0.11 and 0.18; layer 1: 0.00 |
# | direct effect on the logit difference | 2.3: +10.39; 2.1: +1.74; 2.2: +1.59; every other head at most 0.36 in size |
# | attention from END | 2.1, 2.2, 2.3 to S2: 0.94, 0.92, 1.00; layer-0 heads to IO and to S1: 0.22 to 0.24 each |
# | attention from S2 back to S1 | at most 0.10 for every head: no duplicate-token head |
# | mean ablation of all heads but the circuit 0.0, 0.1, 0.2, 2.3 (the four largest patching effects) | keeps 75%; random sets of 4 heads: mean 25%, best 85%; no head kept: 1% |
#
# So the lite model does IOI, on templates it never saw, but **not the way GPT-2 small
# does**: it needs no duplicate-token heads, because in our prompts the repeated subject
# always stands at position 10. Its circuit is simpler, and you will find it yourself:
# layer-0 heads at END copy *both* first names (they attend to them alike), and three
# layer-2 heads at END attend to S2 and write **minus** the subject's name
# (*subject suppression*), which leaves the IO on top. Layer 1 does nothing measurable.
# Ablating everything but the four heads with the largest patching effects keeps 75%
# of the logit difference; the best of 20 random sets keeps more (85%) because it happens
# to contain 2.3 with the other suppression heads 2.1 and 2.2: the small heads matter too.
# (The numbers are on 256 held-out prompts; yours, on 64, will differ slightly.)
#
# **How long.** With the lite profile every cell runs in under a few seconds on a laptop
# CPU; the whole notebook takes about a minute of compute.
#
# **Checking your work.** After each exercise, `check("name")` runs public tests and prints
# ✓ or what is wrong. Grading runs more thorough hidden tests on the same model.

# %% autograder={"role": "setup"}
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer

import ioi_helpers as ih
from ioi_helpers import PROFILE, head_names, load_model, make_dataset
from public_tests import check

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

model = load_model(PROFILE, device=str(device))  # gradients are off: we never train the model here

# %% [markdown]
# ## 0. The prompts and the model's answers
#
# `make_dataset(model, n, seed)` gives `n` held-out prompts (half ABBA, half BABA) as
# model inputs: `tokens` and `corrupt_tokens` `(n, 15)`, the answer tokens `io_tok` and
# `s_tok` `(n,)`, the positions `io_pos` and `s1_pos` `(n,)` (2 or 4), and the fixed
# positions `s2_pos = 10` and `end_pos = 14`.

# %%
import matplotlib.pyplot as plt

data = make_dataset(model, 64, seed=0)
for p in data["prompts"][:4]:
    print(f"{p['order']}  {p['text']!r:75s} -> {p['io']!r}   corrupted: ...{p['corrupt'].split(',')[1]!r}")
print(model.to_str_tokens(data["tokens"][0]))
with torch.no_grad():
    clean_logits, clean_cache = model.run_with_cache(data["tokens"])
    corrupt_logits, corrupt_cache = model.run_with_cache(data["corrupt_tokens"])

# %% [markdown]
# ### Exercise: the logit difference
#
# The model's preference for the right name is the **logit difference**
# `logit[IO] − logit[S]` at the last position (a difference of logits is a difference of
# log-probabilities: the normalisation cancels). It is a better measure than the
# probability of IO: it is linear in the final residual stream, so it splits exactly into
# contributions of heads (section 2).
#
# Write `logits_to_ave_logit_diff(logits, io_tok, s_tok, per_prompt=False)`: for each
# prompt `i`, `logits[i, -1, io_tok[i]] - logits[i, -1, s_tok[i]]` (every prompt has the
# same length, so the last position is END); the mean over prompts, or the `(batch,)`
# vector with `per_prompt=True`.

# %% id="logits_to_ave_logit_diff" autograder={"exercises": ["logits_to_ave_logit_diff"]}
def logits_to_ave_logit_diff(
    logits: Float[Tensor, "batch seq d_vocab"], io_tok: Int[Tensor, "batch"], s_tok: Int[Tensor, "batch"],
    per_prompt: bool = False,
) -> Float[Tensor, "*batch"]:
    """logit(IO) - logit(S) at the last position: the mean over prompts, or per prompt."""
    ### BEGIN SOLUTION
    final = logits[:, -1]
    rows = torch.arange(final.shape[0], device=final.device)
    diff = final[rows, io_tok] - final[rows, s_tok]
    return diff if per_prompt else diff.mean()
    ### END SOLUTION


# %%
check("logits_to_ave_logit_diff")

# %%
clean_ld = logits_to_ave_logit_diff(clean_logits, data["io_tok"], data["s_tok"])
corrupt_ld = logits_to_ave_logit_diff(corrupt_logits, data["io_tok"], data["s_tok"])
per_prompt = logits_to_ave_logit_diff(clean_logits, data["io_tok"], data["s_tok"], per_prompt=True)
print(f"clean logit diff {clean_ld:.2f} (positive on {(per_prompt > 0).float().mean():.0%} of prompts), "
      f"corrupted {corrupt_ld:.2f}")

# %% [markdown]
# ### Exercise: a normalised metric for patching
#
# When we patch (section 4), we run the *corrupted* prompts and put back some clean
# activations. How much of the behaviour came back? Normalise the patched run's logit
# difference so that **0 means "as corrupted"** and **1 means "as clean"**:
#
# `ioi_metric(ld, clean_ld, corrupt_ld) = (ld − corrupt_ld) / (clean_ld − corrupt_ld)`.
#
# It works on tensors of any shape (element by element).

# %% id="ioi_metric" autograder={"exercises": ["ioi_metric"]}
def ioi_metric(logit_diff: Tensor, clean_ld: float | Tensor, corrupt_ld: float | Tensor) -> Tensor:
    """0 when logit_diff equals the corrupted run's, 1 when it equals the clean run's."""
    ### BEGIN SOLUTION
    return (logit_diff - corrupt_ld) / (clean_ld - corrupt_ld)
    ### END SOLUTION


# %%
check("ioi_metric")

# %% [markdown]
# ## 1. Which heads write the answer? Direct logit attribution
#
# The final residual stream at END is a sum: embeddings, plus each head's output, plus
# each MLP's output. The unembedding is linear, and the final LayerNorm is linear too once
# its scale (one number per prompt and position, cached as `ln_final.hook_scale`) is fixed.
# So the logit difference splits into one term per component. Head `(l, h)` writes
# `z[l][:, END, h] @ W_O[l, h]` (`z` is `blocks.{l}.attn.hook_z`, `(batch, pos, head, d_head)`);
# divide by the final LayerNorm scale at END, and take the dot product with the
# **logit-difference direction** `W_U[:, io_tok] − W_U[:, s_tok]` of each prompt.
#
# (The model is loaded with its LayerNorm weights folded into the next layer and its
# writing weights centred, so the LayerNorm is just "subtract the mean, divide by the scale":
# the mean is already zero for every head's output.)
#
# ### Exercise: `head_logit_attribution`
#
# Return `(n_layers, n_heads)`: each head's direct contribution to the logit difference at
# the last position, averaged over the prompts.

# %% id="head_logit_attribution" autograder={"exercises": ["head_logit_attribution"]}
def head_logit_attribution(
    model: HookedTransformer, cache: ActivationCache, io_tok: Int[Tensor, "batch"], s_tok: Int[Tensor, "batch"]
) -> Float[Tensor, "n_layers n_heads"]:
    """Each head's direct contribution to logit(IO) - logit(S) at the last position, mean over prompts."""
    ### BEGIN SOLUTION
    z = torch.stack([cache["z", layer][:, -1] for layer in range(model.cfg.n_layers)])  # (layer, batch, head, d_head)
    out = torch.einsum("lbhd,lhdm->lbhm", z, model.W_O)
    out = out / cache["ln_final.hook_scale"][:, -1][None, :, None, :]
    direction = model.W_U[:, io_tok] - model.W_U[:, s_tok]  # (d_model, batch)
    return torch.einsum("lbhm,mb->lbh", out, direction).mean(1)
    ### END SOLUTION


# %%
check("head_logit_attribution")

# %%
def heatmap(values, title, xlabel="head", ylabel="layer", xticks=None, cmap="RdBu", center=True):
    values = values.detach().cpu()
    lim = values.abs().max().item() or 1.0
    plt.figure(figsize=(max(4, values.shape[1] * 0.5), max(2.5, values.shape[0] * 0.6)))
    plt.imshow(values, cmap=cmap, vmin=-lim if center else None, vmax=lim if center else None, aspect="auto")
    plt.colorbar()
    plt.title(title)
    plt.xlabel(xlabel)
    plt.ylabel(ylabel)
    if xticks is not None:
        plt.xticks(range(len(xticks)), xticks, rotation=90)
    plt.show()


dla = head_logit_attribution(model, clean_cache, data["io_tok"], data["s_tok"])
heatmap(dla, "direct contribution of each head to logit(IO) - logit(S)")
print("largest direct contributions:", sorted(head_names(model), key=lambda lh: -dla[lh].item())[:3])

# %% [markdown]
# The heads with a large positive direct effect write the answer. In GPT-2 small the
# largest ones are **name movers**: they attend from END to the IO and copy it. A head can
# also raise logit(IO) − logit(S) by *lowering* logit(S): attending to the subject and
# writing minus its name. Which is it here? Look at where they attend.
#
# ### Exercise: `attention_from_to`
#
# Return `(n_layers, n_heads)`: for every head, the attention probability from position
# `query_pos[i]` to position `key_pos[i]` of prompt `i` (`blocks.{l}.attn.hook_pattern` is
# `(batch, head, query, key)`), averaged over the prompts.

# %% id="attention_from_to" autograder={"exercises": ["attention_from_to"]}
def attention_from_to(
    cache: ActivationCache, n_layers: int, query_pos: Int[Tensor, "batch"], key_pos: Int[Tensor, "batch"]
) -> Float[Tensor, "n_layers n_heads"]:
    """Mean over prompts of the attention from query_pos[i] to key_pos[i], for every head."""
    ### BEGIN SOLUTION
    rows = torch.arange(query_pos.shape[0], device=query_pos.device)
    return torch.stack([cache["pattern", layer][rows, :, query_pos, key_pos].mean(0) for layer in range(n_layers)])
    ### END SOLUTION


# %%
check("attention_from_to")

# %%
n = len(data["io_tok"])
end = torch.full((n,), data["end_pos"], device=data["tokens"].device)
s2 = torch.full((n,), data["s2_pos"], device=data["tokens"].device)
to_io = attention_from_to(clean_cache, model.cfg.n_layers, end, data["io_pos"])
to_s1 = attention_from_to(clean_cache, model.cfg.n_layers, end, data["s1_pos"])
to_s2 = attention_from_to(clean_cache, model.cfg.n_layers, end, s2)
heatmap(to_io - to_s1, "attention END -> IO minus END -> S1")
name_movers = [lh for lh in sorted(head_names(model), key=lambda lh: -dla[lh].item())[:2]]
for l, h in name_movers:
    print(f"head {l}.{h}: END attends to IO {to_io[l, h]:.2f}, to S1 {to_s1[l, h]:.2f}, to S2 {to_s2[l, h]:.2f}")
l, h = name_movers[0]
plt.imshow(clean_cache["pattern", l][0, h].cpu(), cmap="Blues")
plt.xticks(range(15), model.to_str_tokens(data["tokens"][0]), rotation=90)
plt.yticks(range(15), model.to_str_tokens(data["tokens"][0]))
plt.title(f"attention pattern of head {l}.{h} (prompt 0)")
plt.show()

# %% [markdown]
# ## 2. Duplicate-token heads
#
# To avoid the subject, a model has to know which name is repeated. A **duplicate-token
# head** attends from a token to earlier occurrences of the *same* token: at S2 it looks
# back at S1. GPT-2 small has several (in its early layers). The lite model turns out to
# have none (every score is small): in our prompts S2 is always at position 10, so a head
# can find the subject by position alone. That is a real difference between a model
# trained on one template family and one trained on the internet. Measure it on any batch
# of tokens:
#
# ### Exercise: `duplicate_token_scores`
#
# Run `model` on `tokens` and return `(n_layers, n_heads)`: for every head, the attention a
# query position puts on **earlier** positions holding the same token (summed over those
# positions), averaged over all `(prompt, query position)` pairs whose token did occur
# earlier in the prompt. Positions whose token is new do not count; a position never counts
# as a duplicate of itself.

# %% id="duplicate_token_scores" autograder={"exercises": ["duplicate_token_scores"]}
def duplicate_token_scores(model: HookedTransformer, tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "n_layers n_heads"]:
    """Mean attention on earlier occurrences of the query's own token, over the queries that have one."""
    ### BEGIN SOLUTION
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    seq = tokens.shape[1]
    earlier = torch.ones(seq, seq, dtype=torch.bool, device=tokens.device).tril(-1)
    mask = (tokens[:, :, None] == tokens[:, None, :]) & earlier  # (batch, query, key)
    has = mask.any(-1)  # (batch, query)
    scores = []
    for layer in range(model.cfg.n_layers):
        on_dup = (cache["pattern", layer] * mask[:, None]).sum(-1)  # (batch, head, query)
        scores.append((on_dup * has[:, None]).sum((0, 2)) / has.sum())
    return torch.stack(scores)
    ### END SOLUTION


# %%
check("duplicate_token_scores")

# %%
dup = duplicate_token_scores(model, data["tokens"])
heatmap(dup, "duplicate-token score (IOI prompts: S2 -> S1 is the only repeat)", cmap="Blues", center=False)
s2_to_s1 = attention_from_to(clean_cache, model.cfg.n_layers, s2, data["s1_pos"])
print("strongest duplicate-token heads:", [(lh, round(dup[lh].item(), 2)) for lh in sorted(head_names(model), key=lambda lh: -dup[lh].item())[:3]])

# %% [markdown]
# ## 3. Activation patching
#
# Attribution says what writes the answer *directly*. Patching says what *matters*, by any
# route: run the corrupted prompts, replace one activation by its value on the clean
# prompts, and see how much of the clean logit difference comes back. (This direction,
# clean into corrupted, is sometimes called *denoising*: it finds what is sufficient to
# restore the behaviour.)
#
# ### Exercise: `patch_residual_stream`
#
# For every layer `l` and position `p`, run `corrupt_tokens` with
# `blocks.{l}.hook_resid_pre[:, p]` replaced by the clean cache's value, and record the mean
# logit difference (`logits_to_ave_logit_diff`). Return `(n_layers, seq)`.

# %% id="patch_residual_stream" autograder={"exercises": ["patch_residual_stream"]}
def patch_residual_stream(
    model: HookedTransformer, corrupt_tokens: Int[Tensor, "batch seq"], clean_cache: ActivationCache,
    io_tok: Int[Tensor, "batch"], s_tok: Int[Tensor, "batch"],
) -> Float[Tensor, "n_layers seq"]:
    """Mean logit difference of the corrupted run with the clean residual stream (resid_pre) put back at one
    layer and position."""
    ### BEGIN SOLUTION
    seq = corrupt_tokens.shape[1]
    out = torch.zeros(model.cfg.n_layers, seq, device=corrupt_tokens.device)
    for layer in range(model.cfg.n_layers):
        for pos in range(seq):
            def put_back(resid, hook, pos=pos):
                resid[:, pos] = clean_cache[hook.name][:, pos]
                return resid

            with torch.no_grad():
                logits = model.run_with_hooks(corrupt_tokens, fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", put_back)])
            out[layer, pos] = logits_to_ave_logit_diff(logits, io_tok, s_tok)
    return out
    ### END SOLUTION


# %%
check("patch_residual_stream")

# %%
resid = ioi_metric(patch_residual_stream(model, data["corrupt_tokens"], clean_cache, data["io_tok"], data["s_tok"]),
                   clean_ld, corrupt_ld)
labels = [f"{i}:{t}" for i, t in enumerate(model.to_str_tokens(data["tokens"][0]))]
heatmap(resid, "patching resid_pre (1 = clean)", xlabel="position", xticks=labels)

# %% [markdown]
# Read the picture: before layer 0 only S2's position matters (it is the only token that
# differs). Where the restored information moves from S2 to END tells you in which layer
# it is carried across positions: by a head at END that attends to S2.
#
# ### Exercise: `patch_head_outputs`
#
# The same, per head: for every head `(l, h)`, run `corrupt_tokens` with that head's
# `blocks.{l}.attn.hook_z[:, :, h]` replaced by its clean value at every position, and
# record the mean logit difference. Return `(n_layers, n_heads)`.

# %% id="patch_head_outputs" autograder={"exercises": ["patch_head_outputs"]}
def patch_head_outputs(
    model: HookedTransformer, corrupt_tokens: Int[Tensor, "batch seq"], clean_cache: ActivationCache,
    io_tok: Int[Tensor, "batch"], s_tok: Int[Tensor, "batch"],
) -> Float[Tensor, "n_layers n_heads"]:
    """Mean logit difference of the corrupted run with one head's clean output (hook_z, all positions) put back."""
    ### BEGIN SOLUTION
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=corrupt_tokens.device)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            def put_back(z, hook, head=head):
                z[:, :, head] = clean_cache[hook.name][:, :, head]
                return z

            with torch.no_grad():
                logits = model.run_with_hooks(corrupt_tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", put_back)])
            out[layer, head] = logits_to_ave_logit_diff(logits, io_tok, s_tok)
    return out
    ### END SOLUTION


# %%
check("patch_head_outputs")

# %%
head_patch = ioi_metric(patch_head_outputs(model, data["corrupt_tokens"], clean_cache, data["io_tok"], data["s_tok"]),
                        clean_ld, corrupt_ld)
heatmap(head_patch, "patching each head's output (1 = clean)")
ranked = sorted(head_names(model), key=lambda lh: -abs(head_patch[lh].item()))
print("heads that restore the most:", [(lh, round(head_patch[lh].item(), 2)) for lh in ranked[:5]])

# %% [markdown]
# ## 4. Path patching: who talks to the name movers' queries?
#
# A name mover copies the IO, so its *values* are just names; what makes it choose IO over
# S is its **query**: something at END tells it which name to avoid. Which heads write that
# something? Patching a head's output changes everything downstream of it; **path
# patching** changes only one path, here "sender head → receivers' queries":
#
# 1. Run the *clean* prompts with every head's output (`hook_z`) frozen at its clean value,
#    except the sender's, which gets its *corrupted* value. MLPs recompute as usual. Record
#    the receivers' queries (`blocks.{l}.attn.hook_q`, `(batch, pos, head, d_head)`).
# 2. Run the clean prompts again, with only the receivers' queries replaced by the ones
#    recorded in step 1 (every position), and measure the mean logit difference.
#
# Everything else the sender does is left out, so what changes is only what the sender
# tells the receivers' queries, directly or through MLPs. (A sender in the receivers' layer
# or later cannot reach their queries: its entry equals the clean logit difference.)
#
# ### Exercise: `path_patch_to_queries`
#
# Return `(n_layers, n_heads)`: for every sender head, the mean logit difference of step 2.
# `receivers` is a list of `(layer, head)`.

# %% id="path_patch_to_queries" autograder={"exercises": ["path_patch_to_queries"]}
def path_patch_to_queries(
    model: HookedTransformer, clean_tokens: Int[Tensor, "batch seq"], clean_cache: ActivationCache,
    corrupt_cache: ActivationCache, receivers: list[tuple[int, int]],
    io_tok: Int[Tensor, "batch"], s_tok: Int[Tensor, "batch"],
) -> Float[Tensor, "n_layers n_heads"]:
    """Mean logit difference of the clean run when only the receivers' queries see the sender's corrupted output."""
    ### BEGIN SOLUTION
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    q_layers = sorted({layer for layer, _ in receivers})
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=clean_tokens.device)
    for s_layer in range(model.cfg.n_layers):
        for s_head in range(model.cfg.n_heads):
            def freeze(z, hook, s_layer=s_layer, s_head=s_head):
                z[:] = clean_cache[hook.name]
                if hook.layer() == s_layer:
                    z[:, :, s_head] = corrupt_cache[hook.name][:, :, s_head]
                return z

            queries = {}

            def record(q, hook):
                queries[hook.layer()] = q.clone()

            with torch.no_grad():
                model.run_with_hooks(clean_tokens, fwd_hooks=[(name, freeze) for name in z_names]
                                     + [(f"blocks.{layer}.attn.hook_q", record) for layer in q_layers])

            def put(q, hook):
                for layer, head in receivers:
                    if layer == hook.layer():
                        q[:, :, head] = queries[layer][:, :, head]
                return q

            with torch.no_grad():
                logits = model.run_with_hooks(clean_tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_q", put) for layer in q_layers])
            out[s_layer, s_head] = logits_to_ave_logit_diff(logits, io_tok, s_tok)
    return out
    ### END SOLUTION


# %%
check("path_patch_to_queries")

# %%
receivers = [lh for lh in name_movers if lh[0] > 0]
path = ioi_metric(path_patch_to_queries(model, data["tokens"], clean_cache, corrupt_cache, receivers,
                                        data["io_tok"], data["s_tok"]), clean_ld, corrupt_ld)
heatmap(path, f"path patching: sender -> queries of {receivers} (1 = clean)")
senders = sorted(head_names(model), key=lambda lh: path[lh].item())[:3]
print("senders whose corrupted output hurts the receivers' queries most:", [(lh, round(path[lh].item(), 2)) for lh in senders])
for lh in senders:
    print(f"  {lh}: attention END->S2 {to_s2[lh]:.2f}, S2->S1 {s2_to_s1[lh]:.2f}")

# %% [markdown]
# ## 5. Is that the circuit? Mean ablation and faithfulness
#
# A circuit is a claim: "these heads are what does the task". Test it by removing
# everything else. Removing a head by setting its output to zero pushes the model off its
# usual inputs; replacing it by its **mean output** over a reference batch keeps the
# typical content and removes only the information specific to each prompt. We use the
# corrupted (ABC) prompts as the reference batch: the mean has everything about the
# sentence shape, nothing about which name is the IO. The mean is taken per position
# (every prompt has the same shape).
#
# ### Exercise: `head_means`
#
# Run `model` on `tokens` and return every head's mean output over the batch,
# `(n_layers, seq, n_heads, d_head)`: entry `[l]` is the mean over prompts of
# `blocks.{l}.attn.hook_z`.

# %% id="head_means" autograder={"exercises": ["head_means"]}
def head_means(model: HookedTransformer, tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "n_layers seq n_heads d_head"]:
    """The mean over prompts of every head's hook_z, per position."""
    ### BEGIN SOLUTION
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_z"))
    return torch.stack([cache["z", layer].mean(0) for layer in range(model.cfg.n_layers)])
    ### END SOLUTION


# %%
check("head_means")

# %% [markdown]
# ### Exercise: `mean_ablate_heads`
#
# Run `tokens` with the output (`hook_z`) of **every head not in `keep`** replaced by
# `means` (from `head_means`; every position, every prompt), and return the mean logit
# difference. `keep` is a list of `(layer, head)`. With `keep` = every head this is the
# clean run; with `keep = []` every head is ablated.

# %% id="mean_ablate_heads" autograder={"exercises": ["mean_ablate_heads"]}
def mean_ablate_heads(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], keep: list[tuple[int, int]],
    means: Float[Tensor, "n_layers seq n_heads d_head"], io_tok: Int[Tensor, "batch"], s_tok: Int[Tensor, "batch"],
) -> Float[Tensor, ""]:
    """Mean logit difference with every head outside `keep` replaced by its mean output."""
    ### BEGIN SOLUTION
    kept = {(int(layer), int(head)) for layer, head in keep}

    def ablate(z, hook):
        for head in range(model.cfg.n_heads):
            if (hook.layer(), head) not in kept:
                z[:, :, head] = means[hook.layer(), :, head]
        return z

    hooks = [(f"blocks.{layer}.attn.hook_z", ablate) for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return logits_to_ave_logit_diff(logits, io_tok, s_tok)
    ### END SOLUTION


# %%
check("mean_ablate_heads")

# %% [markdown]
# Now the faithfulness of a candidate circuit: the heads that patching (section 3) and
# path patching (section 4) singled out. Compare with random sets of heads of the same size.

# %%
means = head_means(model, data["corrupt_tokens"])
circuit = sorted(ranked[:4])  # the four heads whose patching restores most
kept = mean_ablate_heads(model, data["tokens"], circuit, means, data["io_tok"], data["s_tok"]) / clean_ld
nothing = mean_ablate_heads(model, data["tokens"], [], means, data["io_tok"], data["s_tok"]) / clean_ld
gen = torch.Generator().manual_seed(0)
heads = head_names(model)
random_kept = torch.tensor([
    (mean_ablate_heads(model, data["tokens"], [heads[i] for i in torch.randperm(len(heads), generator=gen)[:len(circuit)].tolist()],
                       means, data["io_tok"], data["s_tok"]) / clean_ld).item()
    for _ in range(20)])
print(f"circuit {circuit}: keeps {kept:.0%} of the logit difference; nothing kept: {nothing:.0%}; "
      f"random sets of {len(circuit)} heads: mean {random_kept.mean():.0%}, best {random_kept.max():.0%}")
plt.hist(random_kept.numpy(), bins=10, label="random head sets")
plt.axvline(kept.item(), color="red", label="circuit")
plt.xlabel("fraction of the logit difference kept")
plt.legend()
plt.show()

# %% [markdown]
# ## 6. What we found, and what we did not
#
# For the lite model the pieces fit together:
#
# * **the behaviour**: a large logit difference on held-out templates, about zero on the
#   corrupted prompts;
# * **the heads that write it** (attribution): layer-2 heads at END whose output lowers
#   logit(S); they attend to S2 (attention patterns);
# * **where the clean information enters** (residual patching): only S2 before layer 0;
#   it reaches END in the last layer, through those heads;
# * **what else matters** (head patching): the layer-0 heads, through their output *at S2*
#   (what the layer-2 heads read there as values), and the layer-0 heads at END, which copy
#   both names into the answer;
# * **faithfulness**: the found heads alone keep most of the logit difference; random heads
#   do not, unless they happen to include the suppression heads.
#
# Path patching to the queries shows little here: the layer-2 heads find S2 by position,
# so what earlier heads write into their *queries* hardly matters; their *values* (the
# subject's name at S2) are what counts. In GPT-2 small the same experiment is how the
# "S-inhibition" heads were found: they tell the name movers' queries which name to avoid.
# Try it with `AUTOGRADER_PROFILE=full` (receivers: the heads with the largest direct effect
# in layers 9 and 10).
#
# Questions to try on your own: patch the layer-2 heads' *values* only (`hook_v`), or only at
# S2; zero-ablate instead of mean-ablate and compare; make a template with the subject at
# another position and see whether the lite model still works (it should not: why?).
