"""Course tooling: tidy notebook metadata, add slide metadata, and write student copies.

    python -m course_tools.course normalize notebooks/*.ipynb
    python -m course_tools.course student notebooks/*.ipynb --out notebooks/student
    python -m course_tools.course slides notebooks/*.ipynb --out build/slides
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
_EDITOR_KEYS = ("jupytext", "lines_to_next_cell", "execution", "ExecuteTime", "collapsed")


def slide_type(cell: dict) -> str:
    """A new slide at each # or ## heading, a sub-slide at ###, otherwise stay on the slide."""
    if "colab-setup" in cell.get("metadata", {}).get("tags", []):
        return "skip"  # the Colab install cell: nothing to present
    if cell["cell_type"] != "markdown":
        return "-"
    source = "".join(cell["source"]).lstrip()
    if re.match(r"#{1,2} ", source):
        return "slide"
    if source.startswith("### "):
        return "subslide"
    return "-"


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        # mkstemp makes the file private (0600): give it the old file's mode, or the umask's.
        if path.exists():
            mode = stat.S_IMODE(path.stat().st_mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_notebook(path: Path, nb: dict) -> None:
    """Save notebook `nb` to `path` atomically, formatted as Jupyter saves it (one-space indent)."""
    write_atomically(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


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
    write_notebook(path, nb)


BEGIN, END, STUB = "# BEGIN SOLUTION", "# END SOLUTION", "# STUDENT: "


class SolutionMarkupError(ValueError):
    """A solution cell whose BEGIN/END SOLUTION markers are missing or unbalanced."""


def strip_solution(source: str) -> str:
    """The student's version of a solution cell: each marked region becomes its STUDENT stubs."""
    out: list[str] = []
    inside = False
    stubs = 0
    for line in source.splitlines():
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise SolutionMarkupError(f"nested {BEGIN!r} in:\n{source}")
            inside = True
        elif marker == END:
            if not inside:
                raise SolutionMarkupError(f"{END!r} without {BEGIN!r} in:\n{source}")
            inside = False
        elif inside:
            if marker.startswith(STUB):
                indent = line[: len(line) - len(line.lstrip())]
                out.append(indent + marker[len(STUB):])
                stubs += 1
        else:
            out.append(line)
    if inside:
        raise SolutionMarkupError(f"{BEGIN!r} without {END!r} in:\n{source}")
    if stubs == 0:
        raise SolutionMarkupError(
            f"a solution cell needs {BEGIN!r}, {STUB!r} stub lines and {END!r}:\n{source}"
        )
    return "\n".join(out)


def student_copy(nb: dict, name: str = "") -> dict:
    """A copy of notebook `nb` with solutions replaced by stubs and every output cleared.

    Its metadata records a fingerprint of the copy as written, so that a later `make student`
    can tell a copy nobody has touched (safe to refresh) from one a student has worked in.
    """
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["outputs"], cell["execution_count"] = [], None
        tags = cell["metadata"].get("tags", [])
        if "solution" in tags:
            cell["source"] = strip_solution("".join(cell["source"]))
            cell["metadata"]["tags"] = [t if t != "solution" else "exercise" for t in tags]
            cell["metadata"].pop("jupyter", None)  # the stub must be visible
    nb["metadata"]["student_copy"] = {"of": name}
    nb["metadata"]["student_copy"]["fingerprint"] = fingerprint(nb)
    return nb


def fingerprint(nb: dict) -> str:
    """SHA-256 of notebook `nb` as canonical JSON, leaving out the fingerprint it stores."""
    nb = json.loads(json.dumps(nb))
    nb.get("metadata", {}).get("student_copy", {}).pop("fingerprint", None)
    return hashlib.sha256(json.dumps(nb, sort_keys=True).encode()).hexdigest()


def is_untouched_student_copy(path: Path) -> bool:
    """Whether `path` is a student copy exactly as `make student` wrote it (no one's work in it)."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        stored = nb["metadata"]["student_copy"]["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return False  # unreadable, or not written by make student: someone's file, keep it
    return stored == fingerprint(nb)


def write_student_copies(notebooks: list[Path], out: Path) -> tuple[list[Path], list[Path]]:
    """Write student copies of `notebooks` into the folder `out`, never over a student's work.

    A copy already there is refreshed only if it is untouched since `make student` wrote it;
    one that was edited, run or saved is kept as it is. Returns (written, kept).
    """
    out.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for path in notebooks:
        target = out / path.name
        if target.exists() and not is_untouched_student_copy(target):
            kept.append(target)
            continue
        write_notebook(target, student_copy(json.loads(path.read_text()), path.name))
        written.append(target)
    return written, kept


# Where `make slides` puts the JavaScript the decks load, relative to the decks themselves; the
# site (course_tools.site) copies MathJax and require.js from the same folder.
VENDOR = "vendor"
REQUIRE_JS = "node_modules/requirejs/require.js"
MATHJAX_DIR = "node_modules/mathjax"
MATHJAX_CONFIG = "MathJax.js?config=TeX-AMS_CHTML-full,Safe"
# nbconvert always imports mermaid, run only for diagrams, which the course has none of.
MERMAID_STUB = "export default { initialize() {} };  // the course has no mermaid diagrams\n"
SLIDE_ASSETS = {
    "reveal_url_prefix": f"{VENDOR}/node_modules/reveal.js",
    "jquery_url": f"{VENDOR}/node_modules/jquery/dist/jquery.min.js",
    "require_js_url": f"{VENDOR}/{REQUIRE_JS}",
    "mathjax_url": f"{VENDOR}/{MATHJAX_DIR}/{MATHJAX_CONFIG}",
    "mermaid_js_url": f"{VENDOR}/mermaid-stub.mjs",
}


def export_slides(notebooks: list[Path], out: Path) -> list[Path]:
    """Write each notebook as a reveal.js deck that loads its scripts from `out`/vendor only."""
    from nbconvert import SlidesExporter

    # "white" loads its fonts from beside its CSS; the default theme fetches web fonts.
    exporter = SlidesExporter(reveal_theme="white")
    for name, url in SLIDE_ASSETS.items():
        setattr(exporter, name, url)  # set on the instance: not all are config options
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / VENDOR / "mermaid-stub.mjs", MERMAID_STUB)
    written = []
    for path in notebooks:
        body, _ = exporter.from_filename(str(path))
        target = out / f"{path.stem}.slides.html"
        target.write_text(body)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    norm = sub.add_parser("normalize", help="tidy notebook metadata in place")
    norm.add_argument("notebooks", nargs="+", type=Path)
    student = sub.add_parser("student", help="write copies with the solutions removed")
    student.add_argument("notebooks", nargs="+", type=Path)
    student.add_argument("--out", type=Path, default=Path("notebooks/student"))
    slides = sub.add_parser("slides", help="export offline reveal.js slide decks")
    slides.add_argument("notebooks", nargs="+", type=Path)
    slides.add_argument("--out", type=Path, default=Path("build/slides"))
    args = parser.parse_args(argv)
    if args.command == "normalize":
        for path in args.notebooks:
            normalize(path)
    elif args.command == "slides":
        for path in export_slides(args.notebooks, args.out):
            print(f"wrote {path}")
    else:
        written, kept = write_student_copies(args.notebooks, args.out)
        for path in written:
            print(f"wrote {path}")
        for path in kept:
            print(f"kept {path}: it has been edited or run since it was written, so it holds "
                  "your work. For a fresh copy, rename or move it, then run make student again.")


if __name__ == "__main__":
    main()
