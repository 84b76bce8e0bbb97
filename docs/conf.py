"""Sphinx configuration for the skmixed documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html``.  The build is
offline (no intersphinx, no notebook execution) so that it runs in CI.
"""

import re

import skmixed

project = "skmixed"
author = "skmixed developers"
copyright = "2026, skmixed developers"
release = skmixed.__version__
version = release

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "_templates", "README.md", "Thumbs.db", ".DS_Store"]

# API reference: one page per public name, generated at build time.
autosummary_generate = True
autodoc_default_options = {"inherited-members": False}
autodoc_typehints = "none"
# numpydoc lists the methods of each class itself; autosummary's own method
# tables would duplicate them (and warn about inherited sklearn methods).
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"skmixed {release}"
html_theme_options = {
    "description": "Linear mixed-effects models (lme4's lmer) as scikit-learn "
    "estimators",
    "fixed_sidebar": True,
    "page_width": "1200px",
    "sidebar_width": "240px",
}


# Shapes such as ``(n_features_in_,)`` or ``(n, *shape)`` in parameter types
# are plain text to numpydoc, and reStructuredText reads a word ending in "_"
# as a link target and "*" as emphasis.  Escape both before numpydoc sees the
# docstring.
_SHAPE = re.compile(r"shape \(([^)]*)\)")
_TRAILING_UNDERSCORE = re.compile(r"(\w)_(?=[,)\s]|$)")


def _escape_shape(match):
    inner = match.group(1).replace("*", "\\*")  # (n, *shape): no emphasis
    return "shape (" + _TRAILING_UNDERSCORE.sub(r"\1\\_", inner) + ")"


def _escape_shapes(app, what, name, obj, options, lines):
    lines[:] = [_SHAPE.sub(_escape_shape, line) for line in lines]


def _skip_request_methods(app, what, name, obj, skip, options):
    # scikit-learn attaches set_{fit,predict,score}_request to each estimator
    # class; their docstrings point at sklearn's own glossary.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_request_methods)
    # Before numpydoc's own handler (priority 500).
    app.connect("autodoc-process-docstring", _escape_shapes, priority=100)
