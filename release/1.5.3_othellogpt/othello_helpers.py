"""Support code for section 1.5.3 "OthelloGPT".

Used by the student notebook, the public checks, the grader's hidden tests and
``assets/train_lite.py``. It holds:

* an 8x8 Othello engine (legal moves, flips, passes), batched over games with numpy;
* a generator of random legal games, and the token vocabulary the models use;
* the model loader. Two profiles, one code path:

  - ``lite`` (default): a small GPT trained by ``assets/train_lite.py`` on random legal
    games, shipped in ``assets/lite/`` (config.json, model.safetensors, probe.safetensors,
    training_info.json, SHA256SUMS);
  - ``full``: the public synthetic OthelloGPT (8 layers, d_model 512, d_mlp 2048, 8 heads,
    vocab 61, n_ctx 59) with its board-state probe. It is not shipped: save its weights in
    the same format (``config.json`` + ``model.safetensors`` + ``probe.safetensors``) in
    ``assets/full/`` or point ``OTHELLO_FULL_DIR`` at such a folder.

  Both are loaded the same way: ``config.json`` -> ``HookedTransformerConfig`` ->
  ``HookedTransformer(cfg)`` -> ``load_state_dict`` of a safetensors state dict. The probe
  is a tensor of shape ``(d_model, 8, 8, 3)`` (options: blank, mine, theirs) read at
  ``resid_post`` of ``config["probe_layer"]``. Select the profile with the
  ``AUTOGRADER_PROFILE`` environment variable.

Conventions
-----------
* Squares are numbered 0..63, row-major: square ``8 * row + col``; labels are ``A0`` .. ``H7``
  (row letter, column digit).
* Board cells hold ``0`` (blank), ``1`` (black) or ``-1`` (white). Black moves first.
* Tokens: ``0`` is pass/padding (never used by the shipped games), ``1..60`` are the 60
  squares that are not one of the four centre squares, in increasing square order.
* A game is 60 moves long when nobody has to pass. The generator keeps only such games, so the
  player to move alternates and "mine/theirs" follows from the position's parity.
* After move ``t`` (position ``t`` of the token sequence, 0-indexed), the player to move next
  is white if ``t`` is even and black if ``t`` is odd. "Mine" is that player's colour.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from autograder.assets.cache import profile_folder
from autograder.assets.loading import (  # noqa: F401 - read_config, sha256_file: part of this module's API
    load_safetensors, new_hooked, read_config, sha256_file, tl_config, verify_sha256sums,
)

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer

PROFILE = os.environ.get("AUTOGRADER_PROFILE", "lite")
HERE = Path(__file__).resolve().parent
LITE_DIR = HERE / "assets" / "lite"
REGENERATE_CMD = "cd source/1.5.3_othellogpt && nice -n 10 python assets/train_lite.py"

BLANK, BLACK, WHITE = 0, 1, -1
CENTRE = (27, 28, 35, 36)
# token t in 1..60 <-> square
TOKEN_TO_SQUARE = [-1] + [s for s in range(64) if s not in CENTRE]
SQUARE_TO_TOKEN = {s: t for t, s in enumerate(TOKEN_TO_SQUARE) if t > 0}
ROWS = "ABCDEFGH"
SQUARE_LABELS = [f"{ROWS[s // 8]}{s % 8}" for s in range(64)]
GAME_LENGTH = 60
N_CTX = 59

MODEL_KEYS = (
    "n_layers", "d_model", "d_head", "n_heads", "d_mlp", "d_vocab", "d_vocab_out", "n_ctx",
    "act_fn", "normalization_type", "positional_embedding_type", "seed",
)

# ----------------------------------------------------------------------------- the engine
# Bitboards: one uint64 per colour and board, bit s = square s. Shifting a bitboard moves every
# stone one step in a direction; the column masks stop stones wrapping round the board's edge.

_U = np.uint64
_ALL = _U(0xFFFFFFFFFFFFFFFF)
_NOT_COL0 = _U(0xFEFEFEFEFEFEFEFE)  # clears column 0 (after a shift towards higher columns)
_NOT_COL7 = _U(0x7F7F7F7F7F7F7F7F)  # clears column 7 (after a shift towards lower columns)
# (shift, mask): positive = left shift (towards higher squares)
_SHIFTS = [(1, _NOT_COL0), (-1, _NOT_COL7), (8, _ALL), (-8, _ALL),
           (9, _NOT_COL0), (7, _NOT_COL7), (-7, _NOT_COL0), (-9, _NOT_COL7)]
_BITS = np.left_shift(_U(1), np.arange(64, dtype=np.uint64))


def _shift(b: np.ndarray, n: int, mask: np.uint64) -> np.ndarray:
    return ((b << _U(n)) if n > 0 else (b >> _U(-n))) & mask


def _to_bits(cells: np.ndarray) -> np.ndarray:
    """(n, 64) bool -> (n,) uint64."""
    return np.bitwise_or.reduce(np.where(cells, _BITS, _U(0)), axis=-1)


def _from_bits(bits: np.ndarray) -> np.ndarray:
    """(n,) uint64 -> (n, 64) bool."""
    return ((bits[:, None] & _BITS) != 0)


def _legal_bits(own: np.ndarray, opp: np.ndarray) -> np.ndarray:
    empty = ~(own | opp)
    legal = np.zeros_like(own)
    for n, mask in _SHIFTS:
        x = _shift(own, n, mask) & opp
        for _ in range(5):
            x |= _shift(x, n, mask) & opp
        legal |= _shift(x, n, mask) & empty
    return legal


def _flip_bits(own: np.ndarray, opp: np.ndarray, move: np.ndarray) -> np.ndarray:
    flips = np.zeros_like(own)
    for n, mask in _SHIFTS:
        x = _shift(move, n, mask) & opp
        for _ in range(5):
            x |= _shift(x, n, mask) & opp
        closed = (_shift(x, n, mask) & own) != 0
        flips |= np.where(closed, x, _U(0))
    return flips


def initial_boards(n: int = 1) -> np.ndarray:
    """(n, 64) int8 boards at the start: D3 and E4 white, D4 and E3 black."""
    b = np.zeros((n, 64), dtype=np.int8)
    b[:, 27] = b[:, 36] = WHITE
    b[:, 28] = b[:, 35] = BLACK
    return b


def _own_opp(boards: np.ndarray, players) -> tuple[np.ndarray, np.ndarray]:
    boards = np.asarray(boards)
    players = np.broadcast_to(np.asarray(players, dtype=np.int8), (boards.shape[0],))[:, None]
    return _to_bits(boards == players), _to_bits(boards == -players)


def legal_moves(boards: np.ndarray, players: np.ndarray | int) -> np.ndarray:
    """(n, 64) bool: the squares where ``players`` (1 black, -1 white, one per board) may play.

    ``boards`` is (n, 64) with values 0/1/-1.
    """
    own, opp = _own_opp(boards, players)
    return _from_bits(_legal_bits(own, opp))


def play(boards: np.ndarray, players: np.ndarray | int, squares: np.ndarray) -> np.ndarray:
    """New boards after ``players`` play ``squares`` (one per board; each must be legal). Returns a copy."""
    boards = np.asarray(boards)
    n = boards.shape[0]
    players = np.broadcast_to(np.asarray(players, dtype=np.int8), (n,))
    own, opp = _own_opp(boards, players)
    move = _BITS[np.asarray(squares, dtype=np.int64)]
    if ((_legal_bits(own, opp) & move) == 0).any():
        raise ValueError("illegal move")
    flips = _flip_bits(own, opp, move)
    own, opp = own | flips | move, opp & ~flips
    return (_from_bits(own).astype(np.int8) - _from_bits(opp).astype(np.int8)) * players[:, None]


def random_games(n: int, seed: int, allow_passes: bool = False, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random legal games (each move uniform among the legal ones).

    Returns ``(squares, boards)``: ``squares`` (n, 60) int64 moves (-1 after the game ended, only
    possible with ``allow_passes``), ``boards`` (n, 60, 64) int8 absolute boards after each move.
    Without ``allow_passes`` only games where nobody ever passes (so 60 moves long) are kept.
    A pass (the player to move has no legal move but the other has) hands the turn over; the game
    ends when neither player can move.
    """
    rng = np.random.default_rng(seed)
    out_sq, out_b, have = [], [], 0
    while have < n:
        start = initial_boards(1)
        black = np.full(batch, _to_bits(start == BLACK)[0])
        white = np.full(batch, _to_bits(start == WHITE)[0])
        black_to_move = np.ones(batch, dtype=bool)
        sq = np.full((batch, GAME_LENGTH), -1, dtype=np.int64)
        hist = np.zeros((batch, GAME_LENGTH, 64), dtype=np.int8)
        passed = np.zeros(batch, dtype=bool)
        alive = np.ones(batch, dtype=bool)
        for t in range(GAME_LENGTH):
            own = np.where(black_to_move, black, white)
            opp = np.where(black_to_move, white, black)
            legal = _legal_bits(own, opp)
            none = legal == 0
            if none.any():  # pass where the other player can move; the game ends where neither can
                other = _legal_bits(opp, own)
                can_pass = none & (other != 0)
                passed |= can_pass & alive
                black_to_move = np.where(can_pass, ~black_to_move, black_to_move)
                own, opp = np.where(can_pass, opp, own), np.where(can_pass, own, opp)
                legal = np.where(can_pass, other, legal)
                alive &= legal != 0
            scores = rng.random((batch, 64)) + _from_bits(legal)  # a uniform legal square wins the argmax
            move_sq = scores.argmax(-1)
            move = np.where(alive, _BITS[move_sq], _U(0))
            flips = _flip_bits(own, opp, move)
            own, opp = own | flips | move, opp & ~flips
            black = np.where(black_to_move, own, opp)
            white = np.where(black_to_move, opp, own)
            sq[:, t] = np.where(alive, move_sq, -1)
            hist[:, t] = _from_bits(black).astype(np.int8) - _from_bits(white).astype(np.int8)
            black_to_move = np.where(alive, ~black_to_move, black_to_move)
        keep = np.ones(batch, dtype=bool) if allow_passes else (~passed & (sq[:, -1] >= 0))
        out_sq.append(sq[keep])
        out_b.append(hist[keep])
        have += int(keep.sum())
    return np.concatenate(out_sq)[:n], np.concatenate(out_b)[:n]


def squares_to_tokens(squares: np.ndarray | Tensor) -> Tensor:
    """Moves as squares (-1 = none) -> tokens (0 = pass/pad)."""
    lut = torch.zeros(65, dtype=torch.long)
    for s, t in SQUARE_TO_TOKEN.items():
        lut[s] = t
    sq = torch.as_tensor(np.asarray(squares), dtype=torch.long)
    return torch.where(sq < 0, torch.zeros_like(sq), lut[sq.clamp(min=0)])


def tokens_to_squares(tokens: Tensor) -> Tensor:
    lut = torch.tensor(TOKEN_TO_SQUARE, dtype=torch.long)
    return lut[torch.as_tensor(tokens, dtype=torch.long)]


def relative_states(boards: np.ndarray | Tensor) -> Tensor:
    """Absolute boards (..., 60, 64) after each move -> (..., 60, 8, 8) long: 0 blank, 1 mine, 2 theirs.

    "Mine" is the colour of the player to move next: white after even positions, black after odd ones.
    """
    b = torch.as_tensor(np.asarray(boards), dtype=torch.long)
    t = b.shape[-2]
    to_move = torch.where(torch.arange(t) % 2 == 0, WHITE, BLACK)[:, None]  # (t, 1)
    rel = torch.where(b == 0, 0, torch.where(b == to_move, 1, 2))
    return rel.reshape(*b.shape[:-1], 8, 8)


def legal_move_masks(boards: np.ndarray) -> Tensor:
    """(n, 60, 64) bool: the legal squares for the player to move after each move (pass-free games)."""
    boards = np.asarray(boards)
    n, t, _ = boards.shape
    to_move = np.where(np.arange(t) % 2 == 0, WHITE, BLACK).astype(np.int8)
    flat = boards.reshape(n * t, 64)
    players = np.tile(to_move, n)
    return torch.from_numpy(legal_moves(flat, players).reshape(n, t, 64))


def legal_token_masks(boards: np.ndarray) -> Tensor:
    """(n, 60, 61) bool over tokens: which tokens are legal moves after each move (token 0 never)."""
    sq = legal_move_masks(boards)
    out = torch.zeros(*sq.shape[:-1], 61, dtype=torch.bool)
    out[..., 1:] = sq[..., TOKEN_TO_SQUARE[1:]]
    return out


def board_to_string(board: np.ndarray | Tensor) -> str:
    """A 64-cell board (absolute 0/1/-1) as text: ``.`` blank, ``x`` black, ``o`` white."""
    b = np.asarray(board).reshape(64)
    chars = {0: ".", 1: "x", -1: "o"}
    lines = ["  " + " ".join(str(c) for c in range(8))]
    for r in range(8):
        lines.append(ROWS[r] + " " + " ".join(chars[int(v)] for v in b[8 * r: 8 * r + 8]))
    return "\n".join(lines)


def exercise_games(n: int = 64, seed: int = 15300) -> dict[str, Tensor]:
    """A fixed set of pass-free random games for the exercises, generated from ``seed``.

    Keys: ``tokens`` (n, 60), ``squares`` (n, 60), ``boards`` (n, 60, 64) absolute,
    ``states`` (n, 60, 8, 8) relative (0 blank, 1 mine, 2 theirs), ``legal`` (n, 60, 61).
    Feed ``tokens[:, :59]`` to the model.
    """
    squares, boards = random_games(n, seed, batch=max(2 * n, 64))
    return dict(
        tokens=squares_to_tokens(squares),
        squares=torch.from_numpy(squares),
        boards=torch.from_numpy(boards.astype(np.int64)),
        states=relative_states(boards),
        legal=legal_token_masks(boards),
    )


def patching_pair(squares: np.ndarray | Tensor, start: int = 20, extra: int = 4) -> dict:
    """A clean / corrupted pair of game prefixes for activation patching, from one pass-free game.

    ``squares`` is one game's 60 moves. The clean prefix is moves ``0..T+extra``. The corrupted
    prefix is the same except move ``T``, which is another move that was legal there, chosen so that
    the ``extra`` moves after it stay legal in the corrupted game. ``T`` is the first position from
    ``start`` on where this works and where some ``target`` token is a legal next move after the clean
    prefix but not after the corrupted one, and not because a corrupted move took its square (the
    move whose log-probability the patching metric follows).

    Returns dict(clean (1, T+extra+1) tokens, corrupted (1, T+extra+1) tokens, target token, T (the
    position that differs), and the absolute ``clean_board`` / ``corrupted_board`` (64,) at the end).
    """
    squares = np.asarray(squares, dtype=np.int64)
    boards = [initial_boards(1)]
    player = BLACK
    for t in range(GAME_LENGTH):
        boards.append(play(boards[-1], player, squares[t: t + 1]))
        player = -player
    for t in range(start, GAME_LENGTH - extra - 1):
        player = BLACK if t % 2 == 0 else WHITE  # the player of move t
        last = t + extra
        clean_board = boards[last + 1]
        after_clean = legal_moves(clean_board, -player if extra % 2 == 0 else player)[0]
        for other in np.nonzero(legal_moves(boards[t], player)[0])[0]:
            if other == squares[t]:
                continue
            board = play(boards[t], player, np.array([other]))
            mover, ok = -player, True
            for u in range(t + 1, last + 1):
                if not legal_moves(board, mover)[0, squares[u]]:
                    ok = False
                    break
                board = play(board, mover, squares[u: u + 1])
                mover = -mover
            if not ok:
                continue
            after_corrupted = legal_moves(board, mover)[0]
            differs = [d for d in np.nonzero(after_clean & ~after_corrupted)[0] if board[0, d] == BLANK]
            if differs:
                clean = squares_to_tokens(squares[: last + 1])[None]
                corrupted = clean.clone()
                corrupted[0, t] = SQUARE_TO_TOKEN[int(other)]
                return dict(clean=clean, corrupted=corrupted, target=SQUARE_TO_TOKEN[int(differs[0])], T=t,
                            clean_board=clean_board[0], corrupted_board=board[0])
    raise ValueError("no position of this game gives a patching pair")


# ----------------------------------------------------------------------------- loading


def model_dir(profile: str = PROFILE) -> Path:
    """lite: the shipped folder. full: ``$OTHELLO_FULL_DIR``, else ``assets/full/``, else the asset cache."""
    return profile_folder(profile, assignment="1.5.3", lite=LITE_DIR, full_env="OTHELLO_FULL_DIR", full_local=HERE / "assets" / "full")


def build_model(config: dict, device: str = "cpu") -> "HookedTransformer":
    """A fresh ``HookedTransformer`` with the architecture described by ``config`` (a config.json dict)."""
    return new_hooked(tl_config(config, MODEL_KEYS, device))


load_state = load_safetensors  # (path, device) -> state dict


def _folder(profile: str, folder: str | os.PathLike | None) -> Path:
    folder = Path(folder) if folder is not None else model_dir(profile)
    if not (folder / "config.json").is_file():
        hint = REGENERATE_CMD if profile == "lite" else (
            "the full OthelloGPT is not shipped: save its config.json, model.safetensors and "
            "probe.safetensors in that folder or set OTHELLO_FULL_DIR"
        )
        raise FileNotFoundError(f"no config.json in {folder}; {hint}")
    return folder


def load_model(profile: str = PROFILE, device: str = "cpu", folder: str | os.PathLike | None = None) -> "HookedTransformer":
    """The profile's trained model (or the one in ``folder``): config.json + model.safetensors."""
    folder = _folder(profile, folder)
    model = build_model(read_config(folder), device)
    model.load_state_dict(load_state(folder / "model.safetensors", device), strict=True)
    return model.eval()


def load_probe(profile: str = PROFILE, device: str = "cpu", folder: str | os.PathLike | None = None) -> tuple[Tensor, int]:
    """The board-state probe: ``(probe, layer)``; ``probe`` is (d_model, 8, 8, 3) over blank/mine/theirs,
    read at ``blocks.{layer}.hook_resid_post``."""
    folder = _folder(profile, folder)
    state = load_state(folder / "probe.safetensors", device)
    return state["probe"], int(read_config(folder)["probe_layer"])


def load_layer_probes(profile: str = PROFILE, device: str = "cpu", folder: str | os.PathLike | None = None) -> dict[int, Tensor]:
    """{layer: probe} for every layer whose probe was saved (``layer_{L}`` keys; -1 = embeddings)."""
    folder = _folder(profile, folder)
    state = load_state(folder / "probe.safetensors", device)
    return {int(k.split("_", 1)[1]): v for k, v in state.items() if k.startswith("layer_")}


def training_info(profile: str = PROFILE, folder: str | os.PathLike | None = None) -> dict:
    """The training_info.json written by assets/train_lite.py (empty if the profile has none)."""
    path = (Path(folder) if folder is not None else model_dir(profile)) / "training_info.json"
    return json.loads(path.read_text()) if path.is_file() else {}


# ----------------------------------------------------------------------------- integrity


def verify_checkpoint(folder: Path = LITE_DIR) -> None:
    """Check every file listed in ``SHA256SUMS``; raise ``RuntimeError`` naming a bad file."""
    verify_sha256sums(folder, REGENERATE_CMD)


# ----------------------------------------------------------------------------- plotting (given code)


def plot_board_values(values: Tensor, title: str = "", ax=None, cmap: str = "RdBu", symmetric: bool = True,
                      boards: Tensor | None = None):
    """Show an (8, 8) tensor as a board heatmap (optionally marking stones of an absolute ``boards`` 64-vector)."""
    import matplotlib.pyplot as plt

    v = torch.as_tensor(values).detach().float().reshape(8, 8).cpu()
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    lim = float(v.abs().max()) or 1.0
    im = ax.imshow(v, cmap=cmap, vmin=-lim if symmetric else None, vmax=lim if symmetric else None)
    ax.set_xticks(range(8))
    ax.set_yticks(range(8), list(ROWS))
    if boards is not None:
        b = np.asarray(boards).reshape(64)
        for s in range(64):
            if b[s] != 0:
                ax.text(s % 8, s // 8, "x" if b[s] == BLACK else "o", ha="center", va="center", fontsize=9)
    ax.set_title(title, fontsize=9)
    plt.colorbar(im, ax=ax, fraction=0.046)
    return ax
