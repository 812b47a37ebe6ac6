"""A plain-text progress bar that rewrites one line (`\r`), for operators' commands."""

from __future__ import annotations

import time
from collections.abc import Callable


class ProgressBar:
    """`[#####.....] 5000/10000 (50%)` on one line, redrawn at most 10 times a second.

    `write` prints text as given (no newline added), e.g. a command's
    `lambda text: self.stderr.write(text, ending="")`.
    """

    def __init__(self, write: Callable[[str], object], *, label: str = "", width: int = 30) -> None:
        self.write = write
        self.label = label
        self.width = width
        self._drawn_at = 0.0
        self._drawn = False

    def update(self, done: int, total: int) -> None:
        """Redraw for `done` of `total` (always when finished, else throttled)."""
        now = time.monotonic()
        if done < total and now - self._drawn_at < 0.1:
            return
        self._drawn_at = now
        filled = self.width if total <= 0 else self.width * min(done, total) // total
        percent = 100 if total <= 0 else 100 * min(done, total) // total
        bar = "#" * filled + "." * (self.width - filled)
        prefix = f"{self.label} " if self.label else ""
        self.write(f"\r{prefix}[{bar}] {done}/{total} ({percent}%)")
        self._drawn = True

    def finish(self) -> None:
        """End the line (if anything was drawn)."""
        if self._drawn:
            self.write("\n")
