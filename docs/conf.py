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
    "sphinx_gallery.gen_gallery",
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


# Example gallery: simulations/ and analyses/ rendered with their figures. Scripts run with
# short settings (NEUROFWP_QUICK) and write into a temporary folder (NEUROFWP_OUT); scripts that
# need other results or write into the package (make_tm_examples) are shown, not run.
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

os.environ.setdefault("NEUROFWP_QUICK", "1")
os.environ.setdefault("NEUROFWP_OUT", tempfile.mkdtemp(prefix="neurofwp-gallery-"))
_GALLERY_OUT = Path(os.environ["NEUROFWP_OUT"])
_SHOWN: set[Path] = set()
# analysis scripts the gallery runs, with their short command lines
_ANALYSIS_ARGUMENTS = {
    "stp_as_fast_weights.py": [],
    "stp_memory.py": ["--seconds", "20"],
}


def _argv(gallery_conf, script_vars):
    name = Path(script_vars["src_file"]).name
    return [*_ANALYSIS_ARGUMENTS.get(name, []), "--out", str(_GALLERY_OUT / Path(name).stem)]


def _written_figures(block, block_vars, gallery_conf):
    """neurofwp draws on bare matplotlib Figures saved as PNG (never registered with pyplot): show the PNGs
    a block wrote."""
    from sphinx_gallery.scrapers import figure_rst

    new = sorted(p for p in _GALLERY_OUT.rglob("*.png") if p not in _SHOWN)
    _SHOWN.update(new)
    images = []
    for png, target in zip(new, block_vars["image_path_iterator"], strict=False):  # the iterator is endless
        shutil.copyfile(png, target)
        images.append(target)
    return figure_rst(images, gallery_conf["src_dir"])


# the gallery's settings hold functions, which Sphinx cannot pickle into its environment cache
suppress_warnings = ["config.cache"]

sphinx_gallery_conf = {
    "examples_dirs": [str(ROOT / "simulations"), str(ROOT / "analyses")],
    "gallery_dirs": ["auto_simulations", "auto_analyses"],
    "filename_pattern": r"(plot_.*|stp_as_fast_weights|stp_memory)\.py$",
    "ignore_pattern": r"__init__\.py",
    "image_scrapers": (_written_figures,),
    "reset_argv": _argv,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "capture_repr": (),
}
