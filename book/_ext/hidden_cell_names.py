"""Name the button of a hidden lab cell by the text it shows.

MyST-NB folds a cell tagged ``hide-input`` (the labs' solutions) into a ``<details>`` whose
``<summary>`` shows the prompt, "Try it yourself first, then show the solution", but carries
``aria-label="Toggle hidden content"``. A screen reader announces that label instead of the shown
text, and a reader using voice control cannot say what they see: WCAG 2.5.3, which axe-core
reports as ``label-content-name-mismatch`` (the browser test in tests_browser/ runs it). This
extension writes the same markup without the label, so the name is the prompt on the screen.
"""

from __future__ import annotations

from html import escape
from typing import Any

from myst_nb.sphinx_ import HideCodeCellNode
from sphinx.application import Sphinx


def visit_hidden_cell(self: Any, node: HideCodeCellNode) -> None:
    """MyST-NB 1.x's ``visit_HideCellInput`` less the summary's aria-label."""
    classes = " ".join(node["classes"])
    self.body.append(f'<details class="admonition hide {classes}">\n<summary>\n')
    self.body.append(f'<p class="collapsed admonition-title">{escape(node["prompt_show"])}</p>\n')
    self.body.append(f'<p class="expanded admonition-title">{escape(node["prompt_hide"])}</p>\n')
    self.body.append("</summary>\n")


def depart_hidden_cell(self: Any, node: HideCodeCellNode) -> None:
    self.body.append("</details>\n")


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("myst_nb")  # its handlers first, so that these replace them
    app.add_node(HideCodeCellNode, override=True, html=(visit_hidden_cell, depart_hidden_cell))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
