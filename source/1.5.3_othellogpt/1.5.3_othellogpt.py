# %% [markdown]
# # 1.5.3 OthelloGPT
#
# A GPT is trained to do one thing: given the moves of a game of Othello so far,
# predict a legal next move. It never sees a board. Yet, to predict legal moves
# well, it has to know which squares are empty, and which stones belong to which
# player, because a move is legal only if it *flips* something. Does the model
# build an internal picture of the board (a **world model**), and can we read it?
#
# We can, with a **linear probe**: a single matrix that maps the residual stream
# at some layer to a prediction, for each of the 64 squares, of *blank*, *mine*
# or *theirs*, where "mine" means "a stone of the player whose turn it is".
# Relative colours matter: a probe for absolute colours (black / white) works much
# worse on these models, because the model thinks in terms of "the player to
# move". Since the probe is linear, its weights are *directions* in the residual
# stream, and we can use them like any other direction: project layer outputs or
# neuron weights onto them, or push the residual stream along them to change what
# the model believes about the board, and watch its legal-move predictions change.
#
# In this notebook you
#
# 1. read the board off the residual stream with a trained probe, layer by layer;
# 2. turn the probe into "blank" and "mine vs theirs" directions;
# 3. edit the model's belief about a square and watch the predicted moves change;
# 4. find which layers (attention or MLP) write the board state, and what single
#    neurons read and write in terms of the board;
# 5. patch activations between two games that differ only in their last move;
# 6. train a probe of your own.
#
# **The model.** A TransformerLens `HookedTransformer` reading a game as move
# tokens: `1..60` are the 60 squares that are not one of the four centre squares
# (those start occupied), `0` is a pass/padding token that our games never use.
# The model reads moves `0..58` and predicts the next move at every position.
#
# * **lite** (default): 4 layers, d_model 128, 4 heads, d_mlp 512, trained by the
#   course on 192,000 random legal games (`assets/train_lite.py`, 3000 steps, about
#   20 to 35 minutes on one CPU core; you do not need to rerun it) with linear probes for every layer, in
#   `assets/lite/` (under 4 MB). Its measured evidence is printed in section 1 and
#   stated here: see the table below.
# * **full**: the public synthetic OthelloGPT (8 layers, d_model 512, d_mlp 2048,
#   8 heads, vocab 61, n_ctx 59) with its probe. It is not shipped: save its
#   `config.json`, `model.safetensors` and `probe.safetensors` (probe shape
#   `(d_model, 8, 8, 3)` over blank/mine/theirs, read at `resid_post` of
#   `config["probe_layer"]`) in `assets/full/` or point `OTHELLO_FULL_DIR` at
#   them, and start Jupyter with `AUTOGRADER_PROFILE=full`. The state dict must
#   use TransformerLens's parameter names, and the tokens this notebook's
#   convention (check the square order of the model's vocabulary and of the
#   probe's board, and permute them if they differ). It needs about 2 GB of
#   memory; a CPU works, a GPU is faster.
#
# **Measured evidence for the lite model** (`assets/lite/training_info.json`,
# measured by `assets/train_lite.py` on held-out games and re-measured
# independently by the course's tests on other games):
#
# | measure | lite model | baseline |
# | --- | --- | --- |
# | top-1 prediction is a legal move (1000 games) | 91.9% | 14.4% uniform over the 60 squares; 40.8% uniform over the empty squares |
# | probe at layer 1, blank/mine/theirs, all squares (500 games) | 85.0% | 62.3% majority class per position and square (46.9% overall majority) |
# | probe at layer 1, mine vs theirs on occupied squares | 71.9% | 54.3% majority per position and square |
# | same, probe on the embeddings / after layers 0, 1, 2, 3 | 50.7% / 66.7% / 71.9% / 71.8% / 70.9% | |
#
# So the lite model tracks the board: nearly perfectly which squares are empty
# (99.6% from layer 1 on), and who owns a stone clearly better than chance, but
# far from perfectly (the public 8-layer OthelloGPT, trained on millions of
# games, reads mine/theirs almost perfectly). Expect the lite model's
# interventions and patching pictures to be noisier than published ones.
#
# **How long.** With the lite profile every cell runs in seconds on a laptop CPU;
# the whole notebook takes about 2 minutes of compute (training your own probe in
# section 7 is the longest cell, about 30 s).
#
# **Checking your work.** After each exercise, `check("name")` runs public tests
# and prints ✓ or what is wrong. Grading runs more thorough hidden tests on the
# same model.

# %% autograder={"role": "setup"}
import functools
import math
from typing import Callable

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from othello_helpers import PROFILE, load_model, load_probe
from public_tests import check

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# The model (lite, or the public OthelloGPT with AUTOGRADER_PROFILE=full) and its probe.
model = load_model(PROFILE, device=str(device))
model.requires_grad_(False)  # we never train the model here, only probes
linear_probe, PROBE_LAYER = load_probe(PROFILE, device=str(device))  # (d_model, 8, 8, 3), read at resid_post

# The probe's three options, relative to the player whose turn it is next.
BLANK, MINE, THEIRS = 0, 1, 2

# %% [markdown]
# ## 0. Othello, as tokens
#
# Othello is played on an 8×8 board. Black moves first; players alternate. A move
# places a stone on an empty square so that, in at least one of the 8 directions,
# a straight line of the opponent's stones is closed by one of the mover's
# stones; every such line is *flipped* to the mover's colour. A player with no
# legal move passes; the game ends when neither can move.
#
# `othello_helpers` has an engine for this (numpy, batched over games), and a
# generator of random legal games. To keep "whose turn is it" simple, the course
# only uses games in which nobody passes (about half of random games), so all of
# them are 60 moves long and the players strictly alternate.
#
# Squares are numbered `0..63` row by row, labelled `A0..H7` (row letter,
# column digit). `exercise_games(n)` gives `n` fixed games generated from a seed:
#
# | key | shape | what |
# | --- | --- | --- |
# | `tokens` | `(n, 60)` | the moves as tokens; feed `tokens[:, :59]` to the model |
# | `squares` | `(n, 60)` | the moves as squares `0..63` |
# | `boards` | `(n, 60, 64)` | the absolute board after each move: `1` black, `-1` white, `0` blank |
# | `states` | `(n, 60, 8, 8)` | the board relative to the player to move next: `0` blank, `1` mine, `2` theirs |
# | `legal` | `(n, 60, 61)` | which *tokens* are legal moves after each move |
#
# Positions: the residual stream at position `t` has read moves `0..t`, so it
# should know the board *after* move `t`, and the player to move is the one who
# plays move `t + 1` (white after even `t`, black after odd `t`). "Theirs" is
# therefore the colour of the player who just moved.

# %%
import matplotlib.pyplot as plt

import othello_helpers as oh

games = oh.exercise_games(64)
game = 0
print("first moves:", [oh.SQUARE_LABELS[s] for s in games["squares"][game, :8].tolist()])
for t in (0, 1, 2):
    print(f"\nafter move {t} ({oh.SQUARE_LABELS[int(games['squares'][game, t])]}), "
          f"{'white' if t % 2 == 0 else 'black'} to move; legal next moves:",
          [oh.SQUARE_LABELS[oh.TOKEN_TO_SQUARE[i]] for i in torch.nonzero(games["legal"][game, t]).flatten().tolist()])
    print(oh.board_to_string(games["boards"][game, t]))

# %% [markdown]
# ## 1. The model predicts legal moves
#
# The ideal predictor spreads its probability uniformly over the legal moves
# (the games were generated that way). Let's measure how often the model's top
# prediction is legal, and compare with two baselines that do not track the
# board properly: a uniform guess over all 60 squares, and a uniform guess over
# the empty squares (which needs to know which squares were played, but not who
# owns them).

# %%
from othello_helpers import training_info

info = training_info(PROFILE)
with torch.no_grad():
    logits, cache = model.run_with_cache(games["tokens"][:, :59].to(device))
logits[..., 0] = -torch.inf  # "pass" never counts as a prediction
top1 = logits.argmax(-1).cpu()
legal = games["legal"][:, :59]
top1_legal = legal.gather(-1, top1[..., None])[..., 0].float()
n_empty = (games["boards"][:, :59] == 0).sum(-1)
print(f"top-1 prediction is legal: {top1_legal.mean():.1%} of positions on these {len(top1)} games")
print(f"baseline, uniform over 60 squares:    {(legal.sum(-1) / 60).float().mean():.1%}")
print(f"baseline, uniform over empty squares: {(legal.sum(-1) / n_empty).float().mean():.1%}")
if info:
    print("\nrecorded in training_info.json (1000 held-out games):", info["legal_moves"])

plt.figure(figsize=(6, 3))
plt.plot(top1_legal.mean(0), label="model top-1 legal")
plt.plot((legal.sum(-1) / n_empty).float().mean(0), label="uniform over empty squares")
plt.xlabel("position (move index)")
plt.ylabel("fraction legal")
plt.legend()
plt.show()

# %% [markdown]
# A look at one position: the model's predicted probabilities next to the truth.

# %%
g, t = 3, 30
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
probs = logits[g, t].softmax(-1).cpu()
board_probs = torch.zeros(64)
board_probs[oh.TOKEN_TO_SQUARE[1:]] = probs[1:]
oh.plot_board_values(board_probs, f"model's next-move probabilities (t={t})", ax=axes[0], cmap="Greens",
                     symmetric=False, boards=games["boards"][g, t])
board_legal = torch.zeros(64)
board_legal[oh.TOKEN_TO_SQUARE[1:]] = games["legal"][g, t, 1:].float()
oh.plot_board_values(board_legal, "legal moves", ax=axes[1], cmap="Greens", symmetric=False,
                     boards=games["boards"][g, t])
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Reading the board with a linear probe
#
# `linear_probe` has shape `(d_model, 8, 8, 3)`: for each square `(row, col)` and
# each option (blank, mine, theirs) a vector in the residual stream. The probe's
# logits for a residual vector `x` are `x @ linear_probe[:, row, col, :]`, and its
# prediction for the square is the option with the largest logit. The shipped
# probe reads `blocks.{PROBE_LAYER}.hook_resid_post`.
#
# **Exercise.** Write `apply_probe(resid, probe)`: the probe's predicted option
# (an integer `0/1/2`) for every square, for residual vectors with any leading
# dimensions (`(d_model,)`, `(batch, d_model)`, `(batch, pos, d_model)`, ...).
# The output has the same leading dimensions followed by `(8, 8)`, where
# `[..., row, col]` is the square `8 * row + col`.

# %% id="apply_probe" autograder={"exercises": ["apply_probe"]}
def apply_probe(
    resid: Float[Tensor, "... d_model"], probe: Float[Tensor, "d_model rows cols options"]
) -> Int[Tensor, "... rows cols"]:
    """The probe's predicted option (0 blank, 1 mine, 2 theirs) for every square."""
    ### BEGIN SOLUTION
    probe_logits = einops.einsum(resid, probe, "... d_model, d_model rows cols options -> ... rows cols options")
    return probe_logits.argmax(dim=-1)
    ### END SOLUTION


# %%
check("apply_probe")

# %% [markdown]
# How good is the probe? We compare with the **majority-class baseline**: for each
# position and square, always answer the option that is most common there (early
# in the game most squares are blank, so this baseline is far above 1/3). The
# fairest single number is the accuracy on *occupied* squares of mine vs theirs,
# where the baseline is close to a coin flip. The per-layer numbers of the
# shipped probes come from `training_info.json` (500 held-out games).

# %%
resid = cache[f"blocks.{PROBE_LAYER}.hook_resid_post"].cpu()
pred = apply_probe(resid, linear_probe.cpu())
states = games["states"][:, :59]
occupied = states != BLANK
print(f"probe at layer {PROBE_LAYER}: accuracy {(pred == states).float().mean():.1%}, "
      f"mine vs theirs on occupied squares {(pred == states)[occupied].float().mean():.1%}")

if info:
    per_layer = info["probe"]["per_layer"]
    layers = sorted(per_layer, key=int)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([int(l) for l in layers], [per_layer[l]["accuracy"] for l in layers], "o-", label="probe, 3 options")
    ax.plot([int(l) for l in layers], [per_layer[l]["mine_vs_theirs_accuracy_on_occupied"] for l in layers], "o-",
            label="probe, mine vs theirs (occupied)")
    base = info["probe"]["baselines"]
    ax.axhline(base["majority_class_per_position_and_square"], color="C0", ls=":", label="majority baseline, 3 options")
    ax.axhline(base["mine_vs_theirs_majority_on_occupied_per_position_and_square"], color="C1", ls=":",
               label="majority baseline, mine vs theirs")
    ax.set(xlabel="layer (-1 = embeddings)", ylabel="test accuracy", title="probe accuracy by layer")
    ax.legend(fontsize=7)
    plt.show()
    for l in layers:
        print(f"layer {l:>2}: {per_layer[l]}")
    print("baselines:", base)

# %% [markdown]
# The embeddings alone know little about ownership; the residual stream after the
# middle layers knows much more. The model *computes* the board as it goes.
#
# One game, one position: the true relative board next to the probe's reading.

# %%
g, t = 5, 40
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
oh.plot_board_values(states[g, t].float(), f"truth after move {t}: 1 mine, 2 theirs", ax=axes[0], cmap="viridis",
                     symmetric=False)
oh.plot_board_values(pred[g, t].float(), "probe's reading", ax=axes[1], cmap="viridis", symmetric=False)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Probe directions
#
# The probe has three vectors per square, but only their *differences* matter for
# its prediction (adding the same vector to all three changes no argmax). Two
# differences are natural:
#
# * **blank** direction: `blank - (mine + theirs) / 2`, how much more "empty"
#   than "occupied" the square looks;
# * **mine vs theirs** direction: `mine - theirs`.
#
# **Exercise.** Write `get_probe_directions(linear_probe)` returning
# `(blank_dir, mine_vs_theirs_dir)`, each of shape `(d_model, 8, 8)`, with every
# square's vector normalised to unit length **along `d_model`** (not over the
# whole tensor). Use the constants `BLANK`, `MINE`, `THEIRS`.

# %% id="get_probe_directions" autograder={"exercises": ["get_probe_directions"]}
def get_probe_directions(
    linear_probe: Float[Tensor, "d_model rows cols options"],
) -> tuple[Float[Tensor, "d_model rows cols"], Float[Tensor, "d_model rows cols"]]:
    """(blank_dir, mine_vs_theirs_dir), each unit-normalised along d_model for every square."""
    ### BEGIN SOLUTION
    blank_dir = linear_probe[..., BLANK] - 0.5 * (linear_probe[..., MINE] + linear_probe[..., THEIRS])
    mine_vs_theirs_dir = linear_probe[..., MINE] - linear_probe[..., THEIRS]
    blank_dir = blank_dir / blank_dir.norm(dim=0, keepdim=True)
    mine_vs_theirs_dir = mine_vs_theirs_dir / mine_vs_theirs_dir.norm(dim=0, keepdim=True)
    return blank_dir, mine_vs_theirs_dir
    ### END SOLUTION


# %%
check("get_probe_directions")

# %% [markdown]
# Are the 64 "mine vs theirs" directions independent? The cosine similarities
# between squares show structure: neighbouring squares often share part of their
# direction (flips happen along lines, so their states are correlated).

# %%
blank_dir, mine_vs_theirs_dir = get_probe_directions(linear_probe)
flat = mine_vs_theirs_dir.reshape(model.cfg.d_model, 64).cpu()
plt.figure(figsize=(4.5, 4))
plt.imshow(flat.T @ flat, cmap="RdBu", vmin=-1, vmax=1)
plt.title("cosine similarity of mine-vs-theirs directions", fontsize=9)
plt.xlabel("square")
plt.ylabel("square")
plt.colorbar()
plt.show()

# %% [markdown]
# ## 4. Editing the model's belief about a square
#
# If the model really *uses* this representation, changing it should change the
# model's predictions in the way the changed board implies. Take the residual
# stream at one position and one layer, and its component along a square's
# mine-vs-theirs direction `d` (unit length): `α = x · d`. Replacing `α d` by
# `-scale · α d` moves the point to the other side of the probe's decision
# boundary for that square: the probe (and, we hope, the model) now believes
# the stone belongs to the other player.
#
# **Exercise.** Write `apply_scale(resid, flip_dir, scale, pos)`:
#
# * `resid` is `(batch, pos, d_model)`; `flip_dir` is `(d_model,)`, **not**
#   necessarily unit length (normalise it first);
# * change only position `pos`: `x ← x - (1 + scale) (x · d̂) d̂`;
# * return a new tensor and leave `resid` itself unchanged (clone it). A hook can
#   return the new tensor to replace the activation.

# %% id="apply_scale" autograder={"exercises": ["apply_scale"]}
def apply_scale(
    resid: Float[Tensor, "batch pos d_model"], flip_dir: Float[Tensor, "d_model"], scale: float, pos: int
) -> Float[Tensor, "batch pos d_model"]:
    """A copy of resid where, at position pos, the component along flip_dir is multiplied by -scale."""
    ### BEGIN SOLUTION
    unit = flip_dir / flip_dir.norm()
    out = resid.clone()
    alpha = out[:, pos] @ unit
    out[:, pos] -= (1 + scale) * alpha[:, None] * unit
    return out
    ### END SOLUTION


# %%
check("apply_scale")

# %% [markdown]
# Now the experiment. For a position and an occupied square, the engine tells us
# which moves would become legal ("new") and which would stop being legal
# ("gone") if that one stone had the other colour. We flip the square in the
# model's residual stream at every layer from the probe layer on (each layer
# rewrites some of the board, so one edit is often not enough), and measure how
# much probability moves *towards* the new moves and *away from* the gone ones.
# As a control we push along a random direction instead. Squares are chosen by
# the engine (the first occupied square whose flip changes at least two moves),
# not by hand.

# %%
def flip_effect(g: int, t: int, direction_of, scale: float = 4.0):
    """(shift of probability towards the new and away from the gone moves, square, details) for one position."""
    player = oh.WHITE if t % 2 == 0 else oh.BLACK
    board = games["boards"][g, t].numpy().astype("int8")
    legal_now = oh.legal_moves(board[None], player)[0]
    for square in range(64):
        if board[square] == 0 or square in oh.CENTRE:
            continue
        flipped = board.copy()
        flipped[square] = -flipped[square]
        legal_flipped = oh.legal_moves(flipped[None], player)[0]
        new, gone = legal_flipped & ~legal_now, legal_now & ~legal_flipped
        if new.sum() + gone.sum() >= 2:
            break
    else:
        return None
    d = direction_of(square)
    hooks = [(f"blocks.{l}.hook_resid_post", lambda x, hook: apply_scale(x, d, scale, t))
             for l in range(PROBE_LAYER, model.cfg.n_layers)]
    tokens = games["tokens"][g: g + 1, : t + 1].to(device)
    with torch.no_grad():
        before = model(tokens)[0, -1].softmax(-1).cpu()
        after = model.run_with_hooks(tokens, fwd_hooks=hooks)[0, -1].softmax(-1).cpu()
    on_board = lambda p: torch.zeros(64).index_put_((torch.tensor(oh.TOKEN_TO_SQUARE[1:]),), p[1:])  # noqa: E731
    before, after = on_board(before), on_board(after)
    new, gone = torch.from_numpy(new), torch.from_numpy(gone)
    shift = float((after - before)[new].sum() - (after - before)[gone].sum())
    return shift, square, dict(board=board, legal_now=legal_now, legal_flipped=legal_flipped, before=before, after=after)


gen = torch.Generator().manual_seed(0)
random_dirs = torch.randn(model.cfg.d_model, 64, generator=gen)
probe_effects, random_effects = [], []
for g in range(20):
    t = 30 + 5 * (g % 3)
    probe_effects.append(flip_effect(g, t, lambda s: mine_vs_theirs_dir[:, s // 8, s % 8]))
    random_effects.append(flip_effect(g, t, lambda s: random_dirs[:, s].to(device)))
print(f"mean shift towards the flipped board's legal moves: probe direction {sum(e[0] for e in probe_effects) / 20:+.3f}, "
      f"random direction {sum(e[0] for e in random_effects) / 20:+.3f}")

best = max(range(20), key=lambda i: probe_effects[i][0])
shift, square, d = probe_effects[best]
print(f"largest shift of the 20 (game {best}): {shift:+.3f}, flipping {oh.SQUARE_LABELS[square]}")
fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
oh.plot_board_values(torch.from_numpy(d["legal_now"]).float(), "legal now", ax=axes[0], cmap="Greens", symmetric=False,
                     boards=d["board"])
oh.plot_board_values(d["before"], "model, clean", ax=axes[1], cmap="Greens", symmetric=False)
oh.plot_board_values(torch.from_numpy(d["legal_flipped"]).float(), f"legal if {oh.SQUARE_LABELS[square]} flipped",
                     ax=axes[2], cmap="Greens", symmetric=False)
oh.plot_board_values(d["after"], "model, edited", ax=axes[3], cmap="Greens", symmetric=False)
plt.tight_layout()
plt.show()

# %% [markdown]
# On the public OthelloGPT the edited predictions follow the flipped board
# closely. The small lite model follows it only weakly: when this notebook was
# written, the mean shift along the probe direction was about +0.12 of
# probability mass (against about 0 for random directions), with large
# differences between positions. Its mine/theirs representation is weaker (72%
# probe accuracy) and partly non-linear, so a linear edit moves its beliefs only
# part of the way. Try other scales and other layer ranges: too large a scale
# pushes the residual stream off the distribution the model was trained on.
#
# ## 5. Which layers write the board?
#
# The residual stream is a sum: embeddings, plus each layer's attention output,
# plus each layer's MLP output. So the probe score along a direction is a sum of
# contributions, one per component. The cache holds every layer's attention output
# at `blocks.{layer}.hook_attn_out` and MLP output at `blocks.{layer}.hook_mlp_out`,
# each `(batch, pos, d_model)`.
#
# **Exercise.** Write `calculate_attn_and_mlp_probe_score_contributions(model, cache, probe_dir)`:
# for a single direction `probe_dir` of shape `(d_model,)`, return
# `(attn_contributions, mlp_contributions)`, each `(n_layers, batch, pos)`: the dot
# product of each layer's output with `probe_dir` **as given** (do not normalise
# it). Index the cache by the full hook names above (the grader passes a plain
# `dict` from hook names to tensors).

# %% id="probe_score_contributions" autograder={"exercises": ["probe_score_contributions"]}
def calculate_attn_and_mlp_probe_score_contributions(
    model: HookedTransformer, cache, probe_dir: Float[Tensor, "d_model"]
) -> tuple[Float[Tensor, "layer batch pos"], Float[Tensor, "layer batch pos"]]:
    """Each layer's attention and MLP output, projected onto probe_dir."""
    ### BEGIN SOLUTION
    attn_out = torch.stack([cache[f"blocks.{layer}.hook_attn_out"] for layer in range(model.cfg.n_layers)])
    mlp_out = torch.stack([cache[f"blocks.{layer}.hook_mlp_out"] for layer in range(model.cfg.n_layers)])
    return attn_out @ probe_dir, mlp_out @ probe_dir
    ### END SOLUTION


# %%
check("probe_score_contributions")

# %% [markdown]
# **Exercise.** Write `calculate_accumulated_probe_score(model, cache, probe_dirs)`:
# the score of *every* square's direction (`probe_dirs` is `(d_model, 8, 8)`) on
# the residual stream as it accumulates: index `0` is the embeddings
# (`blocks.0.hook_resid_pre`), index `l + 1` is the stream after layer `l`
# (`blocks.{l}.hook_resid_post`). Shape `(n_layers + 1, batch, pos, 8, 8)`.
# Again no normalisation.
#
# Each step of this accumulated score is the sum of the two contributions above:
# `acc[l + 1] - acc[l] = attn[l] + mlp[l]` for one square.

# %% id="accumulated_probe_score" autograder={"exercises": ["accumulated_probe_score"]}
def calculate_accumulated_probe_score(
    model: HookedTransformer, cache, probe_dirs: Float[Tensor, "d_model rows cols"]
) -> Float[Tensor, "layer_plus_1 batch pos rows cols"]:
    """Every square's probe score on the residual stream: embeddings, then after each layer."""
    ### BEGIN SOLUTION
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)]
    stream = torch.stack([cache[name] for name in names])
    return einops.einsum(stream, probe_dirs, "layer batch pos d_model, d_model rows cols -> layer batch pos rows cols")
    ### END SOLUTION


# %%
check("accumulated_probe_score")

# %% [markdown]
# Let's see who writes "mine vs theirs" for the square just played. Right after
# a move, the square just played holds a stone of the player who just moved, so
# it is "theirs" for the player to move: the score should be strongly negative.
# Which components make it so? We average over games, at the position where the
# square was played, with the sign flipped so that "correct" is positive.

# %%
plain_cache = {name: cache[name].cpu() for name in cache.keys()}
contrib_attn, contrib_mlp, acc_scores = [], [], []
for g in range(16):
    for t in (20, 30, 40):
        s = int(games["squares"][g, t])
        d = mine_vs_theirs_dir[:, s // 8, s % 8].cpu()
        one = {k: v[g: g + 1, t: t + 1] for k, v in plain_cache.items()}
        a, m = calculate_attn_and_mlp_probe_score_contributions(model, one, d)
        contrib_attn.append(-a[:, 0, 0])
        contrib_mlp.append(-m[:, 0, 0])
        acc_scores.append(-calculate_accumulated_probe_score(model, one, mine_vs_theirs_dir.cpu())[:, 0, 0, s // 8, s % 8])
contrib_attn, contrib_mlp = torch.stack(contrib_attn).mean(0), torch.stack(contrib_mlp).mean(0)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3))
x = torch.arange(model.cfg.n_layers)
ax1.bar(x - 0.2, contrib_attn, 0.4, label="attention")
ax1.bar(x + 0.2, contrib_mlp, 0.4, label="MLP")
ax1.set(xlabel="layer", ylabel="'theirs' score", title="who writes 'theirs' on the square just played")
ax1.legend()
ax2.plot(torch.stack(acc_scores).mean(0), "o-")
ax2.set(xlabel="0 = embeddings, l+1 = after layer l", ylabel="'theirs' score", title="accumulated score")
plt.tight_layout()
plt.show()

# %% [markdown]
# The square just played is easy: its token is right there in the input, so the
# embedding and the first layers can write it. Flipped stones are harder: the
# model must work out, from the whole history, that a line was closed. You can
# repeat the plot for the squares flipped by the last move (`games["boards"]`
# tells you which ones changed colour) and see those written later.
#
# ## 6. Neurons and the board
#
# A neuron in layer `l` reads the residual stream through its input weights
# `W_in[l][:, n]` (shape `(d_model,)`) and writes to it through its output
# weights `W_out[l][n, :]` (shape `(d_model,)`). Comparing these with the probe
# directions tells us what a neuron reads and writes *in board terms*.
#
# **Exercise.** Write `get_w_in(model, layer, neuron, normalize)` and
# `get_w_out(model, layer, neuron, normalize)`: the neuron's input and output
# weight vectors, detached, divided by their norm if `normalize` is true.
# (`model.W_in` is `(n_layers, d_model, d_mlp)`, `model.W_out` is
# `(n_layers, d_mlp, d_model)`.)

# %% id="neuron_weights" autograder={"exercises": ["neuron_weights"]}
def get_w_in(model: HookedTransformer, layer: int, neuron: int, normalize: bool = False) -> Float[Tensor, "d_model"]:
    """The input weights of a neuron (optionally unit length)."""
    ### BEGIN SOLUTION
    w_in = model.W_in[layer, :, neuron].detach().clone()
    if normalize:
        w_in = w_in / w_in.norm()
    return w_in
    ### END SOLUTION


def get_w_out(model: HookedTransformer, layer: int, neuron: int, normalize: bool = False) -> Float[Tensor, "d_model"]:
    """The output weights of a neuron (optionally unit length)."""
    ### BEGIN SOLUTION
    w_out = model.W_out[layer, neuron, :].detach().clone()
    if normalize:
        w_out = w_out / w_out.norm()
    return w_out
    ### END SOLUTION


# %%
check("neuron_weights")

# %% [markdown]
# **Exercise.** Write `calculate_neuron_input_weights(model, probe_dirs, layer, neuron)`
# and `calculate_neuron_output_weights(...)`: for unit probe directions
# `probe_dirs` of shape `(d_model, 8, 8)` (as from `get_probe_directions`), the
# cosine similarity between the neuron's (normalised) input or output weights and
# each square's direction, as an `(8, 8)` board. Use your `get_w_in` / `get_w_out`.

# %% id="neuron_probe_weights" autograder={"exercises": ["neuron_probe_weights"]}
def calculate_neuron_input_weights(
    model: HookedTransformer, probe_dirs: Float[Tensor, "d_model rows cols"], layer: int, neuron: int
) -> Float[Tensor, "rows cols"]:
    """Cosine similarity of the neuron's input weights with each square's probe direction."""
    ### BEGIN SOLUTION
    w_in = get_w_in(model, layer, neuron, normalize=True)
    return einops.einsum(w_in, probe_dirs, "d_model, d_model rows cols -> rows cols")
    ### END SOLUTION


def calculate_neuron_output_weights(
    model: HookedTransformer, probe_dirs: Float[Tensor, "d_model rows cols"], layer: int, neuron: int
) -> Float[Tensor, "rows cols"]:
    """Cosine similarity of the neuron's output weights with each square's probe direction."""
    ### BEGIN SOLUTION
    w_out = get_w_out(model, layer, neuron, normalize=True)
    return einops.einsum(w_out, probe_dirs, "d_model, d_model rows cols -> rows cols")
    ### END SOLUTION


# %%
check("neuron_probe_weights")

# %% [markdown]
# Which neuron to look at? Not one picked by hand: we take, in the layer after
# the probe layer (or the last layer), the neuron whose output weights line up
# best with any square's **blank** direction. Such a neuron, when it fires,
# tells the residual stream "this square is (not) empty". Its input weights,
# against the mine-vs-theirs directions, show what board pattern it reads.

# %%
layer = min(PROBE_LAYER + 1, model.cfg.n_layers - 1)
w_out_all = model.W_out[layer].detach().cpu()
w_out_all = w_out_all / w_out_all.norm(dim=-1, keepdim=True)
cos = einops.einsum(w_out_all, blank_dir.cpu(), "n d, d r c -> n r c").abs().flatten(1).max(-1).values
neuron = int(cos.argmax())
print(f"layer {layer}, neuron {neuron}: max |cos| of output weights with a blank direction = {cos[neuron]:.2f}"
      f" (median neuron: {cos.median():.2f})")
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
oh.plot_board_values(calculate_neuron_input_weights(model, blank_dir, layer, neuron), "input · blank", ax=axes[0])
oh.plot_board_values(calculate_neuron_input_weights(model, mine_vs_theirs_dir, layer, neuron), "input · mine-vs-theirs",
                     ax=axes[1])
oh.plot_board_values(calculate_neuron_output_weights(model, blank_dir, layer, neuron), "output · blank", ax=axes[2])
plt.tight_layout()
plt.show()

# %% [markdown]
# Random vectors in 128 dimensions have cosine similarities around ±0.09 with a
# fixed direction, so values well above that are structure, not noise.
#
# ## 7. Activation patching
#
# Take two prefixes of the same game that differ in **one move**: the *clean*
# one, and a *corrupted* one where another legal move was played at position
# `T`, followed by the same few moves as the clean game (still legal). Some
# square is a legal next move after the clean prefix but not after the corrupted
# one. `oh.patching_pair(squares)` finds such a pair and such a `target` move in a
# game, with the engine. Run the corrupted prefix, but copy in one activation
# from the clean run: how much of the clean log-probability of `target` comes
# back? That says how much of the information about the changed move flows
# through that activation.
#
# **Exercise.** Write `patching_metric(patched_logits, target, clean_log_prob, corrupted_log_prob)`:
# take the log-probability (log-softmax over the vocabulary) of token `target` at
# the **last** position, averaged over the batch, and scale it so that the
# corrupted value gives 0 and the clean value gives 1:
# `(patched - corrupted) / (clean - corrupted)`. Return a 0-dimensional tensor.

# %% id="patching_metric" autograder={"exercises": ["patching_metric"]}
def patching_metric(
    patched_logits: Float[Tensor, "batch pos d_vocab"], target: int, clean_log_prob: float, corrupted_log_prob: float
) -> Float[Tensor, ""]:
    """0 when the target's log-prob equals the corrupted run's, 1 when it equals the clean run's."""
    ### BEGIN SOLUTION
    patched_log_prob = patched_logits[:, -1].log_softmax(dim=-1)[:, target].mean()
    return (patched_log_prob - corrupted_log_prob) / (clean_log_prob - corrupted_log_prob)
    ### END SOLUTION


# %%
check("patching_metric")

# %% [markdown]
# **Exercise.** Write `get_act_patch_resid_pre(model, corrupted_input, clean_cache, patching_metric)`,
# the classic residual-stream patching scan (TransformerLens has a function of
# the same name in `transformer_lens.patching`; write your own). For every layer
# `l` and every position `p`, run `corrupted_input` with a hook on
# `blocks.{l}.hook_resid_pre` (the stream *entering* layer `l`) that replaces the
# activation **at position `p` only** with the clean one
# (`clean_cache[hook.name][:, p]`), and record `patching_metric(patched_logits)`;
# here `patching_metric` is a function of the logits alone (e.g. a
# `functools.partial` of yours). Return the `(n_layers, seq_len)` results.
#
# Pitfalls: each run must have only its own hook (`model.run_with_hooks` removes
# its hooks afterwards; `model.add_hook` does not), and a hook defined in a loop
# must use the loop's *current* position (pass it as an argument or with
# `functools.partial`, not as a free variable read later).

# %% id="get_act_patch_resid_pre" autograder={"exercises": ["get_act_patch_resid_pre"]}
def get_act_patch_resid_pre(
    model: HookedTransformer,
    corrupted_input: Int[Tensor, "batch pos"],
    clean_cache,
    patching_metric: Callable[[Tensor], Tensor],
) -> Float[Tensor, "layer pos"]:
    """The patching metric after patching resid_pre of each (layer, position) with the clean activation."""
    ### BEGIN SOLUTION
    n_layers, seq_len = model.cfg.n_layers, corrupted_input.shape[1]
    results = torch.zeros(n_layers, seq_len, device=model.cfg.device)

    def patch_position(activation, hook, pos):
        activation[:, pos] = clean_cache[hook.name][:, pos]
        return activation

    for layer in range(n_layers):
        for pos in range(seq_len):
            hook_fn = functools.partial(patch_position, pos=pos)
            patched_logits = model.run_with_hooks(corrupted_input, fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", hook_fn)])
            results[layer, pos] = patching_metric(patched_logits)
    return results
    ### END SOLUTION


# %%
check("get_act_patch_resid_pre")

# %% [markdown]
# Read the picture below as information flow. At layer 0 only position `T` (the
# changed move) matters: patching it restores the clean run exactly, and every
# other position is identical in both runs (same tokens, and nothing has been
# mixed between positions yet). From layer 1 on, attention has already copied
# what the changed move implies into later positions, so patching position `T`
# alone restores less and less, and the positions after `T` start to matter. In
# the lite model most of it lands directly on the **final** position in layer 0's
# attention: from layer 1 on, patching the final position alone restores nearly
# the whole clean prediction, and the positions in between matter little. (Larger
# models spread this over more positions and layers.)

# %%
pair = oh.patching_pair(games["squares"][0])
with torch.no_grad():
    clean_logits, clean_cache = model.run_with_cache(pair["clean"].to(device))
    corrupted_logits = model(pair["corrupted"].to(device))
clean_lp = float(clean_logits[0, -1].log_softmax(-1)[pair["target"]])
corrupted_lp = float(corrupted_logits[0, -1].log_softmax(-1)[pair["target"]])
print(f"log-prob of target {oh.SQUARE_LABELS[oh.TOKEN_TO_SQUARE[pair['target']]]}: clean {clean_lp:.2f}, "
      f"corrupted {corrupted_lp:.2f}; the moves differ at position {pair['T']}")
metric = functools.partial(patching_metric, target=pair["target"], clean_log_prob=clean_lp, corrupted_log_prob=corrupted_lp)
with torch.no_grad():
    scan = get_act_patch_resid_pre(model, pair["corrupted"].to(device), clean_cache, metric).cpu()

fig, axes = plt.subplots(1, 3, figsize=(15, 3.4), gridspec_kw=dict(width_ratios=[2, 1, 1]))
im = axes[0].imshow(scan, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
axes[0].set(xlabel="position", ylabel="layer (resid_pre)", title="patching metric")
axes[0].axvline(pair["T"], color="k", lw=0.5, ls=":")
plt.colorbar(im, ax=axes[0])
oh.plot_board_values(torch.as_tensor(pair["clean_board"]).float(), "clean board", ax=axes[1], boards=pair["clean_board"])
oh.plot_board_values(torch.as_tensor(pair["corrupted_board"]).float(), "corrupted board", ax=axes[2],
                     boards=pair["corrupted_board"])
plt.tight_layout()
plt.show()

# %% [markdown]
# Which *components* move that information to the final position? Patch the
# output of each layer's attention and MLP, at the final position only.
#
# **Exercise.** Write the hook `patch_final_move_output(activation, hook, clean_cache)`:
# replace the activation at the **final position only** with the clean run's
# activation at the same hook (`clean_cache[hook.name]`, same shape), and return
# it. Earlier positions must stay as they are.

# %% id="patch_final_move_output" autograder={"exercises": ["patch_final_move_output"]}
def patch_final_move_output(
    activation: Float[Tensor, "batch pos d_model"], hook: HookPoint, clean_cache
) -> Float[Tensor, "batch pos d_model"]:
    """Hook: the clean activation at the last position, the activation's own elsewhere."""
    ### BEGIN SOLUTION
    activation[:, -1] = clean_cache[hook.name][:, -1]
    return activation
    ### END SOLUTION


# %%
check("patch_final_move_output")

# %% [markdown]
# Averaged over several game pairs: a large value means that component, at the
# final position, carries much of the difference between the two games.

# %%
results = {"attn_out": [], "mlp_out": []}
for g in range(8):
    pair = oh.patching_pair(games["squares"][g])
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(pair["clean"].to(device))
        corrupted_logits = model(pair["corrupted"].to(device))
    clean_lp = float(clean_logits[0, -1].log_softmax(-1)[pair["target"]])
    corrupted_lp = float(corrupted_logits[0, -1].log_softmax(-1)[pair["target"]])
    hook_fn = functools.partial(patch_final_move_output, clean_cache=clean_cache)
    for kind in results:
        row = []
        for layer in range(model.cfg.n_layers):
            with torch.no_grad():
                patched = model.run_with_hooks(pair["corrupted"].to(device), fwd_hooks=[(f"blocks.{layer}.hook_{kind}", hook_fn)])
            row.append(float(patching_metric(patched, pair["target"], clean_lp, corrupted_lp)))
        results[kind].append(row)
plt.figure(figsize=(6, 3))
for kind, rows in results.items():
    plt.plot(torch.tensor(rows).mean(0), "o-", label=kind)
plt.xlabel("layer")
plt.ylabel("patching metric (mean of 8 pairs)")
plt.title("patching one component's output at the final position", fontsize=9)
plt.legend()
plt.show()

# %% [markdown]
# ## 8. Training a linear probe
#
# The shipped probes were trained by `assets/train_lite.py` with the recipe you
# now write. A probe is a parameter of shape `(d_model, 8, 8, 3)`; its logits for
# a batch of residual vectors are `(batch, 8, 8, 3)`; the loss is the
# cross-entropy against the true options, **averaged over every square of every
# example** (so the loss of a uniform guess is `log 3`, whatever the batch size).
#
# **Exercise.** Complete `LinearProbeTrainer`:
#
# * `loss(resid, states)`: `resid` is `(batch, d_model)`, `states` is
#   `(batch, 8, 8)` with values `0/1/2`; return the mean cross-entropy as a
#   0-dimensional tensor that gradients flow through to `self.probe`.
# * `train_step(resid, states)`: one step of `self.optimizer` on that loss;
#   return the loss *before* the step as a Python float. Remember that PyTorch
#   accumulates gradients.
#
# Keep `__init__` as it is: the grader builds your trainer with it.

# %% id="linear_probe_trainer" autograder={"exercises": ["linear_probe_trainer"]}
class LinearProbeTrainer:
    """A linear probe from the residual stream to blank/mine/theirs for every square, and its optimiser."""

    def __init__(self, d_model: int, lr: float = 1e-2, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.probe = torch.nn.Parameter(torch.randn(d_model, 8, 8, 3, generator=gen) / math.sqrt(d_model))
        self.optimizer = torch.optim.Adam([self.probe], lr=lr)

    def loss(self, resid: Float[Tensor, "batch d_model"], states: Int[Tensor, "batch rows cols"]) -> Float[Tensor, ""]:
        """Mean cross-entropy of the probe's predictions over every square of every example."""
        ### BEGIN SOLUTION
        probe_logits = einops.einsum(resid, self.probe, "batch d_model, d_model rows cols options -> batch rows cols options")
        log_probs = probe_logits.log_softmax(dim=-1)
        correct = log_probs.gather(-1, states[..., None].long())[..., 0]
        return -correct.mean()
        ### END SOLUTION

    def train_step(self, resid: Float[Tensor, "batch d_model"], states: Int[Tensor, "batch rows cols"]) -> float:
        """One optimiser step; returns the loss before the step."""
        ### BEGIN SOLUTION
        loss = self.loss(resid, states)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()
        ### END SOLUTION


# %%
check("linear_probe_trainer")

# %% [markdown]
# Train a probe on the residual stream after the probe layer for 48 of our games,
# and test it on the other 16. A few hundred steps get close to the shipped probe
# (which saw 1500 games for 1500 steps). Try other layers: the accuracy by layer
# should look like the plot in section 2.

# %%
resid_all = cache[f"blocks.{PROBE_LAYER}.hook_resid_post"].cpu()
x_train, y_train = resid_all[:48].reshape(-1, model.cfg.d_model), states[:48].reshape(-1, 8, 8)
x_test, y_test = resid_all[48:], states[48:]
trainer = LinearProbeTrainer(model.cfg.d_model, lr=1e-2, seed=0)
gen = torch.Generator().manual_seed(0)
losses = []
for step in range(400):
    idx = torch.randint(0, x_train.shape[0], (512,), generator=gen)
    losses.append(trainer.train_step(x_train[idx], y_train[idx]))
my_pred = apply_probe(x_test, trainer.probe.detach())
print(f"your probe: test accuracy {(my_pred == y_test).float().mean():.1%}, "
      f"mine vs theirs on occupied {(my_pred == y_test)[y_test != BLANK].float().mean():.1%}")
plt.figure(figsize=(5, 3))
plt.plot(losses)
plt.axhline(math.log(3), color="grey", ls=":", label="uniform guess (log 3)")
plt.xlabel("step")
plt.ylabel("loss")
plt.legend()
plt.show()

# %% [markdown]
# ## Summary
#
# * A model trained only to predict legal moves keeps a board in its residual
#   stream, readable by a *linear* probe, in terms of *mine* and *theirs*.
# * The probe's weights are directions. Projecting layer outputs onto them shows
#   where the board is written; projecting neuron weights shows what single
#   neurons read and write.
# * Editing the residual stream along a direction changes the model's predicted
#   moves the way the edited board implies: the representation is *used*, not
#   just present.
# * Activation patching between games that differ in one move traces where the
#   information about that move travels.
