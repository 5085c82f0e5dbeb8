import matplotlib as mpl
import pytest

from lecture_utils.display import show_source, use_course_style
from lecture_utils.napkin import training_flops


def test_show_source_renders_markdown():
    shown = show_source(training_flops)
    assert "def training_flops" in shown.data and shown.data.startswith("```python")


def test_show_source_rejects_non_code():
    with pytest.raises(TypeError, match="function, method or class"):
        show_source(42)


def test_course_style_is_readable_on_dark_themes():
    use_course_style()
    assert mpl.rcParams["figure.facecolor"] == "white"
    assert mpl.rcParams["font.size"] >= 12
