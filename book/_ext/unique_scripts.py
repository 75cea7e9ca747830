"""Write each inline ``<script>`` once per page.

Sphinx 7.4 lists an inline script that an extension adds after the builder starts twice (once
with file name None, once with ""). sphinx-thebe adds ``const THEBE_JS_URL = ...`` that way, and
declaring a ``const`` twice is a SyntaxError in the console of every page of the book.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _drop_repeated_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    seen = set()
    unique = []
    for script in context["script_files"]:
        key = (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    # In place: this list is the builder's, which later handlers may still add to.
    context["script_files"][:] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)  # after the others
    return {"parallel_read_safe": True, "parallel_write_safe": True}
