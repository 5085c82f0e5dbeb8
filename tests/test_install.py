"""The course as installed (`pip install -e .`, which `make` runs): importable from any folder,
by any kernel, with no PYTHONPATH, and with a `napkin` command on the PATH.
"""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

try:
    DIST = importlib.metadata.distribution("pytorch-resource-accounting")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("the course is not installed in this Python (`pip install -e .`, or use `make`)",
                allow_module_level=True)


def bare_env() -> dict[str, str]:
    """This process's environment without PYTHONPATH: what a student's shell or editor has."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def tiny_notebook(path: Path) -> Path:
    """A one-cell notebook that prints where lecture_utils was imported from, output stored."""
    where = str(ROOT / "lecture_utils" / "__init__.py")
    cell = {"cell_type": "code", "execution_count": 1, "id": "where", "metadata": {},
            "source": ["import lecture_utils\n", "print(lecture_utils.__file__)"],
            "outputs": [{"output_type": "stream", "name": "stdout", "text": [where + "\n"]}]}
    nb = {"cells": [cell], "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                       "display_name": "Python 3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


def test_the_install_is_editable_and_points_here():
    import course_tools
    import lecture_utils

    assert Path(lecture_utils.__file__).parent == ROOT / "lecture_utils"
    assert Path(course_tools.__file__).parent == ROOT / "course_tools"
    assert "lecture_utils.napkin:main" in {e.value for e in DIST.entry_points}


def test_napkin_is_a_command(tmp_path):
    napkin = Path(sys.executable).parent / "napkin"
    assert napkin.exists(), f"no napkin command beside {sys.executable}"
    done = subprocess.run([str(napkin), "train-time", "--params", "70e9", "--tokens", "15e12",
                           "--gpus", "1024"], cwd=tmp_path, env=bare_env(), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("training FLOPs = 6 x 7e+10 x 1.5e+13 = 6.3e+24")
    usage = subprocess.run([str(napkin), "train-time"], cwd=tmp_path, env=bare_env(),
                           capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: napkin train-time")


def test_nbconvert_executes_a_notebook_from_anywhere(tmp_path):
    notebook = tiny_notebook(tmp_path / "where.ipynb")
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--output", "ran.ipynb", str(notebook)],
        cwd=tmp_path, env=bare_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ran = json.loads((tmp_path / "ran.ipynb").read_text())
    printed = "".join(ran["cells"][0]["outputs"][0]["text"])
    assert printed.strip() == str(ROOT / "lecture_utils" / "__init__.py")


def test_pytest_nbval_runs_a_notebook_from_anywhere(tmp_path):
    notebook = tiny_notebook(tmp_path / "where.ipynb")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
         str(notebook)], cwd=tmp_path, env=bare_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
