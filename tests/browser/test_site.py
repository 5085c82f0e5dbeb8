"""The course site (`make site`) as a reader sees it: every page opened from file:// in Chromium
with the network cut off, checked for errors, figures, typeset math, working links and folded
solutions. Screenshots go to build/screenshots/site-*.png. Run with `make test-browser`.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from course_tools import site

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAGES = ["index.html"] + [f"{p.stem}.html" for p in NOTEBOOKS]
VENDOR = ROOT / "build" / "slides" / "vendor"
SCREENSHOTS = ROOT / "build" / "screenshots"


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    """build/site if `make site` built it from the current sources, else a fresh build."""
    built = ROOT / "build" / "site"
    sources = [*NOTEBOOKS, Path(site.__file__), *site.TEMPLATES.iterdir()]
    index = built / "index.html"
    if index.exists() and index.stat().st_mtime >= max(p.stat().st_mtime for p in sources):
        return built
    if not (VENDOR / "node_modules" / "mathjax" / "MathJax.js").exists():
        pytest.skip(f"no MathJax in {VENDOR}: run `make slides` once (needs npm)")
    out = tmp_path_factory.mktemp("site") / "site"
    site.build_site(NOTEBOOKS, out, VENDOR)
    return out


@functools.cache
def element_ids(path: Path) -> frozenset[str]:
    """The ids in the HTML file at `path`, percent-decoded as a browser matches them."""
    return frozenset(unquote(i) for i in re.findall(r'\bid="([^"]*)"', path.read_text()))


def expected(notebook: Path | None) -> dict:
    """What the page of `notebook` should show: figures, solutions, whether it has math."""
    if notebook is None:
        return {"figures": 0, "solutions": 0, "math": False}
    cells = [c for c in nbformat.read(notebook, as_version=4).cells
             if "colab-setup" not in c.metadata.get("tags", [])]
    return {
        "figures": sum("image/png" in o.get("data", {}) for c in cells if c.cell_type == "code"
                       for o in c.outputs),
        "solutions": sum("solution" in c.metadata.get("tags", []) for c in cells),
        "math": any(re.search(r"\$[^$\s]", c.source) for c in cells if c.cell_type == "markdown"),
    }


@pytest.mark.parametrize("name", PAGES, ids=lambda n: n.removesuffix(".html"))
def test_page_works_offline(browser, site_dir, name):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    refused: list[str] = []  # the page may read files only: the network is cut off

    def files_only(route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", files_only)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((site_dir / name).as_uri())
    # MathJax typesets after the page loads; a callback queued now runs once it is done.
    page.evaluate("() => window.MathJax && new Promise(done => MathJax.Hub.Queue(done))")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"site-{name.removesuffix('.html')}.png"))
    i = PAGES.index(name)
    want = expected(NOTEBOOKS[i - 1] if i else None)

    assert not refused, f"{name}: tried to reach the network: {refused}"
    assert not errors, f"{name}: console errors {errors}"

    images = page.evaluate("() => Array.from(document.images, i => i.complete && i.naturalWidth)")
    assert all(images), f"{name}: an image did not load: {images}"
    assert len(images) == want["figures"], f"{name}: {len(images)} of {want['figures']} figures"

    typeset = page.evaluate("""() => ({
        math: document.querySelectorAll('.MathJax_CHTML').length,
        errors: document.querySelectorAll('.mjx-merror, .MathJax_Error').length,
        raw: Array.from(document.querySelectorAll('.jp-MarkdownOutput'), e => e.innerText)
             .join('\\n').match(/\\$[^$\\s][^$]*\\$/g)})""")
    assert (typeset["math"] > 0) == want["math"], f"{name}: {typeset['math']} formulas typeset"
    assert not typeset["errors"] and not typeset["raw"], f"{name}: math left untypeset {typeset}"

    # Every relative link and source resolves to a file of the site, and #fragment to an id.
    urls = page.evaluate("""() => [...Array.from(document.querySelectorAll('a[href]'), a => a.href),
        ...Array.from(document.querySelectorAll('[src]'), e => e.src)]""")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme != "file":
            continue
        target = Path(unquote(parts.path))
        assert target.is_file() and target.is_relative_to(site_dir), f"{name}: dead link {url}"
        if parts.fragment:
            assert unquote(parts.fragment) in element_ids(target), f"{name}: no anchor for {url}"

    nav = page.evaluate("""() => Object.fromEntries(Array.from(
        document.querySelectorAll('nav a[rel]'), a => [a.rel, a.getAttribute('href')]))""")
    neighbours = {"prev": PAGES[i - 1] if i > 1 else None, "index": "index.html",
                  "next": PAGES[i + 1] if i + 1 < len(PAGES) else None}
    assert nav == {k: v for k, v in neighbours.items() if v}, f"{name}: navigation {nav}"
    if name == "index.html":
        contents = page.evaluate(
            "() => Array.from(document.querySelectorAll('.site-toc > li > a'), a => a.getAttribute('href'))")
        assert contents == PAGES[1:], "the index lists every notebook, in order"

    folded = page.locator("details.solution")
    assert folded.count() == want["solutions"], f"{name}: {folded.count()} folded solutions"
    assert page.evaluate("() => Array.from(document.querySelectorAll('details.solution'))"
                         ".every(d => !d.open)"), f"{name}: a solution starts open"
    if want["solutions"]:
        code = folded.first.locator(".jp-InputArea")
        assert not code.is_visible()
        folded.first.locator("summary").click()
        assert code.is_visible(), f"{name}: opening a solution does not show its code"
    page.close()
