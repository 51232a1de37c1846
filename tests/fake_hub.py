"""A fake Hugging Face hub, for the full profile's tests.

Nothing can be downloaded on the machines that run the suite, so the full
profile's path (``autograder assets fetch``, then a section loading from the
asset cache) is exercised on tiny repositories saved in the real formats and
served from local folders.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Mapping

import pytest

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"  # what repo_info answers: the revision locked


def serve_hub(monkeypatch: pytest.MonkeyPatch, repos: Mapping[str, Path]) -> list[tuple[str, str]]:
    """``snapshot_download`` copies from ``repos[repo_id]`` (honouring ``allow_patterns``) and
    ``repo_info`` answers a fixed commit. Returns the list of (repo_id, revision) asked for, as they come."""
    import huggingface_hub

    calls: list[tuple[str, str]] = []

    def snapshot_download(repo_id, repo_type, revision, allow_patterns, local_dir):
        calls.append((repo_id, revision))
        src = repos[repo_id]
        for path in src.rglob("*"):
            rel = path.relative_to(src).as_posix()
            if path.is_file() and (allow_patterns is None or any(fnmatch.fnmatch(rel, p) for p in allow_patterns)):
                (Path(local_dir) / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, Path(local_dir) / rel)
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info",
                        lambda self, repo_id, repo_type, revision: SimpleNamespace(sha=FAKE_COMMIT))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return calls


def save_tiny_gpt2(folder: Path, tokenizer_json: Path, n_layer: int, d_model: int = 32, n_head: int = 4) -> None:
    """A randomly initialised GPT-2 saved by transformers, with a section's word-level tokenizer
    (so that the section's prompts tokenize as they do in lite)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    vocab = len(json.loads(tokenizer_json.read_text())["model"]["vocab"])
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=32, n_ctx=32, n_embd=d_model, n_layer=n_layer,
                               n_head=n_head, bos_token_id=0, eos_token_id=0)).save_pretrained(folder)
    shutil.copyfile(tokenizer_json, folder / "tokenizer.json")


def fetch_full_then_go_offline(monkeypatch: pytest.MonkeyPatch, source: Path, repo_root: Path, assignment: str,
                               cache: Path) -> None:
    """Fetch and lock ``assignment``'s full-profile assets into ``cache`` from the hub being served, point
    the sections at that cache, and fail the test on any network call after that."""
    from autograder.assets.declared import select_declared
    from autograder.assets.fetch import fetch_assets
    from autograder.assets.lock import LOCK_NAME, read_lock, write_lock

    report = fetch_assets(select_declared(source, assignment), "full", cache, repo_root)
    assert report.problems == []
    write_lock(cache / LOCK_NAME, read_lock(cache / LOCK_NAME) + report.fetched)
    monkeypatch.setenv("AUTOGRADER_ASSETS", str(cache))
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("network call while loading"))
