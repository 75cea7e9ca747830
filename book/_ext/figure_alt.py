"""Give every notebook figure in the book an alt text that says what it shows.

MyST-NB writes a plot's PNG as an ``<img>`` whose alt text is its file name. A notebook output
also carries a ``text/plain`` form of the figure; after ``effllm.plotting.use_style()`` that form
is ``effllm.plotting.describe(fig)``: the figure's titles, axis labels and source line. This
extension copies that text onto the image, both for figures shown in a lab and for figures that a
chapter pastes from a lab with ``{glue}`` and ``:doc:``. An explicit ``alt`` is left alone. A
figure without a description (a bare ``<Figure size ...>`` repr) keeps its file-name alt, and
the browser test (tests_browser/) fails on it, naming the page.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from myst_nb.ext.glue.crossref import read_glue_cache
from myst_nb.ext.glue.utils import PendingGlueReference
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

# A Python object's default repr, e.g. "<Figure size 770x286 with 1 Axes>": not a description.
_BARE_REPR = re.compile(r"^<.*>$", re.S)


def _description(text: str | None) -> str | None:
    text = (text or "").strip()
    return text if text and not _BARE_REPR.match(text) else None


def _set_alt(tree: nodes.Element, alt: str) -> None:
    for image in tree.findall(nodes.image):
        image.setdefault("alt", alt)


class DescribeNotebookImages(SphinxPostTransform):
    """Copy each output's plain-text description onto its image; mark glued figures."""

    default_priority = 3  # before MyST-NB picks one MIME type (4) and pastes glue (5)

    def run(self, **kwargs: Any) -> None:
        for bundle in list(self.document.findall(nodes.container)):
            if bundle.get("nb_element") != "mime_bundle":
                continue
            texts = [c.astext() for c in bundle.children if c.get("mime_type") == "text/plain"]
            if alt := _description(texts[0] if texts else None):
                _set_alt(bundle, alt)
        folder = self.env.mystnb_config.output_folder
        for ref in list(self.document.findall(PendingGlueReference)):
            if ref.gtype == "text":
                continue
            output = read_glue_cache(folder, ref.refdoc).get(ref.key, {})
            if alt := _description(output.get("data", {}).get("text/plain")):
                # The glue transform replaces `ref` by an image; keep the text next to it.
                wrapper = nodes.container(classes=["glued-output"], glued_alt=alt)
                ref.replace_self(wrapper)
                wrapper += ref


class DescribeGluedImages(SphinxPostTransform):
    """Put the text kept by DescribeNotebookImages onto the pasted image."""

    default_priority = 6  # after MyST-NB pastes cross-document glue (5)

    def run(self, **kwargs: Any) -> None:
        for wrapper in list(self.document.findall(nodes.container)):
            if alt := wrapper.attributes.pop("glued_alt", None):
                _set_alt(wrapper, alt)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_post_transform(DescribeNotebookImages)
    app.add_post_transform(DescribeGluedImages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
