# %% [markdown]
# # 1.3.3 Sparse autoencoders with SAELens
#
# A transformer's residual stream holds many more things than it has dimensions:
# which word this is, where it is, what came before, what the model has worked out
# so far. A **sparse autoencoder** (SAE) tries to write each activation vector as a
# sparse, non-negative combination of many learned directions ("features"), most of
# them zero for any one token, so that each feature can be read on its own. Section
# 1.5.4 built SAEs on toy models of superposition. Here we use them the way
# interpretability research does: an SAE trained on a real transformer's residual
# stream, loaded and run with **SAELens**, the community library for SAEs on
# TransformerLens models.
#
# In this notebook you
#
# 1. write the SAE's forward pass from its weights (`W_enc`, `b_enc`, `W_dec`, `b_dec`)
#    and check it against SAELens's `encode` / `decode`;
# 2. read feature activations off the model's residual stream at the SAE's hook point;
# 3. measure how good the SAE is: reconstruction error, L0 (how many features fire per
#    token), fraction of variance explained, and feature density (which features are
#    dead, which fire on everything);
# 4. interpret features: their top-activating tokens, and the features most selective
#    for a class of words (number words, cities, "not", one country);
# 5. splice the SAE into the model and measure what the model loses: the loss clean, with
#    the SAE's reconstruction in place of the residual stream, and with the residual
#    stream zeroed ("loss recovered");
# 6. follow a feature to the output (its direct logit attribution through `W_dec` and the
#    unembedding), and steer the model by adding a feature's decoder direction.
#
# **The model and the SAE.**
#
# * **lite** (default): the 4-layer GPT-2 of section 1.3.1 (d_model 64, 4 heads, d_mlp
#   256, word-level vocabulary of 80 tokens), trained by the course to answer " true" or
#   " false" after short statements such as "Paris is in France. This statement is", and
#   an SAE with 512 features on its residual stream before block 2
#   (`blocks.2.hook_resid_pre`), trained by the course with its own training loop
#   (`assets/train_lite.py`, 2 to 5 minutes on 2 CPU cores; you do not need to rerun it)
#   on every position of every statement. Both ship in `assets/lite/` (under 1.5 MB); the
#   SAE is saved in SAELens's own format (`cfg.json`, `sae_weights.safetensors`) and read
#   with `SAE.load_from_disk`.
# * **full**: `gpt2-small` and the SAE on `blocks.6.hook_resid_pre` from Joseph Bloom's
#   residual-stream SAEs for it (SAELens release `gpt2-small-res-jb`, 24,576 features),
#   loaded by the same code (`sae_helpers.load_model`, `sae_helpers.load_sae`) from the
#   asset cache (`autograder assets fetch --profile full --assignment 1.3.3`, then start
#   Jupyter with `AUTOGRADER_PROFILE=full`). It needs about 2 GB of memory (GPU or CPU; a
#   GPU with 4 GB is plenty). GPT-2 small was never trained on our true/false prompts, so
#   its answer loss is high; the SAE questions (L0, variance explained, loss recovered,
#   which features fire on city names) are just as meaningful there.
#
# **Measured evidence for the lite SAE** (`assets/lite/training_info.json`; the course's
# tests re-measure it from the shipped checkpoint), on the 524 balanced statements of all
# four families (5,168 token positions, BOS included, padding excluded):
#
# | measure (lite SAE, `blocks.2.hook_resid_pre`) | value |
# | --- | --- |
# | L0: features firing per token, mean (of 512) | 11.8 |
# | fraction of variance explained | 0.983 |
# | answer loss: clean / SAE spliced in / residual stream zero-ablated | 0.022 / 0.351 / 3.970 |
# | loss recovered, (zero − SAE) / (zero − clean) | 0.916 |
# | answers correct: clean / SAE spliced in | 99.4% / 92.0% |
# | dead features (never fire on these tokens) | 45 of 512 |
#
# and the features most selective for a class of words (largest mean activation on the
# class's tokens minus the mean elsewhere), with how often each fires on the class and
# elsewhere:
#
# | word class | feature | fires on the class | fires elsewhere |
# | --- | --- | --- | --- |
# | number word | 410 | 5% | 0.1% |
# | city | 361 | 10% | 0.3% |
# | country | 85 | 7% | 0.6% |
# | not | 103 | 53% | 0.3% |
# | france | 338 | 50% | 0.8% |
#
# So the SAE is sparse (about a dozen of its 512 features fire per token, in a
# 64-dimensional space), reconstructs nearly all the variance, and keeps most of what the
# model needs: spliced in, it recovers about 92% of the answer loss that zero-ablation
# destroys. It is not free: the loss rises from 0.02 to 0.35 and about 7% of the answers
# change, the usual price of an SAE in the loop. Some features are strikingly specific:
# one fires on half the "not" tokens and on 0.3% of the rest, and one fires where the
# model has just read a French city (section 6). The
# classes of many words (numbers, cities) are split over many narrower features, so the
# single most selective one covers a small slice. About 9% of the features are dead on
# these tokens. Your notebook finds these features itself; the numbers above are the
# training run's.
#
# **How long.** With the lite profile every cell runs in a second or two on a laptop
# CPU; the whole notebook takes under a minute of compute.
#
# **Checking your work.** After each exercise, `check("name")` runs public tests and
# prints ✓ or what is wrong. Grading runs more thorough hidden tests on the same model
# and SAE.

# %% autograder={"role": "setup"}
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

import sae_helpers as sh
from public_tests import check
from sae_helpers import PROFILE, answer_loss, load_model, load_sae, make_dataset, token_class_mask

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

model = load_model(PROFILE, device=str(device))  # gradients are off: we never train the model here
sae = load_sae(PROFILE, device=str(device))  # an SAELens SAE, gradients off
HOOK = sae.cfg.metadata.hook_name  # where the SAE reads (and, spliced in, writes) the residual stream

# %% [markdown]
# ## 0. The data, the model and the SAE
#
# `make_dataset(model)` gives the balanced statements of section 1.3.1 (number
# comparisons, sums, facts about cities and their negations), shuffled together into one
# padded batch:
#
# | key | shape | what |
# | --- | --- | --- |
# | `tokens` | `(n, seq)` | the prompts `statement + " This statement is"`, BOS first, **padded on the right** |
# | `mask` | `(n, seq)` bool | `True` at real tokens (BOS included), `False` at padding |
# | `last_pos` | `(n,)` | the position of each prompt's last token, where the model answers |
# | `answers` | `(n,)` | the token id of the right answer, `" true"` or `" false"` |
# | `labels`, `statements`, `family` | | as in section 1.3.1 |
#
# Padding is the recurring pitfall of this notebook: the padding token is
# `<|endoftext|>`, features do fire on it, and statistics that include it describe the
# padding, not the text. Select real tokens with `mask`.
#
# An SAELens `SAE` is a `torch.nn.Module` with a config (`sae.cfg`) and four parameters:
#
# | parameter | shape | role |
# | --- | --- | --- |
# | `W_enc` | `(d_in, d_sae)` | encoder: one column per feature |
# | `b_enc` | `(d_sae,)` | encoder bias (a threshold, once negative) |
# | `W_dec` | `(d_sae, d_in)` | decoder: one row per feature, its **direction** in the residual stream |
# | `b_dec` | `(d_in,)` | decoder bias, also subtracted from the input (`cfg.apply_b_dec_to_input`) |
#
# `sae.cfg.metadata.hook_name` says which activation it was trained on.

# %%
import matplotlib.pyplot as plt

data = make_dataset(model)
tokens, mask = data["tokens"], data["mask"]
print(f"{len(data['statements'])} statements, tokens {tuple(tokens.shape)}, {int(mask.sum())} real tokens")
print(model.to_str_tokens(tokens[0]), data["statements"][0])
print(f"SAE: d_in {sae.cfg.d_in}, d_sae {sae.cfg.d_sae}, hook {HOOK}, architecture {sae.cfg.architecture()}")
print({name: tuple(p.shape) for name, p in sae.named_parameters()})
print("decoder row norms:", sae.W_dec.norm(dim=-1)[:5])

# %% [markdown]
# ## 1. The SAE by hand
#
# A standard (ReLU) SAE encodes an activation `x` as
#
# $$ f(x) = \mathrm{ReLU}\big((x - b_{dec})\, W_{enc} + b_{enc}\big) $$
#
# and decodes feature activations `f` back to the residual stream as
#
# $$ \hat x = f\, W_{dec} + b_{dec}. $$
#
# Subtracting `b_dec` before encoding centres the input on the SAE's own notion of the
# typical activation; the decoder adds it back. Both functions work on any leading shape
# (`(batch, d_in)` or `(batch, seq, d_in)`).
#
# ### Exercise: `sae_encode`
#
# Compute `f(x)` from `sae.W_enc`, `sae.b_enc` and `sae.b_dec` (do not call
# `sae.encode`: the point is to see that there is nothing more to it).

# %% id="sae_encode" autograder={"exercises": ["sae_encode"]}
def sae_encode(sae: SAE, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
    """The feature activations ReLU((x - b_dec) @ W_enc + b_enc)."""
    ### BEGIN SOLUTION
    hidden_pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    return torch.relu(hidden_pre)
    ### END SOLUTION


# %%
check("sae_encode")

# %% [markdown]
# ### Exercise: `sae_decode`
#
# Compute the reconstruction `f @ W_dec + b_dec`.

# %% id="sae_decode" autograder={"exercises": ["sae_decode"]}
def sae_decode(sae: SAE, feature_acts: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
    """The reconstruction feature_acts @ W_dec + b_dec."""
    ### BEGIN SOLUTION
    return feature_acts @ sae.W_dec + sae.b_dec
    ### END SOLUTION


# %%
check("sae_decode")

# %% [markdown]
# Your two functions against SAELens's (`sae(x)` is `sae.decode(sae.encode(x))` for this
# architecture):

# %%
with torch.no_grad():
    _, cache = model.run_with_cache(tokens[:8], names_filter=HOOK)
    x = cache[HOOK]
    print("encode matches SAELens:", torch.allclose(sae_encode(sae, x), sae.encode(x), atol=1e-5))
    print("decode matches SAELens:", torch.allclose(sae_decode(sae, sae.encode(x)), sae(x), atol=1e-5))

# %% [markdown]
# ## 2. Feature activations on the model's residual stream
#
# ### Exercise: `get_feature_acts`
#
# Run the model on `tokens`, take the residual stream at the SAE's hook point
# (`sae.cfg.metadata.hook_name`) and return the SAE's feature activations there, at every
# position: shape `(batch, seq, d_sae)`. Use `sae.encode` from now on. (A cache filtered
# to the one hook keeps memory down; with gpt2-small and 24,576 features it matters.)

# %% id="get_feature_acts" autograder={"exercises": ["get_feature_acts"]}
def get_feature_acts(model: HookedTransformer, sae: SAE, tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, "batch seq d_sae"]:
    """The SAE's feature activations on the residual stream at its hook point, at every position."""
    ### BEGIN SOLUTION
    hook_name = sae.cfg.metadata.hook_name
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=hook_name)
        return sae.encode(cache[hook_name])
    ### END SOLUTION


# %%
check("get_feature_acts")

# %% [markdown]
# From now on: the activations at the hook, the feature activations and the
# reconstruction, for every statement, and the same at real tokens only (rows of
# `(n_real_tokens, ...)` tensors).

# %%
with torch.no_grad():
    _, cache = model.run_with_cache(tokens, names_filter=HOOK)
    resid = cache[HOOK]
    feature_acts = get_feature_acts(model, sae, tokens)
    recon = sae.decode(feature_acts)
x_real, recon_real, feats_real = resid[mask], recon[mask], feature_acts[mask]
print(tuple(feature_acts.shape), tuple(feats_real.shape))

# %% [markdown]
# ## 3. How good is the SAE?
#
# Three numbers summarise an SAE's trade-off between sparsity and faithfulness:
#
# * **MSE**: the mean squared reconstruction error, over every element;
# * **L0**: the mean number of features that fire (activation > 0) per token. Sparsity is
#   the whole point, and the L1 penalty used in training is only a stand-in for it;
# * **fraction of variance explained** (FVE):
#   $1 - \sum \lVert x - \hat x \rVert^2 / \sum \lVert x - \bar x \rVert^2$, with $\bar x$
#   the mean activation over the tokens. The pitfall is the denominator: without
#   subtracting the mean, the activations' large common offset counts as "variance" the
#   SAE explains for free (`b_dec` alone would score well).
#
# ### Exercise: `reconstruction_stats`
#
# For rows of activations `x`, their reconstructions `x_hat` and feature activations
# `feature_acts` (one row per token), return `(mse, l0, fve)` as Python floats.

# %% id="reconstruction_stats" autograder={"exercises": ["reconstruction_stats"]}
def reconstruction_stats(
    x: Float[Tensor, "n d_in"], x_hat: Float[Tensor, "n d_in"], feature_acts: Float[Tensor, "n d_sae"]
) -> tuple[float, float, float]:
    """(MSE over every element, mean number of firing features per row, fraction of variance explained)."""
    ### BEGIN SOLUTION
    mse = (x - x_hat).pow(2).mean()
    l0 = (feature_acts > 0).float().sum(dim=-1).mean()
    residual_variance = (x - x_hat).pow(2).sum()
    total_variance = (x - x.mean(dim=0)).pow(2).sum()
    return mse.item(), l0.item(), (1 - residual_variance / total_variance).item()
    ### END SOLUTION


# %%
check("reconstruction_stats")

# %%
mse, l0, fve = reconstruction_stats(x_real, recon_real, feats_real)
print(f"MSE {mse:.4f}, L0 {l0:.2f} of {sae.cfg.d_sae} features, fraction of variance explained {fve:.4f}")
print(f"for scale: mean squared norm of the (centred) activations {(x_real - x_real.mean(0)).pow(2).sum(-1).mean():.1f}")

# %% [markdown]
# ### Exercise: `feature_density`
#
# A feature's **density** is the fraction of tokens on which it fires (activation > 0).
# Features that never fire are **dead** (wasted capacity, and a sign of training
# trouble); features that fire on most tokens are **dense** and rarely interpretable.
# Given one row per token, return each feature's density, shape `(d_sae,)`.

# %% id="feature_density" autograder={"exercises": ["feature_density"]}
def feature_density(feature_acts: Float[Tensor, "n d_sae"]) -> Float[Tensor, "d_sae"]:
    """The fraction of rows on which each feature fires (activation > 0)."""
    ### BEGIN SOLUTION
    return (feature_acts > 0).float().mean(dim=0)
    ### END SOLUTION


# %%
check("feature_density")

# %% [markdown]
# The density histogram, on a log scale, is the first plot to look at for any SAE. A
# healthy one has a broad bump of rare features and few at either extreme; a spike at the
# far left is dead features (drawn at 1e-5 here).

# %%
density = feature_density(feats_real).cpu()
print(f"dead features: {int((density == 0).sum())}, features firing on more than half the tokens: "
      f"{int((density > 0.5).sum())}")
plt.figure(figsize=(6, 3.5))
plt.hist(torch.log10(density.clamp(min=1e-5)).numpy(), bins=40)
plt.xlabel("log10 feature density (fraction of tokens where it fires)")
plt.ylabel("features")
plt.title(f"feature density, {HOOK}")
plt.show()

# %% [markdown]
# ## 4. What do the features mean?
#
# The simplest look at a feature: the tokens (in context) on which it fires hardest.
#
# ### Exercise: `top_activating_tokens`
#
# `feature_acts` has shape `(batch, seq, d_sae)` and `mask` marks the real tokens. Return
# the `k` largest activations of `feature` over real tokens only, in decreasing order,
# and where they are: `(values, rows, positions)`, three tensors of shape `(k,)`, with
# `feature_acts[rows[i], positions[i], feature] == values[i]`. Ties may come in any order.

# %% id="top_activating_tokens" autograder={"exercises": ["top_activating_tokens"]}
def top_activating_tokens(
    feature_acts: Float[Tensor, "batch seq d_sae"], mask: Bool[Tensor, "batch seq"], feature: int, k: int
) -> tuple[Float[Tensor, "k"], Int[Tensor, "k"], Int[Tensor, "k"]]:
    """The k largest activations of `feature` at real tokens, decreasing, and their (row, position)."""
    ### BEGIN SOLUTION
    acts = feature_acts[..., feature].masked_fill(~mask, float("-inf"))
    values, flat = acts.flatten().topk(k)
    seq_len = feature_acts.shape[1]
    return values, flat // seq_len, flat % seq_len
    ### END SOLUTION


# %%
check("top_activating_tokens")

# %% [markdown]
# A helper to show a feature's top tokens in context (the firing token in brackets):

# %%
def show_feature(feature: int, k: int = 6) -> None:
    values, rows, positions = top_activating_tokens(feature_acts, mask, feature, k)
    print(f"feature {feature} (density {density[feature]:.3f}):")
    for v, r, p in zip(values.tolist(), rows.tolist(), positions.tolist()):
        words = model.to_str_tokens(tokens[r, 1 : int(data["last_pos"][r]) + 1])
        words[p - 1] = f"[{words[p - 1]}]" if p > 0 else words[p - 1]
        print(f"   {v:6.2f}  {'<BOS> ' if p == 0 else ''}{' '.join(words)}")


for feature in density.argsort(descending=True)[:2].tolist():  # the two densest features
    show_feature(feature)

# %% [markdown]
# The densest features fire hardest on `<BOS>`: its residual stream is the same in every prompt (it
# can only attend to itself) and unusually large, so the SAE spends features on it. Many
# SAEs on real models do the same, and some analyses skip BOS for that reason.

# %% [markdown]
# Top tokens show what a feature fires on, but not what it is *selective* for: a feature
# may fire hard on "not" and also on half the other tokens. To find the feature for a
# class of words, compare the two sides.
#
# ### Exercise: `class_selectivity`
#
# One row per token: `feature_acts` `(n, d_sae)` and `is_class` `(n,)` bool (True where
# the token belongs to the class). Return, for every feature, its mean activation on the
# class's tokens minus its mean activation on the **other** tokens, shape `(d_sae,)`.

# %% id="class_selectivity" autograder={"exercises": ["class_selectivity"]}
def class_selectivity(feature_acts: Float[Tensor, "n d_sae"], is_class: Bool[Tensor, "n"]) -> Float[Tensor, "d_sae"]:
    """Mean activation on the class's rows minus mean activation on the other rows, per feature."""
    ### BEGIN SOLUTION
    return feature_acts[is_class].mean(dim=0) - feature_acts[~is_class].mean(dim=0)
    ### END SOLUTION


# %%
check("class_selectivity")

# %% [markdown]
# The most selective feature for number words, city names, country names, "not", and one
# country:

# %%
word_classes = dict(sh.TOKEN_CLASSES, france=["france"])
class_features = {}
for name, words in word_classes.items():
    is_class = token_class_mask(model, tokens, words)[mask]
    selectivity = class_selectivity(feats_real, is_class)
    best = int(selectivity.argmax())
    class_features[name] = best
    on, off = (feats_real[is_class, best] > 0).float().mean(), (feats_real[~is_class, best] > 0).float().mean()
    print(f"{name:12s} feature {best:4d}: selectivity {selectivity[best]:.2f}, fires on {on:.0%} of the class, "
          f"on {off:.1%} of other tokens")
show_feature(class_features["not"])
show_feature(class_features["france"])

# %% [markdown]
# Things to notice: "not" gets a feature of its own. The number-word and city features
# fire on only part of their class: the SAE splits a class into finer features (one
# number, the first word of a statement, cities in one country), and the single most
# selective one covers a slice. Looking at several of the top features per class shows the
# split.
#
# ## 5. Splicing the SAE into the model
#
# Reconstruction error in the residual stream's units is hard to judge: which errors
# matter is for the model to say. So run the model with the SAE's reconstruction **in
# place of** the residual stream at the hook point (at every position), and measure the
# model's loss on what it was trained for: the cross-entropy of the right answer at the
# last position (`answer_loss(logits, last_pos, answers)`, given). Compare with two
# anchors: the clean model, and the model with the residual stream at the hook replaced by
# zeros (everything computed before it destroyed). The **loss recovered**
# `(zero − SAE) / (zero − clean)` is 1 for a perfect SAE and 0 for one that is no better
# than nothing.
#
# SAELens offers the same through `HookedSAETransformer` (`run_with_saes`,
# `run_with_cache_with_saes`, `add_sae`): a `HookedTransformer` that applies attached SAEs
# at their hook points. Note its `use_error_term` option: with it on, the SAE adds back its
# own reconstruction error, so the model's output is exactly the clean one (useful for
# attributing to features, useless for measuring the SAE).
#
# ### Exercise: `spliced_losses`
#
# Return `(clean, with_sae, zero_ablated)`: the answer loss of the clean model, with the
# residual stream at `sae.cfg.metadata.hook_name` replaced by `sae`'s reconstruction of
# it, and with it replaced by zeros, as Python floats. A hook function that returns a
# tensor replaces the activation with it.

# %% id="spliced_losses" autograder={"exercises": ["spliced_losses"]}
def spliced_losses(
    model: HookedTransformer, sae: SAE, tokens: Int[Tensor, "batch seq"], last_pos: Int[Tensor, "batch"],
    answers: Int[Tensor, "batch"],
) -> tuple[float, float, float]:
    """Answer loss clean, with the SAE's reconstruction spliced in at its hook point, and with zeros there."""
    ### BEGIN SOLUTION
    hook_name = sae.cfg.metadata.hook_name

    def reconstruct(act, hook):
        return sae(act)

    def zero(act, hook):
        return torch.zeros_like(act)

    with torch.no_grad():
        clean_logits = model(tokens)
        sae_logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, reconstruct)])
        zero_logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, zero)])
    return tuple(answer_loss(logits, last_pos, answers).item() for logits in (clean_logits, sae_logits, zero_logits))
    ### END SOLUTION


# %%
check("spliced_losses")

# %%
clean, with_sae, zero_ablated = spliced_losses(model, sae, tokens, data["last_pos"], data["answers"])
print(f"answer loss: clean {clean:.4f}, SAE spliced in {with_sae:.4f}, zero-ablated {zero_ablated:.4f}")
print(f"loss recovered: {(zero_ablated - with_sae) / (zero_ablated - clean):.3f}")

# %% [markdown]
# The same with SAELens's `HookedSAETransformer` (the model's weights copied into one):
# with the SAE attached the loss is the spliced one; with `use_error_term=True` it is the
# clean one.

# %%
from sae_lens import HookedSAETransformer

sae_model = HookedSAETransformer(model.cfg, tokenizer=model.tokenizer)
sae_model.load_state_dict(model.state_dict(), strict=False)
sae_model.requires_grad_(False)
with torch.no_grad():
    for error_term in (False, True):
        logits = sae_model.run_with_saes(tokens, saes=[sae], use_error_term=error_term)
        print(f"run_with_saes, use_error_term={error_term}: answer loss "
              f"{answer_loss(logits, data['last_pos'], data['answers']).item():.4f}")
sae.use_error_term = False  # run_with_saes restores it, but be explicit

# %% [markdown]
# ## 6. From features to outputs
#
# A feature writes its decoder row `W_dec[feature]` into the residual stream (scaled by
# its activation). What that direction does **directly** to the output logits, ignoring
# the later blocks and the final LayerNorm's scale, is its product with the unembedding:
# the feature's **direct logit attribution** (DLA). For a feature in the middle of the
# model, the later blocks can change a lot, so DLA is a first hint, not the whole story;
# steering (below) is the causal test.
#
# ### Exercise: `feature_logit_attribution`
#
# Return `W_dec[feature] @ W_U`, shape `(d_vocab,)` (no unembedding bias: it does not
# depend on the feature).

# %% id="feature_logit_attribution" autograder={"exercises": ["feature_logit_attribution"]}
def feature_logit_attribution(model: HookedTransformer, sae: SAE, feature: int) -> Float[Tensor, "d_vocab"]:
    """The direct effect of the feature's decoder direction on the logits: W_dec[feature] @ W_U."""
    ### BEGIN SOLUTION
    return sae.W_dec[feature] @ model.W_U
    ### END SOLUTION


# %%
check("feature_logit_attribution")

# %%
TRUE_ID, FALSE_ID = sh.label_token_ids(model)
for name, feature in class_features.items():
    dla = feature_logit_attribution(model, sae, feature)
    top = dla.topk(3).indices
    print(f"{name:12s} feature {feature:4d}: true - false {dla[TRUE_ID] - dla[FALSE_ID]:+.2f}; "
          f"most promoted tokens {model.to_str_tokens(top)}")

# %% [markdown]
# ### Exercise: `steer_with_feature`
#
# The causal test: add `alpha * W_dec[feature]` to the residual stream at the SAE's hook
# point, at **every** position, and return the model's logits `(batch, seq, d_vocab)`.

# %% id="steer_with_feature" autograder={"exercises": ["steer_with_feature"]}
def steer_with_feature(
    model: HookedTransformer, sae: SAE, tokens: Int[Tensor, "batch seq"], feature: int, alpha: float
) -> Float[Tensor, "batch seq d_vocab"]:
    """Logits with alpha * W_dec[feature] added to the residual stream at the SAE's hook point, at every position."""
    ### BEGIN SOLUTION
    direction = sae.W_dec[feature]

    def add_feature(act, hook):
        return act + alpha * direction

    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.cfg.metadata.hook_name, add_feature)])
    ### END SOLUTION


# %%
check("steer_with_feature")

# %% [markdown]
# The "France" feature (the one most selective for the token "france") deserves a closer
# look: its top tokens above are mostly the word "in" right after a French city ("Lyon is
# [in]"). It fires where the model has looked up the city's country: it is closer to "the
# city just named is in France" than to the word itself. If so, adding it to a true
# statement about a city elsewhere ("Tokyo is in Japan.") should make the model doubt the
# statement, and far more than adding random features' directions does.

# %%
french = {c.lower() for c in sh.CITIES["France"]}
chosen = [i for i, (f, y, s) in enumerate(zip(data["family"], data["labels"].tolist(), data["statements"]))
          if f == "city" and y == 1 and s.split()[0].lower() not in french]
city_tokens, city_last = tokens[chosen], data["last_pos"][chosen]
rows = torch.arange(len(chosen))


def true_minus_false(logits):
    return (logits[rows, city_last, TRUE_ID] - logits[rows, city_last, FALSE_ID]).mean().item()


alphas = [0.0, 5.0, 10.0, 20.0]
gen = torch.Generator().manual_seed(5)
random_features = torch.randint(sae.cfg.d_sae, (16,), generator=gen).tolist()
plt.figure(figsize=(6, 3.5))
for feature, style in [(class_features["france"], "o-"), (class_features["not"], "s-")]:
    plt.plot(alphas, [true_minus_false(steer_with_feature(model, sae, city_tokens, feature, a)) for a in alphas],
             style, label=f"feature {feature} ({'France' if feature == class_features['france'] else 'not'})")
for feature in random_features:
    plt.plot(alphas, [true_minus_false(steer_with_feature(model, sae, city_tokens, feature, a)) for a in alphas],
             color="grey", alpha=0.4, label="random features" if feature == random_features[0] else None)
plt.axhline(0, color="black", lw=0.5)
plt.xlabel("alpha (added at every position)")
plt.ylabel('mean logit(" true") - logit(" false")')
plt.title("true statements about cities outside France, steered")
plt.legend(fontsize=8)
plt.show()

# %% [markdown]
# With the lite SAE (measured on these statements with 16 random features; the course's
# tests repeat it), alpha 20 of the France feature turns the model's confident "true"
# (mean logit difference +9.0) into "false" on average (−1.2); its own activation reaches
# about 10 on its top tokens. The median random feature leaves the answer at about +5.5,
# though 2 of the 16 also flip it: pushed this hard, many directions disrupt a small model,
# so a steering result means something only against such a baseline. The "not" feature does
# less when added everywhere: in the model, "not" matters at its own position, where later
# attention reads it, and adding it to every token is a blunt instrument. Steering tests a
# hypothesis about a feature; it does not replace reading its activations.

# %% [markdown]
# ## Summary
#
# * An SAE is two small linear maps and a ReLU; SAELens wraps them (`SAE.encode`,
#   `decode`, `forward`, `load_from_disk`, `from_pretrained`) with the metadata that says
#   where in the model it reads (`cfg.metadata.hook_name`).
# * Judge an SAE by sparsity (L0), reconstruction (fraction of variance explained,
#   centred), and above all by what the **model** loses when it runs on the
#   reconstruction (loss recovered, against clean and zero-ablated anchors). Look at the
#   density histogram for dead and dense features.
# * Interpreting a feature takes several views: its top-activating tokens, its
#   selectivity for a class, its direct effect on the logits, and the causal test of
#   steering along its decoder direction.
# * Statistics over a padded batch must skip the padding.
