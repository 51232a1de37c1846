"""The plain-data wire and the numeric checks."""

from __future__ import annotations

import socket

import pytest
import torch

from autograder import checks
from autograder.grade import wire


def roundtrip(value):
    enc = wire.Encoder(as_handle=lambda v: {"$handle": 1, "type": type(v).__name__})
    encoded = enc.encode(value)
    a, b = socket.socketpair()
    wire.send_message(a, {"value": encoded}, enc.buffers)
    header, buffers = wire.recv_message(b)
    dec = wire.Decoder(buffers, from_handle=lambda s: ("handle", s["$handle"]), from_callback=lambda c: None)
    return dec.decode(header["value"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool])
def test_tensors_roundtrip_bit_exact(dtype):
    t = (torch.randn(3, 4, 5) * 10).to(dtype)
    out = roundtrip({"t": t, "nested": [t[0], (1, "x", None, float("nan"))]})
    assert out["t"].dtype == dtype and torch.equal(out["t"], t)
    assert torch.equal(out["nested"][0], t[0]) and out["nested"][1][:3] == (1, "x", None)


def test_non_contiguous_and_subclass_tensors_arrive_as_plain_tensors():
    class Sneaky(torch.Tensor):
        def __eq__(self, other):
            return True

    t = torch.arange(12.0).reshape(3, 4).T.as_subclass(Sneaky)
    out = roundtrip(t)
    assert type(out) is torch.Tensor and torch.equal(out, torch.arange(12.0).reshape(3, 4).T)


def test_objects_become_handles_never_pickles():
    assert roundtrip(object()) == ("handle", 1)


def test_lying_buffer_length_is_rejected():
    a, b = socket.socketpair()
    header = {"value": {"$tensor": 0, "dtype": "float32", "shape": [1000], "requires_grad": False}}
    wire.send_message(a, header, [b"\x00" * 16])
    h, bufs = wire.recv_message(b)
    dec = wire.Decoder(bufs, from_handle=lambda s: None, from_callback=lambda c: None)
    with pytest.raises(wire.ProtocolError, match="needs 4000"):
        dec.decode(h["value"])


def test_oversized_message_is_rejected():
    a, b = socket.socketpair()
    a.sendall(b"\xff\xff\xff\x7f")
    with pytest.raises(wire.ProtocolError, match="too large"):
        wire.recv_message(b)


def test_assert_close_message_names_shape_error_and_index():
    with pytest.raises(checks.CheckFailed, match=r"wrong shape. Expected \(2, 3\), got \(3, 2\)"):
        checks.assert_close(torch.zeros(3, 2), torch.zeros(2, 3))
    expected = torch.zeros(2, 3)
    actual = expected.clone()
    actual[1, 2] = 0.5
    with pytest.raises(checks.CheckFailed) as err:
        checks.assert_close(actual, expected, what="attention output")
    message = str(err.value)
    assert "attention output" in message and "index [1, 2]" in message and "max abs error: 0.5" in message
    assert "16.7%" in message


def test_assert_close_tolerances_depend_on_dtype():
    x = torch.randn(100)
    checks.assert_close(x + 5e-5, x)  # float32: within 1e-4
    with pytest.raises(checks.CheckFailed):
        checks.assert_close(x.double() + 5e-5, x.double())  # float64 is strict
    checks.assert_close((x + 5e-3).half(), x.half())


def test_nan_only_matches_nan():
    checks.assert_close(torch.tensor([float("nan"), 1.0]), torch.tensor([float("nan"), 1.0]))
    with pytest.raises(checks.CheckFailed):
        checks.assert_close(torch.tensor([float("nan")]), torch.tensor([1.0]))


def test_frequency_check_accepts_correct_and_rejects_biased_samplers():
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    g = torch.Generator().manual_seed(0)
    draws = torch.multinomial(probs, 5000, replacement=True, generator=g).tolist()
    checks.assert_frequencies(draws, probs)
    biased = torch.multinomial(torch.tensor([0.6, 0.3, 0.1, 0.0]), 5000, replacement=True, generator=g).tolist()
    with pytest.raises(checks.CheckFailed, match="was drawn with frequency"):
        checks.assert_frequencies(biased, probs)
    with pytest.raises(checks.CheckFailed, match="should never be drawn"):
        checks.assert_frequencies(draws + [3], probs)


def test_metric_thresholds():
    checks.assert_metric(0.5, at_least=0.4, at_most=0.6)
    with pytest.raises(checks.CheckFailed, match="expected at most"):
        checks.assert_metric(2.0, at_most=1.0, what="loss")
    with pytest.raises(checks.CheckFailed, match="NaN"):
        checks.assert_metric(float("nan"), at_least=0)


def test_assignment_tolerances_override_defaults_within_the_block():
    x = torch.randn(10)
    with checks.default_tolerances({"float32": (1e-2, 0.0)}):
        checks.assert_close(x + 5e-3, x)
    with pytest.raises(checks.CheckFailed):
        checks.assert_close(x + 5e-3, x)


def test_check_float_takes_numbers_and_one_element_tensors_only():
    assert checks.check_float(3) == 3.0 and checks.check_float(torch.tensor([[0.25]])) == 0.25
    for bad in (True, torch.tensor(True), torch.zeros(2), "0.5", None, [0.5]):
        with pytest.raises(checks.CheckFailed, match="mass: expected a number"):
            checks.check_float(bad, "mass")


def test_assert_float_tolerances_and_nan():
    checks.assert_float(1.0 + 5e-5, 1.0, "x")  # within the default rtol
    with pytest.raises(checks.CheckFailed, match=r"x: got 1\.00005, expected 1"):
        checks.assert_float(1.0 + 5e-5, 1.0, "x", rtol=0.0)
    with pytest.raises(checks.CheckFailed):
        checks.assert_float(float("nan"), 1.0, "x")


def test_check_sequence_counts_and_names_what_came():
    assert checks.check_sequence((1, 2), 2) == (1, 2)
    with pytest.raises(checks.CheckFailed, match="pair: expected a tuple of 2 values, got tuple of length 3"):
        checks.check_sequence((1, 2, 3), 2, "pair")
    with pytest.raises(checks.CheckFailed, match="got Tensor"):
        checks.check_sequence(torch.zeros(2), 2)


def test_one_thread_restores_the_setting_even_on_error():
    from autograder.testing import one_thread

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with one_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError
    assert torch.get_num_threads() == before
