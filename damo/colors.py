"""damo's terminal colours for heat digits: the palettes, their escape codes, and when to use them.

No numpy here: the reports' options (``--stdout_heatmap_color`` and friends) list the palettes,
and ``--help`` must not load the analysis.
"""
from __future__ import annotations

import os
import sys

# damo's 256-colour palettes: (backgrounds, foregrounds) per heat digit 0..9
COLORSETS = {
    "gray": ([232] * 10, [237, 239, 241, 243, 245, 247, 249, 251, 253, 255]),
    "flame": ([232, 1, 1, 2, 3, 3, 20, 21, 26, 27], [239, 235, 237, 239, 243, 245, 247, 249, 251, 255]),
    "emotion": ([232, 234, 20, 21, 26, 2, 3, 1, 1, 1], [239, 235, 237, 239, 243, 245, 247, 249, 251, 255]),
}
RESET = "\x1b[0m"


def color_code(colorset: str, level: int) -> str:
    bg, fg = COLORSETS[colorset]
    return "\x1b[48;5;%dm\x1b[38;5;%dm" % (bg[level], fg[level])


def use_color(choice: str = "auto", stream=None) -> bool:
    """Colour when asked, or by default when writing to a terminal and NO_COLOR is unset."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    stream = stream or sys.stdout
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()
