"""What a student's program prints is kept to a size and never fails the program (autograder.grade.output_cap);
really graded in tests/test_attacks.py ("flood stdout", "print 20 MB, then answer")."""

from __future__ import annotations

import errno
import io

import pytest

from autograder.grade.output_cap import CUT_NOTE, CappedOutput


class FullFile(io.StringIO):
    """A log file that is at its size limit after ``room`` characters, as the kernel reports it."""

    def __init__(self, room: int, failure: int = errno.EFBIG):
        super().__init__()
        self.room, self.failure = room, failure

    def write(self, text: str) -> int:
        if self.tell() + len(text) > self.room:
            raise OSError(self.failure, "File too large")
        return super().write(text)


def test_output_past_the_limit_is_dropped_after_one_note():
    log = io.StringIO()
    out = CappedOutput(log, limit=10)
    assert out.write("0123456") == 7 and out.write("789abc") == 6 and out.write("more") == 4
    assert log.getvalue() == "0123456789" + CUT_NOTE.format(mb=10 / 2**20)


def test_a_full_file_stops_the_output_without_an_error():
    log = FullFile(room=8)
    out = CappedOutput(log, limit=1000)
    out.write("1234")
    out.write("56789")  # past the file's limit: dropped, not raised
    out.write("later")
    out.flush()
    assert log.getvalue() == "1234"


def test_other_write_errors_still_reach_the_program():
    out = CappedOutput(FullFile(room=0, failure=errno.EIO), limit=1000)
    with pytest.raises(OSError) as info:
        out.write("x")
    assert info.value.errno == errno.EIO


def test_the_wrapped_streams_other_attributes_show_through():
    log = io.StringIO()
    out = CappedOutput(log)
    assert out.getvalue is not None and out.closed is False and out.seekable() is True
