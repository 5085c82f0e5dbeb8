"""Build the course as an offline static website: a page per executed notebook, and an index.

    python -m course_tools.site notebooks/*.ipynb --out build/site --vendor build/slides/vendor

The notebooks are rendered as stored, outputs and all (nothing is executed), with nbconvert's
"lab" template. Every script a page loads is copied into the site, so it works from a folder
(file://) or any static host, with no network.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

import nbformat

from course_tools.course import MATHJAX_CONFIG, MATHJAX_DIR, MERMAID_STUB, REQUIRE_JS

if TYPE_CHECKING:
    from nbconvert import HTMLExporter

TEMPLATES = Path(__file__).with_name("site_templates")
COURSE_TITLE = "PyTorch and resource accounting"
FETCH_VENDOR = "run `make slides` once to fetch MathJax (needs npm)"
MATHJAX_URL = f"mathjax/{MATHJAX_CONFIG}"
# What MathJax.js?config=TeX-AMS_CHTML-full,Safe can load for CommonHTML output, read off a
# browser's requests, plus what it loads on demand (TeX extensions, operator tables, the help
# dialog): 1.4 MB of the package's 73 MB.
MATHJAX_FILES = (
    "MathJax.js",
    "LICENSE",
    "config/TeX-AMS_CHTML-full.js",
    "config/Safe.js",
    "extensions/Safe.js",
    "extensions/HelpDialog.js",
    "extensions/TeX",
    "jax/element/mml",
    "jax/input/TeX",
    "jax/output/CommonHTML",
    "fonts/HTML-CSS/TeX/woff",
)
ATTRIBUTE = re.compile(r'\b(href|src)="([^"]*)"')
ELEMENT_ID = re.compile(r'\bid="([^"]*)"')


class SiteError(ValueError):
    """A bad argument or a notebook the site cannot be built from; the message says what to do."""


@dataclass
class Page:
    """One notebook's page: its source, file name, title and a line about it for the index."""

    notebook: Path
    nb: nbformat.NotebookNode
    name: str
    title: str
    summary: str


def title_and_summary(nb: nbformat.NotebookNode, fallback: str) -> tuple[str, str]:
    """The first markdown cell's `# ` heading, and the first sentence of the paragraph after it."""
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    heading = re.search(r"^# (.+)$", first, re.MULTILINE)
    if not heading:
        return fallback, ""
    # Skip lines that are only links, such as "[Open in Colab](...)" under the title.
    lines = [line for line in first[heading.end():].splitlines()
             if not re.fullmatch(r"\s*!?\[.*\)\s*", line)]
    paragraphs = re.split(r"\n\s*\n", "\n".join(lines).strip())
    text = " ".join(paragraphs[0].split())
    # A sentence ends at . ! or ? before a capital: "e.g. a" and "2.5 GB" stay whole.
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])", text)[0]
    # An intro that leads into a list ("...two questions decide whether...:") reads as a statement.
    sentence = re.sub(r":$", ".", sentence)
    return heading.group(1).strip(), sentence


def read_page(path: Path) -> Page:
    """The page for the notebook at `path`, without its Colab install cell."""
    nb = nbformat.read(path, as_version=4)
    # The Colab cell installs the course in a Colab runtime: it means nothing on a web page.
    nb.cells = [c for c in nb.cells if "colab-setup" not in c.metadata.get("tags", [])]
    title, summary = title_and_summary(nb, path.stem)
    nb.metadata["title"] = title  # the page's <title>
    return Page(path.resolve(), nb, f"{path.stem}.html", title, summary)


def check_arguments(notebooks: list[Path], out: Path, vendor: Path) -> None:
    """Raise SiteError naming the first bad argument, what is wrong with it, and what to do."""
    if not notebooks:
        raise SiteError("no notebooks given: pass the course's notebooks, e.g. notebooks/*.ipynb")
    for path in notebooks:
        if path.suffix != ".ipynb":
            raise SiteError(f"notebook {path}: not an .ipynb file; pass only notebooks")
        if not path.is_file():
            raise SiteError(f"notebook {path}: no such file")
    stems = [p.stem for p in notebooks]
    if len(set(stems)) < len(stems):
        raise SiteError(f"notebooks: two share a name, and so a page: {sorted(stems)}")
    if not vendor.is_dir():
        raise SiteError(f"--vendor {vendor}: no such folder; {FETCH_VENDOR}")
    mathjax = vendor / MATHJAX_DIR
    missing = [f"mathjax/{f}" for f in MATHJAX_FILES if not (mathjax / f).exists()]
    missing += [] if (vendor / REQUIRE_JS).is_file() else ["requirejs/require.js"]
    if missing:
        raise SiteError(f"--vendor {vendor}: no MathJax 2.7 or require.js in node_modules/ "
                        f"(missing {', '.join(missing[:3])}); {FETCH_VENDOR}")
    # The build replaces `out` whole: never a folder this command did not make.
    if out.exists() and not (out.is_dir() and (not any(out.iterdir())
                                              or (out / "index.html").is_file())):
        raise SiteError(f"--out {out}: exists and is not a site built by this command; "
                        "choose a new or empty folder")


def nav(prev: Page | None, next_: Page | None) -> str:
    """The bar at the top and bottom of a page: previous notebook, contents, next notebook."""

    def side(page: Page | None, rel: str, label: str) -> str:
        if page is None:
            return f'<span class="{rel}"></span>'
        return (f'<a class="{rel}" rel="{rel}" href="{quote(page.name)}" '
                f'title="{html.escape(page.title)}">{label}</a>')

    return ('<nav class="site-nav">'
            + side(prev, "prev", f"← {html.escape(prev.title)}" if prev else "")
            + '<a rel="index" href="index.html">Contents</a>'
            + side(next_, "next", f"{html.escape(next_.title)} →" if next_ else "")
            + "</nav>")


class Links:
    """Rewrites the pages' relative links so that they resolve on the site, and checks them."""

    def __init__(self, pages: list[Page], root: Path) -> None:
        self.pages = {p.notebook: p for p in pages}
        self.names = {"index.html"} | {p.name for p in pages}
        self.root = root
        self.sources: dict[str, Path] = {}  # site path -> text file it shows as a page
        self.copies: dict[str, Path] = {}  # site path -> file copied as it is (an image)
        self.fragments: list[tuple[str, str, str, str]] = []  # page, link, target, id
        self.dead: list[str] = []

    def rewrite(self, page: Page, body: str) -> str:
        """`body` of `page` with links to notebooks and repository files pointing into the site."""
        return ATTRIBUTE.sub(lambda m: self._fix(page, *m.groups()), body)

    def _fix(self, page: Page, attribute: str, value: str) -> str:
        url = urlsplit(html.unescape(value))
        if url.scheme or url.netloc:
            return f'{attribute}="{value}"'  # a web address or a data: URL
        target = self._target(page, attribute, url.path, value) if url.path else page.name
        if target is not None and url.fragment:
            self.fragments.append((page.notebook.name, value, target, url.fragment))
        if target is None or not url.path:
            return f'{attribute}="{value}"'  # dead (reported), or a place on this page
        new = quote(target) + (f"#{url.fragment}" if url.fragment else "")
        return f'{attribute}="{html.escape(new)}"'

    def _target(self, page: Page, attribute: str, link: str, value: str) -> str | None:
        """The site path that `link` (relative to `page`'s notebook) shows, or None if dead."""
        if link in self.names:
            return link  # already a page of the site: the navigation bar
        path = (page.notebook.parent / unquote(link)).resolve()
        if path in self.pages:
            return self.pages[path].name
        if not path.is_relative_to(self.root):
            self.dead.append(f"{page.notebook.name}: {value} (outside {self.root})")
        elif not path.is_file():
            self.dead.append(f"{page.notebook.name}: {value} (no such file)")
        else:
            # A link opens a readable page of the file; an image (src) needs the file itself.
            site_path = f"source/{path.relative_to(self.root).as_posix()}"
            if attribute == "href" and is_text(path):
                self.sources[site_path + ".html"] = path
                return site_path + ".html"
            self.copies[site_path] = path
            return site_path
        return None

    def check_fragments(self, site: Path) -> None:
        """Record as dead each link whose #fragment names no element of its target page."""
        ids: dict[str, set[str]] = {}
        for page, link, name, fragment in self.fragments:
            if not name.endswith(".html"):
                continue  # an image's #fragment is no element id
            if name not in ids:
                text = (site / name).read_text()
                # nbconvert percent-encodes heading ids; a browser matches either spelling.
                ids[name] = {unquote(html.unescape(i)) for i in ELEMENT_ID.findall(text)}
            if unquote(fragment) not in ids[name]:
                self.dead.append(f"{page}: {html.unescape(link)} (no #{fragment} in {name})")


def is_text(path: Path) -> bool:
    """Whether `path` is UTF-8 text, which the site shows as a page of its own."""
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return False
    return True


def plain_page(title: str, body: str, up: str = "") -> str:
    """A page of the site that is not a notebook: the index, or a repository file."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1.0">\n'
            f'<title>{html.escape(title)}</title>\n<link rel="stylesheet" href="{up}site.css">\n'
            f'</head>\n<body class="site-plain">\n<main>\n{body}\n</main>\n</body>\n</html>\n')


def index_page(pages: list[Page], title: str) -> str:
    """The contents: every notebook in course order, with its title and a line about it."""
    from mistune import create_markdown

    inline = create_markdown(escape=True)  # the summary's **bold** and `code`, no raw HTML
    items = "\n".join(
        f'<li><a href="{quote(p.name)}">{html.escape(p.title)}</a>'
        f'<p>{inline(p.summary).strip().removeprefix("<p>").removesuffix("</p>")}</p></li>'
        for p in pages)
    body = (f"{nav(None, pages[0])}\n<h1>{html.escape(title)}</h1>\n"
            "<p>The course's notebooks, run and rendered with their outputs, in order. "
            "Worked solutions are folded: open <em>Solution</em> to see one.</p>\n"
            f'<ol class="site-toc">\n{items}\n</ol>')
    return plain_page(title, body)


def source_page(path: Path, site_path: str) -> str:
    """A repository file shown as a page: its text, highlighted, and a way back."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import TextLexer, get_lexer_for_filename
    from pygments.util import ClassNotFound

    text = path.read_text(encoding="utf-8")
    try:
        lexer = get_lexer_for_filename(path.name, text)
    except ClassNotFound:
        lexer = TextLexer()
    up = "../" * site_path.count("/")
    rel = site_path.removeprefix("source/").removesuffix(".html")
    code = highlight(text, lexer, HtmlFormatter(noclasses=True, lineanchors="L"))
    body = (f'<nav class="site-nav"><a rel="index" href="{up}index.html">Contents</a></nav>\n'
            f'<h1><code>{html.escape(rel)}</code></h1>\n<div class="source-file">{code}</div>')
    return plain_page(rel, body, up)


def exporter() -> HTMLExporter:
    """nbconvert's lab HTML exporter, with the site's template and every script local."""
    from nbconvert import HTMLExporter  # a slow import: only when building

    export = HTMLExporter(template_name="lab", extra_template_paths=[str(TEMPLATES)],
                          template_file="page.html.j2")
    # Set on the instance, not as config: not all of them are config options.
    export.mathjax_url = MATHJAX_URL
    export.require_js_url = "require.js"
    export.mermaid_js_url = "mermaid-stub.mjs"
    export.mermaid_layout_elk_js_url = ""
    return export


def write_site(notebooks: list[Path], site: Path, vendor: Path, title: str) -> list[Path]:
    """Write the whole site into the empty folder `site`; returns the pages written."""
    pages = [read_page(p) for p in sorted(notebooks, key=lambda p: p.name)]
    # Links may reach the whole repository: the folder that holds the notebooks' folder.
    root = Path(os.path.commonpath([p.notebook.parent for p in pages])).parent
    links = Links(pages, root)
    export = exporter()
    written = []
    for i, page in enumerate(pages):
        neighbours = nav(pages[i - 1] if i else None, pages[i + 1] if i + 1 < len(pages) else None)
        text, _ = export.from_notebook_node(page.nb, resources={"site_nav": neighbours})
        # Rewrite the body only: the head's links are the site's own scripts and styles.
        head, body = re.split(r"(?=<body[ >])", text, maxsplit=1)
        (site / page.name).write_text(head + links.rewrite(page, body))
        written.append(site / page.name)
    (site / "index.html").write_text(index_page(pages, title))
    written.insert(0, site / "index.html")
    for site_path, path in links.sources.items():
        (site / site_path).parent.mkdir(parents=True, exist_ok=True)
        (site / site_path).write_text(source_page(path, site_path))
    for site_path, path in links.copies.items():
        (site / site_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, site / site_path)
    links.check_fragments(site)
    if links.dead:
        raise SiteError("links that would be dead on the site (fix them in the notebooks):\n  "
                        + "\n  ".join(links.dead))
    copy_assets(vendor, site)
    return written


def copy_assets(vendor: Path, site: Path) -> None:
    """Copy into `site` its stylesheet and the scripts the pages load: MathJax, require.js."""
    shutil.copy2(TEMPLATES / "site.css", site / "site.css")
    mathjax = vendor / MATHJAX_DIR
    for rel in MATHJAX_FILES:
        source, target = mathjax / rel, site / "mathjax" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    shutil.copy2(vendor / REQUIRE_JS, site / "require.js")
    (site / "mermaid-stub.mjs").write_text(MERMAID_STUB)


def build_site(notebooks: list[Path], out: Path, vendor: Path,
               title: str = COURSE_TITLE) -> list[Path]:
    """Build the site into `out`, replacing it only once the whole site is written."""
    check_arguments(notebooks, out, vendor)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A folder beside `out`, so that the swap is a rename on one file system.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    try:
        written = write_site(notebooks, tmp, vendor, title)
        tmp.chmod(0o755)  # mkdtemp makes it private; a site is for reading
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)  # the swap itself failed: put the old site back
        raise
    shutil.rmtree(old, ignore_errors=True)
    return [out / p.relative_to(tmp) for p in written]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_tools.site",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="the executed notebooks (pages go in file-name order)")
    parser.add_argument("--out", type=Path, default=Path("build/site"), help="the site's folder")
    parser.add_argument("--vendor", type=Path, default=Path("build/slides/vendor"),
                        help="where `make slides` put MathJax and require.js (node_modules/)")
    parser.add_argument("--title", default=COURSE_TITLE, help="the index page's heading")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        pages = build_site(args.notebooks, args.out, args.vendor, args.title)
    except SiteError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(f"wrote {len(pages)} pages to {args.out}/ in {time.perf_counter() - start:.1f} s: "
          f"open {args.out / 'index.html'} in a browser (no network needed)")


if __name__ == "__main__":
    main()
