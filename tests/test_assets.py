"""Model and data assets (issue 4): declarations, the cache and its lock, the missing-asset error,
and the full profile's code path run offline against a fake hub serving tiny models."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

from autograder.assets import AssetMissingError, require_asset
from autograder.assets.declared import AssetDeclarationError, HubAsset, LocalAsset, read_declared, select_declared
from autograder.assets.fetch import fetch_assets, lite_lock
from autograder.assets.lock import LOCK_NAME, lock_text, read_lock, verify_against_lock, write_lock
from autograder.assets.loading import ChecksumError, sha256_file, write_sha256sums
from conftest import REPO
from fake_hub import FAKE_COMMIT, serve_hub

SOURCE = REPO / "source"


def _section(name: str) -> Path:
    return next(SOURCE.glob(f"{name}_*"))


def _import_helper(monkeypatch, section: str, module: str):
    monkeypatch.syspath_prepend(str(_section(section)))
    sys.modules.pop(module, None)
    return __import__(module)


# ----------------------------------------------------------------------------- declarations


def test_sections_declare_typed_assets():
    tfs = read_declared(_section("1.1"))
    assert tfs.for_profile("lite") == (LocalAsset("model", "assets/lite", None, "assets/train_lite.py"),)
    (gpt2,) = tfs.for_profile("full")
    assert isinstance(gpt2, HubAsset) and (gpt2.name, gpt2.hf_id, gpt2.kind, gpt2.repo_type) == ("gpt2", "gpt2", "hf", "model")
    mi = {a.name: a for a in read_declared(_section("1.2")).for_profile("full")}
    assert mi["attn-only-2l"].kind == "transformer_lens" and mi["gpt2-small"].hf_id == "gpt2"
    (grok,) = read_declared(_section("1.5.2")).for_profile("full")
    assert grok == LocalAsset("model", "assets/full", "GROKKING_FULL_DIR", None)
    assert read_declared(_section("1.5.4")).profiles == {}
    assert [d.assignment for d in select_declared(SOURCE, "1.5.3")] == ["1.5.3_othellogpt"]


@pytest.mark.parametrize("table, complaint", [
    ('[[assets.full.models]]\nname = "x"\n', "needs an hf_id"),
    ('[[assets.full.models]]\nhf_id = "gpt2"\nkind = "onnx"\n', "kind must be one of"),
    ('[[assets.full.models]]\nhf_id = "gpt2"\nbranch = "main"\n', "unknown keys ['branch']"),
    ('[assets.full]\nenv = "X_DIR"\n', "has 'env' but no 'model'"),
    ('[assets.medium]\nmodel = "assets/medium"\n', "unknown asset profiles ['medium']"),
    ('[[assets.full.models]]\nhf_id = "gpt2"\n[[assets.full.models]]\nhf_id = "gpt2"\n', "names ['gpt2'] more than once"),
])
def test_malformed_declarations_name_the_file_and_the_fix(tmp_path, table, complaint):
    (tmp_path / "assignment.toml").write_text('[assignment]\nid = "9.9"\n' + table)
    with pytest.raises(AssetDeclarationError) as info:
        read_declared(tmp_path)
    assert complaint in str(info.value) and "assignment.toml" in str(info.value)


# ----------------------------------------------------------------------------- lite: cache, lock, verify


def _fake_course(root: Path) -> Path:
    """A course with one assignment whose lite folder holds two small files and their SHA256SUMS."""
    section = root / "source" / "9.9_toy"
    lite = section / "assets" / "lite"
    (lite / "sub").mkdir(parents=True)
    (lite / "config.json").write_text('{"d_model": 4}')
    (lite / "sub" / "weights.bin").write_bytes(bytes(range(200)))
    write_sha256sums(lite, ["config.json", "sub/weights.bin"])
    (section / "assignment.toml").write_text('[assignment]\nid = "9.9_toy"\n[assets.lite]\nmodel = "assets/lite"\n')
    return section


def test_lite_fetch_copies_verified_files_and_locks_each_one(tmp_path):
    section = _fake_course(tmp_path / "course")
    cache = tmp_path / "cache"
    report = fetch_assets(select_declared(tmp_path / "course" / "source", None), "lite", cache, tmp_path / "course")
    assert report.problems == []
    (asset,) = report.fetched
    assert asset.path == "lite/9.9_toy/model" and asset.revision is None
    weights = next(f for f in asset.files if f.path == "sub/weights.bin")
    assert weights.size == 200 and weights.sha256 == sha256_file(section / "assets/lite/sub/weights.bin")
    assert weights.source == "source/9.9_toy/assets/lite/sub/weights.bin"
    write_lock(cache / LOCK_NAME, report.fetched)
    assert read_lock(cache / LOCK_NAME) == report.fetched
    assert require_asset("9.9", "model", "lite", cache=cache) == cache / "lite/9.9_toy/model"
    assert verify_against_lock(cache, report.fetched) == []
    # A file changed in the cache after fetching: verify names it; a truncated one makes require_asset refuse.
    (cache / "lite/9.9_toy/model/sub/weights.bin").write_bytes(bytes(200))
    (problem,) = verify_against_lock(cache, report.fetched)
    assert "sub/weights.bin" in problem and "sha256" in problem
    (cache / "lite/9.9_toy/model/config.json").write_text("{}")
    with pytest.raises(AssetMissingError, match="config.json is incomplete"):
        require_asset("9.9", "model", "lite", cache=cache)


def test_lite_fetch_refuses_a_folder_that_does_not_match_its_sums(tmp_path):
    section = _fake_course(tmp_path / "course")
    (section / "assets/lite/sub/weights.bin").write_bytes(b"tampered")
    report = fetch_assets(select_declared(tmp_path / "course" / "source", None), "lite", tmp_path / "cache", tmp_path)
    assert report.fetched == []
    (problem,) = report.problems
    assert "checksum mismatch" in problem and "weights.bin" in problem
    assert not (tmp_path / "cache" / "lite").exists()


def test_committed_lock_matches_the_shipped_lite_assets():
    """assets.lock.json at the course root is what `autograder assets lock` writes from source/ today."""
    committed = REPO / LOCK_NAME
    assert committed.is_file(), "run `autograder assets lock` and commit assets.lock.json"
    assert committed.read_text() == lock_text(lite_lock(select_declared(SOURCE, None), REPO))


def test_cli_fetch_then_verify(tmp_path, monkeypatch, capsys):
    from autograder.cli import main

    cache = tmp_path / "cache"
    assert main(["--root", str(REPO), "assets", "fetch", "--profile", "lite", "--assignment", "1.5.1",
                 "--cache", str(cache)]) == 0
    (asset,) = read_lock(cache / LOCK_NAME)
    assert asset.assignment == "1.5.1_balanced_brackets" and {f.path for f in asset.files} >= {"config.json", "model.safetensors"}
    monkeypatch.setenv("AUTOGRADER_ASSETS", str(cache))
    assert main(["--root", str(REPO), "assets", "verify"]) == 0
    (cache / asset.path / "config.json").write_text("{}")
    assert main(["--root", str(REPO), "assets", "verify"]) == 1
    assert "config.json" in capsys.readouterr().err


# ----------------------------------------------------------------------------- missing assets never go online


@pytest.fixture
def no_network(monkeypatch):
    """Every way the loaders could reach a hub fails the test."""
    import huggingface_hub

    def refuse(*args, **kwargs):
        pytest.fail(f"network call at grading time: {args} {kwargs}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_missing_full_asset_names_the_fetch_command_without_a_network_call(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("AUTOGRADER_ASSETS", str(tmp_path / "empty-cache"))
    tfs = _import_helper(monkeypatch, "1.1", "tfs_helpers")
    mi = _import_helper(monkeypatch, "1.2", "mi_helpers")
    start = time.perf_counter()
    with pytest.raises(AssetMissingError) as info:
        tfs.load_hooked_gpt2("full")
    message = str(info.value)
    assert "assignment 1.1" in message and "'gpt2'" in message and str(tmp_path / "empty-cache") in message
    assert "autograder assets fetch --profile full --assignment 1.1" in message
    with pytest.raises(AssetMissingError, match="autograder assets fetch --profile full --assignment 1.2"):
        mi.load_model("full", name="attn-only-2l")
    assert time.perf_counter() - start < 5
    assert isinstance(info.value, FileNotFoundError)


# ----------------------------------------------------------------------------- full profile, against a fake hub


@pytest.fixture(scope="module")
def tiny_repos(tmp_path_factory):
    """Hub repos as folders: a tiny GPT-2 saved by transformers (HF format, the 1.1 lite tokenizer),
    a tiny attention-only model in TransformerLens's hub format, and a tokenizer repo."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("hub")
    lite = _section("1.1") / "assets" / "lite"
    vocab = json.loads((lite / "config.json").read_text())["vocab_size"]
    gpt2 = root / "gpt2"
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=32, n_ctx=32, n_embd=32, n_layer=2, n_head=4,
                                       bos_token_id=0, eos_token_id=0))
    model.save_pretrained(gpt2)
    shutil.copyfile(lite / "tokenizer.json", gpt2 / "tokenizer.json")

    from autograder.assets.loading import new_hooked, tl_config

    attn = root / "attn-only"
    attn.mkdir()
    neel_config = dict(d_model=32, n_layers=2, d_mlp=-1, d_head=8, n_heads=4, n_ctx=32, d_vocab=vocab, act_fn="gelu",
                       attn_only=True, normalization="LN", shortformer_pos=True, tokenizer_name="NeelNanda/gpt-neox-tokenizer-digits")
    (attn / "config.json").write_text(json.dumps(neel_config))
    tl_model = new_hooked(tl_config(dict(d_model=32, n_layers=2, d_mlp=-1, d_head=8, n_heads=4, n_ctx=32, d_vocab=vocab,
                                         act_fn="gelu", attn_only=True, normalization_type="LN",
                                         positional_embedding_type="shortformer", seed=1)))
    torch.save(tl_model.state_dict(), attn / "model_final.pth")
    torch.save({}, attn / "model_1000.pth")  # a checkpoint the declaration's allow-patterns leave out

    tokenizer = root / "tokenizer"
    tokenizer.mkdir()
    shutil.copyfile(lite / "tokenizer.json", tokenizer / "tokenizer.json")
    (tokenizer / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
    }))
    return {"gpt2": gpt2, "NeelNanda/Attn_Only_2L512W_C4_Code": attn, "NeelNanda/gpt-neox-tokenizer-digits": tokenizer}


@pytest.fixture
def fake_hub(monkeypatch, tiny_repos):
    """The tiny repos served as the hub; the list of (repo_id, revision) fetched."""
    return serve_hub(monkeypatch, tiny_repos)


def _fetch_full(cache: Path, name: str):
    report = fetch_assets(select_declared(SOURCE, name), "full", cache, REPO)
    assert report.problems == []
    write_lock(cache / LOCK_NAME, read_lock(cache / LOCK_NAME) + report.fetched)
    return report


def test_full_fetch_then_load_gpt2_offline_through_the_lite_code_path(tmp_path, monkeypatch, fake_hub, tiny_repos):
    import torch
    from transformers import GPT2LMHeadModel

    cache = tmp_path / "cache"
    (gpt2,) = _fetch_full(cache, "1.1").fetched
    assert fake_hub == [("gpt2", FAKE_COMMIT)]
    assert gpt2.revision == FAKE_COMMIT and gpt2.path == "hub/model/gpt2@main"
    safetensors = next(f for f in gpt2.files if f.path == "model.safetensors")
    assert safetensors.source == f"hf://gpt2@{FAKE_COMMIT}/model.safetensors"
    assert safetensors.sha256 == sha256_file(tiny_repos["gpt2"] / "model.safetensors")

    monkeypatch.setenv("AUTOGRADER_ASSETS", str(cache))
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("network call while loading"))
    tfs = _import_helper(monkeypatch, "1.1", "tfs_helpers")
    model = tfs.load_hooked_gpt2("full")
    reference = GPT2LMHeadModel.from_pretrained(tiny_repos["gpt2"]).eval()
    tokens = torch.tensor([[0, 5, 17, 42, 7, 99, 3]])
    with torch.no_grad():
        assert torch.allclose(model(tokens), reference(tokens).logits, atol=1e-4)
    assert model.cfg.d_mlp == 128 and tfs.load_tokenizer("full").vocab_size == model.cfg.d_vocab


def test_full_fetch_then_load_section_1_2_models_offline(tmp_path, monkeypatch, fake_hub, tiny_repos):
    import torch
    from transformers import GPT2LMHeadModel

    cache = tmp_path / "cache"
    fetched = {a.name: a for a in _fetch_full(cache, "1.2").fetched}
    assert {f.path for f in fetched["attn-only-2l"].files} == {"config.json", "model_final.pth"}
    assert fetched["gpt2-small"].path == fetched["attn-only-2l-tokenizer"].path.replace("NeelNanda/gpt-neox-tokenizer-digits", "gpt2")

    monkeypatch.setenv("AUTOGRADER_ASSETS", str(cache))
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("network call while loading"))
    mi = _import_helper(monkeypatch, "1.2", "mi_helpers")
    attn = mi.load_model("full", name="attn-only-2l")
    saved = torch.load(tiny_repos["NeelNanda/Attn_Only_2L512W_C4_Code"] / "model_final.pth", weights_only=True)
    assert attn.cfg.positional_embedding_type == "shortformer" and attn.cfg.attn_only
    # Shortformer: nothing folded but the value biases, so the weights are the saved ones.
    assert torch.equal(attn.W_Q[0], saved["blocks.0.attn.W_Q"]) and torch.equal(attn.W_E, saved["embed.W_E"])
    assert attn.to_tokens("Once upon a time")[0, 0].item() == 0

    small = mi.load_model("full", name="gpt2-small")
    assert small.cfg.normalization_type == "LNPre"  # LayerNorm folded, as from_pretrained does for gpt2-small
    reference = GPT2LMHeadModel.from_pretrained(tiny_repos["gpt2"]).eval()
    tokens = torch.tensor([[0, 5, 17, 42, 7, 99, 3]])
    with torch.no_grad():
        ours, theirs = small(tokens).log_softmax(-1), reference(tokens).logits.log_softmax(-1)
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_declared_hub_models_are_the_repos_transformer_lens_names():
    """Each full-profile model is declared under its TransformerLens name, with the hub repo
    TransformerLens's own registry gives for that name (checked offline, from the installed package).
    SAEs (kind sae_lens) are named by their SAELens release instead, and datasets by their repo."""
    from transformer_lens.loading_from_pretrained import get_official_model_name

    models = [a for d in select_declared(SOURCE, None) for a in d.for_profile("full")
              if isinstance(a, HubAsset) and a.kind in ("hf", "transformer_lens") and not a.name.endswith("-tokenizer")]
    assert {a.name for a in models} >= {"gpt2", "attn-only-2l", "gpt2-small"}
    for asset in models:
        assert get_official_model_name(asset.name) == asset.hf_id, asset


def test_fetch_reports_a_tokenizer_the_model_names_but_the_assignment_does_not_declare(
        tmp_path, monkeypatch, fake_hub, tiny_repos):
    """What the hub serves is checked: attn-only-2l's config.json names its tokenizer repo."""
    config = tiny_repos["NeelNanda/Attn_Only_2L512W_C4_Code"] / "config.json"
    original = config.read_text()
    config.write_text(original.replace("NeelNanda/gpt-neox-tokenizer-digits", "someone/another-tokenizer"))
    try:
        report = fetch_assets(select_declared(SOURCE, "1.2"), "full", tmp_path / "cache", REPO)
    finally:
        config.write_text(original)
    (problem,) = report.problems
    assert "attn-only-2l" in problem and "'someone/another-tokenizer'" in problem and "[[assets.full.models]]" in problem
    assert len(report.fetched) == 3  # the assets themselves are still fetched


def test_full_fetch_with_hub_offline_says_so_and_fetches_nothing(tmp_path, monkeypatch, no_network):
    report = fetch_assets(select_declared(SOURCE, "1.1"), "full", tmp_path / "cache", REPO)
    assert report.fetched == []
    (problem,) = report.problems
    assert "HF_HUB_OFFLINE is set" in problem and "gpt2" in problem


@pytest.mark.parametrize("section, module, loader", [
    ("1.1", "tfs_helpers", "model_folder"), ("1.3.1", "truth_helpers", "model_folder"),
    ("1.3.4", "oracle_helpers", "target_folder"), ("1.4.1", "ioi_helpers", "model_folder"),
    ("1.5.2", "grok_helpers", "model_dir"),
])
def test_an_unknown_profile_is_refused_naming_the_known_ones(monkeypatch, section, module, loader):
    """Every section's loaders share one profile check (autograder.assets.check_profile): a typo never falls
    through to the full profile's cache lookup."""
    helpers = _import_helper(monkeypatch, section, module)
    with pytest.raises(ValueError, match=r"unknown profile 'ful'; expected one of 'lite', 'full'"):
        getattr(helpers, loader)("ful")


def test_full_local_folder_is_copied_and_found_by_the_section(tmp_path, monkeypatch):
    """1.5.2's full model is an instructor-provided folder: fetch copies it, the helper finds it in the cache."""
    grok = _import_helper(monkeypatch, "1.5.2", "grok_helpers")
    folder = tmp_path / "p113"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(grok.LITE_DIR / name, folder / name)
    monkeypatch.setenv("GROKKING_FULL_DIR", str(folder))
    cache = tmp_path / "cache"
    _fetch_full(cache, "1.5.2")
    monkeypatch.delenv("GROKKING_FULL_DIR")
    monkeypatch.setenv("AUTOGRADER_ASSETS", str(cache))
    assert grok.model_dir("full") == cache / "full" / "1.5.2_grokking_and_modular_arithmetic" / "model"
    assert grok.task_info("full") == grok.task_info("lite")


def test_checksum_errors_name_the_file_and_the_fix(tmp_path):
    from autograder.assets.loading import verify_sha256sums

    (tmp_path / "a.bin").write_bytes(b"x")
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  a.bin\n")
    with pytest.raises(ChecksumError, match=r"a\.bin.*python train\.py"):
        verify_sha256sums(tmp_path, "python train.py")
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  gone.bin\n")
    with pytest.raises(ChecksumError, match=r"missing: .*gone\.bin"):
        verify_sha256sums(tmp_path, "python train.py")


# ----------------------------------------------------------------------------- full profile in the sandbox


@pytest.mark.parametrize("warm", [True, False], ids=["warm-worker", "cold-process"])
def test_full_profile_grades_under_bubblewrap_from_the_read_only_cache(tmp_path, monkeypatch, fake_hub, warm):
    """The student's notebook loads the full model itself, inside the sandbox: the cache is bound
    read-only at the path ``AUTOGRADER_ASSETS`` names there, and the network stays off."""
    import nbformat

    from autograder.authoring.assignment import find_assignment
    from autograder.build import ensure_bundle
    from autograder.build.samples import reference_submission
    from autograder.grade.bundle import load_bundle
    from autograder.grade.runner import Grader
    from autograder.grade.sandbox import SandboxUnavailable, check_bwrap
    from autograder.layout import CourseLayout

    try:
        check_bwrap()
    except SandboxUnavailable as exc:
        pytest.skip(f"SKIPPED LOUDLY: the full profile's sandbox mount needs bubblewrap: {exc}")
    cache = tmp_path / "cache"
    _fetch_full(cache, "1.1")
    monkeypatch.setenv("AUTOGRADER_ASSETS", str(cache))
    layout = CourseLayout(REPO)
    assignment = find_assignment(layout.source, "1.1")
    ensure_bundle(layout, assignment)

    nb = reference_submission(assignment)
    probe = (  # runs in the student's own process, with the first answer cell
        "import os as _os, pathlib as _pathlib\n"
        "from tfs_helpers import load_hooked_gpt2 as _load\n"
        "_cache = _pathlib.Path(_os.environ['AUTOGRADER_ASSETS'])\n"
        "print('PROBE d_model', _load('full').cfg.d_model, 'from', _cache)\n"
        "try:\n"
        "    (_cache / 'mine.txt').write_text('x')\n"
        "    print('PROBE cache writable')\n"
        "except OSError as _exc:\n"
        "    print('PROBE cache read-only:', type(_exc).__name__)\n"
    )
    first_answer = next(c for c in nb.cells if c.get("id") == assignment.exercises[0].name)
    first_answer.source = probe + first_answer.source
    submission = tmp_path / "reference.ipynb"
    submission.write_text(nbformat.writes(nb))
    with Grader(load_bundle(layout.bundles / assignment.id), profile="full", sandbox="bwrap", warm=warm) as grader:
        result = grader.grade_path(submission)
    lost = {e.name: [t.output for t in e.tests if t.score < t.max_score] for e in result.exercises if e.score < e.max_score}
    assert result.error is None and lost == {}, (result.error, lost, result.output[-2000:])
    # The student's own process loaded the tiny "gpt2" (d_model 32; lite's differs) from the mount.
    assert "PROBE d_model 32 from /opt/assets" in result.output, result.output[-2000:]
    assert "PROBE cache read-only" in result.output and not (cache / "mine.txt").exists()
    assert fake_hub == [("gpt2", FAKE_COMMIT)]  # fetched once, before grading; grading asked the hub nothing
