"""Hand numbers and figures from a lab to the book's chapters (MyST-NB ``glue``).

MyST-NB reads a glued value from a cell output that carries ``scrapbook`` metadata and MIME types
prefixed with ``application/papermill.record/``. Emitting that output here, instead of importing
``myst_nb``, keeps the labs free of a Sphinx dependency in Colab; the book build reads it exactly
as it reads ``myst_nb.glue``. A chapter then quotes the value with MyST's ``{glue:text}`` role,
naming the lab and the key, in a format of its choice (``:.3f``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from IPython.core.formatters import format_display_data
from IPython.display import display

GLUE_PREFIX = "application/papermill.record/"


def glue(name: str, value: Any, display_it: bool = False) -> None:
    """Record ``value`` under ``name`` for the book.

    Numbers are glued as plain Python floats/ints so that chapters can format them
    (``:.2f``). With ``display_it`` the value is also shown on the lab's page. Nothing is returned,
    so a cell that ends with ``glue(...)`` does not echo a bare number onto the page.
    """
    if not name.isidentifier():
        raise ValueError(f"glue name must be an identifier, got {name!r}")
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
        value = value.item()
    bundle, metadata = format_display_data(value)
    prefix = "" if display_it else GLUE_PREFIX
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    display({prefix + k: v for k, v in bundle.items()}, raw=True, metadata=metadata)


def glue_all(values: Mapping[str, Any]) -> None:
    """Glue every ``name: value`` of ``values`` for the book, in order (see :func:`glue`).

    One call per section keeps the book's plumbing to one short cell, which the book hides
    (tag ``remove-cell``). The names are checked before anything is glued, so a bad one glues
    nothing.
    """
    bad = [name for name in values if not name.isidentifier()]
    if bad:
        raise ValueError(f"glue names must be identifiers, got {bad}")
    for name, value in values.items():
        glue(name, value)
