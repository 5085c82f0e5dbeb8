"""Colab in one click: an "Open in Colab" link and a setup cell in every notebook.

    python -m course_tools.colab sync notebooks/*.ipynb     # add or refresh link and cell
    python -m course_tools.colab check notebooks/*.ipynb    # exit 1, listing what is out of date
    python -m course_tools.colab url notebooks/00_napkin_math.ipynb

On Colab the setup cell installs the course without its dependencies, then `install_missing`
adds only the packages the runtime lacks: Colab's own CUDA build of torch is never replaced.
The repository's address is read from pyproject.toml's [project.urls] Repository.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from course_tools.course import write_notebook

try:  # Colab has packaging; where it is missing, a small reading of ">=" below suffices
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
except ImportError:
    Requirement = SpecifierSet = None

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "pytorch-resource-accounting"
BRANCH = "main"  # the link opens this branch's notebook, the cell installs this branch's code
TAG = "colab-setup"
SKIP_SLIDE = {"slide_type": "skip"}  # setting up is no part of a talk
# Built by the runtime for its accelerator (Colab: CUDA); a generic reinstall could lose the GPU.
NEVER_REPLACE = ("torch",)


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The course's GitHub address, from [project.urls] Repository in `pyproject`."""
    with open(pyproject, "rb") as file:
        url = tomllib.load(file).get("project", {}).get("urls", {}).get("Repository")
    if not url:
        raise ValueError(f"{pyproject}: [project.urls] Repository is missing")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+?(\.git)?/?", url):
        raise ValueError(f"{pyproject}: [project.urls] Repository must be "
                         f"https://github.com/<owner>/<repo>, not {url!r}")
    return _plain(url)


def _plain(url: str) -> str:
    """A GitHub address without a trailing slash or .git, as the links and pip want it."""
    return url.rstrip("/").removesuffix(".git")


def colab_url(notebook: Path | str, repo_url: str | None = None) -> str:
    """The address that opens `notebook` (by file name, from notebooks/) in Colab."""
    owner_repo = _plain(repo_url or repository_url()).removeprefix("https://github.com/")
    name = quote(Path(notebook).name)
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{BRANCH}/notebooks/{name}"


def colab_link_markdown(notebook: Path | str, repo_url: str | None = None) -> str:
    """A plain Markdown link to `notebook` on Colab: no badge image, so it works offline too."""
    return f"[Open in Colab]({colab_url(notebook, repo_url)})"


def setup_cell_source(repo_url: str | None = None) -> str:
    """The setup cell's code: plain Python (no magics), so tests can run it anywhere."""
    # find_spec finds google.colab whether Colab's kernel has imported it or not; asking for
    # "google" first keeps it from raising where that package is absent. invalidate_caches:
    # the import system may still hold site-packages' listing from before pip wrote the course.
    return f"""\
# On Colab: install the course into this runtime (once); anywhere else this cell does nothing.
import importlib, subprocess, sys
from importlib.util import find_spec
if find_spec("google") and find_spec("google.colab") and not find_spec("lecture_utils"):
    url = "git+{_plain(repo_url or repository_url())}@{BRANCH}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", url], check=True)
    importlib.invalidate_caches()
    from course_tools.colab import install_missing; install_missing()"""


def _requirement(line: str) -> tuple[str, str] | None:
    """(name, specifier) of a Requires-Dist line, or None where its marker does not apply."""
    if Requirement is not None:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            return None
        return requirement.name, str(requirement.specifier)
    head, _, marker = line.partition(";")
    if "extra" in marker:  # optional extras are never wanted here
        return None
    name = re.match(r"[A-Za-z0-9._-]+", head.strip()).group()
    return name, re.sub(r"\s|[()]|\[.*?\]", "", head.strip()[len(name):])


def _satisfies(version: str, specifier: str) -> bool:
    """Whether an installed `version` meets `specifier` (without packaging: its >= parts)."""
    if SpecifierSet is not None:
        return SpecifierSet(specifier).contains(version, prereleases=True)

    def release(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.match(r"\d+(\.\d+)*", text).group().split("."))

    minimums = [part[2:] for part in specifier.split(",") if part.startswith(">=")]
    return all(release(version) >= release(minimum) for minimum in minimums)


def install_missing(run: Callable[..., object] = subprocess.run) -> list[str]:
    """Pip-install the course's dependencies that are absent; keep every one already installed."""
    missing, names, pins = [], [], []
    for line in importlib.metadata.requires(DISTRIBUTION) or []:
        requirement = _requirement(line)
        if requirement is None:
            continue
        name, specifier = requirement
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name + specifier)
            names.append(name)
            continue
        if name in NEVER_REPLACE:
            pins.append(f"{name}=={have}\n")
        if specifier and not _satisfies(have, specifier):
            print(f"Keeping this runtime's {name} {have}, older than the course's tested minimum "
                  f"({name}{specifier}): most cells still run.")
    if not missing:
        print("The course's packages were all installed already.")
        return []
    with tempfile.TemporaryDirectory() as folder:
        # Pinned, so that no dependency of a missing package can make pip swap torch.
        constraints = Path(folder, "keep.txt")
        constraints.write_text("".join(pins))
        # --no-warn-conflicts: pip would flag the older torch kept above in red, as an error.
        run([sys.executable, "-m", "pip", "install", "-q", "--no-warn-conflicts",
             "-c", str(constraints), *missing], check=True)
    print(f"Installed for the course: {', '.join(names)}")
    return names


def _is_colab_link(line: str) -> bool:
    """A line that is only a link to Colab (ours, or an older badge)."""
    text = line.strip()
    return text.startswith("[") and text.endswith(")") and "colab.research.google.com" in text


def _lines(text: str) -> list[str]:
    """Cell source as stored notebooks keep it: a list of lines."""
    return text.splitlines(keepends=True)


def _position(cells: list[dict], cell: dict) -> int:
    """The index of `cell` itself in `cells` (not of an equal one)."""
    return next(i for i, other in enumerate(cells) if other is cell)


def _bring_in_sync(nb: dict, notebook: Path, repo_url: str) -> list[str]:
    """Add or refresh the link and the setup cell in `nb`, in place; returns what was wrong."""
    problems = []
    cells = nb["cells"]
    intro = next((cell for cell in cells if cell["cell_type"] == "markdown"), None)
    old = "".join(intro["source"]) if intro else ""
    lines = [line for line in _lines(old) if not _is_colab_link(line)]
    title = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    if title is None:
        raise ValueError(f"{notebook}: the first markdown cell has no '# Title' line")
    lines[title] = lines[title].rstrip("\n") + "\n"
    lines.insert(title + 1, colab_link_markdown(notebook, repo_url) + "\n")
    new = "".join(lines)
    if not old.endswith("\n"):  # keep the cell's ending as it was
        new = new.rstrip("\n")
    if new != old:
        problems.append("the Open in Colab link under the title is missing or outdated")
        intro["source"] = _lines(new)

    source = setup_cell_source(repo_url)
    setup = next((c for c in cells if TAG in c["metadata"].get("tags", [])), None)
    if setup is None:
        problems.append(f"no {TAG} cell")
        setup = {"cell_type": "code", "execution_count": None, "id": TAG,
                 "metadata": {"slideshow": SKIP_SLIDE, "tags": [TAG]}, "outputs": [],
                 "source": _lines(source)}
        if nb.get("nbformat", 4) == 4 and nb.get("nbformat_minor", 0) < 5:
            del setup["id"]  # cell ids arrived in nbformat 4.5
    else:
        if "".join(setup["source"]) != source:
            problems.append(f"the {TAG} cell's code is outdated")
            setup["source"] = _lines(source)
        if setup["metadata"].get("slideshow") != SKIP_SLIDE:
            problems.append(f"the {TAG} cell would show on the slides")
            setup["metadata"] = dict(sorted({**setup["metadata"], "slideshow": SKIP_SLIDE}.items()))
    where = _position(cells, intro) + 1
    if where < len(cells) and cells[where] is setup:
        return problems
    if any(cell is setup for cell in cells):
        problems.append(f"the {TAG} cell is not right after the first markdown cell")
        cells.pop(_position(cells, setup))
        where = _position(cells, intro) + 1
    cells.insert(where, setup)
    return problems


def sync(notebooks: list[Path], repo_url: str | None = None) -> list[Path]:
    """Add or refresh the Colab link and setup cell in each notebook; returns those changed."""
    repo_url = repo_url or repository_url()
    changed = []
    for path in map(Path, notebooks):
        nb = json.loads(path.read_text(encoding="utf-8"))
        if _bring_in_sync(nb, path, repo_url):
            write_notebook(path, nb)  # as course.normalize writes: the two never fight over a file
            changed.append(path)
    return changed


def check(notebooks: list[Path], repo_url: str | None = None) -> list[str]:
    """What `sync` would change in each notebook, as "path: problem" lines; empty when in sync."""
    repo_url = repo_url or repository_url()
    problems = []
    for path in map(Path, notebooks):
        try:
            found = _bring_in_sync(json.loads(path.read_text(encoding="utf-8")), path, repo_url)
        except ValueError as error:
            found = [str(error).removeprefix(f"{path}: ")]
        problems += [f"{path}: {problem}" for problem in found]
    return problems


def _notebook_argument(text: str) -> Path:
    """An existing .ipynb file, or an error that argparse shows next to the argument's name."""
    path = Path(text)
    if path.suffix != ".ipynb":
        raise argparse.ArgumentTypeError(f"{text!r} is not a notebook (a .ipynb file)")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: no such file")
    return path


def main(argv: list[str] | None = None) -> int:
    """The command line: sync, check or url."""
    parser = argparse.ArgumentParser(prog="python -m course_tools.colab",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command, help_text in (("sync", "add or refresh the link and setup cell, in place"),
                               ("check", "list what sync would change; exit 1 if anything")):
        sub.add_parser(command, help=help_text).add_argument(
            "notebooks", nargs="+", type=_notebook_argument)
    sub.add_parser("url", help="print a notebook's Colab address").add_argument(
        "notebook", type=_notebook_argument)
    args = parser.parse_args(argv)
    try:
        if args.command == "url":
            print(colab_url(args.notebook))
        elif args.command == "sync":
            for path in sync(args.notebooks):
                print(f"updated {path}")
        elif problems := check(args.notebooks):
            print("\n".join(problems), file=sys.stderr)
            print("fix: python -m course_tools.colab sync <notebooks>", file=sys.stderr)
            return 1
    except ValueError as error:  # a bad pyproject.toml or a notebook without a title
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
