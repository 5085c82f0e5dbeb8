"""pytest's settings for the tests and the notebooks, from whatever folder it starts:
`pytest --nbval notebooks/` compares them as `make test` does, with the course's sanitizers and
this Python as the kernel.

`make` installs the course (`pip install -e .`): tests and kernels import it as any user would.
A checkout used without installing it (a GPU machine's own Python, `make test CURRENT_ENV=1`)
gets the repository on the path, for the kernels too.
"""

import importlib.metadata
import os
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent)
SANITIZE = Path(ROOT) / "tests" / "nbval_sanitize.cfg"

try:
    importlib.metadata.distribution("pytorch-resource-accounting")
except importlib.metadata.PackageNotFoundError:
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    if ROOT not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT,
                                                                 os.environ.get("PYTHONPATH")]))


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
