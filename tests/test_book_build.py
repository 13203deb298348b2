"""The walking skeleton: notebook templates -> papermill -> Jupyter Book HTML, offline, no warnings.

``test_pipeline_builds_book`` runs ``vssl book`` on the repository (it
rewrites ``book/generated/`` and ``_build/``, like ``make book``; up-to-date notebooks are reused).
``test_widget_page_uses_vendored_manager`` builds a tiny book with one widget notebook in a
temporary folder. Both take a few seconds plus the notebooks' run time.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from vssl_helpers import pipeline

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
MATHJAX = "_static/mathjax/tex-mml-chtml.js"
WIDGET_SCRIPTS = [
    "_static/requirejs/require.js",
    "_static/widgets-require-config.js",
    "_static/html-manager/embed-amd.js",
]
#: The only vendored files a page may load directly (anything else under _static/mathjax etc.
#: means Jupyter Book auto-registered the whole folder: see _config.yml, html_static_path).
VENDORED_ENTRY_POINTS = {MATHJAX, *WIDGET_SCRIPTS}
VENDORED_DIRS = ("_static/mathjax/", "_static/requirejs/", "_static/html-manager/", "_static/widgets-")


class _Assets(HTMLParser):
    """Collect ``<script src>``, ``<link href>`` and whether a widget state is embedded."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.links: list[str] = []
        self.has_widget_state = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            if a.get("src"):
                self.scripts.append(a["src"] or "")
            if a.get("type") == "application/vnd.jupyter.widget-state+json":
                self.has_widget_state = True
        elif tag == "link" and a.get("href"):
            self.links.append(a["href"] or "")


def _assets(page: Path) -> _Assets:
    parser = _Assets()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _resolve(page: Path, url: str, site: Path) -> tuple[Path, str]:
    """File a relative URL of ``page`` points to, and its path relative to the site root."""
    target = (page.parent / url.split("?")[0].split("#")[0]).resolve()
    return target, target.relative_to(site.resolve()).as_posix()


def _is_external(url: str) -> bool:
    return url.startswith(("http://", "https://", "//")) or "cdn." in url


def _check_site(site: Path) -> dict[str, _Assets]:
    """Shared checks of a built site; returns the parsed assets of every page."""
    pages = {p.relative_to(site).as_posix(): _assets(p) for p in site.rglob("*.html") if "_static" not in p.parts}
    assert pages, f"no HTML pages in {site}"
    for name, assets in pages.items():
        page = site / name
        external = [u for u in assets.scripts + assets.links if _is_external(u)]
        assert not external, f"{name} loads external resources: {external}"
        vendored = []
        for url in assets.scripts:
            target, rel = _resolve(page, url, site)
            assert target.is_file(), f"{name}: script {url} does not exist in the site"
            if rel.startswith(VENDORED_DIRS):
                vendored.append(rel)
        assert set(vendored) <= VENDORED_ENTRY_POINTS, f"{name} loads vendored internals: {vendored}"
        assert len(vendored) == len(set(vendored)), f"{name} loads a vendored script twice: {vendored}"
        widget_scripts = [rel for rel in vendored if rel in WIDGET_SCRIPTS]
        if assets.has_widget_state:
            assert widget_scripts == WIDGET_SCRIPTS, f"{name}: widget scripts missing or out of order"
        else:
            assert not widget_scripts, f"{name} loads the widget manager without widgets"
    return pages


@pytest.fixture(scope="module")
def built_book(book_build: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """The real pipeline's quick run (quick parameters: tiny data, a few training steps), made once
    per pytest run by the session fixture ``book_build`` of tests/conftest.py."""
    return book_build


def test_pipeline_builds_book(built_book: subprocess.CompletedProcess[str]) -> None:
    index = HTML / "index.html"
    assert built_book.stdout.strip().splitlines()[-1] == str(index)
    assert index.is_file()
    assert (HTML / "book" / "intro.html").is_file()
    for spec in pipeline.NOTEBOOKS:
        assert (ROOT / "book" / "generated" / spec.output).is_file()
        assert (HTML / "book" / "generated" / Path(spec.output).with_suffix(".html")).is_file()
    # -W: any Sphinx warning fails the build; "build succeeded, N warnings." must not appear either
    assert "build succeeded." in built_book.stdout and "warning" not in built_book.stdout.split("build succeeded")[1].splitlines()[0]


def test_built_pages_are_offline(built_book: subprocess.CompletedProcess[str]) -> None:
    pages = _check_site(HTML)
    intro = pages["book/intro.html"]
    mathjax = [u for u in intro.scripts if "tex-mml-chtml.js" in u]
    assert len(mathjax) == 1, intro.scripts
    target, rel = _resolve(HTML / "book" / "intro.html", mathjax[0], HTML)
    assert rel == MATHJAX and target.is_file()
    fonts = HTML / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert (fonts / "MathJax_Main-Regular.woff").is_file()
    assert not (HTML / "_static" / "README.md").exists(), "vendor README copied into the site"


def test_injected_parameters_hidden_and_provenance_recorded(built_book: subprocess.CompletedProcess[str]) -> None:
    for spec in pipeline.NOTEBOOKS:
        nb = nbformat.read(ROOT / "book" / "generated" / spec.output, as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        if spec.parameters:
            assert len(injected) == 1
        assert all("remove-cell" in c.metadata["tags"] for c in injected)
        recorded = nb.metadata["vssl"]
        assert recorded["template"] == spec.template
        assert recorded["parameters"] == spec.effective_parameters(quick=True)
        assert pipeline.is_up_to_date(spec, ROOT, ROOT / "book" / "generated", quick=True)


def test_page_titles_and_edit_links(built_book: subprocess.CompletedProcess[str]) -> None:
    """Each executed page is titled by its spec (one distinct title per threshold page) and its
    "Edit this page" link opens the committed template, not the generated copy."""
    import re

    titles = {}
    for spec in pipeline.NOTEBOOKS:
        page = (HTML / "book" / "generated" / Path(spec.output).with_suffix(".html")).read_text(encoding="utf-8")
        titles[spec.output] = re.search(r"<title>(.*?) &#8212;", page).group(1)
        if spec.title:
            assert titles[spec.output] == spec.title
        edits = re.findall(r'href="([^"]*/edit/[^"]*)"', page)
        assert edits and all(e.endswith("/" + spec.template) for e in edits), (spec.output, edits)
    threshold = [t for o, t in titles.items() if o.startswith("threshold_analysis")]
    assert len(threshold) == len(pipeline.THRESHOLD_MODELS) == len(set(threshold)), threshold
    intro = (HTML / "book" / "intro.html").read_text(encoding="utf-8")
    assert re.findall(r'href="([^"]*/edit/[^"]*)"', intro)[0].endswith("/book/intro.md"), "hand-written pages unchanged"


def test_up_to_date_notebooks_are_reused(built_book: subprocess.CompletedProcess[str]) -> None:
    lines: list[str] = []
    pipeline.execute_notebooks(root=ROOT, quick=True, log=lines.append)
    assert all("up to date" in line for line in lines), lines


def test_failure_names_notebook_parameters_and_cell(tmp_path: Path) -> None:
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("divisor = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("result = 1 / divisor"),
    ]
    nbformat.write(nb, tmp_path / "notebooks" / "fails.ipynb")
    out = tmp_path / "out"
    out.mkdir()
    (out / "fails.ipynb").write_text("previous output")
    spec = pipeline.NotebookSpec("notebooks/fails.ipynb", "fails.ipynb", {"divisor": 0})
    with pytest.raises(pipeline.NotebookExecutionError) as info:
        pipeline.execute_notebooks([spec], root=tmp_path, out_dir=out, log=lambda _: None)
    err = info.value
    assert err.ename == "ZeroDivisionError" and err.cell_index == 2
    assert "notebooks/fails.ipynb" in str(err) and '"divisor": 0' in str(err) and "1 / divisor" in str(err)
    assert (out / "fails.ipynb").read_text() == "previous output"  # left intact
    assert (out / "fails.failed.ipynb").is_file()
    assert not list(out.glob(".*.tmp.ipynb"))


def test_widget_page_uses_vendored_manager(tmp_path: Path) -> None:
    """A page with widget state loads require.js, the path mapping and embed-amd.js, all local."""
    for name in ("_config.yml", "_vendor"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Widgets check\n\n$$a^2 + b^2 = c^2$$\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/generated/widgets\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Widgets"),
        nbformat.v4.new_code_cell("value = 3", metadata={"tags": ["parameters", "remove-cell"]}),
        nbformat.v4.new_code_cell("import ipywidgets\nipywidgets.IntSlider(value=value)"),
    ]
    nbformat.write(nb, tmp_path / "notebooks" / "widgets.ipynb")
    spec = pipeline.NotebookSpec("notebooks/widgets.ipynb", "widgets.ipynb", {"value": 4})
    outputs = pipeline.execute_notebooks([spec], root=tmp_path, log=lambda _: None)
    pipeline.check_toc(outputs, tmp_path)
    executed = nbformat.read(outputs[0], as_version=4)
    assert executed.metadata.get("widgets"), "nbclient did not store the widget state"

    index = pipeline.build_book(tmp_path)
    site = index.parent
    pages = _check_site(site)
    assert pages["book/generated/widgets.html"].has_widget_state
    assert not pages["book/intro.html"].has_widget_state
    mapping = (site / "_static" / "widgets-require-config.js").read_text()
    assert '"@jupyter-widgets/html-manager/dist": base' in mapping and '"@jupyter-widgets": base' in mapping
    for font in (ROOT / "_vendor" / "html-manager").glob("*.woff2"):
        assert (site / "_static" / "html-manager" / font.name).is_file()


def _templates() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_templates() -> None:
    assert _templates(), "no notebook templates in notebooks/"
    for spec in pipeline.NOTEBOOKS:
        assert (ROOT / spec.template).is_file(), spec.template


@pytest.mark.parametrize("template", _templates(), ids=lambda p: p.name)
def test_templates_are_clean(template: Path) -> None:
    """Committed templates: no outputs, no execution counts, exactly one `parameters` cell."""
    nb = nbformat.read(template, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("outputs")]
    counted = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count") is not None]
    assert not with_outputs, f"{template.name}: cells with outputs: {with_outputs}"
    assert not counted, f"{template.name}: cells with execution counts: {counted}"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{template.name}: {len(tagged)} cells tagged 'parameters' (need exactly 1)"
    assert tagged[0].cell_type == "code" and tagged[0] in code
