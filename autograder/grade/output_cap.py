"""What a student's program prints, kept to a size, without ever failing the program.

The program's standard output and error go to the grader's log file, and the
file-size limit (``Limits.file_size_mb``) keeps a runaway ``print`` from filling
the disk. Left alone, the kernel's answer to a write past that limit is
``OSError: [Errno 27] File too large``, raised inside the student's own
``print``: a notebook that prints a lot would lose points for it, and a loop that
prints forever would be reported as that error rather than as the infinite loop
it is. Here output past :data:`PRINTED_LIMIT_BYTES` (counted in characters, per
process), or past the file's limit, is dropped instead, after one line that says
so, and the program runs on.
"""

from __future__ import annotations

import errno
import sys
from typing import Any, TextIO

PRINTED_LIMIT_BYTES = 8 * 1024 * 1024
CUT_NOTE = "\n[autograder: your program printed more than {mb:g} MB; the rest of its output is not kept]\n"


class CappedOutput:
    """A text stream that passes writes on until ``limit`` characters, then drops them.

    Everything else (``fileno``, ``encoding``, ``isatty``, ``buffer``...) is the
    wrapped stream's, so libraries that look at ``sys.stdout`` see what they expect.
    """

    def __init__(self, stream: TextIO, limit: int = PRINTED_LIMIT_BYTES):
        self._stream = stream
        self._left = limit
        self._limit = limit
        self._cut = False

    def write(self, text: str) -> int:
        if self._cut:
            return len(text)
        if len(text) > self._left:
            self._pass_on(text[: self._left])
            self._stop(CUT_NOTE.format(mb=self._limit / 2**20))
            return len(text)
        self._left -= len(text)
        self._pass_on(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._cut:
            return
        try:
            self._stream.flush()
        except OSError as exc:
            self._stop_if_full(exc)

    def _pass_on(self, text: str) -> None:
        try:
            self._stream.write(text)
        except OSError as exc:
            self._stop_if_full(exc)

    def _stop_if_full(self, exc: OSError) -> None:
        if exc.errno != errno.EFBIG:
            raise exc
        self._stop("")  # the file is at its limit: not even the note fits

    def _stop(self, note: str) -> None:
        self._cut = True
        try:
            if note:
                self._stream.write(note)
            self._stream.flush()
        except OSError:
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def cap_printed_output(limit: int = PRINTED_LIMIT_BYTES) -> None:
    """Route this process's ``sys.stdout`` and ``sys.stderr`` through :class:`CappedOutput`."""
    sys.stdout = CappedOutput(sys.stdout, limit)  # type: ignore[assignment]
    sys.stderr = CappedOutput(sys.stderr, limit)  # type: ignore[assignment]
