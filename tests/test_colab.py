"""Tests for course_tools.colab: the Colab link, the setup cell, and installing on a Colab-like
runtime without replacing its torch."""

import base64
import ensurepip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from course_tools import colab, course

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("notebooks/*.ipynb"))
URL = "https://github.com/pytorch-resource-accounting/course"
COLAB = "https://colab.research.google.com/github/pytorch-resource-accounting/course/blob/main"


# ------------------------------------------------------------------ addresses and the cell


def test_repository_url_comes_from_pyproject():
    assert colab.repository_url() == URL


@pytest.mark.parametrize("urls, match", [
    ("", r"Repository is missing"),
    ('[project.urls]\nRepository = "https://gitlab.com/a/b"', r"must be https://github.com/"),
])
def test_repository_url_errors_name_the_file_and_key(tmp_path, urls, match):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f'[project]\nname = "x"\n{urls}\n')
    with pytest.raises(ValueError, match=match) as error:
        colab.repository_url(pyproject)
    assert str(pyproject) in str(error.value) and "[project.urls]" in str(error.value)


def test_colab_url_and_link():
    assert colab.colab_url("notebooks/00_napkin_math.ipynb") == f"{COLAB}/notebooks/00_napkin_math.ipynb"
    assert colab.colab_url(Path("x/01_a.ipynb"), "https://github.com/me/fork.git/") == (
        "https://colab.research.google.com/github/me/fork/blob/main/notebooks/01_a.ipynb")
    link = colab.colab_link_markdown("00_napkin_math.ipynb")
    assert link == f"[Open in Colab]({COLAB}/notebooks/00_napkin_math.ipynb)"
    assert "![" not in link and ".svg" not in link  # no image from the network: works offline


def test_setup_cell_is_short_plain_python():
    source = colab.setup_cell_source()
    lines = source.splitlines()
    assert len(lines) <= 8 and all(len(line) <= 100 for line in lines)
    assert lines[0].startswith("# On Colab:")
    assert not any(line.lstrip().startswith(("!", "%")) for line in lines)
    compile(source, "<setup cell>", "exec")
    assert f'"git+{URL}@main"' in source and '"--no-deps"' in source
    assert not re.search(r"\btorch\b", source)  # torch is install_missing's, and kept


def test_setup_cell_off_colab_prints_nothing_and_starts_nothing(tmp_path):
    # A fresh interpreter, as a kernel: an audit hook reports any attempt to start a process.
    hook = ("import sys\n"
            "def refuse(event, args):\n"
            "    if event.startswith(('subprocess.', 'os.system', 'os.exec', 'os.posix_spawn',"
            " 'os.spawn', 'os.fork')):\n"
            "        raise SystemExit(f'started a process: {event}')\n"
            "sys.addaudithook(refuse)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", hook + colab.setup_cell_source()], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


# ------------------------------------------------------------------ sync and check


@pytest.fixture
def two_notebooks(tmp_path):
    """Copies of the first two real notebooks, without any link or setup cell yet."""
    copies = []
    for path in NOTEBOOKS[:2]:
        nb = json.loads(path.read_text())
        nb["cells"] = [c for c in nb["cells"] if colab.TAG not in c["metadata"].get("tags", [])]
        intro = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
        intro["source"] = [line for line in intro["source"] if not colab._is_colab_link(line)]
        copies.append(tmp_path / path.name)
        copies[-1].write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return copies


def test_sync_adds_the_link_and_cell_once(two_notebooks):
    before = [json.loads(path.read_text()) for path in two_notebooks]
    modes = [path.stat().st_mode for path in two_notebooks]
    assert colab.sync(two_notebooks) == two_notebooks
    written = [path.read_bytes() for path in two_notebooks]
    assert colab.sync(two_notebooks) == []  # idempotent: nothing to change, nothing written
    assert [path.read_bytes() for path in two_notebooks] == written
    assert colab.check(two_notebooks) == []
    assert [path.stat().st_mode for path in two_notebooks] == modes  # not mkstemp's 0o600
    for path, old in zip(two_notebooks, before):
        nb = json.loads(path.read_text())
        intro, setup = nb["cells"][0], nb["cells"][1]
        assert intro["source"][0].startswith("# ")
        assert intro["source"][1] == colab.colab_link_markdown(path) + "\n"
        assert sum("colab.research.google.com" in line for line in intro["source"]) == 1
        assert setup["cell_type"] == "code" and "".join(setup["source"]) == colab.setup_cell_source()
        assert setup["metadata"] == {"slideshow": {"slide_type": "skip"}, "tags": ["colab-setup"]}
        assert setup["outputs"] == [] and setup["execution_count"] is None
        assert setup["id"] == "colab-setup"
        # Nothing else changed: take the two additions out and the old notebook is back.
        del nb["cells"][1]
        intro["source"].pop(1)
        assert nb == old


def test_check_reports_tampering_and_sync_repairs_it(two_notebooks):
    colab.sync(two_notebooks)
    first, second = two_notebooks
    nb = json.loads(first.read_text())
    nb["cells"][0]["source"][1] = nb["cells"][0]["source"][1].replace("/course/", "/old-name/")
    first.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    nb = json.loads(second.read_text())
    nb["cells"][1]["source"][-1] += "  # edited"
    nb["cells"].insert(3, nb["cells"].pop(1))  # moved further down, too
    second.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    problems = colab.check(two_notebooks)
    assert problems == [
        f"{first}: the Open in Colab link under the title is missing or outdated",
        f"{second}: the colab-setup cell's code is outdated",
        f"{second}: the colab-setup cell is not right after the first markdown cell",
    ]
    assert colab.sync(two_notebooks) == two_notebooks
    assert colab.check(two_notebooks) == []
    cells = json.loads(second.read_text())["cells"]
    assert [i for i, c in enumerate(cells) if colab.TAG in c["metadata"].get("tags", [])] == [1]


def test_normalize_keeps_the_cell_off_the_slides(two_notebooks):
    # `make execute` runs sync, then normalize: the two must agree on the cell's slide type.
    colab.sync(two_notebooks)
    course.normalize(two_notebooks[0])
    assert colab.check(two_notebooks) == []


def test_an_older_badge_is_replaced_not_duplicated(two_notebooks):
    path = two_notebooks[0]
    nb = json.loads(path.read_text())
    badge = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
             "(https://colab.research.google.com/github/someone/else/blob/master/x.ipynb)\n")
    nb["cells"][0]["source"].insert(2, badge)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    colab.sync([path])
    source = json.loads(path.read_text())["cells"][0]["source"]
    assert [line for line in source if "colab" in line] == [colab.colab_link_markdown(path) + "\n"]


def test_a_notebook_without_a_title_is_an_error(tmp_path):
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {},
                                           "source": ["no heading"]}], "metadata": {},
                                "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(ValueError, match=r"n\.ipynb: the first markdown cell has no '# Title'"):
        colab.sync([path])
    assert colab.check([path]) == [f"{path}: the first markdown cell has no '# Title' line"]


def test_command_line(two_notebooks, capsys):
    assert colab.main(["url", str(NOTEBOOKS[0])]) == 0
    assert capsys.readouterr().out == f"{COLAB}/notebooks/{NOTEBOOKS[0].name}\n"
    assert colab.main(["check", *map(str, two_notebooks)]) == 1
    assert "no colab-setup cell" in capsys.readouterr().err
    assert colab.main(["sync", *map(str, two_notebooks)]) == 0
    assert colab.main(["check", *map(str, two_notebooks)]) == 0
    for argv, message in ((["check", "README.md"], "argument notebooks: 'README.md' is not a"),
                          (["url", "nope.ipynb"], "argument notebook: 'nope.ipynb': no such")):
        with pytest.raises(SystemExit) as exit_:
            colab.main(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err


# ------------------------------------------------------------------ install_missing


COLAB_LIKE = {"torch": "2.9.0+cu126", "numpy": "2.0.2", "matplotlib": "3.10.0"}
REQUIRES = ["torch>=2.11", "numpy>=1.26", "einops>=0.8", "jaxtyping>=0.3", "beartype>=0.19",
            "matplotlib>=3.8", 'pytest>=8; extra == "test"']


@pytest.fixture(params=["packaging", "fallback"])
def metadata(request, monkeypatch):
    """A Colab-like set of installed distributions, read with packaging or without it."""
    if request.param == "fallback":
        monkeypatch.setattr(colab, "Requirement", None)
        monkeypatch.setattr(colab, "SpecifierSet", None)
    installed = dict(COLAB_LIKE)

    def version(name):
        if name not in installed:
            raise colab.importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(colab.importlib.metadata, "requires",
                        lambda name: REQUIRES if name == colab.DISTRIBUTION else None)
    monkeypatch.setattr(colab.importlib.metadata, "version", version)
    return installed


def test_install_missing_keeps_what_is_installed(metadata, capsys):
    calls = []

    def run(command, check):
        constraints = Path(command[command.index("-c") + 1]).read_text()
        calls.append((command, constraints, check))

    assert colab.install_missing(run=run) == ["einops", "jaxtyping", "beartype"]
    [(command, constraints, check)] = calls  # one pip call for all of them
    assert command[:5] == [sys.executable, "-m", "pip", "install", "-q"] and check
    assert command[5:7] == ["--no-warn-conflicts", "-c"]
    assert command[8:] == ["einops>=0.8", "jaxtyping>=0.3", "beartype>=0.19"]
    assert not any(arg.startswith(("torch", "numpy", "matplotlib", "pytest")) for arg in command)
    assert constraints == "torch==2.9.0+cu126\n"  # pip may not swap torch for a dependency
    out = capsys.readouterr().out
    assert "torch 2.9.0+cu126, older than the course's tested minimum (torch>=2.11)" in out
    assert "most cells still run" in out and "numpy" not in out.split("Installed")[0]
    assert "Installed for the course: einops, jaxtyping, beartype" in out


def test_install_missing_with_nothing_missing_runs_nothing(metadata, capsys):
    metadata.update(einops="0.8.1", jaxtyping="0.3.2", beartype="0.21.0", torch="2.13.0")
    assert colab.install_missing(run=pytest.fail) == []
    assert capsys.readouterr().out == "The course's packages were all installed already.\n"


# ------------------------------------------------------------------ a Colab-like runtime


def build_wheel(folder: Path, name: str, version: str, files: dict[str, str],
                requires: tuple[str, ...] = ()) -> Path:
    """A minimal pure-Python wheel holding `files` (path: text), with the metadata pip needs."""
    dist = f"{name.replace('-', '_')}-{version}"
    info = f"{dist}.dist-info"
    contents = {**files,
                f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                + "".join(f"Requires-Dist: {r}\n" for r in requires),
                f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test_colab\n"
                                 "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}\n")
    contents[f"{info}/RECORD"] = "".join(record) + f"{info}/RECORD,,\n"
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in contents.items():
            archive.writestr(path, text)
    return wheel


def stub(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A stand-in for a real package: a module that says it is a stub, and its version."""
    module = name.replace("-", "_")
    text = f"__version__ = {version!r}\nSTUB = True\n"
    return build_wheel(folder, name, version, {f"{module}/__init__.py": text}, requires)


def fingerprint(site: Path, *patterns: str) -> dict[str, tuple[str, int]]:
    """Each matching file's content hash and inode: a reinstall, even of the same bytes, shows."""
    return {str(p.relative_to(site)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_ino)
            for pattern in patterns for p in sorted(site.glob(pattern))
            if p.is_file() and "__pycache__" not in p.parts}  # importing torch writes bytecode


def uv_command() -> str | None:
    return shutil.which("uv") or next(
        (str(p) for p in [Path(sys.executable).with_name("uv")] if p.exists()), None)


def test_setup_cell_on_a_colab_like_runtime_keeps_its_torch(tmp_path):
    uv = uv_command()
    if uv is None:
        pytest.skip("needs uv, to build the course's wheel and a virtual environment quickly")
    bundled = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))
    if not bundled:
        pytest.skip("this Python has no bundled pip wheel (ensurepip) to seed a venv offline")
    course_dir, index, preinstalled = (tmp_path / d for d in ("course", "index", "preinstalled"))
    for folder in (course_dir, index, preinstalled):
        folder.mkdir()

    # The course's wheel, built from this checkout as pip would build it from GitHub.
    build = [uv, "build", "--wheel", "--quiet", "--out-dir", str(course_dir), str(ROOT)]
    done = subprocess.run([*build, "--offline"], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:  # hatchling is not in uv's cache: try the package registry
        done = subprocess.run(build, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.skip(f"cannot build the course's wheel (hatchling comes from the package registry, "
                    f"which is unreachable and not cached): {done.stderr.strip()[-300:]}")
    [course_wheel] = course_dir.glob("*.whl")

    # The runtime: Colab's kind of torch, numpy and matplotlib, and google.colab.
    colab_stack = [stub(preinstalled, name, version) for name, version in COLAB_LIKE.items()]
    colab_stack.append(build_wheel(preinstalled, "google-colab", "1.0.0",
                                   {"google/colab/__init__.py": "STUB = True\n"}))
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True,
                   timeout=60)
    subprocess.run([uv, "pip", "install", "--quiet", "--offline", "--no-index", "--python",
                    str(python), bundled[-1], *colab_stack], check=True, timeout=60)
    [site] = venv.glob("lib/python3*/site-packages")
    torch_files = fingerprint(site, "torch/**/*", "torch-*.dist-info/*")
    assert torch_files

    # What pip may take: the missing packages (jaxtyping with its real dependency), and a newer
    # torch and numpy as traps, which any attempt to "upgrade" them would pick up.
    for name, version, requires in [("einops", "0.8.1", ()), ("beartype", "0.21.0", ()),
                                    ("jaxtyping", "0.3.2", ("wadler-lindig>=0.1.3",)),
                                    ("wadler-lindig", "0.1.7", ()), ("torch", "2.13.0", ()),
                                    ("numpy", "2.4.6", ())]:
        stub(index, name, version, requires)

    # No network and no settings from this machine. PYTHONDONTWRITEBYTECODE goes too: bytecode
    # lands in the throwaway venv only, and pip's second start is faster for it.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "UV_"))}
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(index), PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_CACHE_DIR="1", PIP_CONFIG_FILE=os.devnull, PYTHONNOUSERSITE="1")
    cell = colab.setup_cell_source()
    assert cell.count(f"git+{URL}@main") == 1
    cell = cell.replace(f"git+{URL}@main", str(course_wheel))  # pip installs either alike
    work = tmp_path / "work"  # an empty folder: nothing importable from the current directory
    work.mkdir()

    def run(code):
        return subprocess.run([str(python), "-c", code], cwd=work, env=env, capture_output=True,
                              text=True, timeout=180)

    first = run(cell)
    assert first.returncode == 0, first.stdout + first.stderr
    said = first.stdout + first.stderr
    assert "Keeping this runtime's torch 2.9.0+cu126, older than" in said
    assert "Installed for the course: beartype, einops, jaxtyping" in said
    assert not any(word in said.lower()
                   for word in ("reinstall", "uninstall", "2.13.0", "error", "incompatible"))

    names = ["pytorch-resource-accounting", *COLAB_LIKE, "einops", "jaxtyping", "beartype",
             "wadler-lindig"]
    imported = run("import json, importlib.metadata as m, lecture_utils, course_tools.colab, torch\n"
                   f"assert torch.STUB and lecture_utils.__file__.startswith({str(site)!r})\n"
                   f"print(json.dumps({{n: m.version(n) for n in {names!r}}}))")
    assert imported.returncode == 0, imported.stderr
    versions = json.loads(imported.stdout)
    course_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert versions == {"pytorch-resource-accounting": course_version, **COLAB_LIKE, "einops": "0.8.1",
                        "jaxtyping": "0.3.2", "beartype": "0.21.0", "wadler-lindig": "0.1.7"}
    assert fingerprint(site, "torch/**/*", "torch-*.dist-info/*") == torch_files

    # Run again (a restarted runtime): the course is importable, so nothing happens.
    installed = sorted(p.name for p in site.iterdir())
    again = run(cell)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert sorted(p.name for p in site.iterdir()) == installed
    assert fingerprint(site, "torch/**/*", "torch-*.dist-info/*") == torch_files
