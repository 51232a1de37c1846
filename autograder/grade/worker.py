"""The student side: runs untrusted code and answers the grader's requests.

Started by :mod:`autograder.grade.student` as ``python -m autograder.grade.worker
--fd N``. It first runs the submission's cells once (the "zygote"), then forks a
fresh child for every test case, so each case sees the program exactly as the
cells left it and nothing one case does can leak into the next.

Everything here is untrusted by construction: the grader believes nothing this
process says except plain data, and it compares that data itself. Student code
can break this file's behaviour only for its own submission.
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import gc
import linecache
import os
import random
import re
import signal
import socket
import sys
import time
import traceback
import types
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    # Python's cyclic collector runs full collections over and over while a big package
    # imports, each over a larger heap: about a second of torch's and transformer_lens's
    # imports. It stays off until this process is about to run code it does not own
    # (main(): at once for a cold start, after the boot for a warm worker).
    gc.disable()

import torch

from autograder.grade import lean_fork, wire
from autograder.grade.numerics import make_repeatable
from autograder.grade.output_cap import cap_printed_output

_MAGIC_LINE = re.compile(r"^(\s*)([%!].*)$")


def strip_magics(source: str) -> str:
    """Turn IPython magics and shell escapes into no-ops so plain Python can run the cell."""
    return "\n".join(
        _MAGIC_LINE.sub(lambda m: f"{m.group(1)}pass  # {m.group(2)[:60]}", line)
        for line in source.split("\n")
    )


def cell_filename(cell_id: str) -> str:
    return f"<cell {cell_id}>"


class Peer:
    """One connection to the grader, with re-entrant request/reply handling.

    While this side waits for the grader to answer a callback, the grader may
    send requests of its own (e.g. to read a config's fields); they are served
    in the same loop.
    """

    def __init__(self, sock: socket.socket, server: "Server"):
        self.sock = sock
        self.server = server
        self.next_id = 1

    def send(self, header: dict, buffers: list[bytes]) -> None:
        wire.send_message(self.sock, header, buffers)

    def request(self, header: dict, buffers: list[bytes]) -> tuple[dict, list[bytes]]:
        call_id = self.next_id
        self.next_id += 1
        header = dict(header, id=call_id)
        self.send(header, buffers)
        while True:
            reply, reply_buffers = wire.recv_message(self.sock)
            if reply.get("reply_to") == call_id:
                return reply, reply_buffers
            self.server.handle(reply, reply_buffers)


class Server:
    """Dispatches the grader's requests against the student namespace."""

    def __init__(self, namespace: dict, device: str):
        self.namespace = namespace
        self.device = device
        self.handles: dict[int, Any] = {}
        self.next_handle = 1
        self.peer: Peer | None = None

    # ----------------------------------------------------------------- values
    def keep(self, obj: Any) -> dict:
        handle = self.next_handle
        self.next_handle += 1
        self.handles[handle] = obj
        info: dict[str, Any] = {"$handle": handle, "type": type(obj).__name__}
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            try:
                info["fields"] = {
                    f.name: self.encoder_for([]).encode(getattr(obj, f.name))
                    for f in dataclasses.fields(obj)
                    if isinstance(getattr(obj, f.name), (int, float, str, bool, type(None)))
                }
            except Exception:  # a snapshot is a convenience, never required
                pass
        return info

    def encoder_for(self, buffers: list[bytes]) -> wire.Encoder:
        return wire.Encoder(as_handle=self.keep, buffers=buffers)

    def encode(self, value: Any) -> tuple[Any, list[bytes]]:
        enc = self.encoder_for([])
        return enc.encode(value), enc.buffers

    def decoder(self, buffers: list[bytes]) -> wire.Decoder:
        return wire.Decoder(
            buffers=buffers,
            from_handle=self._lookup,
            from_callback=lambda cid: RemoteCallable(self, cid),
            device=self.device,
            keep_requires_grad=True,
        )

    def _lookup(self, spec: dict) -> Any:
        handle = spec["$handle"]
        if handle not in self.handles:
            raise wire.ProtocolError(f"unknown handle {handle}")
        return self.handles[handle]

    def target(self, spec: Any) -> Any:
        if spec is None:
            return _NamespaceView(self.namespace)
        return self._lookup(spec)

    # --------------------------------------------------------------- requests
    def handle(self, header: dict, buffers: list[bytes]) -> None:
        op = header.get("op")
        call_id = header.get("id")
        try:
            method = getattr(self, f"op_{op}", None)
            if method is None:
                raise wire.ProtocolError(f"unknown operation {op!r}")
            value = method(header, self.decoder(buffers))
            encoded, out_buffers = self.encode(value)
            reply = {"reply_to": call_id, "ok": True, "value": encoded}
        except SystemExit as exc:
            reply, out_buffers = _error_reply(call_id, exc), []
            reply["error"]["message"] = f"the code called sys.exit({exc.code!r})"
        except BaseException as exc:  # noqa: BLE001 - report everything to the grader
            reply, out_buffers = _error_reply(call_id, exc), []
        _flush_output()  # before the reply: the grader may end this process as soon as it has it
        assert self.peer is not None
        self.peer.send(reply, out_buffers)

    def op_ping(self, header: dict, dec: wire.Decoder) -> str:
        return "pong"

    def op_get(self, header: dict, dec: wire.Decoder) -> Any:
        return getattr(self.target(header.get("target")), header["name"])

    def op_set(self, header: dict, dec: wire.Decoder) -> None:
        setattr(self.target(header.get("target")), header["name"], dec.decode(header["value"]))

    def op_call(self, header: dict, dec: wire.Decoder) -> Any:
        fn = self.target(header.get("target"))
        args = dec.decode(header.get("args", []))
        kwargs = dec.decode(header.get("kwargs", {"$dict": []}))
        return fn(*args, **kwargs)

    def op_repeat(self, header: dict, dec: wire.Decoder) -> list:
        """Call a function many times in one round trip (for samplers)."""
        fn = self.target(header.get("target"))
        args = dec.decode(header.get("args", []))
        kwargs = dec.decode(header.get("kwargs", {"$dict": []}))
        return [fn(*args, **kwargs) for _ in range(int(header["n"]))]

    def op_seed(self, header: dict, dec: wire.Decoder) -> None:
        seed = int(header["seed"])
        torch.manual_seed(seed)
        random.seed(seed)
        try:
            import numpy as np

            np.random.seed(seed % 2**32)
        except ImportError:  # pragma: no cover
            pass

    def op_bind(self, header: dict, dec: wire.Decoder) -> None:
        """Replace a name (``Foo`` or ``Foo.method``) with a trusted implementation."""
        path = header["name"].split(".")
        oracle: Any
        if header.get("module"):
            oracle = OracleModuleFactory(self, header["callback"], path[-1])
        else:
            oracle = RemoteCallable(self, header["callback"])
        owner: Any = _NamespaceView(self.namespace)
        for part in path[:-1]:
            owner = getattr(owner, part)
        setattr(owner, path[-1], oracle)

    def op_exec_cells(self, header: dict, dec: wire.Decoder) -> list:
        results = []
        for cell in header["cells"]:
            results.append(run_cell(self.namespace, cell["id"], cell["source"]))
        return results

    def op_fork(self, header: dict, dec: wire.Decoder) -> None:  # handled in serve()
        raise wire.ProtocolError("fork must be handled by the zygote loop")


class _NamespaceView:
    """Attribute access onto the program's globals dict."""

    def __init__(self, namespace: dict):
        object.__setattr__(self, "_ns", namespace)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._ns[name]
        except KeyError:
            raise NameError(f"name {name!r} is not defined in your notebook") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._ns[name] = value


def student_traceback(exc: BaseException) -> str:
    """The traceback restricted to frames in the student's cells: what they can act on."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell ")]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def _error_reply(call_id: Any, exc: BaseException) -> dict:
    return {"reply_to": call_id, "ok": False, "error": wire.describe_error(exc, student_traceback(exc))}


def run_cell(namespace: dict, cell_id: str, source: str) -> dict:
    filename = cell_filename(cell_id)
    code_text = strip_magics(source)
    linecache.cache[filename] = (len(code_text), None, code_text.splitlines(True), filename)
    try:
        code = compile(code_text, filename, "exec")
        exec(code, namespace)  # noqa: S102 - this process exists to run student code
        return {"id": cell_id, "ok": True}
    except SystemExit as exc:
        return {"id": cell_id, "ok": False, "error": f"the cell called sys.exit({exc.code!r})"}
    except BaseException as exc:  # noqa: BLE001
        return {"id": cell_id, "ok": False, "error": student_traceback(exc)[-4000:]}


# ------------------------------------------------------------------ trusted calls


class RemoteCallable:
    """A trusted-side function, callable from student code, with autograd support.

    Used to swap in the reference implementation of what an exercise depends on,
    so one bug costs one exercise. Gradients flow through it: the backward pass
    is computed on the trusted side too.
    """

    def __init__(self, server: Server, callback_id: int):
        self._server = server
        self._callback_id = callback_id

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return remote_apply(self._server, {"op": "callback", "callback": self._callback_id}, args, kwargs, {})


class OracleModuleFactory:
    """Stands in for a module class: ``LayerNorm(cfg)`` builds an :class:`OracleModule`."""

    def __init__(self, server: Server, callback_id: int, name: str):
        self._server = server
        self._callback_id = callback_id
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> "OracleModule":
        value = _trusted_request(
            self._server,
            {"op": "oracle_new", "callback": self._callback_id},
            {"args": args, "kwargs": kwargs},
        )
        return OracleModule(self._server, value["instance"], "", value["tree"])


class OracleModule(torch.nn.Module):
    """A module whose parameters live here but whose forward runs on the trusted side."""

    def __init__(self, server: Server, instance: int, path: str, tree: dict):
        super().__init__()
        self._server = server
        self._instance = instance
        self._path = path
        self._oracle_class = tree.get("class", "Module")
        for name, value in tree.get("params", {}).items():
            self.register_parameter(name, torch.nn.Parameter(value.clone()))
        for name, value in tree.get("attrs", {}).items():
            object.__setattr__(self, name, value)
        for name, child in tree.get("children", {}).items():
            child_path = f"{path}.{name}" if path else name
            self.add_module(name, _build_oracle_child(server, instance, child_path, child))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        params = dict(self.named_parameters())
        return remote_apply(
            self._server,
            {"op": "oracle_call", "instance": self._instance, "path": self._path},
            args,
            kwargs,
            params,
        )

    def extra_repr(self) -> str:
        return f"reference {self._oracle_class}"


def _build_oracle_child(server: Server, instance: int, path: str, tree: dict) -> torch.nn.Module:
    if tree.get("list"):
        items = [
            _build_oracle_child(server, instance, f"{path}.{i}", child)
            for i, child in enumerate(tree["items"])
        ]
        return torch.nn.ModuleList(items)
    return OracleModule(server, instance, path, tree)


def _trusted_request(server: Server, header: dict, payload: dict) -> Any:
    encoded, buffers = server.encode(payload)
    assert server.peer is not None
    reply, reply_buffers = server.peer.request(dict(header, payload=encoded), buffers)
    if not reply.get("ok"):
        err = reply.get("error", {})
        raise RuntimeError(f"{err.get('type', 'Error')}: {err.get('message', '')}")
    return server.decoder(reply_buffers).decode(reply.get("value"))


def remote_apply(server: Server, header: dict, args: tuple, kwargs: dict, params: dict) -> Any:
    """Run a trusted computation; wrap it in an autograd node when gradients are needed."""
    needs_grad = torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad
        for t in list(args) + list(kwargs.values()) + list(params.values())
    )
    if not needs_grad:
        return _trusted_request(
            server, header, {"args": args, "kwargs": kwargs, "params": params}
        )
    arg_slots = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    kw_slots = [k for k, v in kwargs.items() if isinstance(v, torch.Tensor)]
    param_names = list(params)
    tensors = (
        [args[i] for i in arg_slots] + [kwargs[k] for k in kw_slots] + [params[n] for n in param_names]
    )
    layout = (arg_slots, kw_slots, param_names)
    return _RemoteFunction.apply(server, header, args, kwargs, layout, *tensors)


def _rebuild(args: tuple, kwargs: dict, layout: tuple, tensors: tuple) -> tuple[tuple, dict, dict]:
    arg_slots, kw_slots, param_names = layout
    args, kwargs = list(args), dict(kwargs)
    it = iter(tensors)
    for i in arg_slots:
        args[i] = next(it)
    for k in kw_slots:
        kwargs[k] = next(it)
    params = {n: next(it) for n in param_names}
    return tuple(args), kwargs, params


class _RemoteFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, server, header, args, kwargs, layout, *tensors):  # type: ignore[override]
        ctx.server, ctx.header, ctx.args, ctx.kwargs, ctx.layout = server, header, args, kwargs, layout
        ctx.requires = [t.requires_grad for t in tensors]
        ctx.save_for_backward(*tensors)
        a, k, p = _rebuild(args, kwargs, layout, tuple(t.detach() for t in tensors))
        out = _trusted_request(server, header, {"args": a, "kwargs": k, "params": p})
        ctx.output_is_tuple = isinstance(out, tuple)
        return out

    @staticmethod
    def backward(ctx, *grad_outputs):  # type: ignore[override]
        tensors = ctx.saved_tensors
        marked = []
        for t, req in zip(tensors, ctx.requires):
            t = t.detach()
            marked.append(t.requires_grad_(True) if req and t.is_floating_point() else t)
        a, k, p = _rebuild(ctx.args, ctx.kwargs, ctx.layout, tuple(marked))
        grads = _trusted_request(
            ctx.server,
            dict(ctx.header, backward=True),
            {"args": a, "kwargs": k, "params": p, "grad_outputs": list(grad_outputs)},
        )
        return (None, None, None, None, None, *grads)


# ------------------------------------------------------------------------- main


def serve(sock: socket.socket, server: Server, zygote: bool) -> None:
    """Answer requests until the grader hangs up. The zygote also forks children."""
    server.peer = Peer(sock, server)
    while True:
        try:
            header, buffers = wire.recv_message(sock)
        except (wire.PeerGone, wire.ProtocolError):
            return
        if zygote and header.get("op") == "fork":
            _freeze_heap()
            child_sock = _fork_child(sock, header)
            if child_sock is not None:  # we are the child now
                sock.close()
                serve(child_sock, server, zygote=False)
                os._exit(0)
            continue
        server.handle(header, buffers)


def _end_boot() -> None:
    """The warm worker's imports and leading cells are done: keep what they left, collector back on.

    What they left is frozen uncollected, garbage included, rather than collected: a
    collection would take half a second before the first submission can start, and
    it frees nothing the programs forked from here would ever touch (Python's own
    advice for a process that forks: collector off in the parent, freeze, then fork).
    """
    gc.freeze()
    gc.enable()


def _freeze_heap() -> None:
    """Keep the garbage collector of a forked child off the objects it inherits.

    A collection of the older generations walks every tracked object and writes to
    each one's header, so a child that ran one would copy nearly the whole inherited
    heap page by page (0.4 s with torch and transformer_lens loaded). Frozen, they
    are never walked; what the child itself allocates is collected as usual.
    """
    gc.freeze()


MADV_COLLAPSE = 25  # linux/mman.h, since Linux 6.1
HUGE_PAGE = 2 * 1024 * 1024


def collapse_into_huge_pages() -> None:
    """Back this process's private writable memory with 2 MiB pages, where the kernel allows.

    Every test case forks the submission's program, and a fork copies one page-table
    entry per 4 KiB page: with torch and transformer_lens loaded, some 80,000 of them,
    and on a virtual machine each costs more. The programs inherit this worker's memory,
    so collapsing it once here makes each of their forks copy about 500 times fewer
    entries (a fork of 1.1's program: 8.5 ms, then 6 ms), and the tests' own code runs
    faster with fewer TLB misses. Best effort: an older kernel leaves everything as it was.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        with open("/proc/self/maps") as maps:
            regions = [line.split() for line in maps]
    except OSError:
        return
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for fields in regions:
        name = fields[5] if len(fields) > 5 else ""
        if name not in ("", "[heap]") or "w" not in fields[1]:
            continue  # files' pages, and read-only memory, are shared by fork as they are
        start, end = (int(x, 16) for x in fields[0].split("-"))
        start, end = (start + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1), end & ~(HUGE_PAGE - 1)
        if end > start:
            # A collapse only, not MADV_HUGEPAGE: memory the programs touch later stays in 4 KiB pages
            # (a 2 MiB page per first touch would inflate each forked case's footprint).
            libc.madvise(start, end - start, MADV_COLLAPSE)


def say_where_on_signal() -> None:
    """On the grader's WHERE_SIGNAL, print this process's Python stack to the log (see student.where_stuck).

    faulthandler writes it from the signal handler itself, so a loop that never returns to the
    interpreter's own checks (a C call, a tight loop) still answers. Forked test cases inherit it.
    """
    faulthandler.register(wire.WHERE_SIGNAL, file=2, all_threads=True, chain=False)


def _flush_output() -> None:
    """What the student's code printed reaches the log now: a forked case ends in os._exit,
    which would drop Python's buffered output (and with it the feedback's "printed" part)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed or replaced by the student's code
            pass


def _fork_child(sock: socket.socket, header: dict) -> socket.socket | None:
    """Fork a child that hands the grader its own connection.

    The child creates the socket pair itself, so the kernel can tell the grader
    (SO_PEERCRED) which process is at the other end, in the grader's PID
    namespace: the grader can then stop a runaway child without trusting us.
    """
    ready_r, ready_w = os.pipe()
    pid = lean_fork.fork()
    if pid == 0:
        os.close(ready_r)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        ours, theirs = socket.socketpair()
        socket.send_fds(sock, [b"FORK"], [theirs.fileno()])
        theirs.close()
        os.write(ready_w, b"x")
        os.close(ready_w)
        return ours
    os.close(ready_w)
    os.read(ready_r, 1)  # wait until the child has written its message
    os.close(ready_r)
    return None


def serve_warm(sock: socket.socket, server: Server, options: argparse.Namespace) -> None:
    """The warm worker: runs the leading setup cells once, then spawns one program per submission.

    It never runs student code itself: each ``spawn`` forks a process that
    enters fresh namespaces (:mod:`.isolation`) and then serves as that
    submission's zygote, exactly like a cold-started worker.
    """
    server.peer = Peer(sock, server)
    collapsed = False
    while True:
        try:
            header, buffers = wire.recv_message(sock)
        except (wire.PeerGone, wire.ProtocolError):
            return
        if header.get("op") != "spawn":
            server.handle(header, buffers)
            if not collapsed:  # the first request was the boot (warm_boot): its cells have run, its reply is out
                _end_boot()
                collapse_into_huge_pages()
                collapsed = True
            continue
        _freeze_heap()
        child_sock = _spawn_submission(sock, header, options)
        if child_sock is not None:  # we are the submission's program now
            sock.close()
            gc.enable()  # (it is, after the boot) student code always runs with the collector on
            _cap_gpu_memory(server.device)
            cap_printed_output()
            say_where_on_signal()
            serve(child_sock, Server(server.namespace, server.device), zygote=True)
            os._exit(0)


def _spawn_submission(sock: socket.socket, header: dict, options: argparse.Namespace) -> socket.socket | None:
    """Fork the submission's program: PID 1 of its own namespaces, output to the grader's log file."""
    from autograder.grade import isolation
    from autograder.grade.student import Limits

    _data, fds, _flags, _addr = socket.recv_fds(sock, 1, 1)  # the grader's log file for this submission
    sys.stdout.flush()
    sys.stderr.flush()
    ready_r, ready_w = os.pipe()
    if _fork_with_retry() != 0:
        for fd in (*fds, ready_w):
            os.close(fd)
        os.read(ready_r, 1)  # until the program has answered the grader
        os.close(ready_r)
        return None
    os.close(ready_r)
    try:
        isolation.unshare_for_submission()
        if lean_fork.fork() != 0:
            os._exit(0)  # the program below is reparented; nothing waits for it here
        isolation.enter_submission_namespaces(Path(options.home), Path(options.support), options.tmpfs_bytes)
        for target in (1, 2):
            os.dup2(fds[0], target)
        os.close(fds[0])
        Limits(**header["limits"]).apply()
        ours, theirs = socket.socketpair()
        socket.send_fds(sock, [b"SPAWN"], [theirs.fileno()])
        theirs.close()
    except BaseException as exc:  # noqa: BLE001 - tell the grader, never run student code
        sock.sendall(f"FAIL {type(exc).__name__}: {exc}".encode()[:4000])
        os._exit(1)
    os.write(ready_w, b"x")
    os.close(ready_w)
    return ours


def _fork_with_retry() -> int:
    """fork, waiting briefly while the last submission's processes (a fork bomb) are torn down."""
    for _ in range(100):
        try:
            return lean_fork.fork()
        except BlockingIOError:
            time.sleep(0.05)
    return lean_fork.fork()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    channel = parser.add_mutually_exclusive_group(required=True)
    channel.add_argument("--fd", type=int, help="an inherited socket to the grader")
    channel.add_argument("--connect", help="a Unix socket path the grader listens on (container backends)")
    parser.add_argument("--copy-support", help="copy these support files into the working directory first")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warm", action="store_true", help="serve as a warm worker that spawns submissions")
    parser.add_argument("--home", help="(warm) where each submission's fresh home is mounted")
    parser.add_argument("--support", help="(warm) read-only support files copied into each fresh home")
    parser.add_argument("--tmpfs-bytes", type=int, default=256 * 1024 * 1024)
    options = parser.parse_args(argv)
    # One thread: forked children must never inherit a half-initialised thread pool,
    # and grading runs many workers side by side anyway.
    torch.set_num_threads(1)
    make_repeatable(options.device)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    if options.connect:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(options.connect)
    else:
        sock = socket.socket(fileno=options.fd)
    if options.copy_support:
        from autograder.grade.isolation import copy_support_files

        copy_support_files(Path(options.copy_support), Path.cwd())
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    namespace["display"] = print
    # Grading reuses the program as the cells left it; make module-level
    # `if __name__ == "__main__"` demos behave like in a notebook.
    sys.modules["__main__"] = types.ModuleType("__main__")
    sys.modules["__main__"].__dict__.update(namespace)
    namespace = sys.modules["__main__"].__dict__
    if options.warm:
        preload_lazy_imports()
        serve_warm(sock, Server(namespace, options.device), options)
    else:
        gc.enable()  # off for the imports only (top of this file): the submission's cells come next
        _cap_gpu_memory(options.device)
        cap_printed_output()
        say_where_on_signal()
        serve(sock, Server(namespace, options.device), zygote=True)


# Modules torch imports lazily, on first use, that grading cases commonly reach: creating any
# torch.optim optimizer imports torch._dynamo (about 1 s). A warm worker imports them once, so
# that the submissions and test cases forked from it do not each pay for it again.
LAZY_IMPORTS = ("torch._dynamo",)


def preload_lazy_imports() -> None:
    import importlib

    for name in LAZY_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optimisation only; the case imports it itself if needed
            pass


def _cap_gpu_memory(device: str) -> None:
    """On a GPU, hold this program to its worker's share of the GPU's memory (it initialises CUDA here)."""
    if device.startswith("cuda"):
        from autograder.grade.gpu_slots import cap_this_process

        cap_this_process()


if __name__ == "__main__":
    main()
