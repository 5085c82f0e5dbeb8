"""The course as a student and an instructor see it: JupyterLab and slides in a real browser.

Starts JupyterLab headless, drives the system's Chromium with Playwright, runs every notebook's
cells in the page, and checks for error outputs and rendered figures; then starts the RISE
slideshow and opens an exported offline deck with the network cut off. Screenshots go to
build/screenshots/. Run with `make test-browser`.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCREENSHOTS = ROOT / "build" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"nothing answered at {url} within {timeout} s")


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A headless JupyterLab serving notebooks/: yields (base URL, token)."""
    port, token = free_port(), secrets.token_hex(16)
    # Render every cell (JupyterLab otherwise only renders the cells in view, so figures further
    # down would not be in the page) and do not ask about news.
    settings = tmp_path_factory.mktemp("settings")
    for plugin, values in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
    }.items():
        target = settings / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    # No PYTHONPATH: the kernels import the course as installed, as when a student starts lab.
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path_factory.mktemp("cfg")),
               JUPYTERLAB_SETTINGS_DIR=str(settings))
    log = open(tmp_path_factory.mktemp("log") / "lab.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={ROOT / 'notebooks'}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
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


def test_rise_slideshow_starts(lab, browser):
    base, token = lab
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(f"{base}/rise/{NOTEBOOKS[0].name}?token={token}")  # RISE's own page
    page.wait_for_selector(".reveal .slides section", state="attached", timeout=90_000)
    page.wait_for_function("() => document.querySelectorAll('.reveal .slides section').length > 3",
                           timeout=60_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "rise-slideshow.png"))
    page.close()


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
        page.screenshot(path=str(SCREENSHOTS / "offline-slides.png"))
        assert not outside, f"the deck tried to reach the network: {outside}"
        page.close()
    finally:
        server.terminate()


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
