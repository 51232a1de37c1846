"""Section 1.5.3, beyond what ``test_sections.py`` checks for every section
(reference 100, blank 0, each mutant and alternative graded on its own): the
Othello engine against an independent one, the shipped checkpoint and its hashes,
the full profile's loading path, and the measured evidence that the lite model
predicts legal moves and holds a linearly readable board."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autograder.authoring.assignment import find_assignment
from autograder.layout import CourseLayout
from conftest import REPO
from sections import import_fresh

ASSIGNMENT = find_assignment(CourseLayout(REPO).source, "1.5.3")


def _oh(monkeypatch):
    return import_fresh(monkeypatch, ASSIGNMENT.source_dir, "othello_helpers")


# ----------------------------------------------------------------------------- the engine


def _slow_legal(board: list[int], player: int) -> set[int]:
    """Legal squares by walking each ray, one square at a time (independent of the bitboard engine)."""
    out = set()
    for s in range(64):
        if board[s]:
            continue
        r0, c0 = divmod(s, 8)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if dr == dc == 0:
                    continue
                r, c, seen = r0 + dr, c0 + dc, 0
                while 0 <= r < 8 and 0 <= c < 8 and board[8 * r + c] == -player:
                    r, c, seen = r + dr, c + dc, seen + 1
                if seen and 0 <= r < 8 and 0 <= c < 8 and board[8 * r + c] == player:
                    out.add(s)
    return out


def _slow_play(board: list[int], player: int, square: int) -> list[int]:
    board = list(board)
    r0, c0 = divmod(square, 8)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr == dc == 0:
                continue
            r, c, line = r0 + dr, c0 + dc, []
            while 0 <= r < 8 and 0 <= c < 8 and board[8 * r + c] == -player:
                line.append(8 * r + c)
                r, c = r + dr, c + dc
            if line and 0 <= r < 8 and 0 <= c < 8 and board[8 * r + c] == player:
                for q in line:
                    board[q] = player
    board[square] = player
    return board


def test_engine_matches_a_slow_reference_engine(monkeypatch):
    """Random games (passes allowed) replayed move by move with a plain-Python engine."""
    oh = _oh(monkeypatch)
    squares, boards = oh.random_games(40, seed=7, allow_passes=True, batch=64)
    passes = 0
    for g in range(len(squares)):
        board, player = [int(v) for v in oh.initial_boards(1)[0]], oh.BLACK
        for t in range(oh.GAME_LENGTH):
            legal = _slow_legal(board, player)
            if not legal:
                if not _slow_legal(board, -player):
                    assert squares[g, t] == -1, "the game went on after neither player could move"
                    break
                player, passes = -player, passes + 1
                legal = _slow_legal(board, player)
            assert int(squares[g, t]) in legal
            assert set(np.nonzero(oh.legal_moves(np.array([board], dtype=np.int8), player)[0])[0]) == legal
            board = _slow_play(board, player, int(squares[g, t]))
            assert board == [int(v) for v in boards[g, t]]
            player = -player
    assert passes > 0, "no game with a pass among 40; the pass path was not exercised"


def test_games_tokens_and_states(monkeypatch):
    import torch

    oh = _oh(monkeypatch)
    games = oh.exercise_games(6, seed=11)
    assert games["tokens"].shape == (6, 60) and games["tokens"].min() >= 1 and games["tokens"].max() <= 60
    assert torch.equal(oh.tokens_to_squares(games["tokens"]), games["squares"])
    # a pass-free game fills the board; every token is used once per game
    assert all(len(set(row.tolist())) == 60 for row in games["tokens"])
    assert (games["boards"][:, -1] != 0).all()
    # states: mine = the colour of the player to move next (white after even positions)
    b, st = games["boards"][0, 10], games["states"][0, 10].flatten()
    assert torch.equal(st == 1, b == oh.WHITE) and torch.equal(st == 2, b == oh.BLACK)  # t = 10: white to move
    b, st = games["boards"][0, 11], games["states"][0, 11].flatten()
    assert torch.equal(st == 1, b == oh.BLACK) and torch.equal(st == 0, b == 0)
    # the move played next is legal at each position
    nxt = games["tokens"][:, 1:]
    assert games["legal"][:, :-1].gather(-1, nxt[..., None]).all()
    # same seed, same games
    assert torch.equal(oh.exercise_games(6, seed=11)["tokens"], games["tokens"])


def test_patching_pair_is_legal_and_differs(monkeypatch):
    oh = _oh(monkeypatch)
    games = oh.exercise_games(4, seed=12)
    for g in range(4):
        pair = oh.patching_pair(games["squares"][g], start=10, extra=3)
        clean, corrupted = pair["clean"][0], pair["corrupted"][0]
        assert (clean != corrupted).sum() == 1 and clean[pair["T"]] != corrupted[pair["T"]]
        for tokens, want in [(clean, pair["clean_board"]), (corrupted, pair["corrupted_board"])]:
            board, player = [int(v) for v in oh.initial_boards(1)[0]], oh.BLACK
            for sq in oh.tokens_to_squares(tokens).tolist():
                assert sq in _slow_legal(board, player)
                board, player = _slow_play(board, player, sq), -player
            assert board == [int(v) for v in want]
            target_legal = oh.TOKEN_TO_SQUARE[pair["target"]] in _slow_legal(board, player)
            assert target_legal == (tokens is clean)


# ----------------------------------------------------------------------------- the lite model and the full path


def test_lite_checkpoint_matches_its_hashes(monkeypatch):
    oh = _oh(monkeypatch)
    oh.verify_checkpoint()
    total = sum(p.stat().st_size for p in oh.LITE_DIR.iterdir() if p.is_file())
    assert total <= 5 * 1024 * 1024, total


def test_full_profile_loads_through_the_same_code_path(monkeypatch, tmp_path):
    """The public OthelloGPT is not shipped; its loader is the lite one, tried on a copy of the lite checkpoint."""
    import shutil

    import torch

    assert ASSIGNMENT.assets["full"]["model"] == "assets/full"
    assert ASSIGNMENT.assets["full"]["env"] == "OTHELLO_FULL_DIR"
    oh = _oh(monkeypatch)
    for name in ("config.json", "model.safetensors", "probe.safetensors"):
        shutil.copyfile(oh.LITE_DIR / name, tmp_path / name)
    monkeypatch.setenv("OTHELLO_FULL_DIR", str(tmp_path))
    lite, full = oh.load_model("lite"), oh.load_model("full")
    tokens = oh.exercise_games(3, seed=5)["tokens"][:, :59]
    with torch.no_grad():
        assert torch.equal(lite(tokens), full(tokens))
    (p_lite, l_lite), (p_full, l_full) = oh.load_probe("lite"), oh.load_probe("full")
    assert torch.equal(p_lite, p_full) and l_lite == l_full
    assert p_full.shape == (full.cfg.d_model, 8, 8, 3)
    # the config keys the public model needs are the ones the loader reads
    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("n_layers", "d_model", "n_heads", "d_mlp", "d_vocab", "n_ctx", "probe_layer"):
        assert key in config
    assert config["d_vocab"] == 61 and config["n_ctx"] == 59
    # without the folder, the full profile says what to do
    monkeypatch.setenv("OTHELLO_FULL_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="OTHELLO_FULL_DIR"):
        oh.load_model("full")


@pytest.fixture(scope="module")
def lite_measurements(module_monkeypatch):
    """Legal-move accuracy and probe accuracy of the lite model on fresh games, measured here."""
    import torch

    oh = import_fresh(module_monkeypatch, ASSIGNMENT.source_dir, "othello_helpers")

    torch.manual_seed(0)
    model = oh.load_model("lite")
    squares, boards = oh.random_games(200, seed=98765)
    tokens = oh.squares_to_tokens(squares)[:, :59]
    legal = oh.legal_token_masks(boards)[:, :59]
    states = oh.relative_states(boards)[:, :59]
    probes = oh.load_layer_probes("lite")
    names = {-1: "blocks.0.hook_resid_pre", **{l: f"blocks.{l}.hook_resid_post" for l in range(model.cfg.n_layers)}}
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names.values())
    logits[..., 0] = -torch.inf
    top1 = legal.gather(-1, logits.argmax(-1, keepdim=True))[..., 0].float().mean()
    n_empty = (torch.as_tensor(boards[:, :59]) == 0).sum(-1)
    out = dict(
        top1=float(top1),
        uniform_60=float((legal.sum(-1) / 60).float().mean()),
        uniform_empty=float((legal.sum(-1) / n_empty).float().mean()),
        probes={},
    )
    # majority-class baselines from other games (per position and square)
    _, b2 = oh.random_games(300, seed=4321)
    s2 = oh.relative_states(b2)[:, :59]
    counts = torch.nn.functional.one_hot(s2, 3).sum(0)
    majority = counts.argmax(-1)
    occupied = states != 0
    out["majority"] = float((states == majority).float().mean())
    mt_majority = counts[..., 1:].argmax(-1) + 1
    out["mt_majority"] = float((states == mt_majority.expand_as(states))[occupied].float().mean())
    for layer, probe in probes.items():
        pred = torch.einsum("gpd,dijk->gpijk", cache[names[layer]], probe).argmax(-1)
        out["probes"][layer] = dict(acc=float((pred == states).float().mean()),
                                    mt=float((pred == states)[occupied].float().mean()))
    out["probe_layer"] = oh.load_probe("lite")[1]
    out["info"] = oh.training_info("lite")
    return out


def test_lite_model_predicts_legal_moves(lite_measurements):
    m = lite_measurements
    assert m["top1"] > 0.8, m
    assert m["top1"] > m["uniform_empty"] + 0.3, m  # far above a guess that knows only which squares are empty
    assert m["top1"] > 3 * m["uniform_60"], m
    recorded = m["info"]["legal_moves"]["top1_legal_accuracy"]
    assert abs(recorded - m["top1"]) < 0.05, (recorded, m["top1"])


def test_lite_board_is_linearly_readable(lite_measurements):
    """The probe at the shipped probe layer beats the majority-class baseline clearly, and reads
    mine vs theirs far better than chance; the embeddings alone read it worst."""
    m = lite_measurements
    best = m["probes"][m["probe_layer"]]
    assert best["acc"] > m["majority"] + 0.15, (best, m["majority"])
    assert best["mt"] > m["mt_majority"] + 0.1, (best, m["mt_majority"])
    assert best["mt"] > 0.65, best
    assert m["probes"][-1]["mt"] < best["mt"] - 0.1, m["probes"]
    recorded = m["info"]["probe"]["per_layer"][str(m["probe_layer"])]["mine_vs_theirs_accuracy_on_occupied"]
    assert abs(recorded - best["mt"]) < 0.05, (recorded, best["mt"])
