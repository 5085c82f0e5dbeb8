"""`make student` never overwrites a student's work: it refreshes only copies nobody has touched."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from course_tools import course

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("notebooks/*.ipynb"))


def make_student(sources: Path, out: Path) -> str:
    """Run `make student` over the notebooks in `sources`, into `out`; returns what it printed."""
    # CURRENT_ENV=1 with this Python: the target runs here without (re)building .venv.
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "student", "CURRENT_ENV=1", f"PYTHON={sys.executable}",
         f"NOTEBOOKS={' '.join(str(p) for p in sorted(sources.glob('*.ipynb')))}",
         f"STUDENT_DIR={out}"],
        capture_output=True, text=True, check=True,
    )
    return result.stdout


def test_make_student_keeps_an_edited_copy_and_refreshes_the_others(tmp_path):
    sources, out = tmp_path / "notebooks", tmp_path / "student"
    sources.mkdir()
    for path in NOTEBOOKS[:2]:
        shutil.copy(path, sources / path.name)
    edited, untouched = (out / path.name for path in NOTEBOOKS[:2])
    make_student(sources, out)
    assert course.is_untouched_student_copy(edited)

    # A student answers an exercise in one copy and saves it.
    nb = json.loads(edited.read_text())
    exercise = next(c for c in nb["cells"] if "exercise" in c["metadata"].get("tags", []))
    exercise["source"] = "answer = 42  # my answer\n"
    edited.write_text(json.dumps(nb, indent=1))
    answered = edited.read_text()
    assert not course.is_untouched_student_copy(edited)

    # The course changes; make student runs again.
    for path in sources.glob("*.ipynb"):
        changed = json.loads(path.read_text())
        changed["cells"][0]["source"] = "# A revised title\n"
        path.write_text(json.dumps(changed, indent=1))
    printed = make_student(sources, out)

    assert edited.read_text() == answered, "the student's answer was overwritten"
    assert f"kept {edited}" in printed and "rename or move it" in printed
    refreshed = json.loads(untouched.read_text())
    assert refreshed["cells"][0]["source"] == "# A revised title\n"
    assert course.is_untouched_student_copy(untouched)


def test_a_copy_that_is_not_a_student_copy_is_never_replaced(tmp_path):
    (tmp_path / "student").mkdir()
    mine = tmp_path / "student" / NOTEBOOKS[0].name
    for text in ("{ not json", json.dumps({"cells": [], "metadata": {}})):
        mine.write_text(text)
        written, kept = course.write_student_copies([NOTEBOOKS[0]], tmp_path / "student")
        assert (written, kept) == ([], [mine]) and mine.read_text() == text
