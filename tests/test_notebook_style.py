"""The notebooks read well in JupyterLab, on a slide and in a student's copy: short code cells,
no test markers in the code, printed lines that never wrap mid-word, and optional sections
marked where the lecture path can skip them."""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted(Path(__file__).resolve().parent.parent.glob("notebooks/*.ipynb"))
MAX_CODE_LINES = 15
# A notebook's output area breaks a longer line anywhere, even mid-word; 100 is also ruff's limit.
MAX_OUTPUT_LINE = 100
# Sources the reader does not have: the course's prose cites what it shows, nothing else.
UNSHARED_SOURCES = re.compile(r"study notes|one summary|a student write-?up|the write-?up",
                              re.IGNORECASE)


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_are_short(path):
    long = [(i, len("".join(c["source"]).splitlines())) for i, c in enumerate(cells(path))
            if c["cell_type"] == "code" and len("".join(c["source"]).splitlines()) > MAX_CODE_LINES]
    assert not long, f"code cells (index, lines) over {MAX_CODE_LINES} lines: {long}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_markers_are_cell_tags_not_comments(path):
    marked = [i for i, c in enumerate(cells(path)) if "NBVAL_" in "".join(c["source"])]
    assert not marked, f"cells {marked}: use nbval's cell tags (nbval-ignore-output, ...)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_printed_lines_fit_without_wrapping(path):
    too_long = []
    for i, cell in enumerate(cells(path)):
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", "")) if output["output_type"] == "stream" else ""
            too_long += [(i, line[:60]) for line in text.splitlines()
                         if len(line) > MAX_OUTPUT_LINE]
    assert not too_long, f"printed lines over {MAX_OUTPUT_LINE} characters: {too_long}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_cites_only_what_the_reader_has(path):
    cited = [(i, m.group(0)) for i, c in enumerate(cells(path))
             for m in UNSHARED_SOURCES.finditer("".join(c["source"]))]
    assert not cited, f"cells citing sources the reader does not have: {cited}"
