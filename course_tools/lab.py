"""JupyterLab and RISE as the course uses them: `make lab` and the browser tests start JupyterLab
the same way, and `make execute` writes the slideshow settings into every notebook.

    python -m course_tools.lab --notebook-dir=notebooks     # what `make lab` runs

Out of the box JupyterLab asks every new user whether to fetch Jupyter news from the internet
and checks for newer versions of itself. The course turns both off: the server gets flags (no
news feed, no update check) and the page gets default settings (no pop-up asking about news).
JupyterLab reads default settings from `labconfig/default_setting_overrides.json` in any folder
on Jupyter's config path: this module writes one into a temporary folder and adds that folder to
JUPYTER_CONFIG_PATH for the server it starts. Nothing is written into the environment, and a
user's own settings still win over these defaults.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

# Page settings, by plugin: never fetch news (so never ask), never look for a newer JupyterLab.
SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
}
# The server side of the same: no news feed to serve, no update check against a package index.
SERVER_FLAGS = ("--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")

# RISE (jupyterlab-rise) reads its settings from a notebook's "rise" metadata, over its own
# defaults; `make execute` writes these into every notebook (course.normalize), so a notebook
# presents the same in any JupyterLab that has RISE.
RISE_CSS = """
/* Projector-size text at 1280x720: JupyterLab's 14 px text and 13 px code are for a laptop. An
   emoji font, where one is installed, comes before the monospace fallback's empty boxes. */
body.rise-enabled {
  --jp-content-font-size1: 24px;
  --jp-code-font-size: 18px;
  --jp-code-font-family: var(--jp-code-font-family-default), "Noto Color Emoji",
    "Apple Color Emoji", "Segoe UI Emoji";
}
/* RISE pins code and output text at 14 px; a prompt in 18 px code would not fit its column. */
body.rise-enabled .reveal :is(.jp-InputArea, .jp-OutputArea) pre {
  font-size: var(--jp-code-font-size);
}
body.rise-enabled .reveal .jp-OutputPrompt { font-size: 0.9rem; }
/* A folded cell's first line (a worked solution's) would inherit reveal.js's 67 px. */
body.rise-enabled .reveal .jp-Placeholder-content { font-size: var(--jp-code-font-size); }
/* Long lines wrap rather than run off the slide: RISE hides a pre's overflow. */
body.rise-enabled .reveal .cm-content {
  white-space: pre-wrap; overflow-wrap: anywhere; flex-shrink: 1;
}
body.rise-enabled .reveal :is(.jp-OutputArea, .jp-RenderedHTMLCommon) pre {
  white-space: pre-wrap; overflow-wrap: anywhere; width: auto;
}
/* reveal.js's white theme capitalizes headings, and FLOP/s is not FLOP/S. */
body.rise-enabled .reveal :is(h1, h2, h3, h4, h5, h6) { text-transform: none; }
"""
RISE = {
    # Themes other than white, black and serif load their fonts from the internet.
    "theme": "white",
    # A slide taller than the screen scrolls (RISE makes it a box 95% of the screen high).
    "scroll": True,
    # RISE's stylesheet stretches the slides to the full width whatever `width` says, and a
    # fixed size scaled up to a larger screen would push the scrolling box's bottom off it:
    # slides fill the window instead, 16:9 on a 16:9 screen.
    "width": "100%",
    "height": "100%",
    # RISE adds this HTML to the slideshow as it is: styles that travel with the notebook (a
    # rise.css beside it would be a file to keep beside every copy).
    "overlay": f"<style>{RISE_CSS}</style>",
}


def write_config(config_dir: Path, settings: Mapping[str, dict] = SETTINGS) -> Path:
    """Write `settings` as JupyterLab's default settings into config folder `config_dir`."""
    path = config_dir / "labconfig" / "default_setting_overrides.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1) + "\n")
    return path


def lab_env(config_dir: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with `config_dir` first on JUPYTER_CONFIG_PATH."""
    env = dict(os.environ if env is None else env)
    paths = [str(config_dir), *filter(None, env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep))]
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(paths)
    return env


def lab_command(args: Sequence[str] = (), python: str = sys.executable) -> list[str]:
    """The command that starts JupyterLab with the course's flags, then `args`."""
    return [python, "-m", "jupyter", "lab", *SERVER_FLAGS, *args]


def run_until_exit(command: list[str], env: Mapping[str, str]) -> int:
    """Run `command` to its end and return its exit status, as if it had been started directly."""
    with subprocess.Popen(command, env=env) as server:
        # `kill` reaches only this process: pass it on rather than leave the server running.
        signal.signal(signal.SIGTERM, lambda *_: server.terminate())
        while True:
            try:
                return server.wait()
            except KeyboardInterrupt:
                # Ctrl-C reached JupyterLab too (same terminal): it asks to confirm, then stops.
                continue


def main(argv: Sequence[str] | None = None) -> int:
    """Start JupyterLab with the course's settings; arguments go to `jupyter lab`."""
    args = sys.argv[1:] if argv is None else list(argv)
    with tempfile.TemporaryDirectory(prefix="course-lab-") as config_dir:
        write_config(Path(config_dir))
        return run_until_exit(lab_command(args), lab_env(Path(config_dir)))


if __name__ == "__main__":
    sys.exit(main())
