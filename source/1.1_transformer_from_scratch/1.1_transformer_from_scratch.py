# %% [markdown]
# # 1.1 Transformers from Scratch
#
# In this notebook you build a GPT-2-style language model yourself, one module
# at a time: layer normalisation, token and position embeddings, causal
# self-attention, the MLP, the transformer block, the unembedding, and finally
# the whole model. You then load real trained weights into *your* model and
# check that it makes exactly the same predictions as a reference
# implementation (TransformerLens's `HookedTransformer`).
#
# **How to run it.** Everything works offline on a CPU. By default the notebook
# uses the *lite* profile: a tiny 2-layer GPT-2-shaped model (d_model = 64,
# 4 heads, a vocabulary of under a thousand tokens) trained on simple stories and
# shipped with the assignment in `assets/lite/`. Its shapes are small, but the
# architecture is exactly GPT-2's, so every line of code you write also works
# for the real thing. To use the real GPT-2 small instead, start Jupyter with
# `AUTOGRADER_PROFILE=full`; this needs the `gpt2` weights in your local
# Hugging Face cache and about 2.5 GB of (GPU or CPU) memory.
#
# **How long.** With the lite profile, all code cells together run in under
# 5 minutes on a laptop CPU; most of your time goes into thinking, not waiting.
#
# **How to check your work.** Each exercise is followed by a cell such as
# `check("layernorm")`. It runs a few public tests against your code (shapes,
# comparisons with PyTorch built-ins and with TransformerLens on the same
# weights) and prints ✓ or an explanation of what is wrong. Passing the public
# checks is a good sign, not a guarantee: grading runs more thorough hidden tests.
#
# Write your code between the lines marked for you; keep the signatures as they
# are, since the grader calls your classes and methods by these names.

# %% autograder={"role": "setup"}
import math
from dataclasses import dataclass

import einops
import torch
import torch.nn as nn
from jaxtyping import Float, Int
from torch import Tensor

from public_tests import check
from tfs_helpers import PROFILE, gelu_new, load_tokenizer

tokenizer = load_tokenizer(PROFILE)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Config:
    d_model: int = 768
    debug: bool = True
    layer_norm_eps: float = 1e-5
    d_vocab: int = 50257
    init_range: float = 0.02
    n_ctx: int = 1024
    d_head: int = 64
    d_mlp: int = 3072
    n_heads: int = 12
    n_layers: int = 12


# %% [markdown]
# ## 0. The model we are about to rebuild
#
# Before writing anything, let's look at a working model. `load_hooked_gpt2`
# loads the profile's GPT-2 as a TransformerLens `HookedTransformer`: the lite
# model by default, GPT-2 small with `AUTOGRADER_PROFILE=full`. `config_kwargs`
# reads its hyperparameters into our `Config` (the defaults of `Config` are
# GPT-2 small's).

# %%
from tfs_helpers import config_kwargs, demo_state_dict, load_hooked_gpt2

reference_gpt2 = load_hooked_gpt2(PROFILE, device=str(device))
cfg = Config(**config_kwargs(reference_gpt2))
print(f"profile: {PROFILE}")
print(cfg)

# %% [markdown]
# ### Tokens
#
# A language model never sees characters. The tokenizer cuts text into
# *tokens* (frequent chunks of bytes) and maps each to an integer id in
# `range(d_vocab)`. GPT-2 uses the same id, `<|endoftext|>`, both to separate
# documents and as a "beginning of sequence" (BOS) token; we put it at the start
# of every prompt so the model knows where the text begins. Common words are
# single tokens (usually with their leading space); rarer ones are cut into
# pieces. The lite tokenizer has a much smaller vocabulary than GPT-2's, so it
# cuts more often.

# %%
text = "Once upon a time, there was a little cat."
token_ids = [tokenizer.bos_token_id] + tokenizer.encode(text)
print(token_ids)
print([tokenizer.decode([t]) for t in token_ids])
print(f"{len(text)} characters became {len(token_ids)} tokens (the first is BOS)")

# %% [markdown]
# ### Logits
#
# The model maps a batch of token ids, shape `(batch, seq_len)`, to **logits**
# of shape `(batch, seq_len, d_vocab)`: at every position, an unnormalised score
# for each possible *next* token. Because of the causal mask (section 4), the
# prediction at position `i` only depends on tokens `0..i`, so a single forward
# pass gives `seq_len` predictions at once, which is what makes training
# efficient.

# %%
tokens = torch.tensor([token_ids], device=device)
with torch.no_grad():
    logits = reference_gpt2(tokens)
print("tokens:", tuple(tokens.shape), " logits:", tuple(logits.shape))

predicted = logits[0].argmax(dim=-1)
for i in range(len(token_ids) - 1):
    seen = tokenizer.decode(token_ids[: i + 1]).replace("<|endoftext|>", "")
    print(f"{seen!r:>45} -> predicts {tokenizer.decode([int(predicted[i])])!r}")

# %% [markdown]
# ### Parameters and activations
#
# Here are the shapes of all the parameters we will have to create. Note the
# TransformerLens conventions we adopt: attention weights have an explicit head
# dimension (`W_Q` is `(n_heads, d_model, d_head)`), and weights are stored as
# `(d_in, d_out)`, so a layer computes `x @ W + b`.

# %%
for name, param in reference_gpt2.named_parameters():
    if ".0." in name or "blocks" not in name:  # one block is enough
        print(f"{name:28} {tuple(param.shape)}")

# %% [markdown]
# `run_with_cache` runs the model and records every intermediate activation.
# We'll use these activations to compare against our own modules as we build
# them.

# %%
with torch.no_grad():
    _, cache = reference_gpt2.run_with_cache(tokens)
for name, act in cache.items():
    if ".0." in name or "blocks" not in name:
        print(f"{name:36} {tuple(act.shape)}")

# %% [markdown]
# The whole model, which you will now rebuild:
#
# ```
# tokens ─► embed + pos_embed ─► residual stream (batch, seq, d_model)
#            for each block:   resid = resid + attn(ln1(resid))
#                              resid = resid + mlp(ln2(resid))
#           ln_final ─► unembed ─► logits (batch, seq, d_vocab)
# ```
#
# The **residual stream** is the central object: every block reads from it and
# *adds* its output back. Nothing overwrites it.

# %% [markdown]
# ## 1. LayerNorm
#
# LayerNorm makes each position's residual vector have mean 0 and variance 1
# over `d_model`, and then applies a learned elementwise scale `w` and shift
# `b`:
#
# $$\mathrm{LN}(x) = \frac{x - \mathrm{mean}(x)}{\sqrt{\mathrm{var}(x) + \varepsilon}} \cdot w + b$$
#
# Things that are easy to get wrong:
# - normalise over the **last** dimension only (each position separately);
# - the variance is the *biased* one (divide by `d_model`, not `d_model - 1`);
#   `torch.var` is unbiased unless told otherwise;
# - `ε` (`cfg.layer_norm_eps`) goes **inside** the square root. It only matters
#   when the variance is tiny, which is exactly when it must be right.

# %% id="layernorm" autograder={"exercises": ["layernorm"]}
class LayerNorm(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.w = nn.Parameter(torch.ones(cfg.d_model))
        self.b = nn.Parameter(torch.zeros(cfg.d_model))

    def forward(self, residual: Float[Tensor, "batch posn d_model"]) -> Float[Tensor, "batch posn d_model"]:
        """Normalise each position over d_model, then scale by w and shift by b."""
        ### BEGIN SOLUTION
        mean = residual.mean(dim=-1, keepdim=True)
        centred = residual - mean
        variance = centred.pow(2).mean(dim=-1, keepdim=True)
        scaled = centred / (variance + self.cfg.layer_norm_eps).sqrt()
        return scaled * self.w + self.b
        ### END SOLUTION


# %%
check("layernorm")

# %% [markdown]
# On the real residual stream: whatever the scale of the vectors entering
# block 0, after `ln1` (here, your `LayerNorm` with the reference's `ln1`
# weights) each position's vector has a spread of about 1, up to the learned
# scale `w`. Downstream layers then never have to cope with inputs whose size
# drifts from position to position or from layer to layer.

# %%
ln = LayerNorm(cfg).to(device)
ln.load_state_dict(reference_gpt2.blocks[0].ln1.state_dict())
with torch.no_grad():
    resid = cache["blocks.0.hook_resid_pre"]
    normalised = ln(resid)
    difference = (normalised - reference_gpt2.blocks[0].ln1(resid)).abs().max().item()
print("std over d_model of the first positions, before:", resid[0, :6].std(dim=-1).cpu().numpy().round(3))
print("std over d_model of the first positions, after: ", normalised[0, :6].std(dim=-1).cpu().numpy().round(3))
print("max abs difference from TransformerLens's ln1:", difference)

# %% [markdown]
# ## 2. Token embedding
#
# The embedding is a lookup table `W_E` of shape `(d_vocab, d_model)`: token id
# `t` becomes row `t`. (Mathematically this is multiplying a one-hot vector by
# `W_E`, but indexing is far cheaper.) PyTorch's advanced indexing does the
# lookup for a whole `(batch, seq_len)` tensor of ids at once.

# %% id="embed" autograder={"exercises": ["embed"]}
class Embed(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.W_E = nn.Parameter(torch.empty((cfg.d_vocab, cfg.d_model)))
        nn.init.normal_(self.W_E, std=self.cfg.init_range)

    def forward(self, tokens: Int[Tensor, "batch position"]) -> Float[Tensor, "batch position d_model"]:
        """The embedding vector of each token id."""
        ### BEGIN SOLUTION
        return self.W_E[tokens]
        ### END SOLUTION


# %%
check("embed")

# %% [markdown]
# ## 3. Positional embedding
#
# Attention by itself is blind to order: it treats its input as a set. GPT-2
# fixes this with a *learned* positional embedding `W_pos` of shape
# `(n_ctx, d_model)`: position `i` (counting from 0) adds row `i` to the
# residual stream. The output depends on the tokens' **positions only**, not on
# their values, and is the same for every sequence in the batch: return shape
# `(batch, seq_len, d_model)` (`einops.repeat` or `expand` help).

# %% id="pos_embed" autograder={"exercises": ["pos_embed"]}
class PosEmbed(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.W_pos = nn.Parameter(torch.empty((cfg.n_ctx, cfg.d_model)))
        nn.init.normal_(self.W_pos, std=self.cfg.init_range)

    def forward(self, tokens: Int[Tensor, "batch position"]) -> Float[Tensor, "batch position d_model"]:
        """The positional embedding of each position, repeated over the batch."""
        ### BEGIN SOLUTION
        batch, seq_len = tokens.shape
        rows = self.W_pos[:seq_len]
        return einops.repeat(rows, "posn d_model -> batch posn d_model", batch=batch)
        ### END SOLUTION


# %%
check("pos_embed")

# %% [markdown]
# A picture of the learned position embeddings: the cosine similarity between
# the embeddings of every pair of positions. Nearby positions get similar
# vectors, which is how the model can tell "recent" from "long ago".

# %%
import matplotlib.pyplot as plt

with torch.no_grad():
    w_pos = reference_gpt2.pos_embed.W_pos.detach().cpu()
    unit = w_pos / w_pos.norm(dim=-1, keepdim=True)
    similarity = unit @ unit.T
plt.figure(figsize=(4.5, 4))
plt.imshow(similarity, cmap="RdBu", vmin=-1, vmax=1)
plt.colorbar(label="cosine similarity")
plt.xlabel("position")
plt.ylabel("position")
plt.title("Learned positional embeddings")
plt.show()

# %% [markdown]
# ## 4. Attention
#
# Attention is the only place where information moves **between positions**.
# Each head does the following, for every query position `q` and key position
# `k` (all heads at once, using the head dimension of the weights):
#
# 1. queries, keys and values: `q = x W_Q + b_Q`, `k = x W_K + b_K`,
#    `v = x W_V + b_V`, each of shape `(batch, posn, n_heads, d_head)`;
# 2. attention scores: the dot product of each query with each key, divided by
#    `sqrt(d_head)` (so the scores don't grow with the head size and the
#    softmax doesn't saturate), shape `(batch, n_heads, query_pos, key_pos)`;
# 3. the **causal mask**: a position may only look at itself and earlier
#    positions, so scores of later keys are set to a huge negative number
#    (`self.IGNORE`) before the softmax, which makes their probability 0;
# 4. the attention pattern: softmax over the **key** dimension (the last one),
#    so that for every query the weights over keys sum to 1;
# 5. `z`: the pattern-weighted average of the values, `(batch, posn, n_heads, d_head)`;
# 6. the output: each head's `z` is mapped back with `W_O` and the heads'
#    results are **summed**, plus `b_O`: shape `(batch, posn, d_model)`.
#
# Two exercises in one class: first `apply_causal_mask`, then `forward`, which
# must call `self.apply_causal_mask`. In this section the scores are square
# (`query_pos == key_pos`). If you like, also handle fewer queries than keys,
# which happens with the KV cache at the end of the notebook: the queries are
# then the *last* `query_pos` positions.
#
# Pitfalls: masking off by one (the diagonal, "a token attends to itself",
# must stay unmasked), softmax over the wrong dimension, forgetting the
# `1/sqrt(d_head)` scale, forgetting `b_O`. `einops.einsum` with named
# dimensions makes the shape bookkeeping much easier to get right.

# %% id="attention" autograder={"exercises": ["apply_causal_mask", "attention_forward"]}
class Attention(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.W_Q = nn.Parameter(torch.empty((cfg.n_heads, cfg.d_model, cfg.d_head)))
        self.W_K = nn.Parameter(torch.empty((cfg.n_heads, cfg.d_model, cfg.d_head)))
        self.W_V = nn.Parameter(torch.empty((cfg.n_heads, cfg.d_model, cfg.d_head)))
        self.W_O = nn.Parameter(torch.empty((cfg.n_heads, cfg.d_head, cfg.d_model)))
        self.b_Q = nn.Parameter(torch.zeros((cfg.n_heads, cfg.d_head)))
        self.b_K = nn.Parameter(torch.zeros((cfg.n_heads, cfg.d_head)))
        self.b_V = nn.Parameter(torch.zeros((cfg.n_heads, cfg.d_head)))
        self.b_O = nn.Parameter(torch.zeros((cfg.d_model,)))
        for weight in (self.W_Q, self.W_K, self.W_V, self.W_O):
            nn.init.normal_(weight, std=self.cfg.init_range)
        # The score given to masked positions. A plain float, not a buffer, so
        # that it is not part of the state dict.
        self.IGNORE = -1e5

    def apply_causal_mask(
        self, attn_scores: Float[Tensor, "batch n_heads query_pos key_pos"]
    ) -> Float[Tensor, "batch n_heads query_pos key_pos"]:
        """Set the scores of keys that come after their query to self.IGNORE."""
        ### BEGIN SOLUTION
        n_query, n_key = attn_scores.shape[-2], attn_scores.shape[-1]
        key_pos = torch.arange(n_key, device=attn_scores.device)
        # With as many queries as keys the offset is 0; with fewer queries (as
        # with a KV cache later on) the queries are the last positions.
        query_pos = torch.arange(n_query, device=attn_scores.device) + (n_key - n_query)
        in_future = key_pos[None, :] > query_pos[:, None]
        return attn_scores.masked_fill(in_future, self.IGNORE)
        ### END SOLUTION

    def forward(
        self, normalized_resid_pre: Float[Tensor, "batch posn d_model"]
    ) -> Float[Tensor, "batch posn d_model"]:
        """Causal multi-head self-attention; the heads' outputs are summed, plus b_O."""
        ### BEGIN SOLUTION
        x = normalized_resid_pre
        q = einops.einsum(x, self.W_Q, "b p d_model, h d_model d_head -> b p h d_head") + self.b_Q
        k = einops.einsum(x, self.W_K, "b p d_model, h d_model d_head -> b p h d_head") + self.b_K
        v = einops.einsum(x, self.W_V, "b p d_model, h d_model d_head -> b p h d_head") + self.b_V
        attn_scores = einops.einsum(q, k, "b p_q h d_head, b p_k h d_head -> b h p_q p_k")
        attn_scores = attn_scores / math.sqrt(self.cfg.d_head)
        attn_pattern = self.apply_causal_mask(attn_scores).softmax(dim=-1)
        z = einops.einsum(attn_pattern, v, "b h p_q p_k, b p_k h d_head -> b p_q h d_head")
        out = einops.einsum(z, self.W_O, "b p_q h d_head, h d_head d_model -> b p_q d_model")
        return out + self.b_O
        ### END SOLUTION


# %%
check("apply_causal_mask")
check("attention_forward")

# %% [markdown]
# Let's load layer 0's attention weights from the reference model into your
# `Attention` and compare its output with the activation TransformerLens
# recorded (`blocks.0.hook_attn_out`) on our sentence. The input is
# `ln1(resid_pre)`; careful, TransformerLens's `ln1.hook_normalized` is recorded
# *before* the scale `w` and shift `b` are applied, so it is not the input.
# Then we plot attention patterns: the lower-triangular shape is the causal
# mask at work, and each head has its own way of spreading attention.

# %%
attn = Attention(cfg).to(device)
attn.load_state_dict({k: v for k, v in reference_gpt2.blocks[0].attn.state_dict().items() if k.startswith(("W_", "b_"))})
with torch.no_grad():
    mine = attn(reference_gpt2.blocks[0].ln1(cache["blocks.0.hook_resid_pre"]))
print("max abs difference from TransformerLens:", (mine - cache["blocks.0.hook_attn_out"]).abs().max().item())

pattern = cache["blocks.0.attn.hook_pattern"][0].cpu()  # (n_heads, query_pos, key_pos)
labels = [tokenizer.decode([t]) for t in token_ids]
n_shown = min(cfg.n_heads, 4)  # GPT-2 small has 12 heads per layer; four are enough to look at
fig, axes = plt.subplots(1, n_shown, figsize=(3.2 * n_shown, 3.4), squeeze=False)
axes = axes[0]
for head, ax in enumerate(axes):
    ax.imshow(pattern[head], cmap="Blues", vmin=0, vmax=1)
    ax.set_title(f"layer 0, head {head}")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("key (attended to)")
axes[0].set_ylabel("query (attending)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. MLP
#
# The MLP acts on each position separately: a linear map up to `d_mlp`
# (4 × `d_model` in GPT-2), a nonlinearity, and a linear map back down.
# GPT-2 uses the tanh approximation of GELU, provided as `gelu_new`
# (`torch.nn.functional.gelu` is the *exact* GELU, which differs slightly).

# %% id="mlp" autograder={"exercises": ["mlp"]}
class MLP(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.W_in = nn.Parameter(torch.empty((cfg.d_model, cfg.d_mlp)))
        self.W_out = nn.Parameter(torch.empty((cfg.d_mlp, cfg.d_model)))
        self.b_in = nn.Parameter(torch.zeros((cfg.d_mlp,)))
        self.b_out = nn.Parameter(torch.zeros((cfg.d_model,)))
        nn.init.normal_(self.W_in, std=self.cfg.init_range)
        nn.init.normal_(self.W_out, std=self.cfg.init_range)

    def forward(
        self, normalized_resid_mid: Float[Tensor, "batch posn d_model"]
    ) -> Float[Tensor, "batch posn d_model"]:
        """Up-projection, gelu_new, down-projection (each linear map with its bias)."""
        ### BEGIN SOLUTION
        hidden = einops.einsum(normalized_resid_mid, self.W_in, "b p d_model, d_model d_mlp -> b p d_mlp")
        hidden = gelu_new(hidden + self.b_in)
        out = einops.einsum(hidden, self.W_out, "b p d_mlp, d_mlp d_model -> b p d_model")
        return out + self.b_out
        ### END SOLUTION


# %%
check("mlp")

# %% [markdown]
# ## 6. Transformer block
#
# A block puts the pieces together, *pre-LayerNorm* style as in GPT-2: each
# sublayer reads a normalised copy of the residual stream and its output is
# **added** to the (unnormalised) stream:
#
# ```
# resid_mid  = resid_pre + attn(ln1(resid_pre))
# resid_post = resid_mid + mlp(ln2(resid_mid))
# ```
#
# Note that the MLP reads `resid_mid`, i.e. it sees what attention just wrote.
# The `__init__` is given; write `forward`.

# %% id="transformer_block" autograder={"exercises": ["transformer_block"]}
class TransformerBlock(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.ln1 = LayerNorm(cfg)
        self.attn = Attention(cfg)
        self.ln2 = LayerNorm(cfg)
        self.mlp = MLP(cfg)

    def forward(self, resid_pre: Float[Tensor, "batch position d_model"]) -> Float[Tensor, "batch position d_model"]:
        """Pre-LN attention and MLP, each added to the residual stream."""
        ### BEGIN SOLUTION
        resid_mid = resid_pre + self.attn(self.ln1(resid_pre))
        resid_post = resid_mid + self.mlp(self.ln2(resid_mid))
        return resid_post
        ### END SOLUTION


# %%
check("transformer_block")

# %% [markdown]
# ## 7. Unembedding
#
# The last step maps each final residual vector to one logit per vocabulary
# entry: `logits = x W_U + b_U`. GPT-2 has no unembedding bias, so `b_U` is
# all zeros here, but we keep it as a parameter to match TransformerLens.
# Return **logits**, not probabilities: the softmax belongs to the loss and to
# sampling.

# %% id="unembed" autograder={"exercises": ["unembed"]}
class Unembed(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.W_U = nn.Parameter(torch.empty((cfg.d_model, cfg.d_vocab)))
        nn.init.normal_(self.W_U, std=self.cfg.init_range)
        self.b_U = nn.Parameter(torch.zeros((cfg.d_vocab,)))

    def forward(
        self, normalized_resid_final: Float[Tensor, "batch position d_model"]
    ) -> Float[Tensor, "batch position d_vocab"]:
        """Logits over the vocabulary at every position."""
        ### BEGIN SOLUTION
        logits = einops.einsum(normalized_resid_final, self.W_U, "b p d_model, d_model d_vocab -> b p d_vocab")
        return logits + self.b_U
        ### END SOLUTION


# %%
check("unembed")

# %% [markdown]
# ## 8. The full model
#
# Embed the tokens and add the positional embeddings, run the residual stream
# through every block in order, apply the final LayerNorm, and unembed. The
# `__init__` is given; write `forward`.

# %% id="demo_transformer" autograder={"exercises": ["demo_transformer"]}
class DemoTransformer(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.embed = Embed(cfg)
        self.pos_embed = PosEmbed(cfg)
        self.blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = LayerNorm(cfg)
        self.unembed = Unembed(cfg)

    def forward(self, tokens: Int[Tensor, "batch position"]) -> Float[Tensor, "batch position d_vocab"]:
        """Logits for the next token at every position."""
        ### BEGIN SOLUTION
        residual = self.embed(tokens) + self.pos_embed(tokens)
        for block in self.blocks:
            residual = block(residual)
        return self.unembed(self.ln_final(residual))
        ### END SOLUTION


# %%
check("demo_transformer")

# %% [markdown]
# ### Your model, with trained weights
#
# Your parameter names follow TransformerLens's, so the reference weights load
# straight into your model (`demo_state_dict` keeps exactly the parameters and
# drops TransformerLens's buffers). If the logits agree, you have rebuilt GPT-2.

# %%
demo_gpt2 = DemoTransformer(cfg).to(device)
demo_gpt2.load_state_dict(demo_state_dict(reference_gpt2))
demo_gpt2.eval()

with torch.no_grad():
    demo_logits = demo_gpt2(tokens)
print("max abs difference from TransformerLens's logits:", (demo_logits - logits).abs().max().item())

# %% [markdown]
# The training objective is the average **cross-entropy** of the next token:
# at each position, minus the log-probability the model gives to the token that
# actually comes next (so the last position, which has no next token, is not
# used). A model guessing uniformly at random would score `log(d_vocab)`.

# %%
# PyTorch's cross_entropy does the work here; you will write it yourself in `get_log_probs`.
loss = torch.nn.functional.cross_entropy(demo_logits[0, :-1], tokens[0, 1:])
print(f"loss on our sentence: {loss.item():.3f}  (uniform guessing: {math.log(cfg.d_vocab):.3f})")

# %% [markdown]
# Finally, let's generate text greedily: feed the sequence in, append the most
# likely next token, repeat. (This reruns the whole sequence at every step; the
# KV cache later in this notebook removes that waste.)

# %%
prompt = "Once upon a time, there was a"
generated = torch.tensor([[tokenizer.bos_token_id] + tokenizer.encode(prompt)], device=device)
with torch.no_grad():
    for _ in range(20):
        next_token = demo_gpt2(generated)[0, -1].argmax()
        generated = torch.cat([generated, next_token.view(1, 1)], dim=1)
print(tokenizer.decode(generated[0, 1:]))


# %% [markdown]
# ## 9. Training
#
# Our `DemoTransformer` turns a batch of token ids into logits. To train it (or just to measure how good it is) we
# need one number: how surprised is the model by the text it is shown? You computed it above for one sentence;
# now let's write it properly, for a batch.
#
# ### Log-probabilities of the next token
#
# The logits at position `i` are the model's guess for the token at position `i + 1`. So for a sequence of
# `seq` tokens we get `seq - 1` useful predictions:
#
# ```
# tokens:     t0    t1    t2    t3
# logits:     l0    l1    l2    l3      (l3 predicts a token we don't have: drop it)
# targets:    t1    t2    t3            (t0 is never predicted: drop it)
# ```
#
# For each of these pairs we want $\log p(t_{i+1} \mid t_0, \dots, t_i)$, which is the `log_softmax` of the
# logits, read off at the index of the true next token.
#
# **Pitfalls**
# * The off-by-one: pair `logits[:, :-1]` with `tokens[:, 1:]`. Pairing `logits[:, 1:]` with `tokens[:, 1:]` gives
#   an output of the right shape and the wrong values (and during training, a model that learns to copy its input).
# * `log_softmax`, not `softmax(...).log()`: the former is numerically stable for very negative logits.
# * `torch.gather(input, dim, index)` needs `index` to have as many dimensions as `input`: add a trailing dimension of
#   size 1, gather along the vocabulary dimension, then squeeze it away again.

# %% id="get_log_probs" autograder={"exercises": ["get_log_probs"]}
def get_log_probs(
    logits: Float[Tensor, "batch posn d_vocab"], tokens: Int[Tensor, "batch posn"]
) -> Float[Tensor, "batch posn_minus_1"]:
    """The log-probability the model gives to each actual next token.

    Entry [b, i] of the result is log p(tokens[b, i + 1] | tokens[b, : i + 1]), computed from logits[b, i].
    """
    ### BEGIN SOLUTION
    log_probs = logits.log_softmax(dim=-1)
    # The prediction made at position i is about the token at position i + 1.
    next_tokens = tokens[:, 1:].unsqueeze(-1)
    return log_probs[:, :-1].gather(dim=-1, index=next_tokens).squeeze(-1)
    ### END SOLUTION


# %%
check("get_log_probs")

# %% [markdown]
# The mean of `-get_log_probs(...)` is the **cross-entropy loss**, the quantity language models are trained to
# minimise. A model that guesses uniformly at random over the vocabulary has loss $\ln(\text{d\_vocab})$; the lower,
# the better. Let's see how your model does on a bit of text (if your `DemoTransformer` is right, its loss is the
# same as the reference model's).

# %%
loss_text = (
    "Once upon a time, there was a shy fox named Cora. Cora lived near a river. "
    "Cora had a red kite and loved it very much. One day, Cora went to the park to fly a kite."
)
loss_tokens = torch.tensor([[tokenizer.bos_token_id] + tokenizer.encode(loss_text)], device=device)
with torch.no_grad():
    my_loss = -get_log_probs(demo_gpt2(loss_tokens), loss_tokens).mean()
    reference_loss = -get_log_probs(reference_gpt2(loss_tokens), loss_tokens).mean()
print(f"loss of demo_gpt2:      {my_loss.item():.4f}")
print(f"loss of reference_gpt2: {reference_loss.item():.4f}")
print(f"uniform guessing:       {math.log(cfg.d_vocab):.4f}")

# %% [markdown]
# ### One training step
#
# A training step in PyTorch always has the same four moves:
#
# 1. **forward**: compute the logits and the loss (here the mean negative log-probability of the next tokens);
# 2. **backward**: calling `backward()` on the loss *adds* $\partial \text{loss} / \partial p$ into `p.grad` for
#    every parameter `p`;
# 3. **update**: the optimizer's `step()` changes each parameter using its `.grad` (and, for Adam, its running
#    statistics);
# 4. **reset**: the optimizer's `zero_grad()` clears the gradients.
#
# The word *adds* in step 2 is the reason for step 4: gradients accumulate across `backward` calls. Forget to reset
# them and the second step uses the sum of the first two gradients, the third the sum of three, and so on. Nothing
# crashes; training just quietly goes wrong. You may reset at the start of the step or at the end; both are correct
# as long as it happens once between two `backward` calls (and not between `backward` and `step`, which would
# throw the fresh gradients away).
#
# Return the loss as a tensor **detached** from the graph (see `Tensor.detach`), so that whoever stores the losses
# for a plot doesn't keep every step's computation graph alive.
#
# Use your `get_log_probs` to compute the loss.

# %% id="training_step" autograder={"exercises": ["training_step"]}
def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, tokens: Int[Tensor, "batch posn"]) -> Tensor:
    """One optimisation step on `tokens` with the next-token cross-entropy loss; returns the (detached) loss."""
    ### BEGIN SOLUTION
    logits = model(tokens)
    loss = -get_log_probs(logits, tokens).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.detach()
    ### END SOLUTION


# %%
check("training_step")

# %% [markdown]
# ### A tiny training run
#
# Real training needs a lot of data and compute; we'll settle for watching a fresh, randomly initialised model
# memorise a handful of sentences. Its loss should start near $\ln(\text{d\_vocab})$ (random guessing) and fall
# quickly. This takes a few seconds on a CPU.

# %%
import dataclasses

import matplotlib.pyplot as plt

torch.manual_seed(0)
tiny_cfg = dataclasses.replace(cfg, d_model=64, n_heads=4, d_head=16, d_mlp=256, n_layers=1, n_ctx=64)
tiny_model = DemoTransformer(tiny_cfg).to(device)
tiny_optimizer = torch.optim.AdamW(tiny_model.parameters(), lr=3e-3)

sentences = [
    "The cat sat on the mat.",
    "The dog ran in the park.",
    "Tom likes to eat red apples.",
    "Lily saw a big bird in the tree.",
    "The sun was warm and the sky was blue.",
    "Sam and Mia played with a ball.",
]
encoded = [[tokenizer.bos_token_id] + tokenizer.encode(s) for s in sentences]
length = min(len(ids) for ids in encoded)
train_tokens = torch.tensor([ids[:length] for ids in encoded], device=device)

losses = [training_step(tiny_model, tiny_optimizer, train_tokens).item() for _ in range(60)]
print(f"loss: {losses[0]:.3f} at the start, {losses[-1]:.3f} after {len(losses)} steps")

plt.figure(figsize=(6, 3))
plt.plot(losses)
plt.axhline(math.log(tiny_cfg.d_vocab), color="gray", linestyle="--", label="uniform guessing")
plt.xlabel("training step")
plt.ylabel("loss")
plt.title("A fresh model memorising six sentences")
plt.legend()
plt.show()

# %% [markdown]
# ## 10. Sampling
#
# The model gives us a probability distribution over the next token. To generate text we pick a token, append it,
# and run the model again, until we have enough tokens or the model produces the end-of-text token (for GPT-2, the
# same `<|endoftext|>` token that we prepend as BOS). *How* we pick is where the design space is:
#
# | method | idea |
# | --- | --- |
# | greedy | always take the most likely token: deterministic, but repetitive |
# | basic sampling | draw from the model's distribution as it is |
# | temperature | divide the logits by $T$ first: $T<1$ sharpens the distribution, $T>1$ flattens it |
# | frequency penalty | subtract `penalty * count` from the logit of every token already present `count` times |
# | top-k | only the `k` most likely tokens may be drawn |
# | top-p (nucleus) | only the smallest set of most likely tokens whose total probability reaches `p` |
# | beam search | keep several candidate continuations and extend the most probable ones |
#
# You'll write all of these as methods of a `TransformerSampler`. Most are `@staticmethod`s: they only look at
# logits. The given `sample_next_token` chains them together, calling them through the class name
# (`TransformerSampler.greedy_search(...)`), and you write `sample`, the generation loop.
#
# **Details that matter**
#
# * **Temperature.** `logits / T`. As $T \to 0$ the distribution collapses onto the argmax (greedy decoding), which is
#   why `sample_next_token` treats `temperature == 0` as greedy instead of dividing by zero. As $T \to \infty$ it
#   becomes uniform.
# * **Frequency penalty.** `torch.bincount` counts how often each id occurs; make sure the counts have one entry per
#   vocabulary item (see its `minlength` argument), not just up to the largest id seen. Subtract, don't add: a
#   positive penalty should make repetition *less* likely.
# * **Sampling.** `torch.distributions.Categorical(logits=...)` takes logits directly (no softmax needed);
#   `torch.multinomial` wants probabilities. Return a plain Python `int`.
# * **Top-k.** Keep exactly `k` tokens (`logits.topk(k)`), sample among them, and remember to map the position you
#   drew *within the top k* back to a token id.
# * **Top-p.** Sort the probabilities in descending order. A token is kept if the probability mass of the tokens
#   **strictly before it** in this order is less than `top_p`; equivalently, we keep tokens until the kept mass
#   first reaches `top_p`, *including the token that crosses the threshold*. Example, `top_p = 0.5` and sorted
#   probabilities `[0.32, 0.22, 0.16, ...]`: the mass before each token is `[0, 0.32, 0.54, ...]`, so we keep two
#   tokens (0.32 alone is not yet 0.5). Dropping the boundary token is the classic off-by-one. Always keep at least
#   `min_tokens_to_keep` tokens, then sample among the kept ones in proportion to their probabilities.
#
# Where an exercise samples, don't call `sample_basic` from `top_k_sampling` or `top_p_sampling`: draw directly
# (e.g. with `Categorical`), so that each method stands on its own.
#
# **`sample`.** Start from `[bos_token_id] + tokenizer.encode(prompt)`. Then, `max_tokens_generated` times at most:
# run the model on the tokens so far (only the last `cfg.n_ctx` of them if the sequence has grown longer than the
# context window), take the logits at the last position, choose the next token with
# `TransformerSampler.sample_next_token(tokens, logits, **kwargs)`, and append it. If the token you just appended is
# the end-of-text token (`tokenizer.eos_token_id`), stop. Return the decoded tokens **without the leading BOS**; an
# end-of-text token that was generated stays in the string (it is the last thing in it). With `verbose=True`, print
# the text as it grows (anything you like; it is not graded).

# %% [markdown]
# ### Beam search
#
# Greedy decoding commits to the best token at each step, but the most probable *sequence* may start with a less
# probable token. Beam search keeps the `num_beams` most probable partial sequences ("beams") at every step. The
# score of a beam is the **sum of the log-probabilities** of the tokens it generated (the prompt contributes 0).
# Our version, precisely:
#
# 1. Start with a single live beam, `[bos] + encode(prompt)`, with score 0, and an empty list of finished beams.
# 2. Repeat `max_new_tokens` times:
#    1. For every live beam, compute the log-probabilities of the next token (`log_softmax` of the logits at the
#       last position; crop to the last `cfg.n_ctx` tokens if needed). If `no_repeat_ngram_size = n` is given, set
#       to `-inf` the log-probability of every token that would complete an `n`-gram already present *anywhere* in
#       the beam (prompt and BOS included): for every position `i` where `beam[i : i + n - 1]` equals the beam's
#       last `n - 1` tokens, ban the token `beam[i + n - 1]`. (For `n = 1`, this bans every token already in the
#       beam.)
#    2. Each live beam proposes its `num_beams` best next tokens (`topk`), each candidate scored
#       `beam score + log-prob of the token`.
#    3. Of all candidates, keep the `num_beams` with the highest scores (sorting is stable: on a tie, the earlier
#       beam and then the more probable token comes first).
#    4. Kept candidates that end with the end-of-text token move to the finished list; the others are the new live
#       beams. (So the number of live beams can shrink.)
#    5. Stop early if there are at least `num_return_sequences` finished beams, or no live beams left.
# 3. Return the `num_return_sequences` best beams among finished **and** live ones, best first, as a list of
#    `(score, text)` pairs, where `score` is a Python float and `text` is the decoded beam without the leading BOS
#    (a final end-of-text token stays in the text, like in `sample`).
#
# Bookkeeping pitfalls: forgetting to add the beam's previous score (then you rank tokens, not sequences); ranking
# raw logits instead of log-probabilities (logits of different beams are not comparable); letting finished beams go
# on generating; and forgetting the finished beams when you pick the final answer.
#
# All live beams always have the same length, so you can run them through the model as one batch.

# %% id="sampler" autograder={"exercises": ["sample", "greedy_search", "apply_temperature", "apply_frequency_penalty", "sample_basic", "top_k_sampling", "top_p_sampling", "beam_search"]}
class TransformerSampler:
    def __init__(self, model: nn.Module, tokenizer):
        self.model = model
        self.cfg = model.cfg
        self.tokenizer = tokenizer

    @torch.inference_mode()
    def sample(self, prompt: str, max_tokens_generated: int = 100, verbose: bool = False, **kwargs) -> str:
        """Generate up to `max_tokens_generated` tokens after `prompt`, stopping after an end-of-text token.

        `kwargs` go to `sample_next_token` (temperature, top_k, top_p, frequency_penalty, seed). Returns the text
        of prompt and generated tokens, without the leading BOS (a generated end-of-text token stays in it).
        """
        ### BEGIN SOLUTION
        device = next(self.model.parameters()).device
        ids = [self.tokenizer.bos_token_id] + self.tokenizer.encode(prompt)
        tokens = torch.tensor(ids, dtype=torch.long, device=device)
        for _ in range(max_tokens_generated):
            context = tokens[-self.cfg.n_ctx :]
            logits = self.model(context[None])[0, -1]
            next_token = TransformerSampler.sample_next_token(tokens, logits, **kwargs)
            tokens = torch.cat([tokens, torch.tensor([next_token], dtype=torch.long, device=device)])
            if verbose:
                print(self.tokenizer.decode(tokens[1:]))
            if next_token == self.tokenizer.eos_token_id:
                break
        return self.tokenizer.decode(tokens[1:])
        ### END SOLUTION

    @staticmethod
    def sample_next_token(
        input_ids: Int[Tensor, "seq_len"],
        logits: Float[Tensor, "d_vocab"],
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.0,
        frequency_penalty: float = 0.0,
        seed: int | None = None,
    ) -> int:
        """Choose the next token (given code): chains the methods below."""
        assert input_ids.ndim == 1, "input_ids should be a 1D sequence of token ids"
        assert temperature >= 0, "temperature must be non-negative"
        assert 0.0 <= top_p <= 1.0, "top_p must be in [0, 1]"
        assert top_k >= 0, "top_k must be non-negative"
        assert not (top_p != 0 and top_k != 0), "use top_k or top_p, not both"
        if seed is not None:
            torch.manual_seed(seed)
        if temperature == 0:
            return TransformerSampler.greedy_search(logits)
        if temperature != 1.0:
            logits = TransformerSampler.apply_temperature(logits, temperature)
        if frequency_penalty != 0.0:
            logits = TransformerSampler.apply_frequency_penalty(input_ids, logits, frequency_penalty)
        if top_k > 0:
            return TransformerSampler.top_k_sampling(logits, top_k)
        if top_p > 0.0:
            return TransformerSampler.top_p_sampling(logits, top_p)
        return TransformerSampler.sample_basic(logits)

    @staticmethod
    def greedy_search(logits: Float[Tensor, "d_vocab"]) -> int:
        """The id of the most likely token."""
        ### BEGIN SOLUTION
        return int(logits.argmax().item())
        ### END SOLUTION

    @staticmethod
    def apply_temperature(logits: Float[Tensor, "d_vocab"], temperature: float) -> Float[Tensor, "d_vocab"]:
        """The logits rescaled by the temperature (temperature > 0)."""
        ### BEGIN SOLUTION
        return logits / temperature
        ### END SOLUTION

    @staticmethod
    def apply_frequency_penalty(
        input_ids: Int[Tensor, "seq_len"], logits: Float[Tensor, "d_vocab"], freq_penalty: float
    ) -> Float[Tensor, "d_vocab"]:
        """The logits, each lowered by `freq_penalty` times the number of times its token occurs in `input_ids`."""
        ### BEGIN SOLUTION
        counts = torch.bincount(input_ids, minlength=logits.shape[-1])
        return logits - freq_penalty * counts
        ### END SOLUTION

    @staticmethod
    def sample_basic(logits: Float[Tensor, "d_vocab"]) -> int:
        """A token id drawn from the distribution softmax(logits)."""
        ### BEGIN SOLUTION
        distribution = torch.distributions.Categorical(logits=logits)
        return int(distribution.sample().item())
        ### END SOLUTION

    @staticmethod
    def top_k_sampling(logits: Float[Tensor, "d_vocab"], k: int) -> int:
        """A token id drawn from the `k` most likely tokens, in proportion to their probabilities."""
        ### BEGIN SOLUTION
        top = logits.topk(k)
        position = torch.distributions.Categorical(logits=top.values).sample()
        return int(top.indices[position].item())
        ### END SOLUTION

    @staticmethod
    def top_p_sampling(logits: Float[Tensor, "d_vocab"], top_p: float, min_tokens_to_keep: int = 1) -> int:
        """A token id drawn from the nucleus: the most likely tokens whose mass *before* them is below `top_p`
        (at least `min_tokens_to_keep` of them), in proportion to their probabilities."""
        ### BEGIN SOLUTION
        sorted_logits, order = logits.sort(descending=True)
        sorted_probs = sorted_logits.softmax(dim=-1)
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        n_keep = max(int((mass_before < top_p).sum().item()), min_tokens_to_keep)
        position = torch.distributions.Categorical(logits=sorted_logits[:n_keep]).sample()
        return int(order[position].item())
        ### END SOLUTION

    @torch.inference_mode()
    def beam_search(
        self,
        prompt: str,
        num_return_sequences: int,
        num_beams: int,
        max_new_tokens: int,
        no_repeat_ngram_size: int | None = None,
        verbose: bool = False,
    ) -> list[tuple[float, str]]:
        """Beam search as specified above: the `num_return_sequences` best (sum of log-probs, text) pairs, best
        first, text without the leading BOS."""
        ### BEGIN SOLUTION
        device = next(self.model.parameters()).device
        eos = self.tokenizer.eos_token_id
        start = [self.tokenizer.bos_token_id, *self.tokenizer.encode(prompt)]
        live: list[tuple[float, list[int]]] = [(0.0, start)]
        finished: list[tuple[float, list[int]]] = []
        for _ in range(max_new_tokens):
            batch = torch.tensor([seq[-self.cfg.n_ctx :] for _, seq in live], dtype=torch.long, device=device)
            log_probs = self.model(batch)[:, -1].log_softmax(dim=-1)
            candidates = []
            for (score, seq), lp in zip(live, log_probs):
                lp = lp.clone()
                n = no_repeat_ngram_size
                if n is not None and n > 0 and len(seq) >= n - 1:
                    tail = seq[len(seq) - (n - 1) :]
                    for i in range(len(seq) - n + 1):
                        if seq[i : i + n - 1] == tail:
                            lp[seq[i + n - 1]] = float("-inf")
                top = lp.topk(num_beams)
                for value, token in zip(top.values.tolist(), top.indices.tolist()):
                    candidates.append((score + value, seq + [token]))
            candidates.sort(key=lambda c: c[0], reverse=True)
            live = []
            for score, seq in candidates[:num_beams]:
                (finished if seq[-1] == eos else live).append((score, seq))
            if verbose:
                for score, seq in live:
                    print(f"{score:8.3f}  {self.tokenizer.decode(seq[1:])!r}")
            if len(finished) >= num_return_sequences or not live:
                break
        best = sorted(finished + live, key=lambda c: c[0], reverse=True)[:num_return_sequences]
        return [(float(score), self.tokenizer.decode(seq[1:])) for score, seq in best]
        ### END SOLUTION


# %%
check("greedy_search")
check("apply_temperature")
check("apply_frequency_penalty")
check("sample_basic")
check("top_k_sampling")
check("top_p_sampling")

# %%
check("sample")
check("beam_search")

# %% [markdown]
# ### How temperature reshapes the distribution
#
# Here is the model's next-token distribution after a prompt, at three temperatures (top 15 tokens only).

# %%
temperature_prompt = "Once upon a time, there was a"
prompt_tokens = torch.tensor([[tokenizer.bos_token_id] + tokenizer.encode(temperature_prompt)], device=device)
with torch.no_grad():
    next_logits = demo_gpt2(prompt_tokens)[0, -1]
top_ids = next_logits.topk(15).indices
labels = [repr(tokenizer.decode([i])) for i in top_ids.tolist()]
fig, axes = plt.subplots(1, 3, figsize=(14, 3.5), sharey=True)
for ax, temperature in zip(axes, [0.5, 1.0, 2.0]):
    probs = (next_logits / temperature).softmax(-1)[top_ids].cpu()
    ax.bar(range(15), probs)
    ax.set_xticks(range(15), labels, rotation=70)
    ax.set_title(f"temperature {temperature}")
axes[0].set_ylabel("probability")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Generating text
#
# Try the different methods. With a large model, greedy decoding tends to loop, and a little temperature, a
# frequency penalty or a nucleus fixes much of that. The lite model is very sure of itself inside its small world of
# stories, so moderate settings change little there; push the knobs further (or switch to the `full` profile) to see
# each effect clearly.

# %%
sampler = TransformerSampler(demo_gpt2, tokenizer)
story = "Once upon a time, there was a brave owl named"
settings = {
    "greedy": dict(temperature=0.0),
    "T = 1.0": dict(temperature=1.0),
    "T = 2.0": dict(temperature=2.0),
    "penalty 3.0": dict(frequency_penalty=3.0),
    "top-k 5": dict(top_k=5),
    "top-p 0.9": dict(top_p=0.9),
}
for name, kwargs in settings.items():
    torch.manual_seed(1)  # seed once per generation (the `seed` argument would re-seed at every token)
    print(f"{name:12s}", repr(sampler.sample(story, max_tokens_generated=40, **kwargs)))

# %%
beam_prompt = "The little bird"
for ngram in [None, 2]:
    print(f"no_repeat_ngram_size={ngram}:")
    beams = sampler.beam_search(beam_prompt, num_return_sequences=3, num_beams=4, max_new_tokens=25,
                                no_repeat_ngram_size=ngram)
    for score, text in beams:
        print(f"  {score:8.3f}  {text!r}")

# %% [markdown]
# ## 11. Caching keys and values
#
# Generating `N` tokens with `sample` runs the model on sequences of length `L`, `L+1`, ..., `L+N-1`: almost all of
# that work is repeated. Because attention is causal, the keys and values at position `j` depend only on tokens
# `0..j`. Appending a token changes nothing about earlier positions, so we can **cache** the keys and values of every
# layer and, for each new token, compute only:
#
# * its embedding, with the positional embedding of its *absolute* position (`cache.seq_len + i`, not `i`);
# * in each layer, its query, key and value; the new keys and values are appended to the cached ones along the
#   position dimension, and the new queries attend over all of them;
# * a causal mask among the new tokens: new token `i` (absolute position `seq_len + i`) may attend to every cached
#   position and to new tokens `0..i`. A single new token (the usual case when generating) needs no mask at all;
#   for several, the mask is the usual upper triangle, shifted right by `seq_len` (the scores now have shape
#   `(batch, n_heads, new_len, seq_len + new_len)`: no longer square);
# * the MLPs, layer norms and unembedding exactly as before (they act on each position separately).
#
# The logits must be those of a full forward pass over all the tokens (up to float rounding). The cache is a small
# given dataclass: `entries[layer] = (keys, values)`, each of shape `(batch, seq_len, n_heads, d_head)`, the keys and
# values *after* their biases are added, in the same layout as `k` and `v` in `Attention.forward`. An empty cache has
# no entries and `seq_len == 0`; `forward_with_cache` receives `None` for it on the first call. Return a new
# `KeyValueCache` with one `(keys, values)` pair per layer, covering all `seq_len + new_len` positions.
#
# You work from outside the model here, so use its pieces: `model.embed(tokens)`, `model.pos_embed.W_pos`,
# `block.ln1(x)`, `block.attn.W_Q` (and `W_K`, `W_V`, `W_O`, `b_Q`, `b_K`, `b_V`, `b_O`), `block.ln2(x)`,
# `block.mlp(x)`, `model.ln_final(x)` and `model.unembed(x)`, with `block` ranging over `model.blocks`. Don't call
# `block.attn(...)` or `block(...)`: they know nothing about the cache. Reuse what you wrote in `Attention.forward`
# (scaling by $\sqrt{d_{head}}$ included).

# %% autograder={"role": "setup"}
from dataclasses import dataclass, field


@dataclass
class KeyValueCache:
    """Keys and values of every layer for the positions processed so far.

    entries[layer] = (keys, values), each of shape (batch, seq_len, n_heads, d_head). An empty cache has no entries.
    """

    entries: list[tuple[Tensor, Tensor]] = field(default_factory=list)

    @classmethod
    def empty(cls) -> "KeyValueCache":
        return cls([])

    @property
    def seq_len(self) -> int:
        """How many positions the cache holds (0 when empty)."""
        return 0 if not self.entries else self.entries[0][0].shape[1]


# %% id="kv_cache" autograder={"exercises": ["forward_with_cache"]}
@torch.inference_mode()
def forward_with_cache(
    model: nn.Module, new_tokens: Int[Tensor, "batch new_len"], cache: KeyValueCache | None
) -> tuple[Float[Tensor, "batch new_len d_vocab"], KeyValueCache]:
    """Logits for `new_tokens`, which come right after the `cache.seq_len` positions in `cache` (None = empty),
    and the cache extended with the new positions. The logits equal those of a full forward pass."""
    ### BEGIN SOLUTION
    if cache is None:
        cache = KeyValueCache.empty()
    past = cache.seq_len
    new_len = new_tokens.shape[1]
    positions = torch.arange(past, past + new_len, device=new_tokens.device)
    resid = model.embed(new_tokens) + model.pos_embed.W_pos[positions]
    # Query i (absolute position past + i) must not see keys at absolute positions > past + i.
    ones = torch.ones(new_len, past + new_len, dtype=torch.bool, device=new_tokens.device)
    future = ones.triu(diagonal=past + 1)
    new_entries = []
    for layer, block in enumerate(model.blocks):
        attn = block.attn
        x = block.ln1(resid)
        q = einops.einsum(x, attn.W_Q, "b p d, h d e -> b p h e") + attn.b_Q
        k = einops.einsum(x, attn.W_K, "b p d, h d e -> b p h e") + attn.b_K
        v = einops.einsum(x, attn.W_V, "b p d, h d e -> b p h e") + attn.b_V
        if past > 0:
            old_k, old_v = cache.entries[layer]
            k = torch.cat([old_k, k], dim=1)
            v = torch.cat([old_v, v], dim=1)
        new_entries.append((k, v))
        scores = einops.einsum(q, k, "b q h e, b k h e -> b h q k") / math.sqrt(model.cfg.d_head)
        scores = scores.masked_fill(future, float("-inf"))
        pattern = scores.softmax(dim=-1)
        z = einops.einsum(pattern, v, "b h q k, b k h e -> b q h e")
        resid = resid + einops.einsum(z, attn.W_O, "b q h e, h e d -> b q d") + attn.b_O
        resid = resid + block.mlp(block.ln2(resid))
    logits = model.unembed(model.ln_final(resid))
    return logits, KeyValueCache(new_entries)
    ### END SOLUTION


# %%
check("forward_with_cache")

# %% [markdown]
# ### How much does the cache save?
#
# Greedy generation, once by re-running the whole sequence each step and once with the cache. The tokens must be
# identical; the cached version should be faster, and the gap grows with the length of the sequence (and the size of
# the model: try the `full` profile).

# %%
import time


@torch.inference_mode()
def generate_uncached(model, tokens, n_new):
    for _ in range(n_new):
        next_token = model(tokens)[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, next_token], dim=1)
    return tokens


@torch.inference_mode()
def generate_cached(model, tokens, n_new):
    logits, kv = forward_with_cache(model, tokens, None)
    for _ in range(n_new):
        next_token = logits[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, next_token], dim=1)
        logits, kv = forward_with_cache(model, next_token, kv)
    return tokens


start_tokens = torch.tensor([[tokenizer.bos_token_id] + tokenizer.encode("The little dog")], device=device)
n_new = min(80, cfg.n_ctx - start_tokens.shape[1])
for name, generate in [("without cache", generate_uncached), ("with cache", generate_cached)]:
    t0 = time.perf_counter()
    out = generate(demo_gpt2, start_tokens, n_new)
    print(f"{name:14s} {time.perf_counter() - t0:6.3f}s")
print("identical tokens:", torch.equal(generate_uncached(demo_gpt2, start_tokens, n_new),
                                       generate_cached(demo_gpt2, start_tokens, n_new)))
print(repr(tokenizer.decode(out[0, 1:])))
