"""The lecture path (optional sections, time estimates), the README's lecture plan written from
it, and the slide decks' splitting of long sections into sub-slides."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from pathlib import Path

import pytest

from course_tools import course, lecture

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = lecture.course_notebooks()  # those `make slides` writes the plan from


def md(text: str, *tags: str) -> dict:
    return {"cell_type": "markdown", "metadata": {"tags": list(tags)}, "source": text}


def code(text: str, *tags: str, outputs: list | None = None) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": text,
            "outputs": outputs or [], "execution_count": None}


def notebook(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def png(width: int, height: int) -> str:
    """A base64 PNG of `width` x `height` (only its header matters here)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + data).decode()


def figure() -> dict:
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": png(640, 480), "text/plain": "<Figure>"}}


# 0 title, 1 colab, 2-3 part 1, 4-7 optional part 2 (with a ### inside), 8-10 part 3 with an
# optional ### (9), 11-13 exercises.
SAMPLE = notebook(
    md("# 00 · Title\n\nIntro."),
    code("%pip install course", "colab-setup"),
    md("## 1. Part one\n\nProse."),
    code("x = 1"),
    md("## Optional: Part two", "optional"),
    code("y = 2"),
    md("### Deeper"),
    code("z = 3"),
    md("## 3. Part three"),
    md("### Optional: A detour", "optional"),
    code("w = 4"),
    md("## Check yourself\n\n**1.** What is x?"),
    code("# BEGIN SOLUTION\n# STUDENT: answer = None\nanswer = 1\n# END SOLUTION", "solution"),
    code("EXERCISES.check(1, answer)"),
)


def test_an_optional_section_runs_to_the_next_heading_of_its_level_or_higher():
    assert lecture.optional_cells(SAMPLE) == {4, 5, 6, 7, 9, 10}


def test_the_lecture_path_leaves_out_optional_sections_colab_and_solutions():
    assert lecture.lecture_cells(SAMPLE) == [0, 2, 3, 8, 11]
    lecture_nb = lecture.lecture_notebook(SAMPLE)
    assert [c["source"] for c in lecture_nb["cells"]] == [
        SAMPLE["cells"][i]["source"] for i in (0, 2, 3, 8, 11)]
    assert len(SAMPLE["cells"]) == 14  # the notebook itself is left as it was


def test_sections_know_their_level_span_and_whether_they_are_optional():
    found = [(s.title, s.level, s.start, s.stop, s.optional) for s in lecture.sections(SAMPLE)]
    assert found == [
        ("1. Part one", 2, 2, 4, False),
        ("Optional: Part two", 2, 4, 8, True),
        ("Deeper", 3, 6, 8, True),  # inside an optional section
        ("3. Part three", 2, 8, 11, False),
        ("Optional: A detour", 3, 9, 11, True),
        ("Check yourself", 2, 11, 14, False),
    ]


def test_the_plan_of_a_notebook(tmp_path):
    path = tmp_path / "00_sample.ipynb"
    path.write_text(json.dumps(SAMPLE))
    plan = lecture.notebook_plan(path)
    assert plan.title == "00 · Title"
    assert plan.lecture == ["1. Part one", "3. Part three", "Check yourself"]
    assert plan.optional == ["Part two", "A detour"]
    assert plan.minutes == lecture.ROUND_TO  # a tiny notebook still gets the smallest slot


def test_the_time_rule_counts_prose_code_and_figures_on_the_lecture_path_only():
    words = " ".join(["word"] * (lecture.WORDS_PER_MINUTE * 10))  # 10 minutes
    lines = "\n".join(["x = 1"] * (lecture.CODE_LINES_PER_MINUTE * 4))  # 4 minutes
    nb = notebook(md(words), code(lines + "\n\n\n", outputs=[figure()]),  # + 1 figure, blanks free
                  md("## Optional: more", "optional"), md(words), code(lines, "solution"))
    expected = 10 + 4 + lecture.MINUTES_PER_FIGURE
    rounded = lecture.ROUND_TO * round(expected / lecture.ROUND_TO)
    assert lecture.estimate_minutes(nb) == rounded


def test_the_optional_convention_is_checked():
    nb = notebook(md("## Optional: tagged", "optional"), md("## Optional: not tagged"),
                  md("## Tagged, not named", "optional"), code("x = 1", "optional"),
                  md("#### Too deep", "optional"))
    problems = lecture.convention_problems(nb)
    assert len(problems) == 4
    assert "cell 1" in problems[0] and "needs the tag" in problems[0]
    assert "cell 2" in problems[1] and "should start 'Optional:'" in problems[1]
    assert "cell 3" in problems[2] and "not a ## or ### heading" in problems[2]
    assert "cell 4" in problems[3]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_follow_the_optional_convention(path):
    assert lecture.convention_problems(json.loads(path.read_text())) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_lecture_path_has_no_optional_section_setup_or_solution(path):
    nb = json.loads(path.read_text())
    kept = lecture.lecture_notebook(nb)["cells"]
    assert kept and len(kept) < len(nb["cells"])
    for cell in kept:
        tags = cell["metadata"].get("tags", [])
        assert not {"optional", "colab-setup", "solution"} & set(tags), lecture.source(cell)
        title = (lecture.heading(cell) or (0, ""))[1]
        assert not title.startswith(lecture.OPTIONAL_PREFIX), title


def test_wrapped_lines_never_start_a_new_markdown_block():
    text = "; ".join(f"{i}. Section - with # and > signs" for i in range(1, 30))
    lines = lecture.wrap_markdown(text, first="- ", rest="  ", width=40)
    assert all(len(line) <= 40 for line in lines)
    for line in lines[1:]:
        assert not re.match(r"\s*(\d+[.)]|[-+*>]|#+)( |$)", line), line
    assert " ".join(line.strip() for line in lines) == "- " + text


def readme_with_plan(tmp_path: Path, plan: str = "old plan") -> Path:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Course\n\nIntro.\n\n{lecture.BEGIN_MARK}\n{plan}\n{lecture.END_MARK}\n"
                      "\n## After\n")
    return readme


def test_the_readme_block_is_rewritten_between_its_markers_only(tmp_path):
    path = tmp_path / "notebooks" / "00_sample.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps(SAMPLE))
    readme = readme_with_plan(tmp_path)
    assert lecture.refresh_readme([path], readme, check=True) is False
    assert "old plan" in readme.read_text()  # --check changes nothing
    assert lecture.refresh_readme([path], readme) is False
    text = readme.read_text()
    assert text.startswith("# Course\n\nIntro.\n\n") and text.endswith("\n\n## After\n")
    assert "old plan" not in text
    assert "[00 · Title](notebooks/00_sample.ipynb)" in text
    assert "For reading: Part two; A detour." in text
    stated = " ".join(text.split())  # the time rule, whatever the line breaks
    assert f"a minute per {lecture.WORDS_PER_MINUTE} words of prose" in stated
    assert lecture.refresh_readme([path], readme) is True  # now current


def test_check_exits_nonzero_and_says_what_to_run_when_stale(tmp_path, capsys):
    path = tmp_path / "00_sample.ipynb"
    path.write_text(json.dumps(SAMPLE))
    readme = readme_with_plan(tmp_path)
    assert lecture.main(["readme", "--check", "--readme", str(readme), str(path)]) == 1
    assert "stale" in capsys.readouterr().err
    assert lecture.main(["readme", "--readme", str(readme), str(path)]) == 0
    assert lecture.main(["readme", "--check", "--readme", str(readme), str(path)]) == 0
    readme.write_text("# No markers\n")
    assert lecture.main(["readme", "--readme", str(readme), str(path)]) == 2
    assert "lecture-plan:begin" in capsys.readouterr().err


def test_the_readme_lecture_plan_is_current():
    readme = (ROOT / "README.md").read_text()
    begin, end = readme.index(lecture.BEGIN_MARK), readme.index(lecture.END_MARK)
    current = readme[begin:end + len(lecture.END_MARK)]
    assert current == lecture.plan_block(NOTEBOOKS, ROOT / "README.md"), (
        f"README.md's lecture plan is stale: run `{lecture.COMMAND}` (make slides does)")


def slide_types(nb: dict) -> list[str]:
    return [c["metadata"]["slideshow"]["slide_type"] for c in nb["cells"]]


def test_a_long_section_goes_on_in_sub_slides_marked_continued():
    long_code = "\n".join(f"x{i} = {i}" for i in range(20))  # about 490 px
    nb = notebook(md("## 1. A long part"), code(long_code), md("Prose that introduces the code."),
                  code(long_code), code(long_code))
    deck = course.deck_notebook(nb)
    # The prose goes along with the code it introduces; the last cell does not fit either.
    assert slide_types(deck) == ["slide", "-", "subslide", "-", "subslide"]
    for i in (2, 4):
        assert deck["cells"][i]["metadata"]["slideshow"]["data"] == {"continued": "1. A long part"}
    assert "slideshow" not in nb["cells"][0]["metadata"]  # the notebook itself is unchanged


def test_short_sections_and_single_tall_cells_are_not_split():
    tall = code("plot()", outputs=[figure(), figure()])  # taller than a screen on its own
    nb = notebook(md("# Title"), code("%pip install x", "colab-setup"), md("## A"), code("x = 1"),
                  md("### B"), tall, md("## C"), md("text"))
    assert slide_types(course.deck_notebook(nb)) == [
        "slide", "skip", "slide", "-", "subslide", "-", "slide", "-"]


def test_cell_heights_grow_with_lines_and_figures():
    short, longer = code("x = 1"), code("\n".join(["x = 1"] * 10))
    assert course.cell_height(longer) - course.cell_height(short) == 9 * course.CODE_LINE
    wide = "y" * (course.CHARS_PER_LINE * 3)  # wraps onto three lines
    assert course.cell_height(code(wide)) == course.cell_height(code("a\nb\nc"))
    assert course.png_size(png(640, 480)) == (640, 480)
    with_figure = code("x = 1", outputs=[figure()])
    assert course.cell_height(with_figure) > course.cell_height(short) + 400
    huge = {"output_type": "display_data", "data": {"image/png": png(500, 5000)}}
    assert course.output_height(huge) <= course.FIGURE_MAX_HEIGHT + 16  # shown scaled to fit
