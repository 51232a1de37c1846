"""Public tests for section 1.5.2: call ``check("exercise_name")`` in the notebook.

They check shapes and properties every correct answer has, and compare with
independent computations (torch.fft, brute-force loops, the model's own
cache). They are a subset of what grading checks; passing them is a good sign,
not a guarantee.
"""

from __future__ import annotations

import math

import torch

from autograder.checks import CheckFailed, assert_close, assert_equal, check_shape
from autograder.public_checks import PublicChecks

CHECKS = PublicChecks()
register, check = CHECKS.register, CHECKS.check
_CACHE: dict[str, object] = {}


# ----------------------------------------------------------------------------- independent helpers


def _pair(value, n: int, what: str):
    if not isinstance(value, (tuple, list)) or len(value) != n:
        raise CheckFailed(f"{what}: expected a tuple of {n} values")
    return value


def _dft_basis(p: int) -> torch.Tensor:
    """The course's Fourier basis, built from torch.fft instead of cos/sin formulas."""
    spectrum = torch.fft.rfft(torch.eye(p, dtype=torch.float64), dim=0)  # [k, x] = exp(-2πi k x / p)
    rows = [spectrum[0].real]
    for k in range(1, (p + 1) // 2):
        rows += [spectrum[k].real, -spectrum[k].imag]
    out = torch.stack(rows)
    return (out / out.norm(dim=1, keepdim=True)).float()


def prepare() -> None:
    """Load what the checks share, once: a warm grading worker calls this before it forks
    the programs that re-run these checks for feedback, so they inherit it."""
    _model()


def _model():
    if "model" not in _CACHE:
        from grok_helpers import PROFILE, load_model

        _CACHE["model"] = load_model(PROFILE)
    return _CACHE["model"]


def _wave_grid(p: int, k: int, kind: str, phase: float = 0.0) -> torch.Tensor:
    """A (p, p) grid of cos/sin(2πk(a+b)/p + phase)."""
    a = torch.arange(p, dtype=torch.float64)[:, None]
    b = torch.arange(p, dtype=torch.float64)[None, :]
    angle = 2 * math.pi * k * (a + b) / p + phase
    return (torch.cos(angle) if kind == "cos" else torch.sin(angle)).float()


# ----------------------------------------------------------------------------- 1. caching


@register("get_activations")
def _check_get_activations(g: dict) -> None:
    model = _model()
    p = model.cfg.d_vocab_out
    from grok_helpers import make_dataset

    tokens, _ = make_dataset(p)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    plain = {name: cache[name] for name in cache.keys()}
    attn_mat, post, pre = _pair(g["get_activations"](plain, p), 3, "get_activations")
    n_heads, d_mlp = model.cfg.n_heads, model.cfg.d_mlp
    check_shape(attn_mat, (p, p, n_heads, 3), "attn_mat")
    check_shape(post, (p, p, d_mlp), "neuron_acts_post")
    check_shape(pre, (p, p, d_mlp), "neuron_acts_pre")
    assert_close(post, pre.clamp_min(0), what="neuron_acts_post should be ReLU(neuron_acts_pre)")
    assert_close(attn_mat.sum(-1), torch.ones(p, p, n_heads), what="attention probabilities over the keys should sum to 1")
    for a, b in [(0, 0), (3, 17 % p), (p - 1, 5)]:
        row = a * p + b
        assert_close(attn_mat[a, b], cache["pattern", 0][row, :, 2, :], what=f"attn_mat[{a}, {b}] (the '=' query)")
        assert_close(pre[a, b], cache["pre", 0][row, 2], what=f"neuron_acts_pre[{a}, {b}]")


# ----------------------------------------------------------------------------- 2. effective weights


@register("effective_weights")
def _check_effective_weights(g: dict) -> None:
    gen = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    p, d_model, n_heads, d_head, d_mlp = 5, 6, 2, 3, 4
    W_E, W_U = r(p + 1, d_model), r(d_model, p)
    W_Q, W_K, W_V = r(n_heads, d_model, d_head), r(n_heads, d_model, d_head), r(n_heads, d_model, d_head)
    W_O, W_in, W_out = r(n_heads, d_head, d_model), r(d_model, d_mlp), r(d_mlp, d_model)
    # Brute force, one entry at a time.
    logit = torch.tensor([[sum(float(W_out[n, d] * W_U[d, c]) for d in range(d_model)) for c in range(p)] for n in range(d_mlp)])
    got = g["get_W_logit"](W_out, W_U)
    check_shape(got, (d_mlp, p), "get_W_logit")
    assert_close(got, logit.to(got.dtype), what="get_W_logit")
    got = g["get_W_neur"](W_E, W_V, W_O, W_in)
    check_shape(got, (n_heads, p, d_mlp), "get_W_neur")
    for h, x in [(0, 0), (1, p - 1)]:
        resid = W_E[x]
        after_head = (resid @ W_V[h]) @ W_O[h]
        assert_close(got[h, x], (after_head @ W_in).to(got.dtype), what=f"get_W_neur[{h}, {x}]")
    got = g["get_W_attn"](W_E, W_Q, W_K)
    check_shape(got, (n_heads, p), "get_W_attn")
    for h in range(n_heads):
        q = W_E[p] @ W_Q[h]
        want = torch.stack([(q * (W_E[x] @ W_K[h])).sum() / math.sqrt(d_head) for x in range(p)])
        assert_close(got[h], want.to(got.dtype), what=f"get_W_attn[{h}]")


# ----------------------------------------------------------------------------- 3-5. Fourier basis and transforms


@register("make_fourier_basis")
def _check_make_fourier_basis(g: dict) -> None:
    for p in (5, 13):
        out = _pair(g["make_fourier_basis"](p), 2, "make_fourier_basis")
        basis, names = out
        check_shape(basis, (p, p), f"make_fourier_basis({p})")
        assert_close(basis @ basis.T, torch.eye(p), atol=1e-5, what=f"basis @ basis.T for p = {p} (rows must be orthonormal)")
        want_names = ["const"] + [f"{f} {k}" for k in range(1, p // 2 + 1) for f in ("cos", "sin")]
        assert_equal(list(names), want_names, what=f"names for p = {p}")
        assert_close(basis, _dft_basis(p), atol=1e-5, what=f"basis for p = {p} (compared with torch.fft)")


@register("fft1d")
def _check_fft1d(g: dict) -> None:
    p = 11
    basis = _dft_basis(p)
    x = torch.randn(p, 3, generator=torch.Generator().manual_seed(1))
    got = g["fft1d"](x, basis)
    check_shape(got, (p, 3), "fft1d of a (p, 3) tensor")
    spectrum = torch.fft.rfft(x.double(), dim=0)
    want = [spectrum[0].real / math.sqrt(p)]
    for k in range(1, (p + 1) // 2):
        want += [spectrum[k].real * math.sqrt(2 / p), -spectrum[k].imag * math.sqrt(2 / p)]
    assert_close(got, torch.stack(want).float(), what="fft1d (compared with torch.fft.rfft)")
    assert_close(basis.T @ got, x, what="the inverse transform of fft1d(x) should give x back")
    got = g["fft1d"](x[:, 0], basis)
    check_shape(got, (p,), "fft1d of a vector")


@register("fft2d")
def _check_fft2d(g: dict) -> None:
    p = 7
    basis = _dft_basis(p)
    x = torch.randn(p, p, 2, generator=torch.Generator().manual_seed(2))
    got = g["fft2d"](x, basis)
    check_shape(got, (p, p, 2), "fft2d of a (p, p, 2) tensor")
    for i, j in [(0, 0), (1, 2), (3, 6), (6, 1)]:
        wave = basis[i][:, None] * basis[j][None, :]
        want = (wave[:, :, None] * x).sum((0, 1))
        assert_close(got[i, j], want, what=f"fft2d(x)[{i}, {j}] (the coefficient of basis[{i}](a) * basis[{j}](b))")
    grid = _wave_grid(p, 2, "cos")
    spectrum = g["fft2d"](grid, basis)
    big = (spectrum.abs() > 1e-4).nonzero().tolist()
    assert_equal(sorted(map(tuple, big)), [(3, 3), (4, 4)], what="non-zero entries of fft2d(cos(2π·2(a+b)/7))")


@register("arrange_by_2d_freqs")
def _check_arrange_by_2d_freqs(g: dict) -> None:
    p = 9
    codes = torch.arange(p)[:, None] * 100 + torch.arange(p)[None, :]  # entry [i, j] = 100 i + j
    got = g["arrange_by_2d_freqs"](codes.float())
    check_shape(got, (p // 2, 3, 3), "arrange_by_2d_freqs of a (9, 9) tensor")
    for k in range(1, (p + 1) // 2):
        rows = [0, 2 * k - 1, 2 * k]
        for r in range(3):
            for c in range(3):
                if int(got[k - 1, r, c]) != rows[r] * 100 + rows[c]:
                    raise CheckFailed(f"arrange_by_2d_freqs(x)[{k - 1}, {r}, {c}] should be x[{rows[r]}, {rows[c]}] "
                                      f"(frequency k = {k}, rows/cols const, cos k, sin k)")
    got = g["arrange_by_2d_freqs"](torch.zeros(p, p, 2, 5))
    check_shape(got, (p // 2, 3, 3, 2, 5), "arrange_by_2d_freqs of a (9, 9, 2, 5) tensor")


# ----------------------------------------------------------------------------- 6. neuron clustering


@register("find_neuron_freqs")
def _check_find_neuron_freqs(g: dict) -> None:
    p = 13
    basis = _dft_basis(p)
    gen = torch.Generator().manual_seed(3)
    # Synthetic "neurons": ReLU of a wave of a known frequency, plus a little noise and an offset.
    true = [1, 4, 6, 2, 5]
    cols = []
    for i, k in enumerate(true):
        a = torch.arange(p, dtype=torch.float64)[:, None]
        wave = torch.cos(2 * math.pi * k * a / p + i) + torch.cos(2 * math.pi * k * a.T / p - i)
        cols.append((wave.clamp_min(0) + 0.01 * torch.randn(p, p, generator=gen, dtype=torch.float64) + 3).float())
    acts = torch.stack(cols, dim=-1)
    fourier = torch.einsum("ia,jb,abn->ijn", basis, basis, acts)
    out = _pair(g["find_neuron_freqs"](fourier), 2, "find_neuron_freqs")
    freqs, frac = out
    check_shape(freqs, (len(true),), "neuron_freqs")
    check_shape(frac, (len(true),), "neuron_frac_explained")
    assert_equal([int(f) for f in freqs], true, what="the frequencies of synthetic neurons built from known frequencies")
    power = fourier.double().pow(2)
    for n, k in enumerate(true):
        idx = [0, 2 * k - 1, 2 * k]
        inside = power[idx][:, idx, n].sum() - power[0, 0, n]
        want = inside / (power[:, :, n].sum() - power[0, 0, n])
        assert_close(frac[n].double(), want, what=f"neuron_frac_explained[{n}] (the constant term must be left out)")


# ----------------------------------------------------------------------------- 7. projections


@register("project_onto_direction")
def _check_project_onto_direction(g: dict) -> None:
    gen = torch.Generator().manual_seed(4)
    x, v = torch.randn(6, 4, generator=gen), torch.randn(6, generator=gen) * 3
    got = g["project_onto_direction"](x, v)
    check_shape(got, (6, 4), "project_onto_direction of (6, 4) vectors")
    unit = v / v.norm()
    assert_close(got - torch.outer(unit, unit @ got), torch.zeros(6, 4), atol=1e-5,
                 what="every projected column should be a multiple of v")
    assert_close(unit @ (x - got), torch.zeros(4), atol=1e-5, what="what is left (x - projection) should be orthogonal to v")
    assert_close(g["project_onto_direction"](v[:, None] * 2, v), v[:, None] * 2, what="projecting 2v onto v gives 2v")


@register("project_onto_frequency")
def _check_project_onto_frequency(g: dict) -> None:
    p = 7
    basis = _dft_basis(p)
    inside = torch.stack([_wave_grid(p, 2, "cos", 0.3).flatten(),
                          (torch.sin(2 * math.pi * 2 * torch.arange(p) / p)[:, None] * torch.ones(1, p)).flatten()], 1)
    outside = torch.stack([_wave_grid(p, 3, "sin").flatten(), torch.ones(p * p)], 1)
    got = g["project_onto_frequency"](inside, 2, basis)
    check_shape(got, (p * p, 2), "project_onto_frequency of (p*p, 2) vectors")
    assert_close(got, inside, atol=1e-4, what="grid functions of frequency 2 should be unchanged by projecting onto frequency 2")
    assert_close(g["project_onto_frequency"](outside, 2, basis), torch.zeros(p * p, 2), atol=1e-4,
                 what="frequency 3 and the constant should project to zero on frequency 2")


# ----------------------------------------------------------------------------- 8. trig-sum directions


@register("get_trig_sum_directions")
def _check_get_trig_sum_directions(g: dict) -> None:
    p = 11
    basis = _dft_basis(p)
    for k in (1, 3, 5):
        out = _pair(g["get_trig_sum_directions"](k, basis), 2, "get_trig_sum_directions")
        for d, kind in zip(out, ("cos", "sin")):
            check_shape(d, (p, p), f"{kind}_dir")
            assert_close(d.norm(), torch.tensor(1.0), what=f"norm of {kind}_dir for k = {k}")
            want = _wave_grid(p, k, kind)
            assert_close(d, want / want.norm(), what=f"{kind}_dir for k = {k} (should be {kind}(w_k (a + b)) scaled)")


# ----------------------------------------------------------------------------- 9. excluded loss


@register("calculate_excluded_loss")
def _check_calculate_excluded_loss(g: dict) -> None:
    p = 11
    basis = _dft_basis(p)
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    labels = (a + b) % p
    c = torch.arange(p)
    # Logits that "use" frequencies 2 and 4: 4 cos(w(a + b - c)) for each.
    logits = sum(4 * torch.cos(2 * math.pi * k * (a[:, None] + b[:, None] - c[None]) / p) for k in (2, 4)).float()
    idx = torch.arange(0, p * p, 3)
    got = g["calculate_excluded_loss"](torch.stack([logits, 2 * logits]), labels, idx, [2, 3, 4], basis)
    check_shape(got, (2, 3), "excluded loss of 2 checkpoints and 3 frequencies")

    def loss(lg):
        return torch.nn.functional.cross_entropy(lg[idx].double(), labels[idx])

    only4 = 4 * torch.cos(2 * math.pi * 4 * (a[:, None] + b[:, None] - c[None]) / p)
    only2 = 4 * torch.cos(2 * math.pi * 2 * (a[:, None] + b[:, None] - c[None]) / p)
    want = torch.tensor([[loss(only4), loss(logits), loss(only2)], [loss(2 * only4), loss(2 * logits), loss(2 * only2)]])
    assert_close(got.double(), want, atol=1e-4, rtol=1e-3,
                 what="excluded loss of logits built from frequencies 2 and 4 (excluding 2, 3, 4 one at a time)")


# ----------------------------------------------------------------------------- 10. embedding over training


@register("fourier_norms_over_training")
def _check_fourier_norms_over_training(g: dict) -> None:
    p = 7
    basis = _dft_basis(p)
    tok = torch.arange(p, dtype=torch.float64)

    # Step s: the number tokens' embedding has norm s at frequency 1 and 2 s at frequency 3.
    def embedding(s):
        cols = [s * torch.cos(2 * math.pi * tok / p), 2 * s * torch.sin(2 * math.pi * 3 * tok / p), torch.zeros(p)]
        W = torch.stack(cols, 1) / math.sqrt(p / 2)
        return torch.cat([W, torch.full((1, 3), 9.0, dtype=torch.float64)]).float()  # last row: '=' token

    given = {3: {"embed.W_E": embedding(3.0)}, 1: {"embed.W_E": embedding(1.0)}, 2: {"embed.W_E": embedding(2.0)}}
    got = g["fourier_norms_over_training"](given, basis)
    check_shape(got, (3, p // 2), "fourier_norms_over_training of 3 checkpoints, p = 7")
    want = torch.tensor([[s, 0.0, 2 * s] for s in (1.0, 2.0, 3.0)])
    assert_close(got, want, atol=1e-4, what="norms per frequency (rows by increasing step; the '=' row is not a number)")


# ----------------------------------------------------------------------------- 11. SVD


@register("svd_fourier_power")
def _check_svd_fourier_power(g: dict) -> None:
    p, d_model = 11, 8
    basis = _dft_basis(p).double()
    # W_E = sum_i s_i u_i v_i^T with u_i pure Fourier rows and orthonormal v_i: singular values and spectra known.
    q, _ = torch.linalg.qr(torch.randn(d_model, d_model, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    parts = [(5.0, 3), (3.0, 8), (2.0, 1)]  # (singular value, basis row)
    W = sum(s * torch.outer(basis[row], q[:, i]) for i, (s, row) in enumerate(parts)).float()
    out = _pair(g["svd_fourier_power"](W, basis.float(), 3), 2, "svd_fourier_power")
    S, power = out
    assert_close(S, torch.tensor([5.0, 3.0, 2.0]), atol=1e-4, what="the top 3 singular values, largest first")
    check_shape(power, (3, p // 2 + 1), "power")
    want = torch.zeros(3, p // 2 + 1)
    for i, (_, row) in enumerate(parts):
        want[i, (row + 1) // 2] = 1.0
    assert_close(power, want, atol=1e-4, what="power of each left singular vector per frequency (column 0 = constant)")
