# %% [markdown]
# # 1.3.1 Linear probes and the geometry of truth
#
# A language model that answers "is this statement true?" must, somewhere inside,
# compute whether it is. Where, and in what form? The simplest possible answer is
# that truth is a **direction** in the residual stream: true statements end up on
# one side of a hyperplane, false ones on the other, at the token where the model
# gives its answer. If so, a **linear probe** (a single vector and a threshold)
# reads truth off the activations, and, more interestingly, *pushing* an
# activation along that direction should change what the model says.
#
# Reading is not the same as using. A probe can find information the model never
# uses, and a probe that is too powerful finds structure that is not there. So in
# this notebook we read truth in several ways, check how well the readings agree
# and transfer between kinds of statements, and then test the causal claim by
# steering the model.
#
# In this notebook you
#
# 1. collect the residual stream at the answer position (padding is the pitfall);
# 2. look at it with PCA: true and false statements separate along a top component;
# 3. build the simplest probe, the **difference of class means** ("mass-mean"
#    direction), and classify with it;
# 4. train a logistic-regression probe and compare it with the mass-mean one;
# 5. sweep the layers: where does truth become readable?
# 6. test generalisation: does a probe trained on number comparisons read the
#    truth of facts about cities? Are the directions of different kinds of
#    statements the same?
# 7. add the truth direction to the residual stream, and flip the model's answers.
#
# **The statements.** Four families of short English statements, each followed by
# " This statement is", after which the model answers " true" or " false":
#
# | family | example | how many (half true) |
# | --- | --- | --- |
# | `cmp` | Seven is larger than three. / Two is smaller than five. | 180 |
# | `sum` | Two plus four is six. | 200 |
# | `city` | Paris is in France. (36 cities, 12 countries) | 72 |
# | `neg_city` | Paris is not in France. | 72 |
#
# **The model.**
#
# * **lite** (default): a 4-layer GPT-2 (d_model 64, 4 heads, d_mlp 256, word-level
#   vocabulary of 80 tokens) that the course trained to answer these questions
#   (`assets/train_lite.py`, about 3 minutes on 2 CPU cores; you do not need to rerun
#   it), shipped in `assets/lite/` (under 1 MB). It knows the answers (section 0),
#   so the interesting question is *how* it represents them.
# * **full**: `gpt2-small` (12 layers, d_model 768), loaded by the same code
#   (`truth_helpers.load_model`) from the asset cache
#   (`autograder assets fetch --profile full --assignment 1.3.1`, then start Jupyter
#   with `AUTOGRADER_PROFILE=full`). It needs about 1.5 GB of memory (GPU or CPU; a
#   GPU with 2 GB is plenty). GPT-2 small was never trained to answer our question,
#   so expect its answers to be poor and its truth directions much weaker than the
#   lite model's: that is a finding, not a bug.
#
# **Measured evidence for the lite model** (`assets/lite/training_info.json`; the
# course's tests re-measure it from the shipped checkpoint), with the splits and
# exercises of this notebook:
#
# | measure (lite model) | `cmp` | `sum` | `city` | `neg_city` |
# | --- | --- | --- | --- | --- |
# | answers correct (logit difference of the right sign) | 100% | 98.5% | 100% | 100% |
# | mass-mean probe, held-out accuracy after block 0 / 1 / 2 / 3 | 69 / 98 / 98 / 100% | 67 / 68 / 70 / 92% | 36 / 91 / 91 / 100% | 68 / 82 / 86 / 100% |
# | false statements flipped to "true" by adding the family's mass-mean direction after block 2, alpha = 1 / 2 | 74 / 100% | 25 / 67% | 39 / 86% | 97 / 100% |
# | the same with random directions of the same length (mean of 8), alpha = 1 / 2 | 1 / 2% | 6 / 11% | 0 / 2% | 10 / 43% |
#
# (Chance is 50%: every family is balanced. Before block 0 nothing can be read: the
# answer position holds the same token in every prompt of a family.) So truth is
# linearly readable, increasingly so through the layers, and the model *uses* the
# direction: pushed along it, the model changes its answer, far more than when
# pushed by the same amount in a random direction. Sums are the hardest family:
# their truth becomes clearly readable only in the last block. Negated statements
# are the most fragile: pushed twice as far, even random directions flip 43% of them.
#
# **How long.** With the lite profile every cell runs in a second or two on a
# laptop CPU; the whole notebook takes under a minute of compute.
#
# **Checking your work.** After each exercise, `check("name")` runs public tests
# and prints ✓ or what is wrong. Grading runs more thorough hidden tests on the
# same model.

# %% autograder={"role": "setup"}
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

import truth_helpers as th
from public_tests import check
from truth_helpers import FAMILIES, PROFILE, label_token_ids, load_model, make_dataset, train_test_split

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

model = load_model(PROFILE, device=str(device))  # gradients are off: we never train the model here
TRUE_ID, FALSE_ID = label_token_ids(model)  # the answer tokens " true" and " false"


def probe_objective(
    acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"], w: Float[Tensor, "d_model"],
    b: Float[Tensor, ""], weight_decay: float,
) -> Float[Tensor, ""]:
    """The logistic-regression probe's objective: mean binary cross-entropy of the logits acts @ w + b
    against the labels (1 true, 0 false), plus weight_decay * ||w||^2 (the bias is not penalised)."""
    logits = acts @ w + b
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype)) + weight_decay * w.pow(2).sum()


# %% [markdown]
# ## 0. The statements, and the model's answers
#
# `make_dataset(model, family)` gives a family's statements as model inputs:
#
# | key | shape | what |
# | --- | --- | --- |
# | `statements` | list of `n` str | the statements, e.g. "Paris is in France." |
# | `labels` | `(n,)` long | `1` true, `0` false |
# | `tokens` | `(n, seq)` | the prompts `statement + " This statement is"`, BOS first, **padded on the right** |
# | `last_pos` | `(n,)` | the position of each prompt's last token ("is"), where the model predicts its answer |
#
# In the lite model every prompt of one family has the same length, but families
# differ, and in GPT-2's tokenizer even one family's prompts differ ("Marseille" is
# several tokens). Whenever prompts of different lengths share a batch, position
# `-1` is padding for the shorter ones: always index with `last_pos`.

# %%
import matplotlib.pyplot as plt

datasets = {family: make_dataset(model, family) for family in FAMILIES}
for family, data in datasets.items():
    print(f"{family:9s} {len(data['labels']):4d} statements, tokens {tuple(data['tokens'].shape)}; e.g.")
    for i in range(3):
        print(f"     {'true ' if data['labels'][i] else 'false'}  {data['statements'][i]}")
print(model.to_str_tokens(datasets["city"]["tokens"][0]))

# %% [markdown]
# ### Exercise: the model's answer as a logit difference
#
# The model's answer is read at `last_pos`. Its confidence that a statement is
# true is the **logit difference** `logit[" true"] - logit[" false"]` there: positive
# means it answers "true". (A difference of logits is also the difference of
# log-probabilities, since the log-sum-exp cancels.)
#
# Write `get_logit_diff(logits, last_pos, true_id, false_id)`: for each prompt `i`,
# `logits[i, last_pos[i], true_id] - logits[i, last_pos[i], false_id]`.

# %% id="get_logit_diff" autograder={"exercises": ["get_logit_diff"]}
def get_logit_diff(
    logits: Float[Tensor, "batch seq d_vocab"], last_pos: Int[Tensor, "batch"], true_id: int, false_id: int
) -> Float[Tensor, "batch"]:
    """logit(true) - logit(false) at each prompt's last position."""
    ### BEGIN SOLUTION
    rows = torch.arange(logits.shape[0], device=logits.device)
    final = logits[rows, last_pos]
    return final[:, true_id] - final[:, false_id]
    ### END SOLUTION


# %%
check("get_logit_diff")

# %% [markdown]
# How well does the model answer? (For the lite model: essentially perfectly on
# every family; that is what it was trained for. GPT-2 small, in the full
# profile, is near chance: it has no reason to follow our prompt format.)

# %%
with torch.no_grad():
    for family, data in datasets.items():
        diff = get_logit_diff(model(data["tokens"]), data["last_pos"], TRUE_ID, FALSE_ID).cpu()
        correct = ((diff > 0).long() == data["labels"].cpu()).float().mean()
        print(f"{family:9s} answers correct: {correct:.1%}   mean logit diff on true {diff[data['labels'].cpu() == 1].mean():+.2f}, "
              f"on false {diff[data['labels'].cpu() == 0].mean():+.2f}")

# %% [markdown]
# ## 1. The residual stream at the answer position
#
# We read the residual stream *after* each block, `blocks.{L}.hook_resid_post`,
# at each prompt's `last_pos`. One forward pass with `run_with_cache` gives every
# layer at once; `names_filter` keeps the cache small (only the hooks you ask for).
#
# ### Exercise: `get_last_token_acts`
#
# Return a tensor of shape `(len(layers), batch, d_model)`: entry `[k, i]` is
# `blocks.{layers[k]}.hook_resid_post` of prompt `i` at position `last_pos[i]`.

# %% id="get_last_token_acts" autograder={"exercises": ["get_last_token_acts"]}
def get_last_token_acts(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], last_pos: Int[Tensor, "batch"], layers: list[int]
) -> Float[Tensor, "n_layers batch d_model"]:
    """The residual stream after each block in `layers`, at each prompt's last position."""
    ### BEGIN SOLUTION
    names = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    return torch.stack([cache[name][rows, last_pos] for name in names])
    ### END SOLUTION


# %%
check("get_last_token_acts")

# %% [markdown]
# From now on we work with these activations: for each family, every layer.

# %%
LAYERS = list(range(model.cfg.n_layers))
acts = {f: get_last_token_acts(model, d["tokens"], d["last_pos"], LAYERS).cpu() for f, d in datasets.items()}
labels = {f: d["labels"].cpu() for f, d in datasets.items()}
print({f: tuple(a.shape) for f, a in acts.items()})

# %% [markdown]
# ## 2. A first look: PCA
#
# Before training anything, look. Principal component analysis finds the
# directions along which the activations vary most. Centre the activations
# (subtract their mean over the statements), then the top right-singular vectors
# of the centred matrix are the principal directions, ordered by variance.
# If truth is one of the main things the model represents at this position, true
# and false statements separate along one of the first few components.
#
# Pitfalls: forgetting to centre (then the first "component" mostly points at the
# mean activation), and the **sign**: a principal direction is only defined up to
# sign (`v` and `-v` explain the same variance), so never rely on it.
#
# ### Exercise: `pca_directions`
#
# Return the top `k` principal directions of `acts` as the rows of a `(k, d_model)`
# tensor, unit length, in order of decreasing variance.

# %% id="pca_directions" autograder={"exercises": ["pca_directions"]}
def pca_directions(acts: Float[Tensor, "batch d_model"], k: int) -> Float[Tensor, "k d_model"]:
    """The top-k principal directions of the centred activations (unit rows, by decreasing variance)."""
    ### BEGIN SOLUTION
    centred = acts - acts.mean(dim=0)
    _, _, Vh = torch.linalg.svd(centred, full_matrices=False)
    return Vh[:k]
    ### END SOLUTION


# %%
check("pca_directions")

# %% [markdown]
# Each family projected on its own top two components, at the last layer, coloured
# by truth:

# %%
layer = LAYERS[-1]
fig, axes = plt.subplots(1, len(FAMILIES), figsize=(4 * len(FAMILIES), 3.6))
for ax, family in zip(axes, FAMILIES):
    x = acts[family][layer]
    pcs = pca_directions(x, 2)
    proj = (x - x.mean(0)) @ pcs.T
    for value, colour, name in [(1, "tab:blue", "true"), (0, "tab:red", "false")]:
        sel = labels[family] == value
        ax.scatter(proj[sel, 0], proj[sel, 1], s=8, c=colour, label=name, alpha=0.7)
    ax.set_title(f"{family}, layer {layer}")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. The difference of means
#
# The simplest probe has no training loop at all: the **mass-mean direction** is
# the mean activation of the true statements minus the mean of the false ones,
#
# $$ \theta = \mu_{\text{true}} - \mu_{\text{false}}. $$
#
# To classify, project an activation `x` on `θ` and compare with the projection of
# the midpoint of the two means: predict "true" when `x · θ > ½ (μ_true + μ_false) · θ`.
# (Equivalently: predict the class whose mean is nearer.) Unlike logistic
# regression, this direction cannot tilt itself to exploit correlated noise in the
# training statements: it only says where the true statements sit relative to the
# false ones on average, which makes it a good candidate for the direction the
# model itself uses (section 7 tests that).
#
# ### Exercise: `mass_mean_direction`
#
# Return `θ`, not normalised (its length is the distance between the two means,
# which section 7 uses as a natural step size).

# %% id="mass_mean_direction" autograder={"exercises": ["mass_mean_direction"]}
def mass_mean_direction(acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"]) -> Float[Tensor, "d_model"]:
    """Mean activation of the true statements (label 1) minus the mean of the false ones (label 0)."""
    ### BEGIN SOLUTION
    mean_true = acts[labels == 1].mean(dim=0)
    mean_false = acts[labels == 0].mean(dim=0)
    return mean_true - mean_false
    ### END SOLUTION


# %%
check("mass_mean_direction")

# %% [markdown]
# ### Exercise: `mass_mean_accuracy`
#
# Fit on one set of statements, evaluate on another: compute `θ` and the midpoint
# threshold from `(train_acts, train_labels)` only, then return the fraction of
# `test_acts` classified correctly, as a Python float. Using the test statements to
# fit anything (the direction or the threshold) would be cheating: with 64 or 768
# dimensions and a few dozen statements, almost any labelling can be fitted.

# %% id="mass_mean_accuracy" autograder={"exercises": ["mass_mean_accuracy"]}
def mass_mean_accuracy(
    train_acts: Float[Tensor, "n_train d_model"], train_labels: Int[Tensor, "n_train"],
    test_acts: Float[Tensor, "n_test d_model"], test_labels: Int[Tensor, "n_test"],
) -> float:
    """Accuracy on the test set of the mass-mean classifier (direction and midpoint threshold from the train set)."""
    ### BEGIN SOLUTION
    direction = mass_mean_direction(train_acts, train_labels)
    proj = train_acts @ direction
    threshold = (proj[train_labels == 1].mean() + proj[train_labels == 0].mean()) / 2
    predictions = (test_acts @ direction > threshold).long()
    return (predictions == test_labels).float().mean().item()
    ### END SOLUTION


# %%
check("mass_mean_accuracy")

# %% [markdown]
# Every family gets one fixed split: 70% of its statements to fit, 30% to test.

# %%
splits = {f: train_test_split(len(labels[f]), test_frac=0.3, seed=0) for f in FAMILIES}
for family in FAMILIES:
    tr, te = splits[family]
    x, y = acts[family][LAYERS[-1]], labels[family]
    print(f"{family:9s} last layer: train {mass_mean_accuracy(x[tr], y[tr], x[tr], y[tr]):.1%}, "
          f"test {mass_mean_accuracy(x[tr], y[tr], x[te], y[te]):.1%}")

# %% [markdown]
# ## 4. A logistic-regression probe
#
# The usual trained probe is logistic regression: a vector `w` and a bias `b`, with
# `P(true | x) = sigmoid(x · w + b)`, fitted by minimising the cross-entropy plus a
# small penalty `weight_decay · ||w||²` that keeps `w` finite when the classes are
# separable (they often are). The objective is `probe_objective` (given, in the setup
# cell). It is convex, so any decent optimiser from any start reaches (nearly) the
# same minimum.
#
# ### Exercise: `train_logistic_probe`
#
# Minimise `probe_objective(acts, labels, w, b, weight_decay)` over `w` (shape
# `(d_model,)`) and `b` (a scalar tensor), both starting at zero, with
# `torch.optim.Adam(lr=lr)` on the full batch for `n_steps` steps. Return
# `(w, b)`, detached. The notebook may have gradients switched off globally:
# `torch.enable_grad()` switches them back on inside your function.
#
# Grading checks properties rather than exact numbers (any correct minimiser passes):
# your objective value is no worse than the reference's, and your probe's test
# accuracy matches.

# %% id="train_logistic_probe" autograder={"exercises": ["train_logistic_probe"]}
def train_logistic_probe(
    acts: Float[Tensor, "batch d_model"], labels: Int[Tensor, "batch"],
    n_steps: int = 300, lr: float = 0.05, weight_decay: float = 1e-3,
) -> tuple[Float[Tensor, "d_model"], Float[Tensor, ""]]:
    """Logistic regression (w, b) minimising probe_objective, Adam on the full batch from zero."""
    ### BEGIN SOLUTION
    with torch.enable_grad():
        w = torch.zeros(acts.shape[-1], dtype=acts.dtype, device=acts.device, requires_grad=True)
        b = torch.zeros((), dtype=acts.dtype, device=acts.device, requires_grad=True)
        optimizer = torch.optim.Adam([w, b], lr=lr)
        for _ in range(n_steps):
            loss = probe_objective(acts, labels, w, b, weight_decay)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return w.detach(), b.detach()
    ### END SOLUTION


# %%
check("train_logistic_probe")

# %% [markdown]
# Compare the two probes at the last layer: test accuracy, and the cosine between
# the logistic probe's `w` and the mass-mean direction. They usually agree in
# accuracy but not exactly in direction: logistic regression also uses directions
# that merely help separate *this* training set.

# %%
for family in FAMILIES:
    tr, te = splits[family]
    x, y = acts[family][LAYERS[-1]], labels[family]
    w, b = train_logistic_probe(x[tr], y[tr])
    lr_acc = (((x[te] @ w + b) > 0).long() == y[te]).float().mean()
    theta = mass_mean_direction(x[tr], y[tr])
    cos = F.cosine_similarity(w, theta, dim=0)
    print(f"{family:9s} logistic test {lr_acc:.1%}  mass-mean test {mass_mean_accuracy(x[tr], y[tr], x[te], y[te]):.1%}"
          f"  cos(w, theta) {cos:+.2f}")

# %% [markdown]
# ## 5. Where does truth become readable?
#
# Sweep the layers: fit the mass-mean classifier on each layer's activations (same
# split) and record its test accuracy.
#
# ### Exercise: `probe_accuracy_by_layer`
#
# `acts` has shape `(n_layers, batch, d_model)` as `get_last_token_acts` returns it.
# Return `(accuracies, best_layer)`: a float tensor of shape `(n_layers,)` with
# `mass_mean_accuracy` fitted on `train_idx` and tested on `test_idx` at each layer,
# and the index of the layer with the highest accuracy (the **first** such layer
# when several tie, which is what `argmax` gives).

# %% id="probe_accuracy_by_layer" autograder={"exercises": ["probe_accuracy_by_layer"]}
def probe_accuracy_by_layer(
    acts: Float[Tensor, "n_layers batch d_model"], labels: Int[Tensor, "batch"],
    train_idx: Int[Tensor, "n_train"], test_idx: Int[Tensor, "n_test"],
) -> tuple[Float[Tensor, "n_layers"], int]:
    """Test accuracy of the mass-mean classifier at every layer, and the first layer with the best accuracy."""
    ### BEGIN SOLUTION
    accuracies = torch.tensor([
        mass_mean_accuracy(layer_acts[train_idx], labels[train_idx], layer_acts[test_idx], labels[test_idx])
        for layer_acts in acts
    ])
    return accuracies, int(accuracies.argmax())
    ### END SOLUTION


# %%
check("probe_accuracy_by_layer")

# %% [markdown]
# For comparison, before the first block (the embeddings, `blocks.0.hook_resid_pre`)
# nothing can be read at all: the last token is the same word ("is") at the same
# position in every prompt of a family, so every statement has the same activation
# there. Truth has to be moved to the answer position by attention, then computed.

# %%
plt.figure(figsize=(6, 3.5))
for family in FAMILIES:
    tr, te = splits[family]
    accuracies, best = probe_accuracy_by_layer(acts[family], labels[family], tr, te)
    print(f"{family:9s} accuracy by layer {[round(a, 3) for a in accuracies.tolist()]}, best layer {best}")
    plt.plot(LAYERS, accuracies, marker="o", label=family)
plt.axhline(0.5, color="grey", ls="--", label="chance")
plt.xlabel("layer (resid_post)")
plt.ylabel("mass-mean test accuracy")
plt.ylim(0.3, 1.02)
plt.legend()
plt.show()

# %% [markdown]
# ## 6. Does one truth direction serve all statements?
#
# A probe that reads "truth" on comparisons might really read "the first number is
# larger". A direction for truth *in general* should transfer: trained on one
# family, it should classify the others.
#
# ### Exercise: `transfer_matrix`
#
# The four arguments are lists with one entry per family (same order). Return an
# `(F, F)` float tensor whose entry `[i, j]` is `mass_mean_accuracy` fitted on the
# **train** split of family `i` and tested on the **test** split of family `j`.
# The diagonal is the ordinary held-out accuracy.

# %% id="transfer_matrix" autograder={"exercises": ["transfer_matrix"]}
def transfer_matrix(
    acts: list[Float[Tensor, "batch d_model"]], labels: list[Int[Tensor, "batch"]],
    train_idx: list[Int[Tensor, "n_train"]], test_idx: list[Int[Tensor, "n_test"]],
) -> Float[Tensor, "n_families n_families"]:
    """[i, j]: accuracy on family j's test split of the mass-mean classifier fitted on family i's train split."""
    ### BEGIN SOLUTION
    n = len(acts)
    out = torch.zeros(n, n)
    for i in range(n):
        for j in range(n):
            out[i, j] = mass_mean_accuracy(
                acts[i][train_idx[i]], labels[i][train_idx[i]], acts[j][test_idx[j]], labels[j][test_idx[j]]
            )
    return out
    ### END SOLUTION


# %%
check("transfer_matrix")

# %% [markdown]
# ### Exercise: `cosine_similarity_matrix`
#
# Directions as the rows of an `(F, d_model)` tensor; return the `(F, F)` matrix of
# cosine similarities between them.

# %% id="cosine_similarity_matrix" autograder={"exercises": ["cosine_similarity_matrix"]}
def cosine_similarity_matrix(directions: Float[Tensor, "n d_model"]) -> Float[Tensor, "n n"]:
    """[i, j]: the cosine similarity of directions[i] and directions[j]."""
    ### BEGIN SOLUTION
    unit = directions / directions.norm(dim=-1, keepdim=True)
    return unit @ unit.T
    ### END SOLUTION


# %%
check("cosine_similarity_matrix")

# %% [markdown]
# Both pictures at two layers: the middle of the model, and the layer where the
# probes read truth best (on average over the families).

# %%
mean_by_layer = torch.stack([probe_accuracy_by_layer(acts[f], labels[f], *splits[f])[0] for f in FAMILIES]).mean(0)
probe_layer = int(mean_by_layer.argmax())
fig, axes = plt.subplots(2, 2, figsize=(10, 8))
for row, layer in zip(axes, [model.cfg.n_layers // 2, probe_layer]):
    transfer = transfer_matrix([acts[f][layer] for f in FAMILIES], [labels[f] for f in FAMILIES],
                               [splits[f][0] for f in FAMILIES], [splits[f][1] for f in FAMILIES])
    directions = torch.stack([mass_mean_direction(acts[f][layer], labels[f]) for f in FAMILIES])
    cosines = cosine_similarity_matrix(directions)
    for ax, matrix, title, (lo, hi) in [(row[0], transfer, "transfer accuracy (train row, test column)", (0, 1)),
                                        (row[1], cosines, "cosine of mass-mean directions", (-1, 1))]:
        im = ax.imshow(matrix, vmin=lo, vmax=hi, cmap="RdBu")
        ax.set_xticks(range(len(FAMILIES)), FAMILIES)
        ax.set_yticks(range(len(FAMILIES)), FAMILIES)
        for i in range(len(FAMILIES)):
            for j in range(len(FAMILIES)):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center")
        ax.set_title(f"{title}, layer {layer}", fontsize=9)
        plt.colorbar(im, ax=ax)
plt.tight_layout()
plt.show()

# %% [markdown]
# Things to notice (for the lite model; GPT-2 small in the full profile behaves
# differently, and that comparison is worth making):
#
# * in the middle of the lite model the directions of the four families already
#   have large cosines, yet transfer is uneven: a direction can point the same way
#   on average and still put the threshold in the wrong place for another family;
#   at the last block (just before the answer is read out) the directions nearly
#   coincide and most pairs transfer well;
# * `city` and `neg_city` use the same words, only "not" differs, and their truth
#   labels are opposite for the same city–country pair. A probe that had learnt
#   "this city is in this country" instead of "this statement is true" would score
#   *below* chance across them. Where it scores above chance, the representation
#   is about truth, not about the fact.
#
# ## 7. Is the direction used? Steering
#
# A probe only shows that truth is *readable*. To show the model *uses* the
# direction, intervene: add `alpha · θ` to the residual stream after block `layer`
# at each prompt's last position, and watch the logit difference. With the
# unnormalised mass-mean direction, `alpha = 1` moves a typical false statement's
# activation to where a typical true one's is (at that layer, along `θ`).
#
# ### Exercise: `steer_logit_diff`
#
# Run the model with a hook on `blocks.{layer}.hook_resid_post` that adds
# `alpha * direction` at position `last_pos[i]` of every prompt `i` (and nowhere
# else), and return the logit difference `true − false` at `last_pos`
# (use `get_logit_diff` with `TRUE_ID` and `FALSE_ID`).

# %% id="steer_logit_diff" autograder={"exercises": ["steer_logit_diff"]}
def steer_logit_diff(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], last_pos: Int[Tensor, "batch"], layer: int,
    direction: Float[Tensor, "d_model"], alpha: float,
) -> Float[Tensor, "batch"]:
    """logit(true) - logit(false) at last_pos, with alpha * direction added after block `layer` at last_pos."""
    ### BEGIN SOLUTION
    rows = torch.arange(tokens.shape[0], device=tokens.device)

    def add_direction(resid: Float[Tensor, "batch seq d_model"], hook) -> Float[Tensor, "batch seq d_model"]:
        resid[rows, last_pos] += alpha * direction
        return resid

    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.hook_resid_post", add_direction)])
    return get_logit_diff(logits, last_pos, TRUE_ID, FALSE_ID)
    ### END SOLUTION


# %%
check("steer_logit_diff")

# %% [markdown]
# ### Exercise: `flip_rate`
#
# The headline number of a steering experiment: among the **false** statements
# that the model answered "false" without steering (`logit_diff_before < 0`), the
# fraction it answers "true" with steering (`logit_diff_after > 0`). Return it as
# a Python float. (Statements the model already got wrong say nothing about the
# steering, so they are left out of the denominator.)

# %% id="flip_rate" autograder={"exercises": ["flip_rate"]}
def flip_rate(
    logit_diff_before: Float[Tensor, "batch"], logit_diff_after: Float[Tensor, "batch"], labels: Int[Tensor, "batch"]
) -> float:
    """Among false statements answered "false" before steering, the fraction answered "true" after."""
    ### BEGIN SOLUTION
    answered_false = (labels == 0) & (logit_diff_before < 0)
    flipped = answered_false & (logit_diff_after > 0)
    return (flipped.sum() / answered_false.sum()).item()
    ### END SOLUTION


# %%
check("flip_rate")

# %% [markdown]
# Steer the false statements of each family with that family's own direction (fitted
# on its train split), at every layer, for a range of `alpha`. As a control, steer
# with a random direction of the same length: if truth were not special, it would
# do as well.

# %%
alphas = [0.0, 0.5, 1.0, 1.5, 2.0]
gen = torch.Generator().manual_seed(0)
fig, axes = plt.subplots(1, len(FAMILIES), figsize=(4 * len(FAMILIES), 3.4), sharey=True)
for ax, family in zip(axes, FAMILIES):
    d, (tr, te) = datasets[family], splits[family]
    false_te = te[labels[family][te] == 0]
    tokens, last_pos, y = d["tokens"][false_te], d["last_pos"][false_te], labels[family][false_te]
    before = steer_logit_diff(model, tokens, last_pos, 0, torch.zeros(model.cfg.d_model, device=device), 0.0).cpu()
    for layer in LAYERS:
        theta = mass_mean_direction(acts[family][layer][tr], labels[family][tr]).to(device)
        rates = [flip_rate(before, steer_logit_diff(model, tokens, last_pos, layer, theta, a).cpu(), y) for a in alphas]
        ax.plot(alphas, rates, marker="o", label=f"layer {layer}")
    random_dir = torch.randn(model.cfg.d_model, generator=gen).to(device)
    random_dir = random_dir / random_dir.norm() * theta.norm()
    rates = [flip_rate(before, steer_logit_diff(model, tokens, last_pos, LAYERS[-1], random_dir, a).cpu(), y) for a in alphas]
    ax.plot(alphas, rates, "k--", label="random, last layer")
    ax.set_title(f"{family}: false statements flipped")
    ax.set_xlabel("alpha")
axes[0].set_ylabel("flip rate")
axes[0].legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown]
# And the cross-family version of the causal test: steer each family's false
# statements with *another* family's direction, in the middle of the model
# (`alpha = 2`). If one truth direction serves all, this works too. (Steering
# after the last block is nearly guaranteed to work: there the residual stream is
# read out directly, so the middle is the more telling test.)

# %%
mid = model.cfg.n_layers // 2
for source in FAMILIES:
    theta = mass_mean_direction(acts[source][mid], labels[source]).to(device)
    row = []
    for target in FAMILIES:
        d, (tr, te) = datasets[target], splits[target]
        false_te = te[labels[target][te] == 0]
        tokens, last_pos, y = d["tokens"][false_te], d["last_pos"][false_te], labels[target][false_te]
        before = get_logit_diff(model(tokens), last_pos, TRUE_ID, FALSE_ID).cpu()
        row.append(flip_rate(before, steer_logit_diff(model, tokens, last_pos, mid, theta, 2.0).cpu(), y))
    print(f"direction of {source:9s} flips " + ", ".join(f"{t} {r:.0%}" for t, r in zip(FAMILIES, row)))

# %% [markdown]
# ## Summary
#
# * Truth is **linearly readable** from the residual stream of the lite model at the
#   answer position, from the middle layers on (for sums, only at the end); a
#   difference of means does most of the work, and a trained logistic probe does at
#   most a little better on held-out statements.
# * Reading is not using. The **steering** experiment is the causal test: adding the
#   truth direction turns "false" answers into "true" ones, and a random direction
#   of the same length does not.
# * Whether there is *one* truth direction is an empirical question: transfer
#   accuracies and cosines between families answer it for a given model and layer.
#   Negated statements are the sharpest test, since the same fact has the opposite
#   truth value.
# * Always evaluate probes on held-out statements, index the answer position
#   explicitly when prompts are padded, and never rely on the sign of a principal
#   component.
