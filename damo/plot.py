"""matplotlib helpers shared by the reports: headless backend, human units, image files."""
from __future__ import annotations

import os

import numpy as np

from damo.errors import DamoError
from damo.output_path import PUBLIC, check_output, replace_atomically

IMAGE_TYPES = ("png", "svg", "pdf", "jpg", "jpeg")
SIZE_UNITS = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))
TIME_UNITS = ((3600e9, "h"), (60e9, "min"), (1e9, "s"), (1e6, "ms"), (1e3, "us"))


def image_type(path: str) -> str:
    """The image format named by ``path``'s extension; a DamoError if we cannot draw it."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in IMAGE_TYPES:
        raise DamoError(f"{path}: unsupported image type (use one of .{', .'.join(IMAGE_TYPES)})")
    return "jpeg" if ext == "jpg" else ext


def pyplot():
    """pyplot on the Agg backend, so drawing never needs a display."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def bytes_unit(max_bytes: float) -> tuple[float, str]:
    """The binary unit that keeps values of up to ``max_bytes`` readable: ``(divisor, name)``."""
    for div, name in SIZE_UNITS:
        if max_bytes >= 4 * div:
            return float(div), name
    return 1.0, "B"


def time_unit(max_ns: float) -> tuple[float, str]:
    """The time unit for spans of up to ``max_ns`` nanoseconds: ``(divisor, name)``."""
    for div, name in TIME_UNITS[2:]:
        if max_ns >= 2 * div:
            return div, name
    return 1.0, "ns"


def save(fig, path: str, dpi: int = 100) -> None:
    fmt = image_type(path)
    check_output(path, "output")
    try:
        # Written beside the path and renamed into place, mode 0644 whatever the umask.
        with replace_atomically(path, PUBLIC) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)
    except OSError as err:
        raise DamoError(f"{path}: cannot write ({err.strerror or err})") from None
    finally:
        pyplot().close(fig)


def plot_distributions(path: str, series: dict[str, tuple[np.ndarray, np.ndarray]], xlabel: str, ylabel: str,
                       title: str, y_bytes: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Draw one line per series into ``path``; returns the arrays handed to matplotlib."""
    image_type(path)
    plt = pyplot()
    top = max((float(np.max(ys)) for _, ys in series.values() if len(ys)), default=0.0)
    div, unit = bytes_unit(top) if y_bytes else (1.0, "")
    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = {}
    for label, (xs, ys) in series.items():
        ys_shown = np.asarray(ys, dtype=float) / div
        ax.plot(xs, ys_shown, marker="o", markersize=3, label=label)
        drawn[label] = (np.asarray(xs), ys_shown)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{ylabel} ({unit})" if unit else ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    save(fig, path)
    return drawn
