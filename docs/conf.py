"""Sphinx configuration for the transcode-worker manual (``make docs``)."""

import pathlib
import re

_init = pathlib.Path(__file__).resolve().parent.parent / "transcode_worker" / "__init__.py"
# read the version without importing the package (its dependencies need not be installed)
release = re.search(r'^__version__ = "([^"]+)"', _init.read_text(), re.M).group(1)
version = release

project = "transcode-worker"
copyright = "the transcode-worker authors"

extensions = []
root_doc = "index"
exclude_patterns = ["_build"]
language = "en"

html_theme = "alabaster"
html_static_path = []
html_theme_options = {
    "description": "On-demand FFmpeg-to-HLS transcode worker",
    "fixed_sidebar": True,
}
