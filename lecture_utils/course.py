"""Course tooling: keep notebook metadata tidy and give every notebook slide metadata.

    python -m lecture_utils.course normalize notebooks/*.ipynb
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
_EDITOR_KEYS = ("jupytext", "lines_to_next_cell", "execution", "ExecuteTime", "collapsed")


def slide_type(cell: dict) -> str:
    """A new slide at each # or ## heading, a sub-slide at ###, otherwise stay on the slide."""
    if cell["cell_type"] != "markdown":
        return "-"
    source = "".join(cell["source"]).lstrip()
    if re.match(r"#{1,2} ", source):
        return "slide"
    if source.startswith("### "):
        return "subslide"
    return "-"


def normalize(path: Path) -> None:
    """Drop editor metadata, set the python3 kernel, and add slide metadata, in place."""
    nb = json.loads(path.read_text())
    for key in _EDITOR_KEYS:
        nb["metadata"].pop(key, None)
    nb["metadata"]["kernelspec"] = KERNELSPEC
    for cell in nb["cells"]:
        for key in _EDITOR_KEYS:
            cell["metadata"].pop(key, None)
        cell["metadata"]["slideshow"] = {"slide_type": slide_type(cell)}
        if "solution" in cell["metadata"].get("tags", []):
            # Worked solutions start folded: a student clicks to reveal them.
            cell["metadata"]["jupyter"] = {"source_hidden": True}
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    norm = sub.add_parser("normalize", help="tidy notebook metadata in place")
    norm.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "normalize":
        for path in args.notebooks:
            normalize(path)


if __name__ == "__main__":
    main()
