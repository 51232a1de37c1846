# %% [markdown]
# # 1.4.2 SAE circuits and transcoders
#
# Section 1.4.1 found a circuit made of attention heads. Heads and neurons are the
# model's own units, but they are polysemantic: one neuron takes part in many unrelated
# computations. Section 1.3.3 showed that a sparse autoencoder (SAE) rewrites an activation
# as a few readable **features**. Here we build circuits out of features instead of
# neurons and heads:
#
# 1. **Transcoders.** An SAE reconstructs an activation from itself. A **transcoder**
#    replaces a whole MLP layer: it *encodes the MLP's input* (the normalised residual
#    stream the MLP reads) into sparse features and *decodes them to the MLP's output*.
#    You write its forward pass, measure how good a replacement it is (variance of the MLP
#    output explained, L0) and splice it into the model in place of the MLP ("loss
#    recovered", against zero- and mean-ablating the MLP).
# 2. **Virtual weights.** A transcoder feature writes a fixed vector (its decoder row) into
#    the residual stream; a downstream SAE feature reads it with a fixed vector (its
#    encoder column). Their dot product is an input-independent **virtual weight**: the
#    direct effect of one feature on the other, the same on every prompt. You compute the
#    virtual weights and the per-token edges they give.
# 3. **Attribution.** How much does each SAE feature matter for the model's answer,
#    logit(" true") − logit(" false")? Activation × gradient (**attribution patching**)
#    estimates it for every feature at once, in one backward pass; ablating a feature
#    (**patching**) measures it, one forward pass per feature. You do both and compare.
# 4. **Attribution graphs.** Nodes are active features, edges are attributions; you prune
#    the graph to the few nodes that explain most of the answer, and read it.
#
# Why transcoders help: an SAE feature upstream reaches a downstream feature only through
# the MLP's nonlinearity, so its effect depends on the input and needs gradients; a
# transcoder feature's output *is* a linear write, so the direct path is a plain weight.
#
# **The models.**
#
# * **lite** (default): the 4-layer GPT-2 of section 1.3.1 (d_model 64, 4 heads, d_mlp 256,
#   word-level vocabulary of 80 tokens), trained by the course to answer " true" or
#   " false" after statements such as "Paris is not in France. This statement is";
#   section 1.3.3's SAE with 512 features on `blocks.2.hook_resid_pre`; and a transcoder
#   with 512 features for the MLP of **block 0** (reading `blocks.0.ln2.hook_normalized`,
#   writing `blocks.0.hook_mlp_out`), trained by this section (`assets/train_lite.py`, about
#   3 minutes on one CPU core; you do not need to rerun it). Block 0's MLP is the one this
#   model depends on: zero-ablating it destroys most answers, the later MLPs matter much
#   less. All ship in `assets/lite/` (under 2 MB) in SAELens's format (the transcoder is
#   SAELens's `Transcoder` class, architecture "transcoder").
# * **full**: `gpt2-small` and the SAE on `blocks.6.hook_resid_pre` of SAELens's release
#   `gpt2-small-res-jb`, from the asset cache (`autograder assets fetch --profile full
#   --assignment 1.4.2`, then `AUTOGRADER_PROFILE=full`); about 2 GB of memory, CPU or any
#   GPU. **SAELens ships no transcoder for gpt2-small** (its transcoders are for Gemma
#   models), so on full the transcoder exercises (sections 1 and 2) still run on the lite
#   model, transcoder and SAE (`lite_model`, `transcoder`, `lite_sae` below); the
#   attribution exercises (sections 3 and 4) run on gpt2-small and its SAE. GPT-2 small was
#   never trained on our true/false prompts, so its logit difference is small and noisy;
#   the mechanics are the same.
#
# **Measured evidence** (lite; `assets/lite/training_info.json`, re-measured by the course's
# tests from the shipped files), on the 524 balanced statements of all four families (5,168
# real token positions):
#
# | measure (lite transcoder, block 0's MLP) | value |
# | --- | --- |
# | L0: features firing per token, mean (of 512) | 31.0 |
# | fraction of the MLP output's variance explained | 0.978 |
# | answer loss: clean / transcoder / MLP zero-ablated / MLP mean-ablated | 0.022 / 0.099 / 2.951 / 2.208 |
# | loss recovered against zero-ablation / against mean-ablation | 0.974 / 0.965 |
# | answers correct: clean / transcoder / zero-ablated / mean-ablated | 99.4% / 97.7% / 61.6% / 69.1% |
# | dead features | 41 of 512 |
#
# | measure (SAE features on `blocks.2.hook_resid_pre`, per prompt) | value |
# | --- | --- |
# | mean \|logit difference\| clean | 9.41 |
# | mean \|change\| when the 5 nodes with the largest attribution are ablated | 4.67 |
# | mean \|change\| when 5 random active nodes are ablated | 0.29 |
# | prompts where the top 5 change it more than the random 5 | 94% |
#
# So the transcoder is a faithful, sparse stand-in for the MLP, and attribution finds the
# features that matter: removing the five most-attributed features changes the answer many
# times more than removing five random active ones.
#
# **How long.** With the lite profile every cell runs in a second or two on a laptop CPU.
#
# **Checking your work.** After each exercise, `check("name")` runs public tests. Grading
# runs more thorough hidden tests on the same models.

# %% autograder={"role": "setup"}
import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

import circuit_helpers as ch
from circuit_helpers import PROFILE, answer_loss, load_lite_circuit, load_model, load_sae, logit_diff, make_dataset
from public_tests import check

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

model = load_model(PROFILE, device=str(device))  # the attribution exercises' model (gradients off)
sae = load_sae(PROFILE, device=str(device))  # its SAE (SAELens), gradients off
# the transcoder exercises: the lite model, its transcoder for block 0's MLP and its SAE, in every profile
lite_model, transcoder, lite_sae = load_lite_circuit(device=str(device))
TRUE_ID, FALSE_ID = ch.label_token_ids(model)

# %% [markdown]
# ## 0. The data and the transcoder
#
# `make_dataset(model)` gives the balanced statements of section 1.3.1 in one batch padded
# on the right: `tokens (n, seq)`, `mask (n, seq)` (True at real tokens, BOS included),
# `last_pos (n,)` (where the model answers), `answers (n,)` (the right answer's token id),
# `labels`, `statements`, `family`. `logit_diff(model, logits, last_pos)` gives
# logit(" true") − logit(" false") at each prompt's last position.
#
# A SAELens `Transcoder` has the same four parameters as an SAE, with different roles:
#
# | parameter | shape | role |
# | --- | --- | --- |
# | `W_enc` | `(d_in, d_sae)` | reads the MLP's **input** |
# | `b_enc` | `(d_sae,)` | encoder bias |
# | `W_dec` | `(d_sae, d_out)` | one row per feature: what it **writes** to the MLP's output |
# | `b_dec` | `(d_out,)` | the output bias; **not** subtracted from the input (it lives in the output space) |
#
# `transcoder.cfg.metadata.hook_name` is where it reads, `hook_name_out` what it stands in
# for (`ch.transcoder_hooks(transcoder)` gives both). The MLP reads the residual stream
# after LayerNorm: with the LayerNorm's weights folded into the MLP (as TransformerLens
# loads GPT-2), that is `blocks.0.ln2.hook_normalized`, a centred vector of norm
# $\sqrt{d_{model}}$, not `hook_resid_mid`.
#
# Real transcoders (Gemma Scope's) use **JumpReLU** features: a feature fires only above a
# learned threshold, `f = (pre > θ) · pre`. Ours is a plain ReLU one; everything below
# holds for both.

# %%
import matplotlib.pyplot as plt

data = make_dataset(lite_model)
tokens, mask = data["tokens"], data["mask"]
HOOK_IN, HOOK_OUT = ch.transcoder_hooks(transcoder)
print(f"{len(data['statements'])} statements, tokens {tuple(tokens.shape)}")
print(f"transcoder: {transcoder.cfg.architecture()}, d_in {transcoder.cfg.d_in}, d_sae {transcoder.cfg.d_sae}, "
      f"d_out {transcoder.cfg.d_out}, reads {HOOK_IN}, replaces {HOOK_OUT}")
print(f"SAE: d_sae {lite_sae.cfg.d_sae} on {lite_sae.cfg.metadata.hook_name}")

# %% [markdown]
# ## 1. The transcoder
#
# $$ f(x) = \mathrm{ReLU}(x\, W_{enc} + b_{enc}), \qquad \widehat{\mathrm{mlp\_out}} = f\, W_{dec} + b_{dec} $$
#
# with `x` the MLP's input. Compare with an SAE: there is no `b_dec` to subtract from the
# input (here `d_in == d_out`, so subtracting it would run without an error and be wrong).
#
# ### Exercise: `transcoder_forward`
#
# Return `(feature_acts, mlp_out_hat)` for inputs of any leading shape, from the four
# parameters (not `transcoder.encode`).

# %% id="transcoder_forward" autograder={"exercises": ["transcoder_forward"]}
def transcoder_forward(transcoder: SAE, x: Float[Tensor, "... d_in"]) -> tuple[Tensor, Tensor]:
    """(ReLU(x @ W_enc + b_enc), feature_acts @ W_dec + b_dec)."""
    ### BEGIN SOLUTION
    feature_acts = torch.relu(x @ transcoder.W_enc + transcoder.b_enc)
    mlp_out_hat = feature_acts @ transcoder.W_dec + transcoder.b_dec
    return feature_acts, mlp_out_hat
    ### END SOLUTION


# %%
check("transcoder_forward")

# %% [markdown]
# ### Exercise: `get_transcoder_io`
#
# Run the model on `tokens` and return the MLP's input at the transcoder's input hook and
# the MLP's output at its output hook, both `(batch, seq, d_model)`, in one forward pass.

# %% id="get_transcoder_io" autograder={"exercises": ["get_transcoder_io"]}
def get_transcoder_io(model: HookedTransformer, transcoder: SAE, tokens: Int[Tensor, "batch seq"]) -> tuple[Tensor, Tensor]:
    """(the MLP's input at transcoder.cfg.metadata.hook_name, its output at hook_name_out)."""
    ### BEGIN SOLUTION
    hook_in = transcoder.cfg.metadata.hook_name
    hook_out = transcoder.cfg.metadata.hook_name_out
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[hook_in, hook_out])
    return cache[hook_in], cache[hook_out]
    ### END SOLUTION


# %%
check("get_transcoder_io")

# %% [markdown]
# ### Exercise: `replacement_stats`
#
# How well does the transcoder predict the MLP's output? For rows (one per token) of the
# true output `mlp_out`, the prediction `mlp_out_hat` and the feature activations, return
# `(mse, l0, fve)` as Python floats: the mean squared error over every element, the mean
# number of firing features per row, and the fraction of the output's variance explained,
# $1 - \sum \lVert y - \hat y\rVert^2 / \sum \lVert y - \bar y\rVert^2$ (centred: $\bar y$ is
# the mean output over the rows).

# %% id="replacement_stats" autograder={"exercises": ["replacement_stats"]}
def replacement_stats(mlp_out: Float[Tensor, "n d"], mlp_out_hat: Float[Tensor, "n d"],
                      feature_acts: Float[Tensor, "n d_sae"]) -> tuple[float, float, float]:
    """(MSE over every element, mean firing features per row, centred fraction of variance explained)."""
    ### BEGIN SOLUTION
    error = (mlp_out - mlp_out_hat).pow(2)
    l0 = (feature_acts > 0).float().sum(dim=-1).mean()
    total = (mlp_out - mlp_out.mean(dim=0)).pow(2).sum()
    return error.mean().item(), l0.item(), (1 - error.sum() / total).item()
    ### END SOLUTION


# %%
check("replacement_stats")

# %%
mlp_in, mlp_out = get_transcoder_io(lite_model, transcoder, tokens)
with torch.no_grad():
    tc_acts, mlp_hat = transcoder_forward(transcoder, mlp_in)
mse, l0, fve = replacement_stats(mlp_out[mask], mlp_hat[mask], tc_acts[mask])
print(f"MSE {mse:.4f}, L0 {l0:.1f} of {transcoder.cfg.d_sae}, variance of the MLP output explained {fve:.4f}")

# %% [markdown]
# ### Exercise: `spliced_mlp_losses`
#
# Now the test that matters: run the model with the transcoder **in place of** the MLP.
# At the output hook, replace the MLP's output with the transcoder's prediction from the
# MLP's input *in the same forward pass* (capture it with a hook at the input hook point,
# which runs first). Return the answer loss (`answer_loss(logits, last_pos, answers)`) as
# four Python floats: `(clean, transcoder, zero_ablated, mean_ablated)`, where the last two
# replace the MLP's output with zeros, and with its mean over the real tokens of this batch
# (`mask`; one vector, the same at every position). Mean-ablation is the fairer baseline:
# it keeps the MLP's constant contribution and removes only what depends on the input.

# %% id="spliced_mlp_losses" autograder={"exercises": ["spliced_mlp_losses"]}
def spliced_mlp_losses(model: HookedTransformer, transcoder: SAE, tokens: Int[Tensor, "batch seq"],
                       last_pos: Int[Tensor, "batch"], answers: Int[Tensor, "batch"],
                       mask: Tensor) -> tuple[float, float, float, float]:
    """Answer loss clean, with the transcoder replacing the MLP, with the MLP output zeroed, and mean-ablated."""
    ### BEGIN SOLUTION
    hook_in, hook_out = transcoder.cfg.metadata.hook_name, transcoder.cfg.metadata.hook_name_out
    stored = {}

    def save_input(act, hook):
        stored["x"] = act

    def replace(act, hook):
        return transcoder(stored["x"])

    with torch.no_grad():
        clean_logits, cache = model.run_with_cache(tokens, names_filter=hook_out)
        mean_out = cache[hook_out][mask].mean(dim=0)
        tc_logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_in, save_input), (hook_out, replace)])
        zero_logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_out, lambda act, hook: torch.zeros_like(act))])
        mean_logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_out, lambda act, hook: mean_out.expand_as(act))])
    return tuple(answer_loss(lg, last_pos, answers).item() for lg in (clean_logits, tc_logits, zero_logits, mean_logits))
    ### END SOLUTION


# %%
check("spliced_mlp_losses")

# %%
clean, with_tc, zero, mean_abl = spliced_mlp_losses(lite_model, transcoder, tokens, data["last_pos"], data["answers"], mask)
print(f"answer loss: clean {clean:.4f}, transcoder {with_tc:.4f}, zero-ablated {zero:.4f}, mean-ablated {mean_abl:.4f}")
print(f"loss recovered: {(zero - with_tc) / (zero - clean):.3f} (vs zero), {(mean_abl - with_tc) / (mean_abl - clean):.3f} (vs mean)")

# %% [markdown]
# ## 2. Virtual weights: features talking to features
#
# The transcoder's output at a token is `Σ_i f_i W_dec[i] + b_dec`, and it is added to the
# residual stream. The SAE at `blocks.2.hook_resid_pre` reads the residual stream with
# `pre_j = (resid − b_dec^{SAE}) · W_enc^{SAE}[:, j] + b_enc^{SAE}[j]`. So transcoder feature
# `i` adds exactly `f_i · (W_dec[i] · W_enc^{SAE}[:, j])` to SAE feature `j`'s
# pre-activation **through the direct path** (the residual stream, skipping block 1). The
# number in brackets is a **virtual weight**: fixed, the same on every prompt, read off the
# weights. With an SAE upstream instead, its feature would reach the next one only
# through the MLP's GELU, and the coupling would change from token to token.
#
# The direct path is not everything: block 1's attention and MLP also read the transcoder's
# output (and move it between positions). The virtual weights give the direct edges;
# gradients (section 3) give the total effects.
#
# ### Exercise: `virtual_weights`
#
# Return the `(d_transcoder, d_sae)` matrix of virtual weights from every transcoder
# feature to every SAE feature.

# %% id="virtual_weights" autograder={"exercises": ["virtual_weights"]}
def virtual_weights(transcoder: SAE, sae: SAE) -> Float[Tensor, "d_tc d_sae"]:
    """W_dec of the transcoder (d_tc, d_model) times W_enc of the SAE (d_model, d_sae)."""
    ### BEGIN SOLUTION
    return transcoder.W_dec @ sae.W_enc
    ### END SOLUTION


# %%
check("virtual_weights")

# %% [markdown]
# ### Exercise: `transcoder_sae_edges`
#
# For one prompt (`tokens` of shape `(1, seq)`), the direct edges at every position:
#
# `edges[p, i, j] = f_i(p) · V[i, j] · [SAE feature j active at p]`
#
# with `f_i(p)` the transcoder's feature activations on the MLP's real input at `p`, `V`
# the virtual weights, and the bracket 1 where SAE feature `j` fires at `p` on the clean
# run (its ReLU passes changes of its pre-activation there, and blocks them elsewhere).
# Shape `(seq, d_tc, d_sae)`. Use `sae.encode` and `transcoder.encode`.

# %% id="transcoder_sae_edges" autograder={"exercises": ["transcoder_sae_edges"]}
def transcoder_sae_edges(model: HookedTransformer, transcoder: SAE, sae: SAE,
                         tokens: Int[Tensor, "1 seq"]) -> Float[Tensor, "seq d_tc d_sae"]:
    """Direct edges from transcoder features to active SAE features at each position of one prompt."""
    ### BEGIN SOLUTION
    hook_in, hook_sae = transcoder.cfg.metadata.hook_name, sae.cfg.metadata.hook_name
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[hook_in, hook_sae])
        tc_acts = transcoder.encode(cache[hook_in])[0]  # (seq, d_tc)
        sae_active = (sae.encode(cache[hook_sae])[0] > 0).float()  # (seq, d_sae)
        weights = transcoder.W_dec @ sae.W_enc
        return tc_acts[:, :, None] * weights[None, :, :] * sae_active[:, None, :]
    ### END SOLUTION


# %%
check("transcoder_sae_edges")

# %% [markdown]
# How much of an SAE feature's input comes through the direct path? For one prompt, the
# SAE feature most active at the last token, its pre-activation, and the part the
# transcoder's features bring directly:

# %%
prompt = ch.to_prompt("Paris is not in France.")
one, _ = ch.tokenize_prompts(lite_model, [prompt])
edges = transcoder_sae_edges(lite_model, transcoder, lite_sae, one)
with torch.no_grad():
    _, c = lite_model.run_with_cache(one, names_filter=lite_sae.cfg.metadata.hook_name)
    resid2 = c[lite_sae.cfg.metadata.hook_name][0]
    pre = (resid2 - lite_sae.b_dec) @ lite_sae.W_enc + lite_sae.b_enc
    sae_now = lite_sae.encode(resid2)
words = lite_model.to_str_tokens(one[0])
for p in range(len(words)):
    j = int(sae_now[p].argmax())
    top_i = edges[p, :, j].abs().topk(3).indices.tolist()
    print(f"{words[p]!r:>10} SAE feature {j:3d}: pre-activation {pre[p, j]:6.2f}, direct from transcoder "
          f"{edges[p, :, j].sum():6.2f}; largest edges from transcoder features {top_i}")

# %% [markdown]
# ## 3. Attribution to features
#
# Which SAE features (at which positions) does the model's answer depend on? Splice the
# SAE in **with its error term**: the residual stream becomes
# `decode(f) + (x − decode(encode(x)))`, which is exactly `x`, so the forward pass is the
# clean one, but now the features `f` are nodes the gradient flows through. For the
# metric `m` = Σ over prompts of logit(" true") − logit(" false") at each prompt's last
# position, the **attribution** of feature `j` at position `p` is `f_j(p) · ∂m/∂f_j(p)`:
# the first-order estimate of how much `m` drops if that feature is removed. One backward
# pass gives it for every node.
#
# Pitfalls: the error term must be detached from `f` (it is a constant correction) but the
# decoder path must not; the gradient must be taken with respect to the feature
# activations, not the residual stream; the answer is at `last_pos`, not at `-1` (padding).
# The model's weights have `requires_grad=False`: make the feature activations a leaf
# that requires grad, and run under `torch.enable_grad()`.
#
# ### Exercise: `sae_attribution`
#
# Return `(attribution, grad)`, both `(batch, seq, d_sae)`.

# %% id="sae_attribution" autograder={"exercises": ["sae_attribution"]}
def sae_attribution(model: HookedTransformer, sae: SAE, tokens: Int[Tensor, "batch seq"],
                    last_pos: Int[Tensor, "batch"]) -> tuple[Tensor, Tensor]:
    """Activation x gradient of the summed logit difference for every SAE feature at every position."""
    ### BEGIN SOLUTION
    stored = {}

    def splice(x, hook):
        feature_acts = sae.encode(x).detach().requires_grad_(True)
        stored["f"] = feature_acts
        error = (x - sae.decode(sae.encode(x))).detach()
        return sae.decode(feature_acts) + error

    with torch.enable_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(sae.cfg.metadata.hook_name, splice)])
        metric = logit_diff(model, logits, last_pos).sum()
        metric.backward()
    f = stored["f"]
    return (f * f.grad).detach(), f.grad.detach()
    ### END SOLUTION


# %%
check("sae_attribution")

# %% [markdown]
# ### Exercise: `ablate_sae_features`
#
# The check on attribution: actually remove the features. With the SAE spliced in with its
# error term, set feature `nodes[k, 1]` to zero at position `nodes[k, 0]` (for each row `k`
# of `nodes`, an `(n, 2)` long tensor; the same nodes in every prompt of the batch) and
# return the logit difference `(batch,)`. Everything else, including the error term, stays
# as in the clean run.

# %% id="ablate_sae_features" autograder={"exercises": ["ablate_sae_features"]}
def ablate_sae_features(model: HookedTransformer, sae: SAE, tokens: Int[Tensor, "batch seq"],
                        last_pos: Int[Tensor, "batch"], nodes: Int[Tensor, "n 2"]) -> Float[Tensor, "batch"]:
    """Logit difference with the SAE features nodes[:, 1] zeroed at positions nodes[:, 0] (error term kept)."""
    ### BEGIN SOLUTION
    def ablate(x, hook):
        feature_acts = sae.encode(x)
        error = x - sae.decode(feature_acts)
        ablated = feature_acts.clone()
        ablated[:, nodes[:, 0], nodes[:, 1]] = 0.0
        return sae.decode(ablated) + error

    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(sae.cfg.metadata.hook_name, ablate)])
    return logit_diff(model, logits, last_pos)
    ### END SOLUTION


# %%
check("ablate_sae_features")

# %% [markdown]
# Attribution against ablation for the 12 nodes with the largest |attribution| in one
# prompt: points near the diagonal mean the linear estimate is good.

# %%
s_data = make_dataset(model)
s_tokens, s_last = ch.tokenize_prompts(model, [prompt])
attr, grad = sae_attribution(model, sae, s_tokens, s_last)
clean_ld = float(logit_diff(model, model(s_tokens), s_last)[0])
flat = attr[0].abs().flatten().topk(12).indices
top_nodes = torch.stack([flat // sae.cfg.d_sae, flat % sae.cfg.d_sae], dim=1)
estimated = [-float(attr[0, p, j]) for p, j in top_nodes.tolist()]
actual = [float(ablate_sae_features(model, sae, s_tokens, s_last, node[None])[0]) - clean_ld for node in top_nodes]
plt.figure(figsize=(4, 4))
plt.scatter(estimated, actual)
lim = max(map(abs, estimated + actual)) * 1.1
plt.plot([-lim, lim], [-lim, lim], color="grey", lw=0.5)
plt.xlabel("change estimated by attribution (−attribution)")
plt.ylabel("change when the feature is ablated")
plt.title(f"{prompt!r}", fontsize=8)
plt.show()

# %% [markdown]
# ## 4. Attribution graphs
#
# Put the pieces together for one prompt. Nodes: transcoder features (upstream), SAE
# features (downstream) and the answer. Edges: transcoder → SAE from the direct virtual
# weights (`transcoder_sae_edges`), SAE → answer from attribution. Chaining them, an
# upstream node's attribution **through the kept downstream nodes** is
# `Σ_j edges[p, i, j] · ∂m/∂f_j(p)`: the edge says how much `i` moves `j`, the gradient how
# much `j` moves the answer.
#
# A full graph is unreadable (thousands of nodes), so prune it: keep the `k_down`
# downstream nodes with the largest |attribution|, then the `k_up` upstream nodes with the
# largest |attribution through those|.
#
# ### Exercise: `prune_graph`
#
# `edges (seq, d_up, d_down)`, `down_attr` and `down_grad` `(seq, d_down)`. Return
# `(down_nodes, up_nodes, up_attr)`: `down_nodes (k_down, 2)` and `up_nodes (k_up, 2)` long
# tensors of `(position, feature)` in decreasing order of |attribution|, and `up_attr
# (k_up,)` the kept upstream nodes' attributions through the kept downstream nodes (signed).

# %% id="prune_graph" autograder={"exercises": ["prune_graph"]}
def prune_graph(edges: Float[Tensor, "seq d_up d_down"], down_attr: Float[Tensor, "seq d_down"],
                down_grad: Float[Tensor, "seq d_down"], k_down: int, k_up: int) -> tuple[Tensor, Tensor, Tensor]:
    """Keep the top-k_down downstream nodes by |attribution|, then the top-k_up upstream nodes by |attribution
    through the kept downstream nodes|."""
    ### BEGIN SOLUTION
    seq, d_up, d_down = edges.shape
    down_flat = down_attr.abs().flatten().topk(k_down).indices
    down_nodes = torch.stack([down_flat // d_down, down_flat % d_down], dim=1)
    kept = torch.zeros(seq, d_down, dtype=edges.dtype, device=edges.device)
    kept[down_nodes[:, 0], down_nodes[:, 1]] = 1.0
    up_attr_all = torch.einsum("pij,pj->pi", edges, down_grad * kept)
    up_flat = up_attr_all.abs().flatten().topk(k_up).indices
    up_nodes = torch.stack([up_flat // d_up, up_flat % d_up], dim=1)
    return down_nodes, up_nodes, up_attr_all.flatten()[up_flat]
    ### END SOLUTION


# %%
check("prune_graph")

# %% [markdown]
# ### Exercise: `nodes_to_explain`
#
# How big must a pruned graph be? Given node attributions `attr (n,)`, return the smallest
# number `k` of nodes, taken in decreasing order of |attribution|, whose |attributions| sum
# to at least `fraction` of the total |attribution| (an `int`; 0 if `fraction` is 0).

# %% id="nodes_to_explain" autograder={"exercises": ["nodes_to_explain"]}
def nodes_to_explain(attr: Float[Tensor, "n"], fraction: float) -> int:
    """The fewest top-|attr| nodes whose |attr| adds up to `fraction` of the total."""
    ### BEGIN SOLUTION
    sizes = attr.abs().double().sort(descending=True).values
    covered = sizes.cumsum(0) / sizes.sum()
    return int((covered < fraction - 1e-9).sum().item()) + (1 if fraction > 0 else 0)
    ### END SOLUTION


# %%
check("nodes_to_explain")

# %% [markdown]
# ## 5. Exploration: reading a graph (ungraded)
#
# The graph for one negated city statement in the lite model. Every attribution is for
# logit(" true") − logit(" false"). We name each node by the token it sits on and by the
# tokens (over the whole dataset) on which that feature fires hardest.

# %%
if PROFILE == "lite":
    g_tokens, g_last = ch.tokenize_prompts(lite_model, [prompt])
    g_attr, g_grad = sae_attribution(lite_model, lite_sae, g_tokens, g_last)
    g_edges = transcoder_sae_edges(lite_model, transcoder, lite_sae, g_tokens)
    down_nodes, up_nodes, up_attr = prune_graph(g_edges, g_attr[0], g_grad[0], k_down=6, k_up=6)
    print(f"{prompt!r}: logit difference {float(logit_diff(lite_model, lite_model(g_tokens), g_last)[0]):+.2f}; "
          f"{nodes_to_explain(g_attr[0].flatten(), 0.8)} SAE nodes carry 80% of the |attribution|")
    g_words = lite_model.to_str_tokens(g_tokens[0])
    with torch.no_grad():
        _, full_cache = lite_model.run_with_cache(tokens, names_filter=[HOOK_IN, lite_sae.cfg.metadata.hook_name])
        all_sae = lite_sae.encode(full_cache[lite_sae.cfg.metadata.hook_name]) * mask[..., None]
        all_tc = transcoder.encode(full_cache[HOOK_IN]) * mask[..., None]

    def favourite_tokens(acts, feature, k=4):
        flat_top = acts[..., feature].flatten().topk(k).indices
        return [lite_model.to_str_tokens(tokens[r // tokens.shape[1], r % tokens.shape[1]])[0] for r in flat_top.tolist()]

    print("SAE nodes (blocks.2.hook_resid_pre):")
    for p, j in down_nodes.tolist():
        print(f"   at {g_words[p]!r:>9} feature {j:3d}: attribution {g_attr[0, p, j]:+6.2f}, fires most on "
              f"{favourite_tokens(all_sae, j)}")
    print("transcoder nodes (block 0's MLP), attribution through those SAE nodes:")
    for (p, i), a in zip(up_nodes.tolist(), up_attr.tolist()):
        print(f"   at {g_words[p]!r:>9} feature {i:3d}: {a:+6.2f}, fires most on {favourite_tokens(all_tc, i)}")

# %% [markdown]
# Things to look for: the SAE nodes with the largest attributions sit on the tokens that
# decide the answer (the city, "not", the country); the transcoder nodes that feed them
# sit at the same positions and fire on the same kind of token: block 0's MLP turns a
# token into features that block 2 reads. Try a true statement, a comparison ("Seven is
# larger than three.") and a sum, and see which positions the graph uses.
#
# ## Summary
#
# * A transcoder replaces an MLP: encode the MLP's input, decode to its output. Judge it
#   like an SAE (L0, variance explained) and by the model's loss with it spliced in,
#   against zero- and mean-ablating the MLP.
# * Transcoder features connect to downstream features by input-independent virtual
#   weights (`W_dec · W_enc`) along the direct path; SAE features on either side of an MLP
#   need gradients.
# * Activation × gradient attributes a metric to every feature in one backward pass; check
#   the top nodes by ablating them. Prune the graph to the nodes that explain most of the
#   attribution, and read it with each feature's top tokens.
