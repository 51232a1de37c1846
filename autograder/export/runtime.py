"""Hidden tests run inside a notebook kernel, as nbgrader's and otter's test cells call them.

The notebook has already run the student's cells; its globals are the student's
program. A :class:`NotebookSession` loads the reference solution and the hidden
tests once per kernel, and runs one test case at a time against those globals.

The tests talk to the student's code exactly as in the sandboxed grader: a
student-side :class:`~autograder.grade.worker.Server` answers requests over a
socket pair, here from a thread of the kernel instead of a separate process, so
tensors cross by value and ``student.use_reference`` works the same way. What
a case binds with ``use_reference`` is undone after it, since there is no
fresh fork per case to throw away.
"""

from __future__ import annotations

import inspect
import linecache
import os
import socket
import sys
import threading
import types
from pathlib import Path
from typing import Any

import torch

from autograder.checks import default_tolerances
from autograder.export.payload import decode_payload, payload_id
from autograder.grade.runner import explain_failure
from autograder.grade.student import Limits, StudentConnection, StudentNamespace
from autograder.grade.worker import Server, _NamespaceView, serve
from autograder.testing import HiddenTest, collect, resolve_fixture

_SESSIONS: dict[str, "NotebookSession"] = {}
_MISSING = object()


class HiddenTestFailed(AssertionError):
    """A hidden test case failed; the message is what the student is told."""


def load_session(encoded_payload: str, namespace: dict) -> "NotebookSession":
    """The kernel's session for this payload, created on first use."""
    payload = decode_payload(encoded_payload)
    key = payload_id(payload)
    if key not in _SESSIONS:
        _SESSIONS[key] = NotebookSession(payload, namespace)
    return _SESSIONS[key]


def run_from_file(namespace: dict, payload_file: str, exercise: str, name: str) -> None:
    """Otter's hidden test cases: the payload is a file of the autograder zip, beside the notebook."""
    path = Path(payload_file)
    if not path.exists():
        raise HiddenTestFailed(f"{payload_file} is missing from the grading directory ({Path.cwd()})")
    load_session(path.read_text(), namespace).run(exercise, name)


def run(key_or_session: "str | NotebookSession", exercise: str, name: str) -> None:
    session = key_or_session if isinstance(key_or_session, NotebookSession) else _SESSIONS.get(key_or_session)
    if session is None:
        raise HiddenTestFailed(
            "the hidden tests could not be loaded (the first test cell failed before this one); see its output"
        )
    session.run(exercise, name)


class NotebookSession:
    def __init__(self, payload: dict[str, Any], namespace: dict):
        self.payload = payload
        self.key = payload_id(payload)
        self.namespace = namespace
        self.device = os.environ.get("AUTOGRADER_DEVICE", "cpu")
        profile = os.environ.setdefault("AUTOGRADER_PROFILE", "lite")
        if str(Path.cwd()) not in sys.path:  # the assignment's helpers, next to the notebook
            sys.path.insert(0, str(Path.cwd()))
        outer_grad_mode = torch.is_grad_enabled()
        tag = f"autograder_export_{self.key}"
        self.reference = _module_from_source(payload["reference"], f"{tag}_reference", "<reference solution>")
        modules = [
            _module_from_source(source, f"{tag}_hidden_{i}", f"<hidden tests {i}>")
            for i, source in enumerate(payload["hidden"].values())
        ]
        # Grade in the grad mode the reference left (as the sandboxed grader does); give the notebook back its own.
        self.grad_mode = torch.is_grad_enabled()
        torch.set_grad_enabled(outer_grad_mode)
        self.tests, self.fixtures = collect(modules)
        self.session: dict[str, Any] = {
            "reference": self.reference,
            "profile": profile,
            "device": torch.device(self.device),
            "seed": int(payload["seed"]),
            "bundle_dir": Path.cwd(),
        }
        self.limits = Limits(**payload["limits"])

    def test(self, exercise: str, name: str) -> HiddenTest:
        for test in self.tests:
            if test.exercise == exercise and test.name == name:
                return test
        raise KeyError(f"no hidden test {name!r} for exercise {exercise!r}")

    def run(self, exercise: str, name: str) -> None:
        """Run one hidden test case; raise :class:`HiddenTestFailed` with the student-facing message."""
        test = self.test(exercise, name)
        student = InKernelStudent(self.namespace, self.limits, self.device, torch.is_grad_enabled())
        try:
            with torch.set_grad_enabled(self.grad_mode):
                case_values = {"student": StudentNamespace(student.connection)}
                kwargs = {
                    arg: resolve_fixture(arg, case_values, self.session, self.fixtures)
                    for arg in inspect.signature(test.fn).parameters
                }
                with default_tolerances(self.payload["tolerances"]):
                    test.fn(**kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure is explained to the student
            _, message = explain_failure(exc)
            raise HiddenTestFailed(f"{exercise}, {name}: {message}") from None
        finally:
            student.close()


class InKernelStudent:
    """The notebook's globals, served over a socket pair by a thread of this kernel."""

    def __init__(self, namespace: dict, limits: Limits, device: str, grad_mode: bool):
        ours, theirs = socket.socketpair()
        self.server = _UndoingServer(namespace, device)
        self.connection = _InKernelConnection(ours, os.getpid(), limits, device)

        def serve_student() -> None:
            torch.set_grad_enabled(grad_mode)  # grad mode is per thread: the notebook's, as the student left it
            try:
                serve(theirs, self.server, zygote=False)
            except OSError:
                pass  # the test side hung up (a timeout): nothing is waiting for a reply
            finally:
                theirs.close()

        self.thread = threading.Thread(target=serve_student, name="autograder-student", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.connection.close()
        self.thread.join(timeout=5)
        self.server.undo()


class _InKernelConnection(StudentConnection):
    def kill(self) -> None:
        # The "student process" is this kernel: hang up, never signal it.
        try:
            self.sock.close()
        except OSError:
            pass


class _UndoingServer(Server):
    """Records what ``use_reference`` replaces, to put it back after the case."""

    def __init__(self, namespace: dict, device: str):
        super().__init__(namespace, device)
        self._replaced: list[tuple[Any, str, Any]] = []

    def op_bind(self, header: dict, dec: Any) -> None:
        path = header["name"].split(".")
        if len(path) == 1:
            self._replaced.append((self.namespace, path[0], self.namespace.get(path[0], _MISSING)))
        else:
            owner: Any = _NamespaceView(self.namespace)
            for part in path[:-1]:
                owner = getattr(owner, part)
            own = vars(owner).get(path[-1], _MISSING) if hasattr(owner, "__dict__") else _MISSING
            self._replaced.append((owner, path[-1], own))
        super().op_bind(header, dec)

    def undo(self) -> None:
        for owner, name, old in reversed(self._replaced):
            if isinstance(owner, dict):
                if old is _MISSING:
                    owner.pop(name, None)
                else:
                    owner[name] = old
            elif old is _MISSING:
                try:
                    delattr(owner, name)
                except AttributeError:
                    pass
            else:
                setattr(owner, name, old)
        self._replaced.clear()


def _module_from_source(source: str, name: str, filename: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module  # dataclasses look their module up here
    # nnsight reads a `with model.trace(...)` block's source back through linecache (section 1.3.2)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), module.__dict__)
    return module

