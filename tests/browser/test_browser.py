"""The course as a student and an instructor see it: JupyterLab and slides in a real browser.

Starts JupyterLab headless as `make lab` starts it (course_tools.lab), drives the system's
Chromium with Playwright, checks that it asks nothing about news or updates, runs every
notebook's cells in the page and checks for error outputs and rendered figures; then presents a
long notebook with RISE at a projector's 1280x720, slide by slide, with the network cut off, and
checks figures in the dark theme. Screenshots go to build/screenshots/. Run with
`make test-browser`.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_server import free_port, wait_for_http

from course_tools.lab import RISE, lab_command, lab_env, write_config

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCREENSHOTS = ROOT / "build" / "screenshots"
# A long notebook to present: code, outputs, figures, and a slide with a sub-slide.
RISE_NOTEBOOK = next((p for p in NOTEBOOKS if p.name.startswith("03_")), NOTEBOOKS[-1])
PROJECTOR = {"width": 1280, "height": 720}
# Smallest readable sizes at 1280x720 from the back of a room, in CSS pixels.
MIN_TEXT_PX, MIN_CODE_PX = 24, 18


def get_json(url: str) -> dict:
    """The JSON document at `url`."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def cut_network(page, base: str) -> list[str]:
    """Let `page` reach only `base`: the list returned collects what else it tried to reach."""
    outside: list[str] = []

    def only_local(route):
        if route.request.url.startswith(f"{base}/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    return outside


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A headless JupyterLab serving notebooks/, started as `make lab` starts it: (URL, token)."""
    port, token = free_port(), secrets.token_hex(16)
    # The course's settings, exactly as `make lab` writes them (no news, no update check).
    config = tmp_path_factory.mktemp("config")
    write_config(config)
    # For the tests alone, in a settings folder of their own (a user's settings stay out):
    # render every cell, as JupyterLab otherwise renders only the cells in view, so figures
    # further down would not be in the page; and never autosave, so the notebooks the tests
    # run (in notebooks/ itself) keep their stored outputs.
    settings = tmp_path_factory.mktemp("settings")
    for plugin, values in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    }.items():
        target = settings / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    # No PYTHONPATH: the kernels import the course as installed, as when a student starts lab.
    env = lab_env(config, dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path_factory.mktemp("cfg")),
                               JUPYTERLAB_SETTINGS_DIR=str(settings)))
    log = open(tmp_path_factory.mktemp("log") / "lab.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        lab_command(["--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
                     f"--IdentityProvider.token={token}",
                     f"--ServerApp.root_dir={ROOT / 'notebooks'}",
                     "--LabApp.expose_app_in_browser=True"]),
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/api/status?token={token}")
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_lab_asks_nothing_about_news_or_updates(lab, browser):
    """JupyterLab as `make lab` opens it: no pop-up about news, no news or update requests."""
    base, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    outside = cut_network(page, base)
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/lab/api/" in r.url else None)
    page.goto(f"{base}/lab/workspaces/news?reset&token={token}")
    page.wait_for_function("() => !!window.jupyterapp", timeout=60_000)
    page.evaluate("() => window.jupyterapp.restored")
    # JupyterLab decides whether to ask right after it has restored the page: give it time.
    page.wait_for_timeout(2_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "lab-no-news.png"))
    toasts = page.evaluate("() => Array.from(document.querySelectorAll('.Toastify__toast'),"
                           " t => t.innerText)")
    assert not toasts, f"JupyterLab shows notifications: {toasts}"
    assert not [u for u in asked if "/lab/api/news" in u or "/lab/api/update" in u], asked
    page_config = json.loads(page.locator("#jupyter-config-data").text_content())
    assert page_config["news"] == {"disabled": True}, "the server would fetch news"
    schema = get_json(f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification"
                      f"?token={token}")["schema"]["properties"]
    assert schema["fetchNews"]["default"] == "false"
    assert schema["checkForUpdates"]["default"] is False
    assert get_json(f"{base}/lab/api/update?token={token}")["notification"] is None
    assert not outside, f"JupyterLab tried to reach the network: {outside}"
    page.close()


# In-page helpers: find this notebook's panel by path (never "whatever has focus"), then read
# its kernel status and each code cell's tags, execution count and output types.
PANEL_JS = """(path) => {
  for (const w of window.jupyterapp.shell.widgets('main')) {
    if (w.context && w.context.path === path) return w;
  }
  return null;
}"""
KERNEL_IDLE_JS = f"""(path) => {{
  const panel = ({PANEL_JS})(path);
  const session = panel && panel.sessionContext && panel.sessionContext.session;
  return !!(session && session.kernel && session.kernel.status === 'idle');
}}"""
CELLS_JS = f"""(path) => {{
  const panel = ({PANEL_JS})(path);
  if (!panel) return null;
  const cells = panel.content.model.cells;
  const out = [];
  for (let i = 0; i < cells.length; i++) {{
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    out.push({{tags: cell.getMetadata('tags') || [], count: cell.executionCount,
              outputs: cell.outputs.toJSON().map(o => o.output_type)}});
  }}
  return out;
}}"""
ALL_RAN_JS = f"""(path) => {{
  const cells = ({CELLS_JS})(path);
  return !!cells && cells.length > 0 && cells.every(c => c.count !== null);
}}"""


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_jupyterlab(lab, browser, notebook):
    base, token = lab
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    # A workspace of its own, reset: JupyterLab would otherwise reopen earlier notebooks.
    page.goto(f"{base}/lab/workspaces/{notebook.stem}/tree/{notebook.name}?reset&token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", state="attached", timeout=60_000)
    page.wait_for_function(KERNEL_IDLE_JS, arg=notebook.name, timeout=90_000, polling=500)
    page.evaluate(f"""(path) => {{
      const panel = ({PANEL_JS})(path);
      window.jupyterapp.shell.activateById(panel.id);
      return window.jupyterapp.commands.execute('notebook:run-all-cells');
    }}""", notebook.name)
    page.wait_for_function(ALL_RAN_JS, arg=notebook.name, timeout=180_000, polling=500)
    page.wait_for_function(KERNEL_IDLE_JS, arg=notebook.name, timeout=60_000, polling=500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{notebook.stem}.png"), full_page=False)

    cells = page.evaluate(CELLS_JS, notebook.name)
    unexpected = [i for i, c in enumerate(cells)
                  if "error" in c["outputs"] and "raises-exception" not in c["tags"]]
    assert not unexpected, f"{notebook.name}: error output in code cells {unexpected}"
    stored = json.loads(notebook.read_text())
    stored_figures = sum("image/png" in o.get("data", {}) for c in stored["cells"]
                         if c["cell_type"] == "code" for o in c.get("outputs", []))
    rendered = page.evaluate("""() => Array.from(document.querySelectorAll(
        '.jp-RenderedImage img')).filter(img => img.complete && img.naturalWidth > 0).length""")
    assert rendered >= stored_figures >= 1, f"{notebook.name}: {rendered} of {stored_figures} figures"
    # Free the kernel before the next notebook starts its own.
    page.evaluate(f"(path) => ({PANEL_JS})(path).sessionContext.shutdown()", notebook.name)
    page.close()


# RISE's page, in-page helpers. Slides are sections in sections: reveal.js's horizontal slides,
# each holding its sub-slides; RISE shows one sub-slide at a time (class "present").
SLIDES_JS = """() => Array.from(document.querySelectorAll('.reveal .slides > section'),
                       s => s.querySelectorAll(':scope > section').length)"""
PRESENT = ".reveal .slides > section.present > section.present"
PRESENT_JS = f"document.querySelector('{PRESENT}')"
# The slide `id` is present and has stopped moving: reveal.js slides it in, and RISE animates
# most sizes, with CSS transitions that the page lists while they run.
SETTLED_JS = f"""(id) => {{
  const slide = {PRESENT_JS};
  const slides = document.querySelector('.reveal .slides');
  return !!slide && slide.id === id && !document.getAnimations().some(
      a => a.playState === 'running' && a.effect && slides.contains(a.effect.target));
}}"""
FONT_SIZES_JS = """() => {
  const sizes = selector => Array.from(document.querySelectorAll(selector))
      .filter(e => !e.closest('.reveal-skip') && e.textContent.trim())  // every slide's
      .map(e => parseFloat(getComputedStyle(e).fontSize));
  return {text: sizes('.jp-MarkdownCell .jp-RenderedMarkdown :is(p, li)'),
          code: sizes('.jp-InputArea .cm-line, .jp-OutputArea-output pre, '
                      + '.jp-Placeholder-content')};
}"""
# Every code cell, text output and figure of the present slide, brought into view as a viewer
# would: by scrolling the slide where RISE made it scroll, else not at all. Returns what fails.
SLIDE_FITS_JS = f"""() => {{
  const slide = {PRESENT_JS};
  const [vw, vh] = [window.innerWidth, window.innerHeight];
  const scrolls = ['auto', 'scroll'].includes(getComputedStyle(slide).overflowY);
  const view = scrolls ? slide.getBoundingClientRect() : {{top: 0, bottom: vh, height: vh}};
  const problems = [];
  if (view.top < -1 || view.bottom > vh + 1) problems.push(`its box runs off the screen`);
  const cells = Array.from(document.querySelectorAll('.jp-Cell'));
  const items = slide.querySelectorAll(
      '.jp-CodeCell .jp-InputArea-editor, .jp-OutputArea-output :is(img, pre)');
  for (const el of items) {{
    if (!el.offsetParent) continue;  // not shown: a skipped cell, a folded solution
    const what = `cell ${{cells.indexOf(el.closest('.jp-Cell'))}} ` +
        (el.tagName === 'IMG' ? 'figure' : el.tagName === 'PRE' ? 'output' : 'code');
    if (scrolls) slide.scrollTop += el.getBoundingClientRect().top - view.top;
    let box = el.getBoundingClientRect();
    const topShown = box.top >= view.top - 1 && box.top < view.bottom;
    if (scrolls && box.height > view.height) {{  // taller than the box: scroll on to its end
      slide.scrollTop += box.bottom - view.bottom;
      box = el.getBoundingClientRect();
    }}
    if (!topShown || box.bottom > view.bottom + 1 || box.bottom <= view.top)
      problems.push(`${{what}} cannot be brought fully into view`);
    if (el.tagName === 'IMG' && box.height > view.height + 1)
      problems.push(`${{what}} is taller than the slide`);
    if (box.left < -1 || box.right > vw + 1) problems.push(`${{what}} runs off the side`);
    const lines = el.querySelector('.cm-scroller') || el;
    if (lines.scrollWidth > lines.clientWidth + 1) problems.push(`${{what}}: long lines cut`);
  }}
  slide.scrollTop = 0;
  return {{problems, overflow: scrolls ? slide.scrollHeight - slide.clientHeight : 0}};
}}"""


def test_rise_slides_fit_a_1280x720_projector(lab, browser):
    """A long notebook presented with RISE, full screen at 1280x720, as in a lecture hall."""
    base, token = lab
    notebook = RISE_NOTEBOOK
    assert json.loads(notebook.read_text())["metadata"].get("rise") == RISE, (
        f"{notebook.name} lacks the course's RISE settings: make execute writes them")
    for old in SCREENSHOTS.glob("rise-*.png"):
        old.unlink()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport=PROJECTOR)
    outside = cut_network(page, base)
    page.goto(f"{base}/rise/{notebook.name}?token={token}")  # the slideshow's own page
    page.wait_for_selector(".reveal.ready", state="attached", timeout=90_000)
    # F (in command mode) is RISE's full-screen key: the slides then fill the screen.
    page.locator(".jp-Notebook").focus()
    page.keyboard.press("f")
    page.wait_for_function("() => !!document.fullscreenElement", timeout=10_000)

    sizes = page.evaluate(FONT_SIZES_JS)
    assert sizes["text"] and min(sizes["text"]) >= MIN_TEXT_PX, f"text: {sorted(sizes['text'])}"
    assert sizes["code"] and min(sizes["code"]) >= MIN_CODE_PX, f"code: {sorted(sizes['code'])}"
    # Nor oversized: reveal.js's 67 px reaches whatever JupyterLab does not size itself.
    assert max(sizes["code"]) <= 2 * MIN_CODE_PX, f"code: {sorted(sizes['code'])}"

    failures, wheeled = {}, False
    for h, subslides in enumerate(page.evaluate(SLIDES_JS)):
        for v in range(subslides):
            page.evaluate(f"() => {{ location.hash = '#/{h}/{v}'; }}")  # reveal.js follows it
            page.wait_for_function(SETTLED_JS, arg=f"slide-{h}-{v}", polling=100,
                                   timeout=10_000)
            fits = page.evaluate(SLIDE_FITS_JS)
            if fits["problems"]:
                failures[f"slide {h}.{v}"] = fits["problems"]
            page.screenshot(path=str(SCREENSHOTS / f"rise-{notebook.stem[:2]}-{h:02d}-{v}.png"))
            if fits["overflow"] > 0 and not wheeled:
                # A presenter's mouse wheel or trackpad scrolls a long slide, too.
                slide = page.locator(PRESENT)
                box = slide.bounding_box()
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                before = slide.evaluate("s => s.scrollTop")
                page.mouse.wheel(0, 400)
                page.wait_for_function(f"() => {PRESENT_JS}.scrollTop > {before}", timeout=5_000)
                page.screenshot(path=str(SCREENSHOTS / f"rise-{notebook.stem[:2]}-scrolled.png"))
                wheeled = True
    assert not failures, f"{notebook.name} at 1280x720: {failures}"
    assert wheeled, "no slide was long enough to scroll: pick a longer notebook"
    assert not outside, f"the slideshow tried to reach the network: {outside}"
    page.close()


def test_figures_readable_in_dark_theme(lab, browser):
    base, token = lab
    notebook = NOTEBOOKS[0]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{base}/lab/workspaces/dark/tree/{notebook.name}?reset&token={token}")
    page.wait_for_selector(".jp-RenderedImage img", state="attached", timeout=60_000)
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme',"
                  " {theme: 'JupyterLab Dark'})")
    try:
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'",
                               timeout=30_000)
        # A theme change shows a splash screen over the page while the new CSS loads.
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=30_000)
        figure = page.locator(".jp-RenderedImage img").first
        figure.scroll_into_view_if_needed()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "dark-theme.png"))
        # The course style gives every figure an opaque white background, so black text and
        # axes stay readable on a dark page: read the figure's corner pixel.
        corner = figure.evaluate("""img => {
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const ctx = c.getContext('2d');
            ctx.drawImage(img, 0, 0);
            return Array.from(ctx.getImageData(2, 2, 1, 1).data);
        }""")
        assert corner == [255, 255, 255, 255], f"figure background is {corner}, not opaque white"
    finally:
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme',"
                      " {theme: 'JupyterLab Light'})")
        page.close()
