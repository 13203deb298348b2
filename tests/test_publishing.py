"""Publishing conventions, checked statically (no build): the GitHub Pages workflow, the citation
metadata, the licences, the book's repository buttons and the test command's system packages."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
PAPER_TITLE = "A Critical Assessment of Visual Sound Source Localization Models Including Negative Audio"
AUTHORS = [("Juanola", "Xavier"), ("Haro", "Gloria"), ("Fuentes", "Magdalena")]
REPOSITORY = "https://github.com/vssl-companion/vssl-companion"


def _yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: not a YAML mapping"
    return data


def _steps(job: dict) -> list[dict]:
    return list(job.get("steps", []))


def test_workflow_builds_with_make_book_and_deploys_pages() -> None:
    wf = _yaml(WORKFLOW)
    on = wf.get("on", wf.get(True))  # PyYAML reads the bare key `on` as True
    assert isinstance(on, dict), f"{WORKFLOW}: no `on:` triggers"
    assert "main" in on["push"]["branches"], f"{WORKFLOW}: not triggered by pushes to main"
    assert "workflow_dispatch" in on, f"{WORKFLOW}: no manual trigger (workflow_dispatch)"
    perms = wf.get("permissions", {})
    assert perms.get("pages") == "write" and perms.get("id-token") == "write", f"{WORKFLOW}: permissions {perms}"

    jobs = wf["jobs"]
    build = next((j for j in jobs.values() if any("make book" in str(s.get("run", "")) for s in _steps(j))), None)
    assert build is not None, f"{WORKFLOW}: no step runs `make book`"
    assert build["runs-on"] == "ubuntu-latest"
    setup = [s for s in _steps(build) if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert setup and str(setup[0]["with"]["python-version"]) == "3.11", f"{WORKFLOW}: Python 3.11 not set up"
    uses = [str(s.get("uses", "")) for s in _steps(build)]
    assert any(u.startswith("actions/checkout@") for u in uses)
    upload = [s for s in _steps(build) if str(s.get("uses", "")).startswith("actions/upload-pages-artifact@")]
    assert upload and upload[0]["with"]["path"].rstrip("/") == "_build/html", f"{WORKFLOW}: _build/html not uploaded"
    order = [i for i, s in enumerate(_steps(build)) if "make book" in str(s.get("run", "")) or s in upload]
    assert order == sorted(order) and len(order) == 2, f"{WORKFLOW}: upload must follow `make book`"

    deploy = [
        (name, j) for name, j in jobs.items()
        if any(str(s.get("uses", "")).startswith("actions/deploy-pages@") for s in _steps(j))
    ]
    assert deploy, f"{WORKFLOW}: no actions/deploy-pages step"
    build_name = next(name for name, j in jobs.items() if j is build)
    for name, job in deploy:
        needs = job.get("needs", [])
        assert build_name in ([needs] if isinstance(needs, str) else needs), f"{WORKFLOW}: job {name} does not need {build_name}"
        assert job.get("environment", {}).get("name") == "github-pages", f"{WORKFLOW}: job {name} environment"


def test_citation_cff_cites_the_paper_and_the_software() -> None:
    cff = _yaml(ROOT / "CITATION.cff")
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    for key in ("message", "title", "authors", "license", "version"):
        assert cff.get(key), f"CITATION.cff: missing {key}"
    assert cff["license"] == "BSD-3-Clause"
    assert cff["repository-code"] == REPOSITORY
    from vssl_helpers import __version__

    if "unknown" not in __version__:
        assert str(cff["version"]) == __version__.split("+")[0], f"CITATION.cff version {cff['version']} != package {__version__}"
    paper = cff["preferred-citation"]
    assert paper["type"] == "conference-paper" and paper["title"] == PAPER_TITLE
    assert [(a["family-names"], a["given-names"]) for a in paper["authors"]] == AUTHORS
    assert paper["year"] == 2025 and "ICASSP" in paper["collection-title"]


def test_cite_page_has_bibtex_and_licences() -> None:
    text = (ROOT / "book" / "cite.md").read_text(encoding="utf-8")
    entries = re.findall(r"```bibtex\n(.*?)```", text, flags=re.S)
    assert len(entries) == 2, "book/cite.md: expected BibTeX for the paper and for the companion"
    paper, software = entries
    assert paper.startswith("@inproceedings{") and PAPER_TITLE in paper and "2025" in paper and "ICASSP" in paper
    assert "Juanola, Xavier and Haro, Gloria and Fuentes, Magdalena" in paper
    assert software.startswith("@software{") and REPOSITORY in software
    for entry in entries:
        assert entry.count("{") == entry.count("}"), f"unbalanced braces in BibTeX:\n{entry}"
    assert "BSD 3-Clause" in text and "CC BY 4.0" in text
    assert "BSD 3-Clause" in (ROOT / "LICENSE").read_text()
    content = (ROOT / "LICENSE-content").read_text()
    assert "CC BY 4.0" in content and "creativecommons.org/licenses/by/4.0" in content


def test_book_config_has_repository_buttons_and_last_updated() -> None:
    cfg = _yaml(ROOT / "_config.yml")
    html = cfg["html"]
    for button in ("use_repository_button", "use_issues_button", "use_edit_page_button"):
        assert html.get(button) is True, f"_config.yml: html.{button} is not true"
    assert html.get("favicon") and (ROOT / html["favicon"]).is_file(), "_config.yml: html.favicon missing"
    repo = cfg["repository"]
    assert repo["url"] == REPOSITORY and repo.get("path_to_book", None) == "" and repo["branch"] == "main"
    assert cfg["sphinx"]["config"].get("html_last_updated_fmt") == "%Y-%m-%d"
    assert "LICENSE*" in cfg["exclude_patterns"], "LICENSE-content must not become a page"


def test_make_test_installs_chromium() -> None:
    makefile = (ROOT / "Makefile").read_text()
    m = re.search(r"^TEST_APT\s*:=\s*(.*)$", makefile, flags=re.M)
    assert m and "chromium" in m.group(1).split(), "Makefile: TEST_APT must name chromium (browser tests)"
    assert re.search(r"^test:\n\t@scripts/bootstrap\.sh \$\(TEST_APT\)", makefile, flags=re.M)


def test_built_pages_have_buttons_and_date(built_site: Path) -> None:
    page = (built_site / "book" / "intro.html").read_text(encoding="utf-8")
    assert f'href="{REPOSITORY}"' in page, "repository button missing"
    assert f"{REPOSITORY}/issues/new" in page, "issues button missing"
    assert f"{REPOSITORY}/edit/main/book/intro.md" in page, "edit-page button missing or wrong path_to_book"
    assert re.search(r"Last updated on \d{4}-\d{2}-\d{2}\.", page), "no 'Last updated on YYYY-MM-DD.' in the footer"
    assert 'rel="icon" href="../_static/favicon.svg"' in page, "favicon not linked"


@pytest.mark.skipif(subprocess.run(["which", "dpkg"], capture_output=True).returncode != 0, reason="no dpkg (not Debian)")
def test_bootstrap_sees_chromium_when_installed() -> None:
    """bootstrap decides with `dpkg -s`; where /usr/bin/chromium exists, dpkg must know the package
    (otherwise `make test` would try to install it again on every run)."""
    if not Path("/usr/bin/chromium").is_file():
        pytest.skip("chromium not installed here")
    assert subprocess.run(["dpkg", "-s", "chromium"], capture_output=True).returncode == 0
