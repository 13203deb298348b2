"""Sphinx extension of the book: "Edit this page" of an executed chapter opens its template.

The book's chapters are papermill outputs under ``book/generated/`` (not committed); the file a
reader can edit is the template in ``notebooks/`` that :mod:`vssl_helpers.pipeline` recorded under
``metadata.vssl.template`` of the executed notebook. A generated Markdown page (the real-data
book's front page) names its source on its first line: ``<!-- vssl-template: <path> -->``. Enabled
in ``_config.yml`` under ``sphinx.extra_extensions``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["template_of", "setup"]

#: After pydata-sphinx-theme defines ``get_edit_provider_and_url`` (priority 500) and before
#: sphinx-book-theme calls it to draw the header buttons (priority 501).
_PRIORITY = 500.5


def template_of(notebook: Path) -> str | None:
    """The template path recorded by the pipeline in an executed notebook (or on the first line of
    a generated Markdown page), or None."""
    if notebook.suffix == ".md" and notebook.is_file():
        first = notebook.read_text(encoding="utf-8").split("\n", 1)[0].strip()
        if first.startswith("<!-- vssl-template:") and first.endswith("-->"):
            return first[len("<!-- vssl-template:"):-3].strip() or None
        return None
    if notebook.suffix != ".ipynb" or not notebook.is_file():
        return None
    try:
        meta = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return None
    template = meta.get("vssl", {}).get("template")
    return template if isinstance(template, str) and template else None


def _point_edit_link_at_template(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    original = context.get("get_edit_provider_and_url")
    if original is None or doctree is None:
        return
    source = Path(app.env.doc2path(pagename))
    template = template_of(source)
    if template is None:
        return
    generated = source.resolve().relative_to(Path(app.srcdir).resolve()).as_posix()

    def edit_provider_and_url() -> tuple[str, str]:
        provider, url = original()
        return provider, url.replace(generated, template)

    context["get_edit_provider_and_url"] = edit_provider_and_url


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _point_edit_link_at_template, priority=_PRIORITY)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
