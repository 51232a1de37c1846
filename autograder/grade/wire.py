"""The only language spoken between the trusted grader and student code.

A message is one JSON header plus a list of raw byte buffers (framed by
:mod:`.framing`). Values are JSON with a few tagged forms:

* ``{"$tensor": i, "dtype": "float32", "shape": [...], "requires_grad": b}`` —
  a tensor whose bytes are buffer ``i`` (C order, CPU);
* ``{"$tuple": [...]}`` and ``{"$dict": [[key, value], ...]}``;
* ``{"$handle": n, "type": "...", "fields": {...}}`` — an object that stays in
  the student process (a module, a function); only its id crosses. ``fields``
  holds a plain snapshot for dataclass instances such as a config;
* ``{"$callback": n}`` — a callable that stays in the trusted process;
* ``{"$ns": {...}}`` — a plain attribute bag (decoded as a SimpleNamespace).

Nothing is ever pickled, so bytes from the student side can at worst decode to
wrong data, never to code. The decoder checks every length against limits.
"""

from __future__ import annotations

import math
import signal
import types
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

# The framing is shared with processes that have not imported torch (yet).
from autograder.grade.framing import (  # noqa: F401 - re-exported: wire is what both sides speak
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_BUFFERS,
    MAX_HEADER_BYTES,
    PeerGone,
    ProtocolError,
    Timeout,
    recv_message,
    send_message,
)

# Sent by the grader to a program that ran out of time, just before stopping it: the program prints its
# Python stack (faulthandler, from the signal handler itself), so the feedback can say where it was.
WHERE_SIGNAL = signal.SIGUSR2

_DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}


# --------------------------------------------------------------------------- values


@dataclass
class Encoder:
    """Turns Python values into (JSON, buffers).

    ``as_handle`` decides what happens to objects that are not plain data: the
    student side keeps them and sends a handle; the trusted side registers
    callables as callbacks and refuses anything else.
    """

    as_handle: Callable[[Any], dict]
    buffers: list[bytes] = field(default_factory=list)
    max_depth: int = 64

    def encode(self, value: Any, depth: int = 0) -> Any:
        if depth > self.max_depth:
            raise ProtocolError("value nested too deeply to send")
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        if isinstance(value, torch.Tensor):
            return self._tensor(value)
        if isinstance(value, torch.Size):
            return {"$tuple": [int(v) for v in value]}
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            return {"$tuple": [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, list):
            return [self.encode(v, depth + 1) for v in value]
        if isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
            return {"$dict": [[k, self.encode(v, depth + 1)] for k, v in value.items()]}
        if isinstance(value, types.SimpleNamespace):
            return {"$ns": {k: self.encode(v, depth + 1) for k, v in vars(value).items()}}
        try:  # numpy scalars and arrays, without importing numpy ourselves
            import numpy as np

            if isinstance(value, np.generic):
                return self.encode(value.item(), depth)
            if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
                return self._tensor(torch.from_numpy(np.ascontiguousarray(value)))
        except ImportError:  # pragma: no cover - numpy ships with torch
            pass
        return self.as_handle(value)

    def _tensor(self, value: torch.Tensor) -> dict:
        # Subclasses may override __torch_function__ to lie about their data;
        # read the storage with subclass dispatch switched off.
        with torch._C.DisableTorchFunctionSubclass():
            plain = torch.Tensor.detach(value)
            if plain.is_complex() or plain.dtype not in _DTYPE_NAMES:
                raise ProtocolError(f"tensors of dtype {plain.dtype} cannot be sent")
            if plain.device.type == "meta":
                raise ProtocolError("a tensor on the 'meta' device has no data")
            plain = plain.cpu()
            if plain.layout != torch.strided:
                plain = plain.to_dense()
            plain = plain.contiguous().as_subclass(torch.Tensor)
            raw = plain.reshape(-1).view(torch.uint8) if plain.numel() else torch.empty(0, dtype=torch.uint8)
            data = bytes(raw.numpy().tobytes())
            requires_grad = bool(torch.Tensor.requires_grad.__get__(value))
        self.buffers.append(data)
        return {
            "$tensor": len(self.buffers) - 1,
            "dtype": _DTYPE_NAMES[plain.dtype],
            "shape": [int(s) for s in plain.shape],
            "requires_grad": requires_grad,
        }


@dataclass
class Decoder:
    """Turns (JSON, buffers) back into Python values, validating as it goes."""

    buffers: list[bytes]
    from_handle: Callable[[dict], Any]
    from_callback: Callable[[int], Any]
    device: torch.device | str = "cpu"
    # Only callbacks computing gradients need requires_grad restored; results
    # from student code come back as plain leaf tensors.
    keep_requires_grad: bool = False
    max_depth: int = 64

    def decode(self, value: Any, depth: int = 0) -> Any:
        if depth > self.max_depth:
            raise ProtocolError("value nested too deeply")
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value
        if isinstance(value, list):
            return [self.decode(v, depth + 1) for v in value]
        if not isinstance(value, dict) or len(value) == 0:
            raise ProtocolError(f"unexpected value {str(value)[:80]!r}")
        if "$tensor" in value:
            return self._tensor(value)
        if "$tuple" in value:
            return tuple(self.decode(v, depth + 1) for v in _as_list(value["$tuple"]))
        if "$dict" in value:
            out = {}
            for pair in _as_list(value["$dict"]):
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))):
                    raise ProtocolError("malformed dict entry")
                out[pair[0]] = self.decode(pair[1], depth + 1)
            return out
        if "$ns" in value:
            if not isinstance(value["$ns"], dict):
                raise ProtocolError("malformed namespace")
            return types.SimpleNamespace(
                **{str(k): self.decode(v, depth + 1) for k, v in value["$ns"].items()}
            )
        if "$handle" in value:
            if not isinstance(value["$handle"], int):
                raise ProtocolError("malformed handle")
            return self.from_handle(value)
        if "$callback" in value:
            if not isinstance(value["$callback"], int):
                raise ProtocolError("malformed callback")
            return self.from_callback(value["$callback"])
        raise ProtocolError(f"unknown tagged value {sorted(value)[:3]}")

    def _tensor(self, spec: dict) -> torch.Tensor:
        index, dtype_name, shape = spec.get("$tensor"), spec.get("dtype"), spec.get("shape")
        if not isinstance(index, int) or not 0 <= index < len(self.buffers):
            raise ProtocolError("tensor refers to a missing buffer")
        if dtype_name not in _DTYPES:
            raise ProtocolError(f"unsupported tensor dtype {dtype_name!r}")
        if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise ProtocolError("malformed tensor shape")
        dtype = _DTYPES[dtype_name]
        numel = math.prod(shape)
        raw = self.buffers[index]
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if len(raw) != numel * itemsize:
            raise ProtocolError(
                f"tensor buffer holds {len(raw)} bytes, but shape {shape} of {dtype_name} needs {numel * itemsize}"
            )
        if numel == 0:
            tensor = torch.empty(shape, dtype=dtype)
        else:
            tensor = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape)
        tensor = tensor.to(self.device)
        if self.keep_requires_grad and spec.get("requires_grad") is True and tensor.is_floating_point():
            tensor.requires_grad_(True)
        return tensor


def _as_list(value: Any) -> list:
    if not isinstance(value, list):
        raise ProtocolError("expected a list")
    return value


def describe_error(exc: BaseException, tb_text: str = "") -> dict:
    return {"type": type(exc).__name__, "message": str(exc)[:4000], "traceback": tb_text[-8000:]}
