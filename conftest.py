"""pytest's settings for the notebooks, from whatever folder it starts: `pytest --nbval notebooks/`
compares them as `make test` does, with the course's sanitizers and this Python as the kernel.
"""

import os
import sys
from pathlib import Path

SANITIZE = Path(__file__).resolve().parent / "tests" / "nbval_sanitize.cfg"


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # pytest-xdist runs one worker per core: each worker, and each kernel it starts, gets
        # one thread, or their thread pools contend for the cores and spin (about a third of
        # the suite's CPU time went to that on a 2-core machine).
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
    option = config.option
    if getattr(option, "nbval", False) or getattr(option, "nbval_lax", False):
        option.nbval_sanitize_with = option.nbval_sanitize_with or str(SANITIZE)
        option.nbval_current_env = True  # not a kernel named python3 found elsewhere
