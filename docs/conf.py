"""Sphinx configuration of the neurofwp documentation (``sphinx-build -W -b html docs <out>``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document the checkout, also when it is not installed

import neurofwp  # noqa: E402

project = "neurofwp"
author = "neurofwp authors"
copyright = "neurofwp authors"
version = release = neurofwp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",
]

root_doc = "index"
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown pages: $...$ and $$...$$ math, amsmath environments, ::: fences, and
# anchors for headings down to ### so that pages can link to sections (tensor.md#...).
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# API reference: members in source order, type hints in the signatures, Google-style
# "Args:" / "Returns:" sections (napoleon) beside the reST field lists. Docstrings are not
# inherited: an undocumented override (``forward`` of an ``nn.Module``) would otherwise show
# torch's generic text.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_inherit_docstrings = False
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "alabaster"
html_title = f"neurofwp {release}"
html_theme_options = {"description": "Fast weight programmers and synaptic plasticity", "fixed_sidebar": True}
