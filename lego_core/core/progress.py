"""How often a progress bar redraws: every second in a terminal, every 5 seconds into a log file
(a job's log.txt, a bench's output), so a log gets a line every few seconds, not a flood."""
from __future__ import annotations

import sys


def redraw_seconds() -> float:
    """tqdm's `mininterval` for a bar written to stderr."""
    try:
        return 1.0 if sys.stderr.isatty() else 5.0
    except (AttributeError, ValueError):  # stderr replaced or closed
        return 5.0
