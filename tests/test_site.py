"""The built book as a reader gets it: served over HTTP, opened in a real browser, offline.

Uses the session fixture ``built_site`` (tests/conftest.py: one quick book build per pytest run).

* ``test_internal_links_resolve`` (no browser): every relative ``href``/``src`` of every page points
  at a file inside ``_build/html``, and every ``#anchor`` at an ``id`` of its target page.
* The browser tests serve ``_build/html`` on 127.0.0.1 (an ``http.server`` thread) and drive Debian's
  ``/usr/bin/chromium`` through playwright (never ``playwright install``: it downloads a browser).
  Every HTML page is visited once (module fixture ``visits``): HTTP 200, no failed request, no request
  to another host (such requests are recorded and aborted), every ``<img>`` decoded, MathJax typeset
  (no raw TeX), widgets rendered, and a full-page screenshot saved as
  ``_build/screenshots/<page path>.png``. Chromium is installed by ``make test`` (``TEST_APT`` in the
  Makefile); without it these tests skip when not root and fail when root (bootstrap would have
  installed it).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "_build" / "screenshots"
HOST = "127.0.0.1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--mute-audio",
]
#: Pages written by the section notebooks; their checks apply when the page is in the book.
METRIC_PAGE = "book/generated/metric_definitions.html"
RESULTS_PAGE = "book/generated/results_tables.html"
OWN_MODEL_PAGE = "book/generated/own_model.html"
#: "Beyond the paper" (issue 15): each page shows a table and, where it has one, a figure.
BEYOND_PAGES: dict[str, bool] = {  # page -> has figures
    "book/generated/beyond_audio_sensitivity.html": True,
    "book/generated/beyond_uncertainty.html": False,
    "book/generated/beyond_threshold_sensitivity.html": True,
    "book/generated/beyond_metric_relations.html": True,
    "book/generated/beyond_compat_rankings.html": True,
    "book/generated/beyond_negatives_training.html": True,
    "book/generated/beyond_noise_bank.html": True,
}
#: The threshold explorer: threshold_analysis.html, or one page per model (threshold_analysis_<model>.html).
THRESHOLD_PAGES = re.compile(r"book/generated/threshold_analysis(_[\w-]+)?\.html")
#: Per-page time limits (ms): navigation, then MathJax/widgets/images settling.
NAV_TIMEOUT_MS = 20_000
SETTLE_TIMEOUT_MS = 10_000
#: Text that means TeX was not typeset (checked outside code blocks).
RAW_TEX = ("$$", "\\(", "\\[", "\\begin{")


def site_pages(site: Path) -> list[str]:
    """Every HTML page of the site, relative to its root (theme templates under _static excluded)."""
    return sorted(
        p.relative_to(site).as_posix()
        for p in site.rglob("*.html")
        if not ({"_static", "_sources", "_images"} & set(p.relative_to(site).parts))
    )


# --------------------------------------------------------------------------------------------------
# Internal links (static parse)
# --------------------------------------------------------------------------------------------------

_URL_ATTRS = {"a": "href", "link": "href", "img": "src", "script": "src", "source": "src", "iframe": "src",
              "video": "src", "audio": "src", "embed": "src", "area": "href"}


class _Links(HTMLParser):
    """Collect the ids (and legacy ``<a name>``) of a page and the URLs it references."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.urls: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v for k, v in attrs if v is not None}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and "name" in a:
            self.ids.add(a["name"])
        attr = _URL_ATTRS.get(tag)
        if attr and a.get(attr) is not None:
            self.urls.append((tag, a[attr].strip()))
        if tag == "img" and a.get("srcset"):
            for part in a["srcset"].split(","):
                if part.strip():
                    self.urls.append((tag, part.strip().split()[0]))

    handle_startendtag = handle_starttag


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def broken_internal_links(site: Path) -> list[str]:
    """Human-readable problems of every relative URL of every page of ``site``."""
    site = site.resolve()
    problems: list[str] = []
    for name in site_pages(site):
        page = site / name
        for tag, url in _parse(page).urls:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith(("//", "#!")) or url in ("", "#"):
                continue  # external (reported by the browser test if ever requested), or no target
            path = unquote(parts.path)
            target = page if not path else (site / path.lstrip("/") if path.startswith("/") else page.parent / path)
            target = target.resolve()
            if not target.is_relative_to(site):
                problems.append(f"{name}: <{tag}> {url!r} points outside _build/html ({target})")
                continue
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                problems.append(f"{name}: <{tag}> {url!r} -> missing file {target.relative_to(site)}")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html" and fragment not in _parse(target).ids:
                problems.append(f"{name}: <{tag}> {url!r} -> no id {fragment!r} in {target.relative_to(site)}")
    return problems


def test_internal_links_resolve(built_site: Path) -> None:
    pages = site_pages(built_site)
    assert "index.html" in pages and "book/intro.html" in pages, pages
    problems = broken_internal_links(built_site)
    assert not problems, f"{len(problems)} broken internal links:\n" + "\n".join(problems[:50])


def test_link_checker_catches_broken_links(tmp_path: Path) -> None:
    """The checker itself: a missing file, a missing anchor and a link out of the site are reported."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="sub/b.html#there">ok</a><a href="#top" id="top">self</a><a href="https://x.org/">ext</a>'
        '<a href="sub/b.html#nowhere">1</a><a href="missing.html">2</a><img src="../outside.png">'
    )
    (tmp_path / "sub" / "b.html").write_text('<h1 id="there">b</h1><a href="../index.html#top">back</a>')
    problems = broken_internal_links(tmp_path)
    assert len(problems) == 3, problems
    assert any("'nowhere'" in p for p in problems)
    assert any("missing.html" in p for p in problems)
    assert any("outside" in p for p in problems)


# --------------------------------------------------------------------------------------------------
# Browser
# --------------------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """``http://127.0.0.1:<free port>/`` serving ``directory`` from a background thread."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer((HOST, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def site_url(built_site: Path) -> Iterator[str]:
    with serve(built_site) as url:
        yield url


def _require_chromium() -> None:
    if CHROMIUM.is_file():
        return
    if os.geteuid() != 0:
        pytest.skip(f"{CHROMIUM} is absent and installing it needs root: apt-get install chromium (or run `make test` as root)")
    pytest.fail(f"{CHROMIUM} is absent: run `make test` (scripts/bootstrap.sh installs TEST_APT=chromium) or apt-get install chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _require_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - it is in requirements.txt
        pytest.fail(f"playwright is not installed in this environment ({exc}); run scripts/bootstrap.sh")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Visit:
    """What one page did in the browser."""

    url: str
    status: int | None = None
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "URL (reason or HTTP status)"
    external: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    images: int = 0  # images that loaded
    errors: list[str] = field(default_factory=list)  # navigation/settling problems
    mathjax_loaded: bool = False
    mjx_containers: int = 0
    raw_tex: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)  # text of each <table>
    table_i_headings: list[str] = field(default_factory=list)
    has_widget_state: bool = False
    visible_widgets: int = 0
    screenshot: Path | None = None
    seconds: float = 0.0


_PAGE_FACTS_JS = r"""
async (rawTex) => {
  // MathJax 3: wait for typesetting when the page loads it.
  const mathjax = !!(window.MathJax && window.MathJax.startup);
  if (mathjax && window.MathJax.startup.promise) { await window.MathJax.startup.promise; }
  // Images: make lazy ones load, then wait for every one to finish (ok or error).
  const imgs = Array.from(document.images);
  imgs.forEach(i => { if (i.loading === 'lazy') i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r, {once: true}); i.addEventListener('error', r, {once: true});
  })));
  const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
                        && getComputedStyle(el).visibility !== 'hidden';
  // Visible prose outside code, scripts and typeset math.
  const skip = 'pre, code, script, style, textarea, mjx-container, .highlight, .cell_input, .MathJax';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const rawTexHits = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip) || !visible(el)) continue;
    for (const t of rawTex) {
      const k = n.textContent.indexOf(t);
      if (k >= 0) rawTexHits.push(n.textContent.slice(Math.max(0, k - 40), k + 60).trim());
    }
  }
  const headings = Array.from(document.querySelectorAll(
      'h1, h2, h3, h4, h5, h6, caption, figcaption, .caption-text, .caption'))
    .map(h => h.textContent.trim()).filter(t => /\bTable I\b(?!I)/.test(t));
  return {
    mathjax,
    mjx: document.querySelectorAll('mjx-container').length,
    rawTex: rawTexHits,
    brokenImages: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.currentSrc || i.src),
    images: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    tables: Array.from(document.querySelectorAll('table')).map(t => t.innerText),
    tableIHeadings: headings,
    widgetState: !!document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]'),
    widgets: Array.from(document.querySelectorAll('.widget-slider, .jupyter-widgets')).filter(visible).length,
  };
}
"""


def _visit(context: object, base: str, name: str, screenshots: Path) -> Visit:
    from playwright.sync_api import Error as PlaywrightError

    url = base + name
    visit = Visit(url=url)
    page = context.new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(SETTLE_TIMEOUT_MS)
    page.on("request", lambda r: visit.requests.append(r.url))
    page.on("requestfailed", lambda r: visit.failed.append(f"{r.url} ({r.failure})"))

    def on_response(response: object) -> None:
        if response.status >= 400:  # type: ignore[attr-defined]
            visit.failed.append(f"{response.url} (HTTP {response.status})")  # type: ignore[attr-defined]

    page.on("response", on_response)
    start = time.perf_counter()
    try:
        response = page.goto(url, wait_until="load", timeout=NAV_TIMEOUT_MS)
        visit.status = response.status if response else None
        try:
            page.wait_for_load_state("networkidle", timeout=SETTLE_TIMEOUT_MS)
        except PlaywrightError:
            visit.errors.append(f"network not idle after {SETTLE_TIMEOUT_MS} ms")
        facts = page.evaluate(_PAGE_FACTS_JS, list(RAW_TEX))
        if facts["widgetState"] and not facts["widgets"]:  # the manager renders after load: give it time
            try:
                page.wait_for_selector(".widget-slider, .jupyter-widgets", state="visible", timeout=SETTLE_TIMEOUT_MS)
            except PlaywrightError:
                pass
            facts = page.evaluate(_PAGE_FACTS_JS, list(RAW_TEX))
        visit.mathjax_loaded = facts["mathjax"]
        visit.mjx_containers = facts["mjx"]
        visit.raw_tex = facts["rawTex"]
        visit.broken_images = facts["brokenImages"]
        visit.images = facts["images"]
        visit.tables = facts["tables"]
        visit.table_i_headings = facts["tableIHeadings"]
        visit.has_widget_state = facts["widgetState"]
        visit.visible_widgets = facts["widgets"]
        shot = screenshots / Path(name).with_suffix(".png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True, timeout=NAV_TIMEOUT_MS)
        visit.screenshot = shot
    except PlaywrightError as exc:
        visit.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        visit.seconds = time.perf_counter() - start
        page.close()
    return visit


def visit_pages(browser: object, base: str, names: list[str], screenshots: Path) -> dict[str, Visit]:
    """Visit ``names`` under ``base`` in one browser context; requests to any host other than
    127.0.0.1 are recorded (as ``Visit.external``) and aborted."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")  # type: ignore[attr-defined]
    external: dict[str, list[str]] = {}
    current: list[str] = [""]

    def route(route: object) -> None:
        req_url = route.request.url  # type: ignore[attr-defined]
        parts = urlsplit(req_url)
        if parts.scheme in ("data", "blob", "about") or parts.hostname == HOST:
            route.continue_()  # type: ignore[attr-defined]
        else:
            external.setdefault(current[0], []).append(req_url)
            route.abort("blockedbyclient")  # type: ignore[attr-defined]

    context.route("**/*", route)
    results: dict[str, Visit] = {}
    try:
        for name in names:
            current[0] = name
            visit = _visit(context, base, name, screenshots)
            visit.external = external.get(name, [])
            # aborted external requests also show up as failed: report them once, as external
            visit.failed = [f for f in visit.failed if not any(f.startswith(e + " ") for e in visit.external)]
            results[name] = visit
    finally:
        context.close()
    return results


def page_problems(visits: dict[str, Visit]) -> list[str]:
    """Status, failed/external requests, broken images, errors and missing screenshots, by page URL."""
    problems: list[str] = []
    for v in visits.values():
        if v.status != 200:
            problems.append(f"{v.url}: HTTP status {v.status}")
        problems += [f"{v.url}: {e}" for e in v.errors]
        problems += [f"{v.url}: failed request {f}" for f in v.failed]
        problems += [f"{v.url}: request to another host {e}" for e in v.external]
        problems += [f"{v.url}: image not loaded {src}" for src in v.broken_images]
        if v.screenshot is None or not v.screenshot.is_file():
            problems.append(f"{v.url}: no screenshot")
    return problems


@pytest.fixture(scope="module")
def visits(built_site: Path, site_url: str, browser: object) -> dict[str, Visit]:
    """Every page of the book, visited once; screenshots in _build/screenshots/ (overwritten, not
    cleared first: `make clean` removes _build)."""
    return visit_pages(browser, site_url, site_pages(built_site), SCREENSHOTS)


def test_every_page_loads_offline(visits: dict[str, Visit]) -> None:
    problems = page_problems(visits)
    assert not problems, f"{len(problems)} problems on {len(visits)} pages:\n" + "\n".join(problems)


def test_browser_checks_catch_problems(tmp_path: Path, browser: object) -> None:
    """The checks themselves, on a two-page site: a missing script, an external image, raw TeX."""
    (tmp_path / "good.html").write_text("<html><body><p>fine</p></body></html>")
    (tmp_path / "bad.html").write_text(
        '<html><body><p>$$x^2$$</p><script src="missing.js"></script>'
        '<img src="https://example.invalid/a.png"><img src="gone.png"></body></html>'
    )
    with serve(tmp_path) as base:
        result = visit_pages(browser, base, ["good.html", "bad.html"], tmp_path / "shots")
    assert not page_problems({"good.html": result["good.html"]})
    problems = "\n".join(page_problems({"bad.html": result["bad.html"]}))
    assert "missing.js (HTTP 404)" in problems, problems
    assert "request to another host https://example.invalid/a.png" in problems, problems
    assert "image not loaded" in problems and "gone.png" in problems, problems
    assert result["bad.html"].raw_tex == ["$$x^2$$"], result["bad.html"].raw_tex
    assert (tmp_path / "shots" / "bad.png").is_file()


def test_screenshots_of_every_page(visits: dict[str, Visit]) -> None:
    for name in visits:
        shot = SCREENSHOTS / Path(name).with_suffix(".png")
        assert shot.is_file() and shot.stat().st_size > 1000, f"missing or empty screenshot {shot}"
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{shot} is not a PNG"


def test_math_is_typeset(visits: dict[str, Visit]) -> None:
    assert METRIC_PAGE in visits, f"{METRIC_PAGE} is not in the book (pages: {sorted(visits)})"
    metric = visits[METRIC_PAGE]
    assert metric.mathjax_loaded, f"{metric.url}: MathJax did not load"
    assert metric.mjx_containers > 0, f"{metric.url}: no mjx-container elements (MathJax typeset nothing)"
    problems = [f"{v.url}: raw TeX visible: {hit!r}" for v in visits.values() for hit in v.raw_tex]
    assert not problems, "\n".join(problems)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def test_table_i_pages_have_tables(visits: dict[str, Visit]) -> None:
    """A page whose heading or caption names Table I shows at least one table."""
    problems = [
        f"{v.url}: heading/caption {v.table_i_headings[0]!r} but no <table> on the page"
        for v in visits.values()
        if v.table_i_headings and not v.tables
    ]
    assert not problems, "\n".join(problems)


def test_results_page_lists_table_i_models(visits: dict[str, Visit]) -> None:
    """The results page, when the book has it, shows a table with every model of the paper's Table I."""
    if RESULTS_PAGE not in visits:
        pytest.skip(f"{RESULTS_PAGE} is not in the book yet")
    from vssl_helpers.report.tables import load_paper_table1

    models = list(dict.fromkeys(load_paper_table1()["model"]))
    results = visits[RESULTS_PAGE]
    assert results.tables, f"{results.url}: no <table>"
    best = max(results.tables, key=lambda t: sum(_norm(m) in _norm(t) for m in models))
    missing = [m for m in models if _norm(m) not in _norm(best)]
    assert not missing, f"{results.url}: no table lists every Table I model; best table misses {missing}"


def test_own_model_page_shows_the_plugin(visits: dict[str, Visit]) -> None:
    """The chapter "Evaluate your own model": the example plugin's row in a table, and a figure."""
    assert OWN_MODEL_PAGE in visits, f"{OWN_MODEL_PAGE} is not in the book (pages: {sorted(visits)})"
    page = visits[OWN_MODEL_PAGE]
    assert any("my-listening-saliency" in t and "demo-ezvsl" in t for t in page.tables), (
        f"{page.url}: no table with the example plugin beside the demo models"
    )
    assert page.images >= 1 and not page.broken_images, f"{page.url}: {page.images} images, broken {page.broken_images}"


@pytest.mark.parametrize("page", sorted(BEYOND_PAGES))
def test_beyond_the_paper_pages_show_tables_and_figures(visits: dict[str, Visit], page: str) -> None:
    assert page in visits, f"{page} is not in the book (pages: {sorted(visits)})"
    v = visits[page]
    assert v.tables, f"{v.url}: no <table>"
    if BEYOND_PAGES[page]:
        assert v.images >= 1 and not v.broken_images, f"{v.url}: {v.images} images, broken {v.broken_images}"


def test_widgets_render(visits: dict[str, Visit]) -> None:
    """Every page with embedded widget state shows its widgets."""
    problems = [
        f"{v.url}: has widget state but no visible .widget-slider/.jupyter-widgets element"
        for v in visits.values()
        if v.has_widget_state and not v.visible_widgets
    ]
    assert not problems, "\n".join(problems)


def test_threshold_explorer_widgets_render(visits: dict[str, Visit]) -> None:
    """The threshold explorer's pages (when the book has them) render their sliders."""
    pages = [name for name in visits if THRESHOLD_PAGES.fullmatch(name)]
    if not pages:
        pytest.skip(f"no {THRESHOLD_PAGES.pattern} page in the book yet")
    bare = [visits[n].url for n in pages if not visits[n].visible_widgets]
    assert not bare, f"threshold explorer widgets not rendered on: {bare}"
