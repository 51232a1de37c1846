"""Section 1.3.4 (activation oracles): what tests/test_sections.py does not cover for every section: the shipped
checkpoints (section 1.3.1's model as the target, copied, and the oracle trained here) and their hashes, the
injection seen by TransformerLens being the one the oracle was trained with (on the Hugging Face model), the measured
evidence (the oracle answers from the vectors it is shown, far above a control that shows it another statement's
vectors, including a question never asked about that family in training), the notebook's header stating it, and the
full profile's loading path (a base model and a PEFT LoRA adapter merged) on small local checkpoints in the formats of
Qwen3-8B and the activation-oracle adapter, through a fake hub."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from autograder.authoring.assignment import find_assignment
from autograder.layout import CourseLayout
from conftest import REPO
from fake_hub import fetch_full_then_go_offline, serve_hub
from sections import checkpoint_files, import_fresh

ASSIGNMENT = find_assignment(CourseLayout(REPO).source, "1.3.4")


def _oh(monkeypatch):
    return import_fresh(monkeypatch, ASSIGNMENT.source_dir, "oracle_helpers")


# ----------------------------------------------------------------------------- the checkpoints


def test_lite_checkpoint_matches_its_hashes(monkeypatch):
    oh = _oh(monkeypatch)
    oh.verify_lite_checkpoint()
    files = checkpoint_files(oh.LITE_DIR, max_mib=2)
    models = {f"{m}/{n}" for m in ("target", "oracle") for n in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json")}
    assert files == models | {"SHA256SUMS", "training_info.json"}
    info = json.loads((oh.LITE_DIR / "training_info.json").read_text())
    assert info["seed"] == 1340 and info["steps"] >= 15000 and info["held_out"] == list(oh.HELD_OUT)
    assert (info["read_layer"], info["inject_layer"]) == (oh.READ_LAYER["lite"], oh.INJECT_LAYER)
    assert info["train_seconds"] <= 3000


def test_target_is_a_copy_of_section_1_3_1(monkeypatch):
    """Byte for byte (the training script checks 1.3.1's hashes when it copies; if 1.3.1 is retrained, rerun
    assets/train_lite.py)."""
    oh = _oh(monkeypatch)
    source = REPO / "source/1.3.1_linear_probes/assets/lite"
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json"):
        assert (oh.LITE_DIR / "target" / name).read_bytes() == (source / name).read_bytes(), name


def test_oracle_extends_the_targets_vocabulary_and_context(monkeypatch):
    oh = _oh(monkeypatch)
    target_vocab = json.loads((oh.LITE_DIR / "target/tokenizer.json").read_text())["model"]["vocab"]
    oracle_vocab = json.loads((oh.LITE_DIR / "oracle/tokenizer.json").read_text())["model"]["vocab"]
    assert {w: i for w, i in oracle_vocab.items() if w in target_vocab} == target_vocab
    assert set(oracle_vocab) - set(target_vocab) == set(oh.NEW_WORDS)
    target, oracle = oh.load_target("lite"), oh.load_oracle("lite")
    assert oracle.cfg.d_vocab == len(oracle_vocab) and oracle.cfg.n_ctx == 24 and target.cfg.n_ctx == 16
    # every question, with every statement's vectors, fits the oracle's context
    longest = max(len(target.to_tokens(oh.to_prompt(s))[0]) - 1 for f in oh.FAMILIES for s, _ in oh.all_statements(f))
    for q in oh.QUESTIONS:
        assert len(oracle.to_tokens(oh.prompt_prefix("lite") + oh.PLACEHOLDER * longest + " " + oh.question_text(q, "lite"))[0]) <= 24
        assert len(oh.candidate_ids(oracle, q, "lite")) == len(oh.QUESTIONS[q][2])


def test_transformer_lens_injection_is_the_one_the_oracle_was_trained_with(monkeypatch):
    """The oracle was trained with the injection written on the Hugging Face model's residual stream; the notebook
    writes it on TransformerLens's. With the weights loaded as oracle_helpers loads them, the two residual streams are
    the same, so the same injection gives the same answer distribution."""
    from transformers import GPT2LMHeadModel

    oh = _oh(monkeypatch)
    target, oracle = oh.load_target("lite"), oh.load_oracle("lite")
    hf = GPT2LMHeadModel.from_pretrained(str(oh.LITE_DIR / "oracle")).eval()
    tokens, last = oh.tokenize_statements(target, ["Lyon is not in Japan.", "Nine plus one is ten."])
    _, cache = target.run_with_cache(tokens)
    hook = f"blocks.{oh.READ_LAYER['lite']}.hook_resid_post"
    vectors = torch.stack([cache[hook][i, 1:int(last[i]) + 1][-3:] for i in range(2)])  # (2, 3, d)
    prompt = oracle.to_tokens(oh.prompt_prefix("lite") + oh.PLACEHOLDER * 3 + " " + oh.question_text("country", "lite"))
    first = len(oracle.to_tokens(oh.prompt_prefix("lite"))[0])
    prompt = prompt.expand(2, -1)

    def add(h):
        block = h[:, first:first + 3]
        return torch.cat([h[:, :first], block + block.norm(dim=-1, keepdim=True) * vectors / vectors.norm(dim=-1, keepdim=True),
                          h[:, first + 3:]], dim=1)

    tl = oracle.run_with_hooks(prompt, fwd_hooks=[(f"blocks.{oh.INJECT_LAYER}.hook_resid_pre", lambda h, hook: add(h))])
    handle = hf.transformer.h[oh.INJECT_LAYER].register_forward_pre_hook(lambda m, a: (add(a[0]), *a[1:]))
    try:
        with torch.no_grad():
            ref = hf(prompt).logits
    finally:
        handle.remove()
    assert torch.allclose(tl.log_softmax(-1), ref.log_softmax(-1), atol=1e-4)
    # the target's side: what the notebook reads at blocks.{READ_LAYER}.hook_resid_post is what the training script
    # read from the Hugging Face model's block (its output, before the final LayerNorm)
    hf_target = GPT2LMHeadModel.from_pretrained(str(oh.LITE_DIR / "target")).eval()
    read = {}
    handle = hf_target.transformer.h[oh.READ_LAYER["lite"]].register_forward_hook(
        lambda m, a, out: read.update(h=out[0] if isinstance(out, tuple) else out))
    try:
        with torch.no_grad():
            hf_target(tokens)
    finally:
        handle.remove()
    assert torch.allclose(cache[hook], read["h"], atol=1e-4)
    # and the injection matters: without it the answer changes
    assert not torch.allclose(oracle(prompt).log_softmax(-1)[:, -1], tl.log_softmax(-1)[:, -1], atol=1e-2)


# ----------------------------------------------------------------------------- the evidence


@pytest.fixture(scope="module")
def evidence():
    """Measured here from the shipped files with code written for this test (its own prompt building and injection
    hook, a different control pairing than the training script's), on the held-out statements."""
    mp = pytest.MonkeyPatch()
    try:
        oh = import_fresh(mp, ASSIGNMENT.source_dir, "oracle_helpers")
        target, oracle = oh.load_target("lite"), oh.load_oracle("lite")
        hook_read, hook_write = f"blocks.{oh.READ_LAYER['lite']}.hook_resid_post", f"blocks.{oh.INJECT_LAYER}.hook_resid_pre"
        first = len(oracle.to_tokens(oh.prompt_prefix("lite"))[0])
        out = {}
        with torch.no_grad():
            for q, (_, families, words) in oh.QUESTIONS.items():
                cands = oh.candidate_ids(oracle, q, "lite")
                pool = [r[0] for f in families for r in oh.evaluation_examples(q, f, seed=3)]
                tokens, last = oh.tokenize_statements(target, pool)
                _, cache = target.run_with_cache(tokens, names_filter=hook_read)
                seq_of = {s: cache[hook_read][i, 1:int(last[i]) + 1] for i, s in enumerate(pool)}
                for f in families:
                    rows = oh.evaluation_examples(q, f, seed=3)
                    seqs = [seq_of[r[0]] for r in rows]
                    right = torch.tensor([words.index(r[2]) for r in rows])
                    # the control: a random other statement of the pool of every family (lists come sorted by
                    # family and truth, so a fixed shift would mostly pair like with like)
                    picks = torch.randint(len(pool), (len(rows),), generator=torch.Generator().manual_seed(11)).tolist()
                    controls = [seq_of[pool[j] if pool[j] != r[0] else pool[(j + 1) % len(pool)]] for r, j in zip(rows, picks)]
                    res = {}
                    for mode in ("last", "all"):
                        for control in (False, True):
                            chosen = [v[-1:] if mode == "last" else v for v in (controls if control else seqs)]
                            correct = 0
                            for k in {len(v) for v in chosen}:  # a batch per number of vectors
                                idx = [i for i, v in enumerate(chosen) if len(v) == k]
                                v = torch.stack([chosen[i] for i in idx])  # (rows, k, d)
                                prompt = oracle.to_tokens(oh.prompt_prefix("lite") + oh.PLACEHOLDER * k + " "
                                                          + oh.question_text(q, "lite")).repeat(len(idx), 1)

                                def inject(h, hook, v=v, k=k):
                                    add = torch.zeros_like(h)
                                    for j in range(k):
                                        here = h[:, first + j]
                                        add[:, first + j] = here.norm(dim=-1, keepdim=True) * v[:, j] / v[:, j].norm(dim=-1, keepdim=True)
                                    return h + add

                                logits = oracle.run_with_hooks(prompt, fwd_hooks=[(hook_write, inject)])[:, -1]
                                correct += int((logits[:, cands].argmax(-1) == right[idx]).sum())
                            res[mode + ("_control" if control else "")] = correct / len(chosen)
                    out[f"{q}/{f}"] = res
        return out
    finally:
        mp.undo()


def test_the_oracle_reads_the_vectors(evidence):
    """The notebook's claims, row by row, against the control (another statement's vectors): truth and the kind of
    statement from the last token's vector; the city and the first number from every token's; the country and the
    second number read in one mode or the other, at least 30 points above the control."""
    for key, r in evidence.items():
        q = key.split("/")[0]
        if q in ("truth", "kind"):
            assert r["last"] >= 0.8 and r["last"] - r["last_control"] >= 0.25, (key, r)
        elif q in ("city", "first"):
            assert r["all"] >= 0.8 and r["all"] - r["all_control"] >= 0.5, (key, r)
        else:  # the country and the second number: read, in one mode or the other
            assert max(r["last"] - r["last_control"], r["all"] - r["all_control"]) >= 0.3, (key, r)


def test_the_oracle_answers_a_question_never_asked_about_that_family(evidence):
    r = evidence["/".join(("truth", "neg_city"))]
    assert r["last"] >= 0.85 and r["last_control"] <= 0.65, r


def test_the_last_vector_carries_less_than_every_vector(evidence):
    """The notebook's lesson: an oracle can only report what the vectors hold. The city is hardly in the last token's
    vector (a probe on it does little better, see the header); with every token's vectors it is. The first number is
    read far better from every token's vectors."""
    for key in ("city/city", "city/neg_city"):
        r = evidence[key]
        assert r["last"] <= 0.4 and r["all"] - r["last"] >= 0.5, (key, r)
    for key in ("first/cmp", "first/sum"):
        r = evidence[key]
        assert r["all"] - r["last"] >= 0.3, (key, r)


def test_recorded_evidence_is_this_checkpoints(monkeypatch, evidence):
    """training_info.json's numbers are recomputed from the shipped files by the training script's own measure(), agree
    with this test's own measurement, and the notebook's header states them."""
    oh = _oh(monkeypatch)
    train_lite = import_fresh(monkeypatch, ASSIGNMENT.source_dir / "assets", "train_lite")
    recorded = json.loads((oh.LITE_DIR / "training_info.json").read_text())["evidence"]
    measured = train_lite.measure(oh.LITE_DIR)
    assert measured == recorded
    for key, r in recorded["accuracy"].items():
        assert 0 <= r["probe_last"] <= 1, key
        for mode in ("last", "all"):
            assert r[mode] == pytest.approx(evidence[key][mode], abs=0.06), (key, mode)  # another control, another truth sample
    notebook = (ASSIGNMENT.source_dir / ASSIGNMENT.notebook).read_text()
    for key, r in recorded["accuracy"].items():
        q, f = key.split("/")
        line = next(line for line in notebook.splitlines() if re.match(rf"# \| {q} \| {f} \|", line))
        numbers = re.findall(r"\d+(?=%)", line)
        assert numbers == [f"{100 * r[k]:.0f}" for k in ("last", "last_control", "probe_last", "all", "all_control")], line
    line = next(line for line in notebook.splitlines() if "difference-of-means probe" in line and "%" in line)
    assert f"{100 * recorded['probe_on_held_out_family']:.0f}%" in line


# ----------------------------------------------------------------------------- the full profile


def _save_tiny_qwen3(folder: Path, oh) -> None:
    """A randomly initialised Qwen3 saved by transformers, with a word-level tokenizer that knows every word of the
    full profile's prompts (words carry their leading space, as in Qwen's own vocabulary) and no BOS token."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    texts = [oh.to_prompt(s) for f in oh.FAMILIES for s, _ in oh.all_statements(f)]
    texts += [oh.prompt_prefix("full") + oh.PLACEHOLDER + " " + t for t in oh.FULL_QUESTION_TEXT.values()]
    texts += [" " + oh._english(w) for _, _, words in oh.QUESTIONS.values() for w in words]
    split = pre_tokenizers.Split(Regex(r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]"), behavior="isolated")
    vocab = {"<|endoftext|>": 0}
    for t in texts:
        for piece, _ in split.pre_tokenize_str(t):
            vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = split
    torch.manual_seed(0)
    Qwen3ForCausalLM(Qwen3Config(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                 num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
                                 tie_word_embeddings=False, bos_token_id=None, eos_token_id=0)).save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>").save_pretrained(folder)


def _save_tiny_lora(folder: Path, base: Path) -> dict:
    """A PEFT LoRA adapter on every projection of ``base`` (the targets of the activation-oracle adapter), with
    non-zero B matrices so that merging changes the weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base)), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    model.save_pretrained(str(folder))
    return {name: p.detach().clone() for name, p in model.named_parameters() if "lora_" in name}


def test_full_profile_merges_the_oracle_adapter_and_runs_the_reference(monkeypatch, tmp_path):
    """A tiny Qwen3 and a tiny PEFT LoRA adapter, served by a fake hub under the full profile's hub ids, fetched by
    ``autograder assets fetch`` and loaded offline: the oracle is the base with the adapter merged (and its weights
    differ from the base's by exactly B @ A * alpha / r), the residual stream is Hugging Face's, and the reference
    solution's exercises run on them end to end."""
    from autograder.assets.declared import HubAsset, select_declared

    oh = _oh(monkeypatch)
    declared = select_declared(REPO / "source", "1.3.4")
    base_asset, adapter_asset = declared[0].for_profile("full")
    assert isinstance(base_asset, HubAsset) and (base_asset.name, base_asset.hf_id) == ("qwen3-8b", "Qwen/Qwen3-8B")
    assert adapter_asset.hf_id == "adamkarvonen/checkpoints_latentqa_cls_past_lens_addition_Qwen3-8B"

    hub = {base_asset.hf_id: tmp_path / "hub" / "base", adapter_asset.hf_id: tmp_path / "hub" / "adapter"}
    _save_tiny_qwen3(hub[base_asset.hf_id], oh)
    lora = _save_tiny_lora(hub[adapter_asset.hf_id], hub[base_asset.hf_id])
    fetched = serve_hub(monkeypatch, hub)
    fetch_full_then_go_offline(monkeypatch, REPO / "source", REPO, "1.3.4", tmp_path / "cache")
    assert sorted(repo for repo, _ in fetched) == sorted(hub)
    monkeypatch.setitem(oh.READ_LAYER, "full", 1)  # the tiny model has 3 layers, not 36
    monkeypatch.setattr(oh, "PROFILE", "full")

    target, oracle = oh.load_target("full"), oh.load_oracle("full")
    assert (target.cfg.n_layers, target.cfg.d_model, target.cfg.original_architecture) == (3, 32, "Qwen3ForCausalLM")
    # the merge: W_q of layer 0 moved by exactly (alpha / r) B @ A
    a = next(v for k, v in lora.items() if "layers.0.self_attn.q_proj.lora_A" in k)
    b = next(v for k, v in lora.items() if "layers.0.self_attn.q_proj.lora_B" in k)
    from transformers import AutoModelForCausalLM

    base_hf = AutoModelForCausalLM.from_pretrained(str(oh.target_folder("full")))
    merged_hf = AutoModelForCausalLM.from_pretrained(str(oh.oracle_folder("full")))
    delta = merged_hf.model.layers[0].self_attn.q_proj.weight - base_hf.model.layers[0].self_attn.q_proj.weight
    assert torch.allclose(delta, 2.0 * b @ a, atol=1e-5)
    assert oh.oracle_folder("full") == oh.oracle_folder("full")  # merged once, then reused

    # the residual stream TransformerLens gives is Hugging Face's (what the oracle's injection was trained on)
    tokens, last = oh.tokenize_statements(target, ["Paris is in France.", "Two plus four is six."])
    assert int(tokens[0, 0]) == int(target.tokenizer.bos_token_id) and last.tolist() == [
        len(target.to_tokens(oh.to_prompt(s), prepend_bos=True)[0]) - 1 for s in ["Paris is in France.", "Two plus four is six."]]
    _, cache = target.run_with_cache(tokens)
    with torch.no_grad():
        hidden = base_hf(tokens, output_hidden_states=True).hidden_states
    assert torch.allclose(cache["blocks.1.hook_resid_post"], hidden[2], atol=1e-4)

    # the reference solution, end to end
    source = (ASSIGNMENT.source_dir / ASSIGNMENT.notebook).read_text()
    namespace = {"torch": torch, "oh": oh, "PLACEHOLDER": oh.PLACEHOLDER, "INJECT_LAYER": oh.INJECT_LAYER}
    header = "from torch import Tensor\nfrom jaxtyping import Float, Int\nfrom transformer_lens import HookedTransformer\n"
    for name in ("statement_vectors", "oracle_prompt", "ask_oracle", "score_answers"):
        start = source.index(f"def {name}(")
        end = source.index("\n\n\n", start)
        exec(compile(header + source[start:end], name, "exec"), namespace)
    vectors = namespace["statement_vectors"](target, tokens, last, 1)
    assert [tuple(v.shape) for v in vectors] == [(int(p), 32) for p in last]
    prompt, positions = namespace["oracle_prompt"](oracle, "country", 2)
    words = oracle.to_str_tokens(prompt[0])
    assert [words[int(p)] for p in positions] == [oh.PLACEHOLDER, oh.PLACEHOLDER] and words[int(positions[0]) - 1] == ":"
    logits = namespace["ask_oracle"](oracle, "country", torch.stack([v[-2:] for v in vectors]))
    assert logits.shape == (2, oracle.cfg.d_vocab) and torch.isfinite(logits).all()
    cands = oh.candidate_ids(oracle, "country", "full")
    assert oracle.to_str_tokens(cands)[:2] == [" France", " Germany"]
    choice, accuracy = namespace["score_answers"](logits, cands, torch.tensor([0, 0]))
    assert choice.shape == (2,) and 0.0 <= accuracy <= 1.0
    # without the assets the full profile names the fetch command, never downloading
    monkeypatch.setenv("AUTOGRADER_ASSETS", str(tmp_path / "empty"))
    for load in (oh.load_target, oh.load_oracle):
        with pytest.raises(FileNotFoundError, match="autograder assets fetch --profile full --assignment 1.3.4"):
            load("full")
