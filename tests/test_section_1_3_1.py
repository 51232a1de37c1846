"""Section 1.3.1, beyond what ``test_sections.py`` checks for every section
(reference 100, blank 0, each mutant and alternative graded on its own): the
statements and their labels against an independent parser, the shipped checkpoint
and its hashes, the measured evidence (the lite model answers, truth is linearly
readable, and steering along the truth direction changes the answers, far more
than a random direction), and the full profile's loading path on a locally saved
GPT-2 of the same format, fetched through a fake hub."""

from __future__ import annotations

import json
import re

import pytest
import torch

from autograder.authoring.assignment import find_assignment
from autograder.layout import CourseLayout
from conftest import REPO
from fake_hub import fetch_full_then_go_offline, save_tiny_gpt2, serve_hub
from sections import checkpoint_files, import_fresh

ASSIGNMENT = find_assignment(CourseLayout(REPO).source, "1.3.1")
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen"]


def _th(monkeypatch):
    return import_fresh(monkeypatch, ASSIGNMENT.source_dir, "truth_helpers")


def _truth_by_parsing(statement: str, capitals: dict[str, str]) -> int:
    """The truth of a statement, parsed from its words (independent of how the helpers generate them)."""
    words = statement.rstrip(".").lower().split()
    if "larger" in words or "smaller" in words:
        a, b = WORDS.index(words[0]), WORDS.index(words[-1])
        return int(a > b) if "larger" in words else int(a < b)
    if "plus" in words:
        return int(WORDS.index(words[0]) + WORDS.index(words[2]) == WORDS.index(words[4]))
    in_it = capitals[words[0]] == words[-1]
    return int(in_it != ("not" in words))


# ----------------------------------------------------------------------------- the statements


def test_statements_are_labelled_correctly_and_balanced(monkeypatch):
    th = _th(monkeypatch)
    country_of = {city.lower(): country.lower() for country, cities in th.CITIES.items() for city in cities}
    assert len(country_of) == 36 and len(th.COUNTRIES) == 12
    sizes = {}
    for family in th.FAMILIES:
        everything = th.all_statements(family)
        assert len({s for s, _ in everything}) == len(everything), f"{family}: duplicate statements"
        for s, y in everything:
            assert _truth_by_parsing(s, country_of) == y, s
        texts, labels = th.statements(family, seed=0)
        assert sum(labels) * 2 == len(labels), f"{family} is not balanced"
        assert set(texts) <= {s for s, _ in everything} and len(set(texts)) == len(texts)
        assert th.statements(family, seed=0) == (texts, labels)  # deterministic
        assert th.statements(family, seed=1) != (texts, labels)
        sizes[family] = len(labels)
    assert sizes == {"cmp": 180, "sum": 200, "city": 72, "neg_city": 72}
    train, test = th.train_test_split(100, 0.3, seed=4)
    assert len(test) == 30 and sorted(torch.cat([train, test]).tolist()) == list(range(100))


def test_prompts_tokenize_with_the_answer_position(monkeypatch):
    th = _th(monkeypatch)
    model = th.load_model("lite")
    true_id, false_id = th.label_token_ids(model)
    assert model.to_string(torch.tensor([true_id])).strip() == "true" != model.to_string(torch.tensor([false_id])).strip()
    prompts = [th.to_prompt(s) for s in ["Paris is in France.", "Seven is larger than three.", "Rome is not in Spain."]]
    tokens, last_pos = th.tokenize_prompts(model, prompts)
    assert tokens.shape == (3, 10) and last_pos.tolist() == [8, 9, 9]
    bos = model.tokenizer.bos_token_id
    assert (tokens[:, 0] == bos).all() and tokens[0, 9] == model.tokenizer.pad_token_id
    for i, p in enumerate(prompts):
        alone = model.to_tokens(p)[0]
        assert torch.equal(tokens[i, : last_pos[i] + 1], alone), p
        assert model.to_str_tokens(alone)[-1] == "is" and model.to_str_tokens(alone)[1] == p.split()[0].lower()
    # every word of every prompt is in the vocabulary (nothing falls back to the unknown token)
    for family in th.FAMILIES:
        for s in th.statements(family)[0]:
            assert all(w in model.tokenizer.get_vocab() for w in th.to_prompt(s).lower().replace(".", " .").split()), s


# ----------------------------------------------------------------------------- the checkpoint


def test_lite_checkpoint_matches_its_hashes(monkeypatch):
    th = _th(monkeypatch)
    th.verify_lite_checkpoint()
    files = checkpoint_files(th.LITE_DIR, max_mib=2)
    assert files == {"SHA256SUMS", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "training_info.json"}
    info = json.loads((th.LITE_DIR / "training_info.json").read_text())
    assert info["seed"] == 1310 and info["steps"] >= 1000


@pytest.fixture(scope="module")
def evidence(module_monkeypatch):
    """The lite model's answers, probe accuracies and steering effects, measured here from the shipped checkpoint
    with code written for this test (nearest-mean classification, a hook of its own)."""
    th = import_fresh(module_monkeypatch, ASSIGNMENT.source_dir, "truth_helpers")

    torch.manual_seed(0)
    model = th.load_model("lite")
    true_id, false_id = th.label_token_ids(model)
    n_layers = model.cfg.n_layers
    names = [f"blocks.{l}.hook_resid_post" for l in range(n_layers)]
    out = {"answers": {}, "probe": {}, "steer": {}, "random": {}, "n_layers": n_layers}
    gen = torch.Generator().manual_seed(123)
    for family in th.FAMILIES:
        data = th.make_dataset(model, family, seed=7)  # other statements than the notebook's where there are more
        y, rows = data["labels"], torch.arange(len(data["labels"]))
        with torch.no_grad():
            logits, cache = model.run_with_cache(data["tokens"], names_filter=lambda n: n in names)
        diff = logits[rows, data["last_pos"], true_id] - logits[rows, data["last_pos"], false_id]
        out["answers"][family] = float(((diff > 0).long() == y).float().mean())
        train, test = th.train_test_split(len(y), 0.3, seed=11)
        accs, dirs = [], []
        for name in names:
            x = cache[name][rows, data["last_pos"]].double()
            m1, m0 = x[train][y[train] == 1].mean(0), x[train][y[train] == 0].mean(0)
            pred = ((x[test] - m1).norm(dim=-1) < (x[test] - m0).norm(dim=-1)).long()
            accs.append(float((pred == y[test]).float().mean()))
            dirs.append((m1 - m0).float())
        out["probe"][family] = accs
        mid = n_layers // 2
        false_test = test[y[test] == 0]
        false_test = false_test[diff[false_test] < 0]
        tokens, pos = data["tokens"][false_test], data["last_pos"][false_test]
        r = torch.arange(len(pos))
        randoms = torch.randn(8, model.cfg.d_model, generator=gen)
        randoms = randoms / randoms.norm(dim=-1, keepdim=True) * dirs[mid].norm()

        def flips(vec):
            def push(act, hook):
                act = act.clone()
                act[r, pos] = act[r, pos] + 2.0 * vec
                return act

            with torch.no_grad():
                steered = model.run_with_hooks(tokens, fwd_hooks=[(names[mid], push)])
            return float(((steered[r, pos, true_id] - steered[r, pos, false_id]) > 0).float().mean())

        out["steer"][family] = flips(dirs[mid])
        out["random"][family] = sum(flips(v) for v in randoms) / len(randoms)
    return out


def test_lite_model_answers_the_questions(evidence):
    for family, accuracy in evidence["answers"].items():
        assert accuracy >= 0.95, (family, accuracy)


def test_truth_is_linearly_readable_and_grows_through_the_layers(evidence):
    for family, accs in evidence["probe"].items():
        assert max(accs) >= 0.9, (family, accs)  # held-out statements, chance is 0.5
        assert accs[-1] >= accs[0] + 0.15, (family, accs)
    mid = evidence["n_layers"] // 2
    # readable in the middle of the model already, not only at the read-out
    assert sum(accs[mid] for accs in evidence["probe"].values()) / len(evidence["probe"]) >= 0.75, evidence["probe"]


def test_steering_along_the_truth_direction_flips_answers(evidence):
    """After the middle block, alpha = 2 times the family's own mass-mean direction, on false statements the model
    answered correctly: most answers flip to "true"; random directions of the same length (mean of 8) flip few."""
    steer, random = evidence["steer"], evidence["random"]
    assert sum(steer.values()) / len(steer) >= 0.6, steer
    assert all(v >= 0.4 for v in steer.values()), steer
    assert sum(random.values()) / len(random) <= 0.3, random
    for family in steer:
        assert steer[family] >= random[family] + 0.3, (family, steer, random)


def test_recorded_evidence_is_this_checkpoints(monkeypatch):
    """training_info.json's numbers are recomputed from the shipped checkpoint by the training script's own
    measure(), and the notebook's header table states them."""
    th = _th(monkeypatch)
    train_lite = import_fresh(monkeypatch, ASSIGNMENT.source_dir / "assets", "train_lite")

    recorded = json.loads((th.LITE_DIR / "training_info.json").read_text())["evidence"]
    measured = train_lite.measure(th.load_model("lite"))
    for key in ("answer_accuracy", "probe_accuracy_by_layer"):
        for family in th.FAMILIES:
            assert measured[key][family] == pytest.approx(recorded[key][family], abs=2e-3), (key, family)
    notebook = (ASSIGNMENT.source_dir / ASSIGNMENT.notebook).read_text()
    row = next(line for line in notebook.splitlines() if line.startswith("# | answers correct"))
    stated = [float(v) for v in re.findall(r"([\d.]+)%", row)]
    assert stated == [round(100 * recorded["answer_accuracy"][f], 1) for f in th.FAMILIES]
    row = next(line for line in notebook.splitlines() if line.startswith("# | mass-mean probe"))
    for family, cell in zip(th.FAMILIES, row.split("|")[2:6]):
        stated = [int(v) for v in re.findall(r"\d+", cell)]
        assert stated == [round(100 * a) for a in recorded["probe_accuracy_by_layer"][family]], (family, cell)
    mid = len(recorded["probe_accuracy_by_layer"]["cmp"]) // 2
    for prefix, key in [("# | false statements flipped", "alpha_"), ("# | the same with random", "random_alpha_")]:
        row = next(line for line in notebook.splitlines() if line.startswith(prefix))
        assert f"after block {mid}" in notebook
        for family, cell in zip(th.FAMILIES, row.split("|")[2:6]):
            stated = [int(v) for v in re.findall(r"\d+", cell)]
            steering = recorded["steering"][family][mid]
            assert stated == [round(100 * steering[f"{key}{a}"]) for a in (1, 2)], (family, cell)


# ----------------------------------------------------------------------------- the full profile


def test_full_profile_loads_gpt2_through_the_same_code_path(monkeypatch, tmp_path):
    """gpt2-small cannot be downloaded here: a tiny GPT-2 saved by transformers in the same format (with the lite
    tokenizer, which has " true" and " false" as tokens) is served by a fake hub, fetched and locked by
    ``autograder assets fetch``, and loaded by ``truth_helpers.load_model("full")`` with every network call refused."""
    from transformers import GPT2LMHeadModel

    from autograder.assets.declared import HubAsset, select_declared

    th = _th(monkeypatch)
    (asset,) = select_declared(REPO / "source", "1.3.1")[0].for_profile("full")
    assert isinstance(asset, HubAsset) and (asset.name, asset.hf_id, asset.kind) == ("gpt2-small", "gpt2", "hf")

    repo = tmp_path / "hub" / "gpt2"
    save_tiny_gpt2(repo, th.LITE_DIR / "tokenizer.json", n_layer=3)
    assert serve_hub(monkeypatch, {"gpt2": repo}) == []
    fetch_full_then_go_offline(monkeypatch, REPO / "source", REPO, "1.3.1", tmp_path / "cache")
    full = th.load_model("full")
    assert (full.cfg.n_layers, full.cfg.d_model, full.cfg.normalization_type) == (3, 32, "LNPre")
    reference = GPT2LMHeadModel.from_pretrained(repo).eval()
    data = th.make_dataset(full, "city")
    with torch.no_grad():
        ours = full(data["tokens"][:4]).log_softmax(-1)
        theirs = reference(data["tokens"][:4]).logits.log_softmax(-1)
    assert torch.allclose(ours, theirs, atol=1e-4)
    assert th.label_token_ids(full) == th.label_token_ids(th.load_model("lite"))
    # the notebook's code path on it: activations at every layer, a probe, steering
    names = [f"blocks.{l}.hook_resid_post" for l in range(full.cfg.n_layers)]
    with torch.no_grad():
        _, cache_ = full.run_with_cache(data["tokens"], names_filter=lambda n: n in names)
    assert cache_[names[-1]].shape[-1] == 32
    # without the asset the full profile names the fetch command, never downloading
    monkeypatch.setenv("AUTOGRADER_ASSETS", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="autograder assets fetch --profile full --assignment 1.3.1"):
        th.load_model("full")
