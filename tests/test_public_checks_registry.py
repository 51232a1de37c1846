"""autograder.public_checks: what a student sees when calling ``check(name)`` in a notebook."""

from __future__ import annotations

import pytest
import torch

from autograder.checks import CheckFailed
from autograder.public_checks import PublicChecks


def _checks(**options) -> PublicChecks:
    checks = PublicChecks(**options)

    @checks.register("double")
    def _(g):
        got = g["double"](torch.tensor([1.0, 2.0]))
        if not torch.equal(got, torch.tensor([2.0, 4.0])):
            raise CheckFailed(f"double([1, 2]) returned {got.tolist()}, expected [2.0, 4.0]")

    @checks.register("grad")
    def _(g):
        g["seen"].append((torch.is_grad_enabled(), torch.get_num_threads()))

    return checks


def double(x):
    return x * 2


def test_check_reads_the_callers_globals_and_prints_one_line(capsys):
    checks = _checks()
    checks.check("double")  # this module's `double` is the caller's
    assert capsys.readouterr().out == "✓ double: all public checks passed.\n"


def test_failures_say_what_is_wrong_and_unknown_names_list_the_known(capsys):
    checks = _checks()
    namespace = {"double": lambda x: x * 3}
    with pytest.raises(CheckFailed, match=r"returned \[3.0, 6.0\]"):
        checks.run("double", namespace)
    exec("checks.check('double')", {"checks": checks, "double": lambda x: x + 1})
    assert "✗ double: double([1, 2]) returned [2.0, 3.0]" in capsys.readouterr().out
    exec("checks.check('double')", {"checks": checks})
    assert "✗ double: double is not defined in your notebook; run its cell first." in capsys.readouterr().out
    exec("checks.check('double')", {"checks": checks, "double": lambda x: (_ for _ in ()).throw(NotImplementedError)})
    assert "not implemented yet" in capsys.readouterr().out
    with pytest.raises(KeyError, match="known: double, grad"):
        checks.check("triple")


def test_no_grad_and_one_thread_hold_inside_the_check_only():
    seen = []
    threads = torch.get_num_threads()
    _checks(no_grad=True, one_thread=True).run("grad", {"seen": seen})
    _checks().run("grad", {"seen": seen})
    assert seen == [(False, 1), (True, threads)]
    assert torch.is_grad_enabled() and torch.get_num_threads() == threads
