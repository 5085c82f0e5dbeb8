"""Showing things in notebooks: helper source code, and one figure style for the course."""

from __future__ import annotations

import inspect
from typing import Any

import matplotlib as mpl


def show_source(obj: Any) -> Any:
    """Display the source of a function or class from lecture_utils, syntax-highlighted."""
    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)):
        raise TypeError(f"show_source needs a function, method or class, got {type(obj).__name__}")
    source = inspect.getsource(obj)
    try:
        from IPython.display import Markdown
    except ImportError:  # plain Python: print it
        print(source)
        return None
    return Markdown(f"```python\n{source}```")


def use_course_style() -> None:
    """Figures readable on a projector and in JupyterLab's light and dark themes."""
    mpl.rcParams.update(
        {
            # An opaque white figure keeps black text readable on a dark notebook theme.
            "figure.facecolor": "white",
            "axes.facecolor": "white",
            "savefig.facecolor": "white",
            "figure.figsize": (8, 4.5),
            "figure.dpi": 100,
            "font.size": 13,
            "axes.titlesize": 14,
            "axes.labelsize": 13,
            "legend.fontsize": 11,
            "lines.linewidth": 2.2,
            "lines.markersize": 7,
            "axes.grid": True,
            "grid.alpha": 0.3,
            # Colour-blind-safe palette (Okabe-Ito).
            "axes.prop_cycle": mpl.cycler(
                color=["#0072B2", "#D55E00", "#009E73", "#CC79A7",
                       "#E69F00", "#56B4E9", "#F0E442", "#000000"]
            ),
        }
    )
