"""The offline course site (course_tools.site), built from two small notebooks in a few seconds.

The MathJax it copies is a stand-in tree of empty files: these tests check what the site links
to and what it holds; tests/browser/test_site.py checks, in a browser, that it all works.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_tools import site

ROOT = Path(__file__).resolve().parents[1]
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
       "RU5ErkJggg==")  # 1×1 pixel


def write_notebook(path: Path, cells: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells), path)
    return path


def course(root: Path) -> list[Path]:
    """Two executed notebooks in root/notebooks that use everything the site handles."""
    (root / "lecture_utils").mkdir(parents=True)
    (root / "lecture_utils" / "tiny.py").write_text("def tiny() -> int:\n    return 1\n")
    colab = new_code_cell("%pip install course  # COLAB-MARKER", metadata={"tags": ["colab-setup"]})
    first = write_notebook(root / "notebooks" / "00_first.ipynb", [
        new_markdown_cell(
            "# 00 · First things\n[Open in Colab](https://colab.example/00_first.ipynb)\n\n"
            "This one starts, e.g. with a sum. More follows.\n\n"
            "Then [the second](01_second.ipynb#Second-part), [its top](01_second.ipynb), "
            "[the helper](../lecture_utils/tiny.py), [the web](https://example.org), math $x^2$."),
        colab,
        new_code_cell("1 + 1", execution_count=1, outputs=[
            new_output("execute_result", {"text/plain": "2"}, execution_count=1)]),
        new_code_cell("answer = 42  # SOLUTION-MARKER", execution_count=2,
                      metadata={"tags": ["solution"]}),
        new_code_cell("plot()", execution_count=3, outputs=[
            new_output("display_data", {"image/png": PNG, "text/plain": "<Figure>"})]),
    ])
    second = write_notebook(root / "notebooks" / "01_second.ipynb", [
        new_markdown_cell("# 01 · Second\n\nWhat comes before a list:\n\n1. one\n2. two"),
        new_markdown_cell("## Second part\n\nBack to [the first](00_first.ipynb)."),
    ])
    return [second, first]  # out of order: the site sorts them


def fake_vendor(folder: Path) -> Path:
    """A node_modules/ with every file the site copies, empty: enough to build, not to render."""
    mathjax = folder / "node_modules" / "mathjax"
    for rel in site.MATHJAX_FILES:
        path = mathjax / rel if "." in Path(rel).name or rel == "LICENSE" else mathjax / rel / "x.js"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    (folder / site.REQUIRE_JS).parent.mkdir(parents=True)
    (folder / site.REQUIRE_JS).write_text("")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    out = root / "build" / "site"
    site.build_site(course(root), out, fake_vendor(root / "vendor"))
    return out


class Elements(HTMLParser):
    """Every element's tag and attributes, and every id, of an HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    @property
    def ids(self) -> set[str]:
        return {unquote(a["id"]) for _, a in self.elements if a.get("id")}


def pages(folder: Path) -> dict[Path, Elements]:
    return {p: Elements(p.read_text()) for p in sorted(folder.rglob("*.html"))}


def test_a_page_per_notebook_and_an_index_in_course_order(built):
    assert {p.name for p in built.glob("*.html")} == {"index.html", "00_first.html",
                                                      "01_second.html"}
    index = (built / "index.html").read_text()
    assert index.index("00 · First things") < index.index("01 · Second")
    assert "This one starts, e.g. with a sum." in index  # the first sentence, whole
    assert "What comes before a list." in index  # a lead-in colon reads as a full stop
    assert "Open in Colab" not in index
    assert "<title>00 · First things</title>" in (built / "00_first.html").read_text()


def test_every_page_links_its_neighbours_and_the_index(built):
    def nav(name: str, bars: int = 2) -> dict:
        rels = [(a["rel"], a["href"]) for tag, a in pages(built)[built / name].elements
                if tag == "a" and "rel" in a]
        assert rels == rels[: len(rels) // bars] * bars, "the same bar at top and bottom"
        return dict(rels)

    assert nav("index.html", bars=1) == {"index": "index.html", "next": "00_first.html"}
    assert nav("00_first.html") == {"index": "index.html", "next": "01_second.html"}
    assert nav("01_second.html") == {"prev": "00_first.html", "index": "index.html"}


def test_nothing_is_loaded_from_the_network(built):
    for path, page in pages(built).items():
        for tag, attrs in page.elements:
            for name in ("src", "href"):
                value = attrs.get(name) or ""
                if tag != "a":  # plain links to websites are fine: they load nothing
                    assert not re.match(r"(https?:)?//", value), f"{path.name}: <{tag} {value}>"
        remote = re.findall(r"https?://[^\s\"')]+\.(?:m?js|css|woff2?|ttf)\b", path.read_text())
        assert not remote, f"{path.name} loads {remote}"
    assert 'src="mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"' in (
        built / "00_first.html").read_text()


def test_solutions_are_folded_and_the_colab_cell_is_gone(built):
    text = (built / "00_first.html").read_text()
    marker = text.index("SOLUTION-MARKER")
    assert text.rfind("<details", 0, marker) > text.rfind("</details>", 0, marker)
    assert "<summary>Solution</summary>" in text
    assert "COLAB-MARKER" not in text
    assert text.count("<details") == 1


def test_links_to_notebooks_and_repository_files_are_rewritten(built):
    text = (built / "00_first.html").read_text()
    assert 'href="01_second.html#Second-part"' in text
    assert 'href="01_second.html"' in text
    assert 'href="source/lecture_utils/tiny.py.html"' in text
    assert 'href="https://example.org"' in text
    assert not [h for h in re.findall(r'href="([^"]*)"', text) if ".ipynb" in h and "//" not in h]
    source = (built / "source" / "lecture_utils" / "tiny.py.html").read_text()
    assert "tiny.py" in source and "return" in source and 'href="../../index.html"' in source


def test_every_relative_link_resolves(built):
    found = pages(built)
    checked = 0
    for path, page in found.items():
        for _, attrs in page.elements:
            for value in (attrs.get("href"), attrs.get("src")):
                url = urlsplit(value or "")
                if not value or url.scheme or url.netloc:
                    continue
                target = (path.parent / unquote(url.path)).resolve() if url.path else path
                assert target.is_file() and target.is_relative_to(built), f"{path.name}: {value}"
                if url.fragment and target.suffix == ".html":
                    assert unquote(url.fragment) in found[target].ids, f"{path.name}: {value}"
                checked += 1
    assert checked > 20


def test_mathjax_is_copied_in_part(built):
    assert (built / "mathjax" / "MathJax.js").is_file()
    assert (built / "mathjax" / "jax" / "output" / "CommonHTML").is_dir()
    assert (built / "require.js").is_file() and (built / "mermaid-stub.mjs").is_file()


@pytest.fixture
def repo(tmp_path) -> tuple[list[Path], Path]:
    return course(tmp_path), fake_vendor(tmp_path / "vendor")


@pytest.mark.parametrize("change, message", [
    (lambda nbs, vendor, tmp: ([], vendor), "no notebooks given"),
    (lambda nbs, vendor, tmp: ([*nbs, tmp / "README.md"], vendor), "README.md: not an .ipynb"),
    (lambda nbs, vendor, tmp: ([tmp / "gone.ipynb"], vendor), "gone.ipynb: no such file"),
    (lambda nbs, vendor, tmp: (nbs, tmp / "nowhere"), r"--vendor .*nowhere: no such folder.*"
                                                      r"make slides"),
    (lambda nbs, vendor, tmp: (nbs, tmp / "lecture_utils"), r"--vendor .*: no MathJax.*"
                                                            r"make slides"),
])
def test_bad_arguments_say_what_to_do(repo, tmp_path, change, message):
    notebooks, vendor = change(*repo, tmp_path)
    with pytest.raises(site.SiteError, match=message):
        site.build_site(notebooks, tmp_path / "site", vendor)
    assert not (tmp_path / "site").exists()


def test_the_command_line_names_the_bad_argument(repo, tmp_path, capsys):
    notebooks, _ = repo
    with pytest.raises(SystemExit) as exit:
        site.main([*map(str, notebooks), "--out", str(tmp_path / "site"),
                   "--vendor", str(tmp_path / "nowhere")])
    assert exit.value.code == 2
    assert "--vendor" in capsys.readouterr().err


def test_a_folder_that_is_not_a_site_is_never_replaced(repo, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(site.SiteError, match="--out .*mine: exists and is not a site"):
        site.build_site(*repo[:1], tmp_path / "mine", repo[1])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_failed_build_leaves_the_old_site_whole(repo, tmp_path):
    notebooks, vendor = repo
    out = tmp_path / "build" / "site"
    site.build_site(notebooks, out, vendor)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    nb = json.loads(notebooks[1].read_text())
    nb["cells"][0]["source"] += "\n\nSee [this](../missing.py) and [that](01_second.ipynb#Nope)."
    notebooks[1].write_text(json.dumps(nb))
    with pytest.raises(site.SiteError) as error:
        site.build_site(notebooks, out, vendor)
    assert "../missing.py (no such file)" in str(error.value)
    assert "#Nope" in str(error.value)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in out.parent.iterdir()] == ["site"], "no temporary folder left"


def test_every_course_notebook_has_a_title_and_a_line_for_the_index():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        page = site.read_page(path)
        assert page.title.startswith(path.stem[:2]), path.name
        assert 20 < len(page.summary) < 300 and page.summary[-1] in ".?!", page.summary
