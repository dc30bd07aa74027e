"""Progress bars that also read well in log files.

On a terminal, tqdm redraws one line with carriage returns. Redirected to a log file
(every Snakemake rule does ``2> {log}``), those redraws pile up on one line; there,
:func:`progress_stream` gives tqdm a stream that turns every redraw into its own line,
so ``tail -f`` and ``grep`` show models, diverged models and the ETA as they change.
"""

from __future__ import annotations

import io
import sys
from typing import TextIO


class LineStream(io.TextIOBase):
    """A text stream for tqdm that writes each redraw as one plain line."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.last = ""

    def write(self, s: str) -> int:
        for line in s.replace("\r", "\n").split("\n"):
            line = line.rstrip()
            if line and line != self.last:  # tqdm redraws unchanged bars on close
                self.stream.write(line + "\n")
                self.last = line
        return len(s)

    def flush(self) -> None:
        self.stream.flush()


def progress_stream(stream: TextIO | None = None) -> TextIO:
    """``stream`` (default stderr) itself on a terminal, else a :class:`LineStream` over it."""
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return stream if tty else LineStream(stream)
