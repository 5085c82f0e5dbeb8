"""The course's notebooks as a whole: metadata, exercises, and student copies that still run."""

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course_tools import colab, course, lab

NOTEBOOKS = sorted(Path(__file__).resolve().parent.parent.glob("notebooks/*.ipynb"))


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def stream_text(cell: dict) -> str:
    """What a code cell printed (stored notebooks keep text as a list of lines)."""
    texts = [o.get("text", "") for o in cell["outputs"] if o.get("output_type") == "stream"]
    return "".join(t if isinstance(t, str) else "".join(t) for t in texts)


def test_strip_solution_keeps_stubs_and_code_outside():
    source = """def f(x):
    # BEGIN SOLUTION
    # STUDENT: return None  # your code
    return 2 * x
    # END SOLUTION
print(f(1))"""
    assert course.strip_solution(source) == "def f(x):\n    return None  # your code\nprint(f(1))"


@pytest.mark.parametrize("source, match", [
    ("x = 1", "needs"),
    ("# BEGIN SOLUTION\n# STUDENT: x = None\nx = 1", "without '# END SOLUTION'"),
    ("# END SOLUTION", "without '# BEGIN SOLUTION'"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION", "nested"),
])
def test_strip_solution_rejects_bad_markup(source, match):
    with pytest.raises(course.SolutionMarkupError, match=match):
        course.strip_solution(source)


def test_slide_types():
    assert course.slide_type({"cell_type": "markdown", "source": ["# Title"]}) == "slide"
    assert course.slide_type({"cell_type": "markdown", "source": ["### Part"]}) == "subslide"
    setup = {"cell_type": "code", "metadata": {"tags": ["colab-setup"]}, "source": ["import sys"]}
    assert course.slide_type(setup) == "skip"
    assert course.slide_type({"cell_type": "markdown", "source": ["text"]}) == "-"
    assert course.slide_type({"cell_type": "code", "source": ["# comment"]}) == "-"
    assert course.slide_type({"cell_type": "markdown", "source": ["## Section"]}) == "slide"
    assert course.slide_type({"cell_type": "markdown", "source": ["#### Small"]}) == "-"
    optional = {"cell_type": "markdown", "metadata": {"tags": ["optional"]},
                "source": ["### Optional: more"]}
    assert course.slide_type(optional) == "subslide"  # the full deck shows it as any other


def test_every_notebook_opens_in_colab_and_installs_itself_there():
    assert colab.check(NOTEBOOKS) == []  # `make execute` (or `python -m course_tools.colab sync`)


def test_the_readme_opens_every_notebook_in_colab():
    readme = (NOTEBOOKS[0].parent.parent / "README.md").read_text()
    links = re.findall(r"https://colab\.research\.google\.com/\S+?\.ipynb", readme)
    assert links == [colab.colab_url(path) for path in NOTEBOOKS]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_normalized_and_executed_in_order(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "jupytext" not in nb["metadata"]
    counts = [c["execution_count"] for c in code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), "re-run it top to bottom: make execute"
    assert nb["metadata"].get("rise") == lab.RISE, "make execute adds the RISE settings"
    for cell in nb["cells"]:
        assert "slideshow" in cell["metadata"], "missing slide metadata: make execute adds it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_has_a_solution_that_passes_its_checker(path):
    nb = json.loads(path.read_text())
    cells = code_cells(nb)
    solutions = [c for c in cells if "solution" in c["metadata"].get("tags", [])]
    checks = [c for c in cells if "EXERCISES.check(" in "".join(c["source"])]
    assert 3 <= len(solutions) <= 6, "each notebook ends with 3 to 6 exercises"
    assert len(checks) >= len(solutions)
    for cell in solutions:
        course.strip_solution("".join(cell["source"]))  # well-formed markup
        assert cell["metadata"].get("jupyter", {}).get("source_hidden"), "solutions start folded"
    for cell in checks:
        text = stream_text(cell)
        verdicts = [line for line in text.splitlines() if line.startswith(("✅", "❌", "⏳"))]
        assert verdicts and all(v.startswith("✅") for v in verdicts), text


def run_student_copy(path: Path) -> list[str]:
    nb = nbformat.reads(json.dumps(course.student_copy(json.loads(path.read_text()))), 4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    checks = [c for c in nb.cells if c.cell_type == "code" and "EXERCISES.check(" in c.source]
    return "".join(stream_text(c) for c in checks).splitlines()


@pytest.mark.slow  # every notebook once more, as a student gets it: `make test-slow`
def test_student_copies_run_top_to_bottom_with_nothing_solved():
    # Two kernels at a time: the notebooks are small and mostly wait on kernel start-up.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(NOTEBOOKS, pool.map(run_student_copy, NOTEBOOKS)))
    for path, lines in results.items():
        assert lines, f"{path.name}: no exercise checks ran"
        # Every stub, left as it is, says "not answered yet": never correct, never a false "wrong".
        verdicts = [line for line in lines if not line.startswith(" ")]  # not a wrapped line
        assert all(line.startswith("⏳") for line in verdicts), f"{path.name}: {lines}"


def test_normalize_drops_editor_metadata_and_folds_solutions(tmp_path):
    nb = {"metadata": {"jupytext": {"x": 1}}, "nbformat": 4, "nbformat_minor": 5, "cells": [
        {"cell_type": "markdown", "metadata": {"lines_to_next_cell": 0}, "source": ["## Part"]},
        {"cell_type": "code", "metadata": {"tags": ["solution"], "execution": {"t": 1}},
         "source": ["# BEGIN SOLUTION\n", "# STUDENT: x = None\n", "x = 1\n", "# END SOLUTION"],
         "outputs": [], "execution_count": None},
    ]}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    course.normalize(path)
    out = json.loads(path.read_text())
    assert "jupytext" not in out["metadata"] and out["metadata"]["kernelspec"]["name"] == "python3"
    assert out["cells"][0]["metadata"] == {"slideshow": {"slide_type": "slide"}}
    assert out["cells"][1]["metadata"]["jupyter"] == {"source_hidden": True}
    assert "execution" not in out["cells"][1]["metadata"]
    assert out["metadata"]["rise"] == lab.RISE


def test_student_copies_and_slides_are_written(tmp_path, capsys):
    course.main(["student", str(NOTEBOOKS[0]), "--out", str(tmp_path / "student")])
    copy = json.loads((tmp_path / "student" / NOTEBOOKS[0].name).read_text())
    assert all(not c.get("outputs") for c in copy["cells"] if c["cell_type"] == "code")
    assert not any("solution" in c["metadata"].get("tags", []) for c in copy["cells"])
    course.main(["slides", str(NOTEBOOKS[0]), "--out", str(tmp_path / "slides")])
    full = (tmp_path / "slides" / f"{NOTEBOOKS[0].stem}{course.FULL_DECK}").read_text()
    lecture = (tmp_path / "slides" / f"{NOTEBOOKS[0].stem}{course.LECTURE_DECK}").read_text()
    for deck in (full, lecture):
        for url in course.SLIDE_ASSETS.values():
            assert url.split("?")[0] in deck  # every script and style is loaded from vendor/
        assert "cdnjs" not in deck and "unpkg" not in deck
        assert "mermaid" not in deck  # a module import, which fails from file://
        assert f"width: {course.SLIDE_WIDTH}," in deck and f"height: {course.SLIDE_HEIGHT}," in deck
    # Worked solutions are in the full deck only; the lecture deck keeps the questions.
    assert "# BEGIN SOLUTION" in full and "# BEGIN SOLUTION" not in lecture
    assert "Check yourself" in lecture
    assert "wrote" in capsys.readouterr().out
