"""The trusted side's view of a running student program.

:class:`StudentProcess` starts the untrusted worker (see :mod:`.worker`), runs
the submission's cells in it once, and forks one :class:`StudentConnection`
per test case. Hidden tests drive student objects through :class:`Remote`
proxies: attribute access and calls become requests, tensors come back as plain
tensors, and anything else stays in the student process behind a handle.

Reference code given to the student side (to stand in for an exercise's
dependencies) never leaves this process: the student side only gets a callback
id, and every call through it is computed here.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

import torch

from autograder.grade import wire
from autograder.grade.limits import Limits, memory_rlimit  # noqa: F401 - re-exported: Limits has long lived here
from autograder.grade.sandbox import ProcessCap, Sandbox, scrubbed_environment, with_package_path


class StudentError(Exception):
    """Student code raised an exception; the message is the student's traceback."""

    def __init__(self, type_name: str, message: str, traceback_text: str = ""):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text


class StudentCrashed(Exception):
    """The student process died or broke the protocol."""


class StudentTimeout(Exception):
    """Student code did not answer within the time limit."""


class _Program:
    """A running zygote holding the executed student program (cold-started or spawned warm)."""

    _sock: socket.socket
    conn: "StudentConnection"
    limits: Limits
    device: str
    log_path: Path
    _log: Any

    def exec_cells(self, cells: list[tuple[str, str]]) -> list[dict]:
        """Run (cell id, source) pairs in order; a failing cell does not stop the rest."""
        payload = [{"id": cid, "source": src} for cid, src in cells]
        return self.conn.request({"op": "exec_cells", "cells": payload}, timeout=self.limits.startup_timeout_s)

    def fork(self) -> "StudentConnection":
        """A fresh copy of the program, for one test case."""
        self.conn.ensure_alive()
        try:
            wire.send_message(self._sock, {"op": "fork", "id": 0}, [])
            self._sock.settimeout(30)
            data, fds, _flags, _addr = socket.recv_fds(self._sock, 4, 1)
        except (socket.timeout, OSError) as exc:
            self.conn._die(f"your program stopped answering the grader ({exc})")
            raise StudentCrashed(self.conn.dead_reason) from exc
        if data != b"FORK" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            self.conn._die("your program stopped answering the grader (it may have exited)")
            raise StudentCrashed(self.conn.dead_reason)
        return self._connection(socket.socket(fileno=fds[0]), peer_pid(fds[0]))

    def _connection(self, sock: socket.socket, pid: int) -> "StudentConnection":
        conn = StudentConnection(sock, pid, self.limits, self.device)
        conn.where_stuck = lambda: self.where_stuck(pid)
        return conn

    def where_stuck(self, pid: int) -> str:
        """Where process ``pid``, out of time, is in the student's cells: asked for just before it is stopped.

        It prints its Python stack to the log on WHERE_SIGNAL (worker.say_where_on_signal); what it printed
        is read back and then taken out of the log again, so the output shown to the student stays theirs.
        """
        fd = self._log.fileno()
        try:
            self._log.flush()
            before = os.fstat(fd).st_size
            os.kill(pid, wire.WHERE_SIGNAL)
        except OSError:
            return ""
        size, deadline = before, time.monotonic() + WHERE_WAIT_S
        while time.monotonic() < deadline:  # the stack arrives in a few writes: wait until they stop
            time.sleep(0.02)
            grown = os.fstat(fd).st_size
            if size > before and grown == size:
                break
            size = grown
        try:
            with open(self.log_path, "rb") as log:
                log.seek(before)
                dump = log.read(WHERE_MAX_BYTES).decode("utf-8", errors="replace")
            os.ftruncate(fd, before)  # the programs share this file's offset: put both back
            os.lseek(fd, before, os.SEEK_SET)
        except OSError:
            return ""
        return student_frames(dump)

    def output_tail(self, max_bytes: int = 4000) -> str:
        try:
            self._log.flush()
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        tail = data[-max_bytes:].decode("utf-8", errors="replace")
        return ("…" + tail) if len(data) > max_bytes else tail

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "_Program":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


WHERE_WAIT_S = 0.5  # for the stack of a program that ran out of time (a stopped one never prints it)
WHERE_MAX_BYTES = 256 * 1024
WHERE_MAX_FRAMES = 4
_THREAD_HEADER = re.compile(r"^(?:Current thread|Thread) 0x[0-9a-f]+ .*:$", re.MULTILINE)
_CELL_FRAME = re.compile(r'^\s+File "<cell (?P<cell>[^>\n]*)>", line (?P<line>\d+) in (?P<function>\S+)$', re.MULTILINE)


def student_frames(dump: str) -> str:
    """The student's own lines in a faulthandler stack dump, innermost first, one per line.

    Only frames of the submission's cells count (the grader's own code is not the student's concern); the
    first thread that is in a cell is the one that was running the test.
    """
    for block in _THREAD_HEADER.split(dump)[1:]:
        frames = [m.groupdict() for m in _CELL_FRAME.finditer(block)][:WHERE_MAX_FRAMES]
        if frames:
            return "\n".join(f"  line {f['line']} of cell {f['cell']!r}, in {f['function']}" for f in frames)
    return ""


def peer_pid(fd: int) -> int:
    """Who is at the other end of a Unix socket: the kernel says, in our PID namespace."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        pid, _uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    finally:
        sock.close()
    return pid


class StudentProcess(_Program):
    """A cold-started student program: a new (sandboxed) Python process."""

    def __init__(
        self,
        workdir: Path,
        limits: Limits,
        profile: str = "lite",
        device: str = "cpu",
        sandbox: Sandbox | None = None,
    ):
        """Start the worker with ``workdir/home`` as its private, writable home."""
        self.workdir = workdir
        self.limits = limits
        self.sandbox = sandbox or Sandbox("none")
        home = workdir / "home"
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "student_output.log"
        ours, theirs = socket.socketpair()
        self._sock = ours
        self._log = open(self.log_path, "wb")
        inner = [sys.executable, "-m", "autograder.grade.worker", "--fd", str(theirs.fileno()), "--device", device]
        command, seen_home = self.sandbox.command(inner, home)
        self._cap = ProcessCap(limits.max_processes)

        def before_exec() -> None:
            self._cap.join()
            limits.apply()

        self._proc = subprocess.Popen(
            command,
            cwd=home,
            env=with_package_path(
                scrubbed_environment(seen_home, [seen_home], profile, device, self.sandbox.assets_dir())
            ),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=[theirs.fileno()],
            preexec_fn=before_exec,
            start_new_session=True,
        )
        theirs.close()
        self.device = device
        self.conn = StudentConnection(ours, self._proc.pid, limits, device)

    def close(self) -> None:
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
            pass
        self._cap.remove()
        self._sock.close()
        self._log.close()


class SpawnedProgram(_Program):
    """A submission's program spawned by a warm worker (see :mod:`.pool`).

    It is PID 1 of its own PID namespace: killing it ends every process the
    submission started.
    """

    def __init__(self, sock: socket.socket, log_path: Path, log: Any, limits: Limits, device: str):
        self._sock, self.log_path, self._log, self.limits, self.device = sock, log_path, log, limits, device
        self.conn = self._connection(sock, peer_pid(sock.fileno()))
        # Its own process cap, taken before it runs any student code (it waits for our first
        # request): the warm worker's cap may be shared by programs of several graders.
        self._cap = ProcessCap(limits.max_processes)
        try:
            self._cap.adopt(self.conn.pid)
        except OSError:  # it already exited: the first request says so
            pass

    def close(self) -> None:
        self.conn.kill()
        self._cap.remove()
        self._log.close()


class StudentConnection:
    """Request/reply with one student process, serving its callbacks meanwhile."""

    def __init__(self, sock: socket.socket, pid: int, limits: Limits, device: str):
        self.sock = sock
        self.pid = pid
        self.limits = limits
        self.device = device
        self.callbacks: dict[int, Callable[..., Any]] = {}
        self.module_factories: dict[int, Callable[..., torch.nn.Module]] = {}
        self.instances: dict[int, torch.nn.Module] = {}
        self._next_id = 1
        self.deadline: float | None = None
        self.dead_reason: str | None = None
        # Asks a program that ran out of time where it is (_Program.where_stuck); none where it cannot be asked.
        self.where_stuck: Callable[[], str] | None = None

    # ----------------------------------------------------------------- values
    def _refuse_object(self, value: Any) -> dict:
        if isinstance(value, Remote):
            return value._spec()
        raise TypeError(
            f"cannot send a {type(value).__name__} to student code; send tensors and plain data"
        )

    def encode(self, value: Any) -> tuple[Any, list[bytes]]:
        enc = wire.Encoder(as_handle=self._refuse_object)
        return enc.encode(value), enc.buffers

    def decoder(self, buffers: list[bytes], keep_requires_grad: bool = False) -> wire.Decoder:
        return wire.Decoder(
            buffers=buffers,
            from_handle=lambda spec: Remote(self, spec),
            from_callback=lambda cid: _refuse_callback(cid),
            device=self.device,
            keep_requires_grad=keep_requires_grad,
        )

    def register_callback(self, fn: Callable[..., Any]) -> int:
        cid = self._new_id()
        self.callbacks[cid] = fn
        return cid

    def register_module_factory(self, factory: Callable[..., torch.nn.Module]) -> int:
        cid = self._new_id()
        self.module_factories[cid] = factory
        return cid

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --------------------------------------------------------------- requests
    def ensure_alive(self) -> None:
        if self.dead_reason:
            raise StudentCrashed(self.dead_reason)

    def request(self, header: dict, buffers: list[bytes] | None = None, timeout: float | None = None) -> Any:
        """Send one request and wait for its reply, answering callbacks meanwhile."""
        call_id = self._new_id()
        return self._exchange(call_id, timeout, dict(header, id=call_id), buffers or [])

    def await_reply(self, call_id: int, timeout: float | None = None) -> Any:
        """Wait for the reply to request ``call_id``, sent before this connection existed (see warm_boot)."""
        return self._exchange(call_id, timeout, None, [])

    def _exchange(self, call_id: int, timeout: float | None, header: dict | None, buffers: list[bytes]) -> Any:
        self.ensure_alive()
        if timeout is None:
            timeout = self.limits.test_timeout_s
        deadline = time.monotonic() + timeout
        if self.deadline is not None:
            deadline = min(deadline, self.deadline)
        try:
            if header is not None:
                wire.send_message(self.sock, header, buffers)
            while True:
                reply, reply_buffers = wire.recv_message(
                    self.sock, deadline, max_bytes=self.limits.max_message_mb * 1024 * 1024
                )
                if "reply_to" in reply:
                    if reply["reply_to"] != call_id:
                        raise wire.ProtocolError("reply to an unknown request")
                    break
                self._serve_callback(reply, reply_buffers)
        except wire.Timeout:
            where = self.where_stuck() if self.where_stuck else ""
            self._die("your code did not finish within the time limit")
            raise StudentTimeout(
                f"your code did not finish within the time limit "
                f"({self.limits.test_timeout_s:g} s per test); is there an infinite loop?"
                + (f"\nWhen it was stopped, it was running:\n{where}" if where else "")
            ) from None
        except (wire.PeerGone, BrokenPipeError, ConnectionError):
            self._die("your program exited or crashed while being tested")
            raise StudentCrashed(self.dead_reason) from None
        except wire.ProtocolError as exc:
            self._die(f"your program sent the grader invalid data ({exc})")
            raise StudentCrashed(self.dead_reason) from None
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise StudentError(
                str(err.get("type", "Error"))[:100],
                str(err.get("message", ""))[:4000],
                str(err.get("traceback", ""))[:8000],
            )
        try:
            return self.decoder(reply_buffers).decode(reply.get("value"))
        except wire.ProtocolError as exc:
            raise StudentCrashed(f"your code returned data the grader cannot read ({exc})") from None

    def _die(self, reason: str) -> None:
        self.dead_reason = reason
        self.kill()

    def _serve_callback(self, header: dict, buffers: list[bytes]) -> None:
        """Compute a reference result the student's code asked for."""
        call_id = header.get("id")
        try:
            payload = self.decoder(buffers, keep_requires_grad=True).decode(header.get("payload"))
            if not isinstance(payload, dict):
                raise wire.ProtocolError("malformed callback payload")
            value = self._dispatch_callback(header, payload)
            encoded, out_buffers = self.encode(value)
            reply = {"reply_to": call_id, "ok": True, "value": encoded}
        except Exception as exc:  # noqa: BLE001 - reported to the student side
            reply = {"reply_to": call_id, "ok": False, "error": wire.describe_error(exc)}
            out_buffers = []
        wire.send_message(self.sock, reply, out_buffers)

    def _dispatch_callback(self, header: dict, payload: dict) -> Any:
        op = header.get("op")
        args = tuple(payload.get("args", ()))
        kwargs = dict(payload.get("kwargs", {}))
        params = dict(payload.get("params", {}))
        if op == "oracle_new":
            factory = self.module_factories.get(header.get("callback"))
            if factory is None:
                raise wire.ProtocolError("unknown module factory")
            with torch.no_grad():
                module = factory(*args, **kwargs)
            instance = self._new_id()
            self.instances[instance] = module
            return {"instance": instance, "tree": describe_module(module)}
        if op == "callback":
            fn = self.callbacks.get(header.get("callback"))
            if fn is None:
                raise wire.ProtocolError("unknown callback")
        elif op == "oracle_call":
            module = self.instances.get(header.get("instance"))
            if module is None:
                raise wire.ProtocolError("unknown module instance")
            target = module.get_submodule(str(header.get("path", "")))

            def fn(*a: Any, **k: Any) -> Any:
                return torch.func.functional_call(target, params, a, k, strict=False)

        else:
            raise wire.ProtocolError(f"unknown callback operation {op!r}")
        if not header.get("backward"):
            with torch.no_grad():
                return fn(*args, **kwargs)
        return _vjp(fn, args, kwargs, params, payload.get("grad_outputs", []))

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def close(self) -> None:
        self.kill()


def _refuse_callback(cid: int) -> Any:
    raise wire.ProtocolError("the student side cannot send callbacks")


def _vjp(fn: Callable[..., Any], args: tuple, kwargs: dict, params: dict, grad_outputs: list) -> list:
    """Gradients of ``fn`` w.r.t. every tensor input, in the worker's layout order."""
    inputs = (
        [a for a in args if isinstance(a, torch.Tensor)]
        + [v for v in kwargs.values() if isinstance(v, torch.Tensor)]
        + list(params.values())
    )
    with torch.enable_grad():
        out = fn(*args, **kwargs)
    outs = list(out) if isinstance(out, tuple) else [out]
    pairs = [(o, g) for o, g in zip(outs, grad_outputs) if isinstance(o, torch.Tensor) and o.requires_grad and g is not None]
    wanted = [t for t in inputs if t.requires_grad]
    if not pairs or not wanted:
        return [None] * len(inputs)
    grads = torch.autograd.grad(
        [o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True
    )
    it = iter(grads)
    return [next(it) if t.requires_grad else None for t in inputs]


def describe_module(module: torch.nn.Module) -> dict:
    """The shape of a reference module, for the student side to mirror.

    Parameters (with their current values), plain attributes such as ``cfg``,
    and children. No code and no buffers cross.
    """
    tree: dict[str, Any] = {
        "class": type(module).__name__,
        "params": {n: p.detach() for n, p in module.named_parameters(recurse=False)},
        "attrs": {},
        "children": {},
    }
    for name, value in vars(module).items():
        if name.startswith("_") or name == "training":
            continue
        if _is_plain(value):
            tree["attrs"][name] = value
        elif hasattr(value, "__dataclass_fields__"):
            tree["attrs"][name] = types.SimpleNamespace(
                **{k: getattr(value, k) for k in value.__dataclass_fields__ if _is_plain(getattr(value, k))}
            )
    for name, child in module.named_children():
        if isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)):
            tree["children"][name] = {"list": True, "items": [describe_module(c) for c in child]}
        else:
            tree["children"][name] = describe_module(child)
    return tree


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


# ------------------------------------------------------------------- proxies


class Remote:
    """A proxy for an object that lives in the student process.

    ``remote.attr`` fetches an attribute; ``remote(...)`` calls it. Results that
    are plain data (tensors, numbers, strings, lists) come back as values;
    anything else comes back as another :class:`Remote`.
    """

    __slots__ = ("_conn", "_handle", "_type", "_fields")

    def __init__(self, conn: StudentConnection, spec: dict):
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_handle", spec["$handle"])
        object.__setattr__(self, "_type", str(spec.get("type", "object")))
        fields = spec.get("fields")
        object.__setattr__(self, "_fields", dict(fields) if isinstance(fields, dict) else None)

    def _spec(self) -> dict:
        return {"$handle": self._handle}

    @property
    def remote_type(self) -> str:
        return self._type

    @property
    def dataclass_fields(self) -> dict | None:
        """A snapshot of a student dataclass's plain fields (e.g. a config)."""
        return self._fields

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._conn.request({"op": "get", "target": self._spec(), "name": name})

    def __setattr__(self, name: str, value: Any) -> None:
        encoded, buffers = self._conn.encode(value)
        self._conn.request({"op": "set", "target": self._spec(), "name": name, "value": encoded}, buffers)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._conn, self._spec(), "call", args, kwargs)

    def repeat(self, n: int, *args: Any, **kwargs: Any) -> list:
        """Call ``n`` times in one round trip; used for statistical checks of samplers."""
        return _call(self._conn, self._spec(), "repeat", args, kwargs, n=n)

    def __repr__(self) -> str:
        return f"<student {self._type}>"


def _call(conn: StudentConnection, target: dict | None, op: str, args: tuple, kwargs: dict, **extra: Any) -> Any:
    enc = wire.Encoder(as_handle=conn._refuse_object)
    header = {
        "op": op,
        "target": target,
        "args": enc.encode(list(args)),
        "kwargs": enc.encode(dict(kwargs)),
        **extra,
    }
    return conn.request(header, enc.buffers)


class StudentNamespace:
    """The ``student`` fixture: the globals of the student's program.

    ``student.LayerNorm`` is the student's class (as a :class:`Remote`);
    :meth:`use_reference` swaps a dependency for our reference so that only the
    exercise under test can lose points.
    """

    def __init__(self, conn: StudentConnection):
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._conn.request({"op": "get", "target": None, "name": name})

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a global function in one round trip."""
        fn = self._conn.request({"op": "get", "target": None, "name": name})
        if not isinstance(fn, Remote):
            raise StudentError("TypeError", f"{name} in your notebook is not a function or class")
        return fn(*args, **kwargs)

    def seed(self, seed: int) -> None:
        """Seed torch, numpy and random in the student process."""
        self._conn.request({"op": "seed", "seed": int(seed)})

    def use_reference(self, name: str, implementation: Any, config_class: type | None = None) -> None:
        """Make ``name`` in the student program refer to a trusted implementation.

        ``name`` is a global (``"LayerNorm"``, ``"get_log_probs"``) or a class
        attribute (``"Attention.apply_causal_mask"``). A module class becomes a
        factory of stand-in modules whose forward runs here; arguments that are
        student dataclasses (configs) are rebuilt as ``config_class``.
        """
        if isinstance(implementation, type) and issubclass(implementation, torch.nn.Module):

            def factory(*args: Any, **kwargs: Any) -> torch.nn.Module:
                args = tuple(_as_config(a, config_class) for a in args)
                kwargs = {k: _as_config(v, config_class) for k, v in kwargs.items()}
                return implementation(*args, **kwargs)

            cid = self._conn.register_module_factory(factory)
            self._conn.request({"op": "bind", "name": name, "callback": cid, "module": True})
        else:
            cid = self._conn.register_callback(implementation)
            self._conn.request({"op": "bind", "name": name, "callback": cid, "module": False})


def _as_config(value: Any, config_class: type | None) -> Any:
    if isinstance(value, Remote) and value.dataclass_fields is not None:
        fields = value.dataclass_fields
        return config_class(**fields) if config_class is not None else types.SimpleNamespace(**fields)
    return value
