import sys
from pathlib import Path

# reference_metrics.py and other test helpers live beside the tests
sys.path.insert(0, str(Path(__file__).parent))


# --- the built book, shared by every test that needs _build/html -------------------------------------
import subprocess  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: Quick build of the real book (tiny data, a few training steps): ``make book`` with --quick.
BOOK_COMMAND = [sys.executable, "-m", "vssl_helpers.cli", "book", "--quick", "--no-progress"]


@pytest.fixture(scope="session")
def book_build() -> subprocess.CompletedProcess[str]:
    """Run ``python -m vssl_helpers.cli book --quick --no-progress`` (= ``vssl book``) once per pytest run.

    It rewrites ``book/generated/`` and ``_build/`` like ``make book`` (up-to-date notebooks are
    reused). tests/test_book_build.py checks its output; tests/test_site.py browses the site.
    """
    result = subprocess.run(BOOK_COMMAND, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"{' '.join(BOOK_COMMAND[1:])} failed (exit {result.returncode}):\n"
        f"{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
    )
    return result


@pytest.fixture(scope="session")
def built_site(book_build: subprocess.CompletedProcess[str]) -> Path:
    """The built HTML site (``_build/html``) of :func:`book_build`."""
    site = ROOT / "_build" / "html"
    assert (site / "index.html").is_file(), f"{site / 'index.html'} missing after the book build"
    return site
