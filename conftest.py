"""pytest's settings for the notebooks, from whatever folder it starts: `pytest --nbval notebooks/`
compares them as `make test` does, with the course's sanitizers and this Python as the kernel.
"""

from pathlib import Path

SANITIZE = Path(__file__).resolve().parent / "tests" / "nbval_sanitize.cfg"


def pytest_configure(config):
    option = config.option
    if getattr(option, "nbval", False) or getattr(option, "nbval_lax", False):
        option.nbval_sanitize_with = option.nbval_sanitize_with or str(SANITIZE)
        option.nbval_current_env = True  # not a kernel named python3 found elsewhere
