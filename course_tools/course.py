"""Course tooling: tidy notebook metadata, add slide metadata, and write student copies.

    python -m course_tools.course normalize notebooks/*.ipynb
    python -m course_tools.course student notebooks/*.ipynb --out notebooks/student
    python -m course_tools.course slides notebooks/*.ipynb --out build/slides
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import os
import re
import stat
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from course_tools.lab import RISE

if TYPE_CHECKING:
    from nbconvert import SlidesExporter

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
    """Drop editor metadata, set the python3 kernel, add slide and RISE metadata, in place."""
    nb = json.loads(path.read_text())
    for key in _EDITOR_KEYS:
        nb["metadata"].pop(key, None)
    nb["metadata"]["kernelspec"] = KERNELSPEC
    nb["metadata"]["rise"] = dict(RISE)  # how RISE presents it: projector-size text, slides scroll
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
# nbconvert always imports mermaid, run only for diagrams, which the course has none of. The
# site loads this stub; the decks leave the import out (a module cannot load from file://).
MERMAID_STUB = "export default { initialize() {} };  // the course has no mermaid diagrams\n"
SLIDE_ASSETS = {
    "reveal_url_prefix": f"{VENDOR}/node_modules/reveal.js",
    "jquery_url": f"{VENDOR}/node_modules/jquery/dist/jquery.min.js",
    "require_js_url": f"{VENDOR}/{REQUIRE_JS}",
    "mathjax_url": f"{VENDOR}/{MATHJAX_DIR}/{MATHJAX_CONFIG}",
}
# Decks are laid out for a 16:9 screen: a 1280x720 window as it is, a projector scaled up.
SLIDE_WIDTH, SLIDE_HEIGHT = 1280, 720
# A figure and a line or two about it fit on one screen (the template says the same).
FIGURE_MAX_HEIGHT = SLIDE_HEIGHT * 3 // 4
FULL_DECK, LECTURE_DECK = ".slides.html", ".lecture.slides.html"

# What a cell takes on a slide, in deck pixels at the deck's font sizes (the CSS below), fitted
# to the heights Chromium lays out for the course's notebooks, within about 20 px a cell. Only
# used to split long sections into sub-slides: every slide scrolls, so an estimate is enough.
CHARS_PER_LINE = 100  # of prose at 24 px, or of code at 18 px, across a slide
PROSE_LINE, PARAGRAPH_GAP, MARKDOWN_CELL = 38, 20, 35
HEADING_EXTRA = {1: 102, 2: 37, 3: 32}
CODE_LINE, OUTPUT_LINE, CODE_CELL, OUTPUT_AREA = 22, 22, 34, 18
TABLE_ROW = 22
CONTENT_WIDTH = SLIDE_WIDTH - 60
# A sub-slide is closed before a cell that would take it past this height (the rest of the
# screen is the slide's padding and its "continued" line).
SUBSLIDE_BUDGET = SLIDE_HEIGHT - 60

# The deck's page: nbconvert's reveal template, with a 16:9 layout whose slides scroll, code
# that wraps, figures that fit, no prompts, and keys that scroll a long slide before moving on.
SLIDE_TEMPLATE = "course-deck.html.j2"
SLIDE_TEMPLATE_SOURCE = """{%- extends 'index.html.j2' -%}
{% block html_head_js_mermaidjs %}{% endblock html_head_js_mermaidjs %}
{% block html_head_js_mathjax %}
{{ super() }}
<script type="text/x-mathjax-config">
// Automatic line breaking measures a formula's box while its slide is hidden or its table not
// laid out yet, and broke formulas after a few symbols: off, as in JupyterLab.
MathJax.Hub.Config({CommonHTML: {linebreaks: {automatic: false}}});
</script>
{% endblock html_head_js_mathjax %}
{% block html_head_css %}
<style type="text/css">
:root {
  --jp-content-font-size1: 24px;
  --jp-code-font-size: 18px;
  --jp-ui-font-size1: 20px;
}
/* One screen per slide: a taller slide scrolls (wheel, trackpad, arrow keys). */
.reveal .slides section:not(.stack) {
  height: {{ reveal_height }}px;
  box-sizing: border-box;
  padding: 10px 24px 16px;
  overflow: auto;
}
/* While more of a slide is below the screen's edge, an arrow at the bottom says so. */
.reveal .slides section.has-more::after {
  content: "\\25BC";
  position: sticky;
  bottom: 0;
  display: block;
  height: 28px;
  margin-top: -28px;
  text-align: center;
  color: #2a76dd;
  background: linear-gradient(rgba(255, 255, 255, 0), #fff 75%);
  pointer-events: none;
}
.reveal .slides section[data-continued]::before {
  content: attr(data-continued) " (continued)";
  display: block;
  font-size: 18px;
  color: #6a6a6a;
}
.reveal .slides .jp-InputPrompt, .reveal .slides .jp-OutputPrompt { display: none; }
.reveal .slides h1 { font-size: 48px; }
.reveal .slides h2 { font-size: 40px; }
.reveal .slides h3 { font-size: 32px; }
/* Code wraps at the slide's edge instead of being cut there. */
.reveal .slides pre, .reveal .slides pre code {
  box-sizing: border-box;
  white-space: pre-wrap;
  overflow-wrap: anywhere;
  max-height: none;
  overflow: visible;
}
.reveal .slides div.jp-OutputArea-output > pre { width: auto; }
.reveal .slides .jp-OutputArea-output { overflow: visible; }
/* Figures fit the slide's width and leave room for a line or two. */
.reveal .slides section img, .reveal .slides section svg {
  max-width: 100%;
  max-height: {{ (reveal_height | int) * 3 // 4 }}px;
  height: auto;
  object-fit: contain;
  margin: 8px 0;
}
/* Tables a little smaller than prose; one still too wide scrolls sideways on its own, as does
   a wide formula, not the whole slide. */
.reveal .slides .jp-RenderedHTMLCommon table {
  display: block;
  max-width: 100%;
  overflow-x: auto;
  font-size: 20px;
}
.reveal .slides .MathJax_Display { max-width: 100%; overflow-x: auto; overflow-y: hidden; }
/* Printing to PDF (?print-pdf): reveal.js pages a tall slide itself. */
html.print-pdf .reveal .slides section:not(.stack) { height: auto; overflow: visible; }
</style>
{% endblock html_head_css %}
{% block footer_js %}
<script>
require({waitSeconds: 15},
  ["{{ reveal_url_prefix }}/dist/reveal.js", "{{ reveal_url_prefix }}/plugin/notes/notes.js",
   "{{ reveal_url_prefix }}/plugin/zoom/zoom.js"],
  function (Reveal, RevealNotes, RevealZoom) {
    window.Reveal = Reveal;  // for the console and the browser tests
    var DOWN = {32: true, 34: true, 40: true}, UP = {33: true, 38: true};

    // Down, Space and Page Down scroll a long slide before moving on; Up and Page Up back.
    function scrollFirst(event) {
      if (event.altKey || event.ctrlKey || event.metaKey) return true;
      var down = DOWN[event.keyCode] && !(event.keyCode === 32 && event.shiftKey);
      var up = UP[event.keyCode] || (event.keyCode === 32 && event.shiftKey);
      var slide = Reveal.getCurrentSlide();
      if (!slide || !(down || up)) return true;
      var room = down ? slide.scrollHeight - slide.clientHeight - slide.scrollTop
                      : slide.scrollTop;
      if (room <= 2) return true;  // at the edge: let reveal.js change slides
      event.preventDefault();
      slide.scrollBy({top: (down ? 1 : -1) * Math.min(room, slide.clientHeight * 0.6),
                      behavior: "smooth"});
      return false;
    }

    function markMore(slide) {
      if (slide) {
        slide.classList.toggle("has-more",
                               slide.scrollTop + slide.clientHeight < slide.scrollHeight - 2);
      }
    }

    // Arriving forwards starts at a slide's top; arriving backwards, at its bottom.
    function arrive(event) {
      var slide = event.currentSlide;
      var before = event.previousSlide && Reveal.getIndices(event.previousSlide);
      var back = before && (event.indexh < before.h
                            || (event.indexh === before.h && event.indexv < before.v));
      slide.scrollTop = back ? slide.scrollHeight : 0;
      markMore(slide);
      // Formulas typeset while their slide was hidden have no size yet: typeset them again.
      if (window.MathJax && MathJax.Hub.getAllJax(slide).length) {
        MathJax.Hub.Rerender(slide);
        MathJax.Hub.Queue(function () { markMore(slide); });
      }
    }

    Reveal.initialize({
      controls: true,
      progress: true,
      history: true,
      center: false,
      transition: "{{ reveal_transition }}",
      slideNumber: "{{ reveal_number }}",
      width: {{ reveal_width }},
      height: {{ reveal_height }},
      margin: 0,  // the slides pad themselves: at 1280x720, one CSS pixel a pixel
      keyboardCondition: scrollFirst,
      plugins: [RevealNotes, RevealZoom]  // Alt+click zooms into a figure
    });
    Reveal.on("slidechanged", arrive);
    Reveal.on("ready", function () {
      markMore(Reveal.getCurrentSlide());
      if (window.MathJax) MathJax.Hub.Queue(function () { markMore(Reveal.getCurrentSlide()); });
    });
    // A slide's scroll events do not bubble: listen for them on the way down.
    document.addEventListener("scroll", function (event) {
      if (event.target === Reveal.getCurrentSlide()) markMore(event.target);
    }, true);
    window.addEventListener("load", function () { markMore(Reveal.getCurrentSlide()); });
  });
</script>
{% endblock footer_js %}
"""


def wrapped_lines(text: str) -> int:
    """Lines that the non-blank lines of `text` take, wrapped at CHARS_PER_LINE."""
    return sum(-(-len(row) // CHARS_PER_LINE) for row in text.splitlines() if row.strip())


def png_size(data: str) -> tuple[int, int] | None:
    """(width, height) of a base64 PNG, read from its header, or None if it is not one."""
    head = base64.b64decode(data[:32] + "=" * (-len(data[:32]) % 4), validate=False)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 24:
        return None
    return struct.unpack(">II", head[16:24])


def output_height(output: dict) -> float:
    """Pixels that one stored output takes on a slide."""
    data = output.get("data", {})
    if "image/png" in data:
        size = png_size("".join(data["image/png"]))
        if size:
            width, height = size
            return min(FIGURE_MAX_HEIGHT, height * min(1, CONTENT_WIDTH / width)) + 16
    if "image/svg+xml" in data or "image/jpeg" in data:
        return FIGURE_MAX_HEIGHT
    if "text/markdown" in data:  # a table: a row a line, less the |---| line
        return TABLE_ROW * (len("".join(data["text/markdown"]).splitlines()) - 1)
    text = output.get("text") or data.get("text/plain") or ""
    return OUTPUT_LINE * wrapped_lines(text if isinstance(text, str) else "".join(text))


def cell_height(cell: dict) -> float:
    """Pixels that a cell, with its outputs, takes on a slide: an estimate to split by."""
    source = "".join(cell["source"])
    if cell["cell_type"] == "markdown":
        rows = source.strip().splitlines()
        heading = re.match(r"(#{1,6}) ", rows[0]) if rows else None
        body = rows[1:] if heading else rows
        return (MARKDOWN_CELL + (HEADING_EXTRA.get(len(heading.group(1)), 0) if heading else 0)
                + PROSE_LINE * wrapped_lines("\n".join(body))
                + PARAGRAPH_GAP * sum(1 for row in body if not row.strip()))
    if cell["cell_type"] != "code":
        return 0
    outputs = cell.get("outputs", [])
    return (CODE_CELL + CODE_LINE * wrapped_lines(source)
            + (OUTPUT_AREA + sum(output_height(o) for o in outputs) if outputs else 0))


def section_title(cell: dict) -> str | None:
    """The plain text of a markdown cell's leading heading, if it starts with one."""
    match = re.match(r"#{1,6} +(.+)", "".join(cell["source"]).lstrip())
    return re.sub(r"[`*_]", "", match.group(1)).strip() if match else None


def can_end(cells: list[dict], kept: list[int]) -> bool:
    """Whether a sub-slide of the cells `kept` may end here: not empty, not a lone heading."""
    return bool(kept) and not (len(kept) == 1 and section_title(cells[kept[0]]) is not None)


def split_long_sections(cells: list[dict]) -> None:
    """Start a sub-slide, marked as continuing its section, wherever a slide passes a screen.

    The split goes before the cell that would overflow, or before the prose that introduces
    it; a heading keeps at least one cell after it; a cell taller than a screen scrolls.
    """
    title, shown, height = "", [], 0.0  # the current sub-slide's cells, and their height
    for i, cell in enumerate(cells):
        kind = cell["metadata"]["slideshow"]["slide_type"]
        if kind == "skip":
            continue
        if kind in ("slide", "subslide"):
            title, shown, height = section_title(cell) or title, [], 0.0
        size = cell_height(cell)
        if kind == "-" and height + size > SUBSLIDE_BUDGET and can_end(cells, shown):
            at = i
            if (cell["cell_type"] == "code" and cells[shown[-1]]["cell_type"] == "markdown"
                    and can_end(cells, shown[:-1])):
                at = shown[-1]  # the prose that introduces the code goes along with it
            cells[at]["metadata"]["slideshow"] = {"slide_type": "subslide",
                                                  "data": {"continued": title}}
            shown = [j for j in shown if j >= at]
            height = sum(cell_height(cells[j]) for j in shown)
        shown.append(i)
        height += size


def deck_notebook(nb: dict) -> dict:
    """A copy of `nb` as a deck shows it: slide types from the headings, long sections split."""
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        cell.setdefault("metadata", {})["slideshow"] = {"slide_type": slide_type(cell)}
    split_long_sections(nb["cells"])
    return nb


@functools.cache  # one per process: compiling the templates takes about a second
def slides_exporter() -> SlidesExporter:
    """nbconvert's reveal.js exporter with the course's template and every script local."""
    from jinja2 import DictLoader
    from nbconvert import SlidesExporter

    # "white" loads its fonts from beside its CSS; the default theme fetches web fonts.
    exporter = SlidesExporter(reveal_theme="white", reveal_width=str(SLIDE_WIDTH),
                              reveal_height=str(SLIDE_HEIGHT), reveal_number="c/t",
                              extra_loaders=[DictLoader({SLIDE_TEMPLATE: SLIDE_TEMPLATE_SOURCE})],
                              template_file=SLIDE_TEMPLATE)
    for name, url in SLIDE_ASSETS.items():
        setattr(exporter, name, url)  # set on the instance: not all are config options
    return exporter


def export_decks(path: Path, out: Path) -> list[Path]:
    """Write the notebook at `path` into `out` as its full deck and its lecture deck."""
    import nbformat

    from course_tools.lecture import lecture_notebook  # it imports this module

    nb = nbformat.read(path, as_version=4)  # each source one string, as nbconvert wants
    written = []
    for suffix, deck, name in [(FULL_DECK, nb, path.stem),
                               (LECTURE_DECK, lecture_notebook(nb), f"{path.stem} (lecture)")]:
        node = nbformat.from_dict(deck_notebook(deck))
        body, _ = slides_exporter().from_notebook_node(node, resources={"metadata": {"name": name}})
        target = out / f"{path.stem}{suffix}"
        write_atomically(target, body)
        written.append(target)
    return written


def export_slides(notebooks: list[Path], out: Path) -> list[Path]:
    """Write each notebook as two offline reveal.js decks into `out`: the whole notebook, and
    its lecture path alone (course_tools.lecture). Their scripts load from `out`/vendor only."""
    from concurrent.futures import ProcessPoolExecutor

    out.mkdir(parents=True, exist_ok=True)
    workers = min(len(notebooks), os.cpu_count() or 1)
    if workers <= 1:
        return [deck for path in notebooks for deck in export_decks(path, out)]
    # Rendering is all CPU: a notebook per core at a time.
    with ProcessPoolExecutor(workers) as pool:
        decks = pool.map(export_decks, notebooks, [out] * len(notebooks))
        return [deck for pair in decks for deck in pair]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    norm = sub.add_parser("normalize", help="tidy notebook metadata in place")
    norm.add_argument("notebooks", nargs="+", type=Path)
    student = sub.add_parser("student", help="write copies with the solutions removed")
    student.add_argument("notebooks", nargs="+", type=Path)
    student.add_argument("--out", type=Path, default=Path("notebooks/student"))
    slides = sub.add_parser("slides", help="export offline reveal.js decks: each notebook "
                            "whole, and its lecture path")
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
            print(f"kept {path}: it may hold your work (edited, run or saved since make student "
                  "wrote it, or written by an older version). For a fresh copy, rename or move "
                  "it, then run make student again.")


if __name__ == "__main__":
    main()
