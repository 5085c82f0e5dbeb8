"""The slide decks (`make slides`) as an audience sees them in a 1280x720 window: every slide and
sub-slide of every deck, full and lecture, opened from file:// in Chromium with the network cut
off. On each, every code cell, output, figure, table and displayed formula must be in full view
or reachable by scrolling the slide (nothing cut at its right edge, nothing clipped, nothing that
scrolls sideways), the page must log no error and ask for nothing remote. Down, Space and the
wheel must scroll a tall slide to its end before the deck moves on. Screenshots of each deck's
first and tallest slides go to build/screenshots/slides-*.png. Run with `make test-browser`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_server import free_port, wait_for_http

from course_tools import course, lecture

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = lecture.course_notebooks()  # those `make slides` exports
BUILT = ROOT / "build" / "slides"
SCREENSHOTS = ROOT / "build" / "screenshots"
DECKS = [f"{nb.stem}{suffix}" for nb in NOTEBOOKS
         for suffix in (course.FULL_DECK, course.LECTURE_DECK)]
VIEWPORT = {"width": 1280, "height": 720}


@pytest.fixture(scope="module")
def slides_dir(tmp_path_factory) -> Path:
    """build/slides if `make slides` wrote every deck from the current sources, else new decks."""
    vendor = BUILT / course.VENDOR
    if not (vendor / "node_modules" / "reveal.js").exists():
        pytest.skip(f"no reveal.js in {vendor}: run `make slides` once (needs npm)")
    sources = [*NOTEBOOKS, Path(course.__file__), Path(lecture.__file__)]
    newest = max(p.stat().st_mtime for p in sources)
    decks = [BUILT / name for name in DECKS]
    if all(d.exists() and d.stat().st_mtime >= newest for d in decks):
        return BUILT
    out = tmp_path_factory.mktemp("slides")
    (out / course.VENDOR).symlink_to(vendor)  # the decks load their scripts from beside them
    course.export_slides(NOTEBOOKS, out)
    return out


class DeckPage:
    """One Chromium page for every deck: files only, with its errors and refused requests."""

    def __init__(self, page):
        self.page, self.errors, self.refused = page, [], []
        page.route("**/*", self.files_only)
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def files_only(self, route) -> None:
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort()

    def open(self, deck: Path) -> None:
        """Load `deck` and wait until reveal.js, MathJax and every figure are ready."""
        self.errors.clear()
        self.refused.clear()
        self.page.goto(deck.as_uri())
        # reveal.js marks its root "ready" once it has laid out every slide.
        self.page.wait_for_selector(".reveal.ready", state="attached", timeout=60_000)
        self.page.evaluate("() => window.MathJax && new Promise(done => MathJax.Hub.Queue(done))")
        self.page.evaluate("() => Promise.all(Array.from(document.images, "
                           "img => img.decode().catch(() => null)))")
        self.page.evaluate("() => Reveal.configure({transition: 'none'})")
        self.page.add_script_tag(content=MATH_JS)


@pytest.fixture(scope="module")
def deck_page(browser) -> Iterator[DeckPage]:
    page = browser.new_page(viewport=VIEWPORT)
    yield DeckPage(page)
    page.close()


# A deck typesets a slide's formulas again once it is shown (they measure nothing while hidden):
# wait for that before measuring or taking a picture.
MATH_JS = """async function mathTypeset(slide) {
  if (window.MathJax && MathJax.Hub.getAllJax(slide).length) {
    await new Promise(done => MathJax.Hub.Queue(done));
  }
}"""

# For every slide in turn: is each code cell and figure within the slide's width, unclipped,
# and within what scrolling the slide reaches? Positions are in the deck's own pixels
# (reveal.js scales the deck to the window).
CHECK_SLIDES_JS = """async () => {
  const results = [];
  for (const slide of Reveal.getSlides()) {
    const {h, v} = Reveal.getIndices(slide);
    Reveal.slide(h, v);
    await mathTypeset(slide);
    slide.scrollTop = 0;
    const box = slide.getBoundingClientRect();
    const scale = box.width / slide.offsetWidth;
    const overflowY = getComputedStyle(slide).overflowY;
    const problems = [];
    if (slide.scrollWidth > slide.clientWidth + 1) {
      problems.push(`the slide is wider than the screen (${slide.scrollWidth} px)`);
    }
    if (slide.scrollHeight > slide.clientHeight + 1 && !['auto', 'scroll'].includes(overflowY)) {
      problems.push(`the slide is ${slide.scrollHeight} px tall and does not scroll`);
    }
    const items = slide.querySelectorAll(
      '.jp-InputArea-editor, .jp-OutputArea-output, .jp-OutputArea-output pre, img, svg, ' +
      '.jp-RenderedHTMLCommon table, .MathJax_Display');
    for (const item of items) {
      const r = item.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;  // not displayed
      const what = item.tagName === 'IMG' || item.tagName === 'svg' ? 'a figure'
        : item.tagName === 'TABLE' ? 'a table'
        : item.classList.contains('MathJax_Display') ? 'a formula'
        : item.closest('.jp-InputArea') ? 'a code cell' : 'an output';
      const text = (item.textContent || '').trim().slice(0, 40);
      const right = (r.right - box.left) / scale;
      const bottom = (r.bottom - box.top) / scale;
      if (right > slide.clientWidth + 1) {
        problems.push(`${what} is cut at the right edge (${Math.round(right)} px): ${text}`);
      }
      if (bottom > slide.scrollHeight + 1) {
        problems.push(`${what} ends below what scrolling reaches: ${text}`);
      }
      if (item.scrollWidth > item.clientWidth + 1) {
        problems.push(`${what} is wider than its box and scrolls sideways: ${text}`);
      }
      if (item.tagName === 'IMG' && !(item.complete && item.naturalWidth > 0)) {
        problems.push('a figure did not load');
      }
      // Clipped by a box between it and the slide (a max-height, a hidden overflow)?
      for (let up = item.parentElement; up && up !== slide; up = up.parentElement) {
        const style = getComputedStyle(up);
        if (style.overflowX === 'visible' && style.overflowY === 'visible') continue;
        const outer = up.getBoundingClientRect();
        if (r.right > outer.right + 1 || r.bottom > outer.bottom + 1) {
          problems.push(`${what} is clipped by a ${up.tagName.toLowerCase()}.${up.className}`);
          break;
        }
      }
    }
    results.push({h, v, height: slide.scrollHeight, problems});
  }
  return results;
}"""


def screenshot(deck_page: DeckPage, h: int, v: int, name: str) -> None:
    """Save slide (h, v), from its top, as build/screenshots/slides-`name`.png."""
    deck_page.page.evaluate("async ([h, v]) => { Reveal.slide(h, v); "
                            "await mathTypeset(Reveal.getCurrentSlide()); "
                            "await document.fonts.ready; "  # MathJax's fonts, or blank formulas
                            "Reveal.getCurrentSlide().scrollTop = 0; }", [h, v])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    deck_page.page.screenshot(path=str(SCREENSHOTS / f"slides-{name}.png"))


@pytest.mark.parametrize("name", DECKS, ids=lambda n: n.removesuffix(".slides.html"))
def test_every_slide_shows_its_code_and_figures(deck_page, slides_dir, name):
    deck = slides_dir / name
    assert deck.exists(), f"no {name}: run `make slides`"
    deck_page.open(deck)
    slides = deck_page.page.evaluate(CHECK_SLIDES_JS)
    assert len(slides) > 3, f"{name}: only {len(slides)} slides"
    problems = [f"slide {s['h']}.{s['v']}: {p}" for s in slides for p in s["problems"]]
    assert not problems, f"{name}:\n  " + "\n  ".join(problems)
    assert not deck_page.errors, f"{name}: errors in the console: {deck_page.errors}"
    assert not deck_page.refused, f"{name} tried to reach the network: {deck_page.refused}"
    stem = name.removesuffix(".slides.html")
    tallest = max(slides, key=lambda s: s["height"])
    screenshot(deck_page, 0, 0, f"{stem}-first")
    screenshot(deck_page, tallest["h"], tallest["v"], f"{stem}-tallest")


def test_lecture_decks_leave_out_what_is_not_on_the_lecture_path(slides_dir):
    for notebook in NOTEBOOKS:
        full = (slides_dir / f"{notebook.stem}{course.FULL_DECK}").read_text()
        short = (slides_dir / f"{notebook.stem}{course.LECTURE_DECK}").read_text()
        assert "# BEGIN SOLUTION" in full and "# BEGIN SOLUTION" not in short, notebook.name
        assert len(short) < len(full), notebook.name
        optional = re.compile(r"<h[23][^>]*>\s*" + re.escape(lecture.OPTIONAL_PREFIX))
        assert not optional.search(short), f"{notebook.name}: an optional section in its lecture"


def tall_slide(deck_page: DeckPage) -> tuple[int, int] | None:
    """(h, v) of a slide taller than the screen, with a slide after it, in the open deck."""
    found = deck_page.page.evaluate("""() => {
      for (const slide of Reveal.getSlides().slice(1, -1)) {
        const {h, v} = Reveal.getIndices(slide);
        Reveal.slide(h, v);
        if (slide.scrollHeight > slide.clientHeight + 100) return [h, v];
      }
      return null;
    }""")
    return tuple(found) if found else None


def slide_state(deck_page: DeckPage) -> dict:
    """Where the deck is, how far its slide is scrolled, and how far it can scroll."""
    return deck_page.page.evaluate("""() => {
      const slide = Reveal.getCurrentSlide(), {h, v} = Reveal.getIndices();
      return {at: [h, v], top: slide.scrollTop, end: slide.scrollHeight - slide.clientHeight};
    }""")


def settled(deck_page: DeckPage) -> dict:
    """slide_state once the slide's smooth scrolling has stopped."""
    state = slide_state(deck_page)
    for _ in range(40):
        deck_page.page.wait_for_timeout(60)
        now = slide_state(deck_page)
        if now == state:
            break
        state = now
    return state


def test_keys_and_the_wheel_scroll_a_tall_slide_before_moving_on(deck_page, slides_dir):
    for name in sorted(DECKS, key=lambda n: "03_flops" not in n):  # 03 has tall slides
        deck_page.open(slides_dir / name)
        if (start := tall_slide(deck_page)) is not None:
            break
    else:
        pytest.skip("no deck has a slide taller than the screen")
    page = deck_page.page
    page.evaluate("([h, v]) => { Reveal.slide(h, v); Reveal.getCurrentSlide().scrollTop = 0; }",
                  list(start))
    on_slide = []
    for _ in range(30):  # Down or Space until the deck moves on: not before the slide's end
        page.keyboard.press("Space" if len(on_slide) % 2 else "ArrowDown")
        state = settled(deck_page)
        if state["at"] != list(start):
            break
        on_slide.append(state)
    else:
        pytest.fail(f"30 presses of Down did not leave slide {start}")
    tops = [s["top"] for s in on_slide]
    assert tops and tops == sorted(tops) and tops[0] > 0, tops
    assert tops[-1] >= on_slide[-1]["end"] - 2, f"moved on at {tops[-1]} of {on_slide[-1]}"
    # Up comes back to the tall slide at its end, then scrolls it up.
    page.keyboard.press("ArrowUp")
    back = settled(deck_page)
    assert back["at"] == list(start) and back["top"] >= back["end"] - 2, back
    page.keyboard.press("ArrowUp")
    assert settled(deck_page)["top"] < back["top"]
    # The wheel (or a trackpad) scrolls the slide too, and stays on it.
    page.evaluate("() => { Reveal.getCurrentSlide().scrollTop = 0; }")
    page.mouse.move(VIEWPORT["width"] / 2, VIEWPORT["height"] / 2)
    page.mouse.wheel(0, 300)
    wheeled = settled(deck_page)
    assert wheeled["at"] == list(start) and wheeled["top"] > 0, wheeled
    assert not deck_page.errors, deck_page.errors


def test_exported_slides_work_offline(browser):
    slides = ROOT / "build" / "slides"
    deck = slides / f"{NOTEBOOKS[0].stem}.slides.html"
    assert deck.exists(), "export the decks first: make slides (make test-browser does)"
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                               "127.0.0.1", "--directory", str(slides)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/")
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        outside = []

        def only_local(route):
            if route.request.url.startswith(f"http://127.0.0.1:{port}/"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_local)
        page.goto(f"http://127.0.0.1:{port}/{deck.name}")
        # reveal.js marks its root "ready" once it has laid out every slide.
        page.wait_for_selector(".reveal.ready", state="attached", timeout=60_000)
        assert page.evaluate("() => document.querySelectorAll('.reveal .slides > section').length") > 3
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "offline-slides.png"))
        assert not outside, f"the deck tried to reach the network: {outside}"
        page.close()
    finally:
        server.terminate()
