"""Numeric checks that explain themselves.

Every check raises :class:`CheckFailed` with a message written for a student:
what was expected, what was found, and where the first difference is. None of
them prints the expected tensor wholesale, so public and hidden tests can share
them without leaking reference values.

The checks run in the *trusted* process on plain tensors. They never call back
into student code, so a student who monkeypatches ``torch.allclose`` in their
own process changes nothing here.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

# Default tolerances per dtype: loose enough for a correct solution computed in
# a different order (einsum vs matmul, CPU vs GPU kernels), tight enough that a
# missing scale factor or an off-by-one never slips through.
DEFAULT_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1e-4, 1e-4),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (2e-2, 2e-2),
}


_DTYPE_BY_NAME = {str(d).removeprefix("torch."): d for d in DEFAULT_TOLERANCES}


@contextmanager
def default_tolerances(overrides: dict[str, tuple[float, float]]):
    """Use an assignment's default tolerances (``{"float32": (atol, rtol)}``) within the block."""
    saved = dict(DEFAULT_TOLERANCES)
    try:
        for name, (atol, rtol) in overrides.items():
            if name not in _DTYPE_BY_NAME:
                raise ValueError(f"unknown dtype {name!r} in tolerances; use one of {sorted(_DTYPE_BY_NAME)}")
            DEFAULT_TOLERANCES[_DTYPE_BY_NAME[name]] = (float(atol), float(rtol))
        yield
    finally:
        DEFAULT_TOLERANCES.clear()
        DEFAULT_TOLERANCES.update(saved)


class CheckFailed(AssertionError):
    """A check found a difference. The message is meant for the student."""


def tolerances_for(dtype: torch.dtype) -> tuple[float, float]:
    """(atol, rtol) for comparing tensors of ``dtype``; exact for integers and bools."""
    return DEFAULT_TOLERANCES.get(dtype, (0.0, 0.0))


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"[:200]


def check_is_tensor(actual: object, what: str = "output") -> torch.Tensor:
    if not isinstance(actual, torch.Tensor):
        raise CheckFailed(f"{what}: expected a torch.Tensor, got {_describe(actual)}")
    return actual


def check_shape(actual: object, expected_shape: Sequence[int], what: str = "output") -> None:
    tensor = check_is_tensor(actual, what)
    if tuple(tensor.shape) != tuple(expected_shape):
        raise CheckFailed(
            f"{what}: wrong shape. Expected {tuple(expected_shape)}, got {tuple(tensor.shape)}."
        )


def check_dtype(actual: object, expected: torch.dtype, what: str = "output") -> None:
    tensor = check_is_tensor(actual, what)
    if tensor.dtype != expected:
        raise CheckFailed(f"{what}: wrong dtype. Expected {expected}, got {tensor.dtype}.")


@dataclass(frozen=True)
class Closeness:
    """How far ``actual`` is from ``expected``; the numbers a failure message quotes."""

    max_abs_error: float
    max_rel_error: float
    mismatch_fraction: float
    worst_index: tuple[int, ...]
    worst_actual: float
    worst_expected: float

    @property
    def ok(self) -> bool:
        return self.mismatch_fraction == 0.0


def measure_closeness(
    actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float
) -> Closeness:
    """Compare two same-shaped tensors elementwise in float64.

    NaNs match only NaNs in the same place, infinities only the same infinity.
    """
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    both_nan = torch.isnan(a) & torch.isnan(e)
    same_inf = torch.isinf(a) & torch.isinf(e) & (torch.sign(a) == torch.sign(e))
    exact = both_nan | same_inf
    diff = (a - e).abs()
    diff = torch.where(exact, torch.zeros_like(diff), diff)
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, math.inf), diff)
    allowed = atol + rtol * e.abs()
    bad = (diff > allowed) & ~exact
    rel = diff / e.abs().clamp_min(1e-12)
    if a.numel() == 0:
        return Closeness(0.0, 0.0, 0.0, (), 0.0, 0.0)
    # Report the element that exceeds its allowance by the most; this is
    # usually the most telling one (e.g. a masked position or a wrong bias).
    excess = torch.where(bad, diff - allowed, torch.full_like(diff, -math.inf))
    flat_worst = int(torch.argmax(excess if bad.any() else diff).item())
    worst_index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat_worst), a.shape))
    return Closeness(
        max_abs_error=float(diff.max().item()),
        max_rel_error=float(rel.max().item()),
        mismatch_fraction=float(bad.double().mean().item()),
        worst_index=worst_index,
        worst_actual=float(a.reshape(-1)[flat_worst].item()),
        worst_expected=float(e.reshape(-1)[flat_worst].item()),
    )


def assert_close(
    actual: object,
    expected: torch.Tensor,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    what: str = "output",
    check_dtype_matches: bool = False,
) -> Closeness:
    """Check that ``actual`` equals ``expected`` within dtype-aware tolerances.

    Shape is checked first (a shape error explains more than any number);
    dtypes may differ unless ``check_dtype_matches`` is set, and the comparison
    then uses the looser of the two dtypes' tolerances.
    """
    tensor = check_is_tensor(actual, what)
    check_shape(tensor, expected.shape, what)
    if check_dtype_matches:
        check_dtype(tensor, expected.dtype, what)
    default_atol, default_rtol = max(
        tolerances_for(tensor.dtype), tolerances_for(expected.dtype)
    )
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    result = measure_closeness(tensor, expected, atol, rtol)
    if not result.ok:
        raise CheckFailed(
            f"{what}: values differ from the expected ones "
            f"(atol={atol:g}, rtol={rtol:g}).\n"
            f"  mismatched elements: {result.mismatch_fraction:.1%} of {tensor.numel()}\n"
            f"  max abs error: {result.max_abs_error:.4g}, max rel error: {result.max_rel_error:.4g}\n"
            f"  worst element at index {list(result.worst_index)}: "
            f"got {result.worst_actual:.6g}, expected {result.worst_expected:.6g}"
        )
    return result


def assert_equal(actual: object, expected: object, what: str = "output") -> None:
    """Exact equality for plain values (ints, strings, lists of them) and integer tensors."""
    if isinstance(expected, torch.Tensor):
        assert_close(actual, expected, atol=0.0, rtol=0.0, what=what)
        return
    if isinstance(actual, torch.Tensor) and actual.numel() == 1 and isinstance(expected, (int, float)):
        actual = actual.item()
    if actual != expected:
        raise CheckFailed(f"{what}: expected {_short(expected)}, got {_short(actual)}.")


def check_float(value: object, what: str = "output") -> float:
    """A number returned as a Python float or a one-element tensor, as a float; a bool is not a number here."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype == torch.bool:
        return float(value.reshape(()).item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise CheckFailed(f"{what}: expected a number (a Python float or a one-element tensor), got {_short(value, 80)}")


def assert_float(actual: object, expected: float, what: str = "output", *, rtol: float = 1e-4,
                 atol: float = 1e-6) -> None:
    """``actual`` is a number within ``atol + rtol * |expected|`` of ``expected``."""
    got = check_float(actual, what)
    if not abs(got - expected) <= atol + rtol * abs(expected):  # `not <=`: a NaN fails too
        raise CheckFailed(f"{what}: got {got:.6g}, expected {expected:.6g}")


def check_sequence(value: object, n: int, what: str = "output") -> tuple | list:
    """A tuple (or list) of exactly ``n`` values, returned as is so that it can be unpacked."""
    if not isinstance(value, (tuple, list)) or len(value) != n:
        length = f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""
        raise CheckFailed(f"{what}: expected a tuple of {n} values, got {type(value).__name__}{length}")
    return value


def _short(value: object, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def assert_frequencies(
    draws: Iterable[int],
    expected_probs: torch.Tensor,
    *,
    what: str = "sampler",
    sigmas: float = 5.0,
    min_abs_tolerance: float = 0.01,
) -> None:
    """Check that the empirical distribution of integer ``draws`` matches ``expected_probs``.

    Each category's frequency must lie within ``sigmas`` binomial standard
    deviations of its probability (plus ``min_abs_tolerance``). With the default
    5 sigmas a correct sampler fails with probability far below one in a million
    per category, while a sampler that drops or adds a token by mistake is caught.
    Callers seed the sampler, so a result is reproducible too.
    """
    values = [int(v) for v in draws]
    n = len(values)
    if n == 0:
        raise CheckFailed(f"{what}: no samples were drawn.")
    probs = expected_probs.detach().to("cpu", torch.float64).reshape(-1)
    out_of_range = [v for v in values if not 0 <= v < probs.numel()]
    if out_of_range:
        raise CheckFailed(
            f"{what}: drew token id {out_of_range[0]}, outside the vocabulary [0, {probs.numel()})."
        )
    counts = torch.bincount(torch.tensor(values), minlength=probs.numel()).double()
    freqs = counts / n
    impossible = (probs == 0) & (counts > 0)
    if impossible.any():
        token = int(torch.nonzero(impossible)[0].item())
        raise CheckFailed(
            f"{what}: drew token {token} {int(counts[token])} times out of {n}, "
            f"but it should never be drawn (probability 0)."
        )
    std = torch.sqrt(probs * (1 - probs) / n)
    allowed = sigmas * std + min_abs_tolerance
    deviation = (freqs - probs).abs()
    if (deviation > allowed).any():
        token = int(torch.argmax(deviation - allowed).item())
        raise CheckFailed(
            f"{what}: token {token} was drawn with frequency {freqs[token]:.4f} over {n} draws, "
            f"but its probability is {probs[token]:.4f} (allowed deviation ±{allowed[token]:.4f})."
        )


def assert_metric(
    value: float, *, at_least: float | None = None, at_most: float | None = None, what: str = "metric"
) -> None:
    """Threshold check for a scalar metric (a loss, an accuracy, a score)."""
    if isinstance(value, torch.Tensor):
        value = float(value.detach().reshape(-1)[0].item()) if value.numel() == 1 else value
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise CheckFailed(f"{what}: expected a number, got {_describe(value)}.")
    if math.isnan(value):
        raise CheckFailed(f"{what}: got NaN.")
    if at_least is not None and value < at_least:
        raise CheckFailed(f"{what}: got {value:.6g}, expected at least {at_least:.6g}.")
    if at_most is not None and value > at_most:
        raise CheckFailed(f"{what}: got {value:.6g}, expected at most {at_most:.6g}.")
