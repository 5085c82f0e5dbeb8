"""Where the course is not installed (`pip install -e .`), import it from this checkout.

`make` installs it, and then nothing here applies: the tests, and the kernels they start, import
`lecture_utils` as any user would. A checkout used without installing (a GPU machine's own
Python, `make test CURRENT_ENV=1`) gets the repository on the path, for kernels too.
"""

import importlib.metadata
import os
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
try:
    importlib.metadata.distribution("pytorch-resource-accounting")
except importlib.metadata.PackageNotFoundError:
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    if ROOT not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT,
                                                                 os.environ.get("PYTHONPATH")]))
