"""Tests for source/1.1_transformer_from_scratch/tfs_helpers.py and the lite checkpoint."""

import importlib.util
import json
import math
import random
import sys
from pathlib import Path

import pytest
import torch

SECTION = Path(__file__).resolve().parents[1] / "source" / "1.1_transformer_from_scratch"
sys.path.insert(0, str(SECTION))

import tfs_helpers as h  # noqa: E402


def _load_train_lite():
    """Import assets/train_lite.py as a module (for its story generator)."""
    spec = importlib.util.spec_from_file_location("train_lite", SECTION / "assets" / "train_lite.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def hooked():
    return h.load_hooked_gpt2("lite")


@pytest.fixture(scope="module")
def hf_model():
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(h.model_source("lite")).eval()


@pytest.fixture(scope="module")
def tok():
    return h.load_tokenizer("lite")


@pytest.fixture(scope="module")
def fresh_tokens(tok):
    """BOS + a story, for stories the model never saw (seed differs from train/val)."""
    gen = _load_train_lite()
    rng = random.Random(20240601)
    rows = []
    while len(rows) < 32:
        ids = [tok.bos_token_id] + tok.encode(gen.generate_story(rng))
        if len(ids) >= 64:
            rows.append(ids[:64])
    return torch.tensor(rows)


def test_checksums_verify():
    h.verify_lite_checkpoint()


def test_checksum_mismatch_is_reported(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  a.txt\n")
    monkeypatch.setattr(h, "LITE_DIR", tmp_path)
    with pytest.raises(RuntimeError, match=r"a\.txt.*train_lite\.py"):
        h.verify_lite_checkpoint()


def test_profile_basics():
    assert h.model_source("lite") == str(h.LITE_DIR)
    assert h.model_source("full") == "gpt2"
    with pytest.raises(ValueError):
        h.model_source("medium")


def test_hooked_matches_hf_logits(hooked, hf_model, fresh_tokens):
    with torch.no_grad():
        tl_logits = hooked(fresh_tokens)
        hf_logits = hf_model(fresh_tokens).logits
    torch.testing.assert_close(tl_logits, hf_logits, atol=1e-4, rtol=1e-4)
    assert not hooked.training


def test_hooked_config(hooked, tok):
    cfg = hooked.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp) == (2, 64, 4, 16, 256)
    assert cfg.n_ctx == 128 and cfg.d_vocab == tok.vocab_size
    assert cfg.act_fn == "gelu_new" and cfg.normalization_type == "LN"
    assert cfg.default_prepend_bos
    # to_tokens prepends exactly one BOS and otherwise agrees with our tokenizer.
    text = "One day, Mia went to the park."
    assert hooked.to_tokens(text)[0].tolist() == [tok.bos_token_id] + tok.encode(text)


def test_demo_state_dict_keys_and_shapes(hooked):
    sd = h.demo_state_dict(hooked)
    c = hooked.cfg
    V, D, N, H, M, L = c.d_vocab, c.d_model, c.n_ctx, c.n_heads, c.d_mlp, c.n_layers
    dh = c.d_head
    expected = {"embed.W_E": (V, D), "pos_embed.W_pos": (N, D),
                "ln_final.w": (D,), "ln_final.b": (D,),
                "unembed.W_U": (D, V), "unembed.b_U": (V,)}
    for i in range(L):
        b = f"blocks.{i}."
        expected.update({
            b + "ln1.w": (D,), b + "ln1.b": (D,), b + "ln2.w": (D,), b + "ln2.b": (D,),
            b + "attn.W_Q": (H, D, dh), b + "attn.W_K": (H, D, dh), b + "attn.W_V": (H, D, dh),
            b + "attn.b_Q": (H, dh), b + "attn.b_K": (H, dh), b + "attn.b_V": (H, dh),
            b + "attn.W_O": (H, dh, D), b + "attn.b_O": (D,),
            b + "mlp.W_in": (D, M), b + "mlp.b_in": (M,),
            b + "mlp.W_out": (M, D), b + "mlp.b_out": (D,),
        })
    assert set(sd) == set(expected)
    for name, shape in expected.items():
        t = sd[name]
        assert tuple(t.shape) == shape, name
        assert t.dtype == torch.float32 and t.is_contiguous(), name
    # Clones, not views of the model's parameters.
    sd["embed.W_E"].zero_()
    assert hooked.embed.W_E.abs().sum() > 0
    # Untied embeddings: W_U is its own matrix.
    assert not torch.allclose(hooked.unembed.W_U, hooked.embed.W_E.T)


def test_config_kwargs(hooked):
    kw = h.config_kwargs(hooked)
    assert kw == dict(d_model=64, debug=False, layer_norm_eps=1e-5, d_vocab=hooked.cfg.d_vocab,
                      init_range=0.02, n_ctx=128, d_head=16, d_mlp=256, n_heads=4, n_layers=2)


def test_tokenizer_round_trip(tok):
    assert tok.bos_token_id == tok.eos_token_id == 0
    assert tok.vocab_size == json.loads((h.LITE_DIR / "config.json").read_text())["vocab_size"]
    for text in ["Once upon a time, there was a brave fox named Ada.",
                 'Weird  spacing,\nnew lines, "quotes", caf\u00e9 and 123!', ""]:
        ids = tok.encode(text)
        assert all(isinstance(i, int) for i in ids)
        assert tok.decode(ids) == text
    assert tok.decode(torch.tensor([0])) == "<|endoftext|>"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TL 3.x deprecates `utils`
def test_gelu_new_matches_transformer_lens():
    from transformer_lens.utils import gelu_new as tl_gelu_new

    x = torch.linspace(-6, 6, 1001)
    torch.testing.assert_close(h.gelu_new(x), tl_gelu_new(x))


def test_model_learned_the_grammar(hooked, fresh_tokens):
    # Measured at training time: held-out val loss ~0.51 nats/token
    # (see assets/lite/training_info.json), vs ln(V) ~ 6.79 for a uniform guess.
    # Threshold 1.0 = about 2x the measured loss and < 15% of ln(V).
    with torch.no_grad():
        loss = hooked(fresh_tokens, return_type="loss").item()
    assert loss < 1.0, loss
    assert loss < 0.15 * math.log(hooked.cfg.d_vocab)
