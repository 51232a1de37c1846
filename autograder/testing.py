"""The API hidden tests are written in.

Hidden tests are plain functions, pytest style. Decorate each with the exercise
it grades; ask for what you need by argument name::

    from autograder.testing import grades, fixture
    from autograder.checks import assert_close

    @fixture
    def cfg(reference):
        return reference.Config(d_model=64, n_heads=4, d_head=16)

    @grades("layernorm")
    def test_matches_reference(student, reference, cfg):
        ref = reference.LayerNorm(cfg)
        mine = student.LayerNorm(student.Config(**asdict(cfg)))
        mine.load_state_dict(ref.state_dict())
        x = torch.randn(2, 5, cfg.d_model)
        assert_close(mine(x), ref(x))

Built-in fixtures:

``student``
    the student's program (:class:`autograder.grade.student.StudentNamespace`),
    a fresh copy for every test;
``reference``
    the reference solution, as a module, in this trusted process;
``profile``, ``device``, ``seed``
    the model profile (``lite``/``full``), the torch device, and the run's seed.

Fixtures you define with :func:`fixture` are computed once per grading
session and shared by every submission: treat their values as read-only.

An exercise's points are split over its tests by ``weight``; a test passes when
it returns without raising.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

_TEST_ATTR = "__autograder_test__"
_FIXTURE_ATTR = "__autograder_fixture__"


@dataclass(frozen=True)
class HiddenTest:
    exercise: str
    name: str
    weight: float
    fn: Callable[..., Any]


def grades(exercise: str, *, weight: float = 1.0, name: str | None = None) -> Callable:
    """Mark a function as a hidden test of ``exercise``."""
    if weight <= 0:
        raise ValueError("weight must be positive")

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        label = name or fn.__name__.removeprefix("test_").replace("_", " ")
        setattr(fn, _TEST_ATTR, HiddenTest(exercise, label, weight, fn))
        return fn

    return mark


def fixture(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a function as a fixture, available to tests by its name."""
    setattr(fn, _FIXTURE_ATTR, True)
    return fn


def collect(modules: list[Any]) -> tuple[list[HiddenTest], dict[str, Callable[..., Any]]]:
    """The tests and fixtures defined in ``modules``, in definition order."""
    tests: list[HiddenTest] = []
    fixtures: dict[str, Callable[..., Any]] = {}
    for module in modules:
        for value in vars(module).values():
            test = getattr(value, _TEST_ATTR, None)
            if isinstance(test, HiddenTest):
                tests.append(test)
            elif callable(value) and getattr(value, _FIXTURE_ATTR, False):
                if value.__name__ in fixtures and fixtures[value.__name__] is not value:
                    raise ValueError(f"fixture {value.__name__!r} is defined twice")
                fixtures[value.__name__] = value
    return tests, fixtures


def resolve_fixture(
    name: str,
    case_values: dict[str, Any],
    session: dict[str, Any],
    fixtures: dict[str, Callable[..., Any]],
    per_case: frozenset[str] = frozenset({"student"}),
    chain: tuple[str, ...] = (),
) -> Any:
    """The value of fixture ``name``, computing what it depends on first.

    ``case_values`` hold this test case's own values (``student``); ``session``
    caches every fixture that does not depend on one of ``per_case``, so that a
    loaded model is shared by every submission and every test.
    """
    if name in case_values:
        return case_values[name]
    if name in session:
        return session[name]
    if name in chain:
        raise RuntimeError(f"fixture cycle: {' -> '.join(chain + (name,))}")
    fn = fixtures.get(name)
    if fn is None:
        raise RuntimeError(f"hidden tests ask for an unknown fixture {name!r}")
    parameters = inspect.signature(fn).parameters
    args = {p: resolve_fixture(p, case_values, session, fixtures, per_case, chain + (name,)) for p in parameters}
    value = fn(**args)
    if not _needs_a_case(name, fixtures, per_case):
        session[name] = value
    return value


def _needs_a_case(name: str, fixtures: dict[str, Callable[..., Any]], per_case: frozenset[str],
                  chain: tuple[str, ...] = ()) -> bool:
    """Whether fixture ``name`` depends, directly or through other fixtures, on a per-case value.

    Such a fixture is computed afresh for each case: caching one that only asks for
    another fixture which asks for ``student`` would hand the next case (and the next
    submission) the first case's program.
    """
    if name in per_case:
        return True
    fn = fixtures.get(name)
    if fn is None or name in chain:
        return False  # a built-in session value, or a cycle resolve_fixture reports itself
    return any(_needs_a_case(p, fixtures, per_case, chain + (name,)) for p in inspect.signature(fn).parameters)


def session_fixtures(tests: list[HiddenTest], fixtures: dict[str, Callable[..., Any]],
                     per_case: frozenset[str] = frozenset({"student"})) -> list[str]:
    """The fixtures ``tests`` ask for (directly or not) that are shared by every case, in first-use order.

    A grader can compute these before the first submission arrives, once for all its workers.
    """
    order: list[str] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        fn = fixtures.get(name)
        if fn is None or name in order or name in chain:
            return
        for p in inspect.signature(fn).parameters:
            visit(p, chain + (name,))
        if not _needs_a_case(name, fixtures, per_case):
            order.append(name)

    for test in tests:
        for p in inspect.signature(test.fn).parameters:
            visit(p, ())
    return order


@contextlib.contextmanager
def one_thread():
    """Run the enclosed torch work on one intra-op thread, restoring the grader's setting after.

    The course's lite models are tiny: a second thread brings nothing, and on a machine whose cores are shared
    by several grading workers, threads that spin and wait on each other make every op several times slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_weights(module: Any, state_dict: dict, what: str = "your module") -> None:
    """Load ``state_dict`` into a student module, failing with the names that did not fit.

    Extra parameters or buffers a student adds are tolerated; every expected
    parameter must exist with the expected shape.
    """
    from autograder.checks import CheckFailed

    shapes = module.state_dict()
    if not isinstance(shapes, dict):
        raise CheckFailed(f"{what}.state_dict() did not return a dict of tensors")
    missing = [k for k in state_dict if k not in shapes]
    if missing:
        have = ", ".join(sorted(shapes)[:12]) or "none"
        raise CheckFailed(
            f"{what} has no parameter named {missing[0]!r} (it has: {have}). "
            "Use the parameter names given in the exercise."
        )
    for key, value in state_dict.items():
        got = tuple(getattr(shapes[key], "shape", ()))
        if got != tuple(value.shape):
            raise CheckFailed(f"{what}: parameter {key!r} has shape {got}, expected {tuple(value.shape)}.")
    module.load_state_dict(state_dict, strict=False)
