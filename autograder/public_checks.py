"""The registry behind each section's ``public_tests.py``: what ``check("exercise")`` runs in a notebook.

A section writes its checks as functions of the notebook's globals and registers them by exercise name::

    from autograder.public_checks import PublicChecks

    CHECKS = PublicChecks()
    register, check = CHECKS.register, CHECKS.check

    @register("layernorm")
    def _(g):
        ...  # raise CheckFailed (autograder.checks) with a message for the student

``check(name)`` runs them against the globals of whoever called it (the notebook) and prints one line: a tick,
or what is wrong. The grader re-runs the same checks for feedback on exercises that lost points
(``grade/runner.py`` looks up ``CHECKS`` and calls ``check``).
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Callable

from autograder.checks import CheckFailed

Check = Callable[[dict], None]


class PublicChecks(dict):
    """Exercise name -> check. ``no_grad`` runs the checks with gradients off (and gives the notebook its
    grad mode back after); leave it off for a section whose checks differentiate. ``one_thread`` runs each
    check on one torch thread: many tiny forward passes on a busy CPU mostly wait on each other otherwise."""

    def __init__(self, *, no_grad: bool = False, one_thread: bool = False):
        super().__init__()
        self.no_grad = no_grad
        self.one_thread = one_thread

    def register(self, name: str) -> Callable[[Check], Check]:
        def add(fn: Check) -> Check:
            self[name] = fn
            return fn

        return add

    def check(self, name: str) -> None:
        """Run the public checks of exercise ``name`` against the notebook's definitions."""
        if name not in self:
            raise KeyError(f"no public checks for {name!r}; known: {', '.join(sorted(self))}")
        frame = inspect.currentframe()
        notebook_globals = frame.f_back.f_globals if frame and frame.f_back else {}
        try:
            self.run(name, notebook_globals)
        except NotImplementedError:
            print(f"✗ {name}: not implemented yet (the cell still raises NotImplementedError).")
        except CheckFailed as exc:
            print(f"✗ {name}: {exc}")
        except KeyError as exc:
            print(f"✗ {name}: {exc.args[0] if exc.args else exc} is not defined in your notebook; run its cell first.")
        else:
            print(f"✓ {name}: all public checks passed.")

    def run(self, name: str, notebook_globals: dict) -> None:
        """The check itself, raising what it finds (tests call this; students call :meth:`check`)."""
        import torch

        from autograder.testing import one_thread

        grad_mode = torch.is_grad_enabled()
        try:
            with one_thread() if self.one_thread else contextlib.nullcontext(), \
                    torch.no_grad() if self.no_grad else contextlib.nullcontext():
                self[name](notebook_globals)
        finally:
            torch.set_grad_enabled(grad_mode)

