"""Mark the bibliography's entries as list items, not as ``doc-biblioentry``.

docutils (0.18 and later) writes a run of citations, which is what sphinxcontrib-bibtex's
``{bibliography}`` becomes, as ``<div role="list" class="citation-list">`` holding one
``<div class="citation" role="doc-biblioentry">`` per entry. DPUB-ARIA 1.1 deprecates
``doc-biblioentry``, and a ``list`` may hold only ``listitem`` children, so axe-core reports
``aria-deprecated-role`` on every entry and ``aria-required-children`` on the list (the browser
test in tests_browser/ runs it). This extension writes the same elements with the same classes,
so the page looks the same, but gives each entry ``role="listitem"``: a screen reader announces
a list of N references, as it should.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx


def visit_citation(self: Any, node: nodes.citation) -> None:
    """Open the list before the first citation of a run, then the entry as a list item."""
    if not isinstance(node.previous_sibling(), nodes.citation):
        self.body.append('<div role="list" class="citation-list">\n')
    self.body.append(self.starttag(node, "div", classes=[node.tagname], role="listitem"))


def depart_citation(self: Any, node: nodes.citation) -> None:
    """Close the entry, and the list after the last citation of a run (as docutils does)."""
    self.body.append("</div>\n")
    if not isinstance(node.next_node(descend=False, siblings=True), nodes.citation):
        self.body.append("</div>\n")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_node(nodes.citation, override=True, html=(visit_citation, depart_citation))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
