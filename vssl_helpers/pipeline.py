"""Notebook pipeline: execute the parameterized notebook templates with papermill, build the book.

Usage (from the repository root, with the project's virtual environment)::

    python -m vssl_helpers.pipeline book [--out book/generated] [--quick] [--force]
    python -m vssl_helpers.pipeline execute [--out DIR] [--quick] [--force]

``book`` executes every template listed in :data:`NOTEBOOKS` into ``book/generated/`` and then builds
the Jupyter Book (``_config.yml``/``_toc.yml`` at the repository root) with warnings as errors;
``execute`` only executes. An executed notebook is reused when it is newer than its template and
was made from the same template content, parameters and package version (recorded under
``metadata.vssl`` of the executed notebook); ``--force`` re-executes everything.

To add a chapter: append a :class:`NotebookSpec` to :data:`NOTEBOOKS` and its ``book/generated/<name>``
entry to ``_toc.yml``; the pipeline checks that every executed notebook is in the table of contents.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "NOTEBOOKS",
    "THRESHOLD_MODELS",
    "NotebookSpec",
    "NotebookExecutionError",
    "BookBuildError",
    "repo_root",
    "execute_notebooks",
    "execute_notebook",
    "is_up_to_date",
    "check_toc",
    "build_book",
    "main",
]

#: Tag papermill puts on the cell it injects with the run's parameters.
INJECTED_PARAMETERS_TAG = "injected-parameters"
#: Jupyter Book / myst-nb tag that removes a cell (input and output) from the page.
REMOVE_CELL_TAG = "remove-cell"
#: Key under the executed notebook's metadata where the pipeline records how it was made.
METADATA_KEY = "vssl"
#: Kernel installed into the project's venv by scripts/bootstrap.sh.
PREFERRED_KERNEL = "vssl-companion"
#: Where executed notebooks go, relative to the repository root (``_toc.yml`` points there).
DEFAULT_OUT = Path("book") / "generated"


@dataclass(frozen=True)
class NotebookSpec:
    """One executed notebook of the book.

    Attributes:
        template: path of the committed template, relative to the repository root.
        output: file name of the executed notebook inside the output folder (``book/generated``).
        parameters: papermill parameters (JSON-serialisable values).
        quick_parameters: overrides of ``parameters`` for ``--quick`` runs (small, fast settings).
        timeout: per-cell timeout in seconds (None: no limit).
        prepare: ``"module:function"`` called with the effective parameters before the notebook is
            executed (e.g. training the demo models with a progress bar on the console, so that the
            notebook only loads them from the cache).
    """

    template: str
    output: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    quick_parameters: Mapping[str, Any] = field(default_factory=dict)
    timeout: int | None = None
    prepare: str | None = None

    def effective_parameters(self, quick: bool = False) -> dict[str, Any]:
        """Return the parameters of a run, normalised as they round-trip through JSON."""
        params = dict(self.parameters)
        if quick:
            params.update(self.quick_parameters)
        return json.loads(json.dumps(params, sort_keys=True))


#: Parameters shared by the result chapters (same test sets, seeds and trained models as the
#: embedded benchmark, so the map store computes each model's maps once for all of them).
# The book's own runs use 200 test images (x 10 seeds): the full 500-image figures of the demo
# models come from the committed multi-seed study (benchmarks/results/), and a fresh `make book`
# must stay within minutes on 2 cores (the 500-image embedded chapter alone took 18 min there).
_RESULT_PARAMETERS: dict[str, Any] = {"n_test_images": 200, "n_seeds": 10, "train_steps": 600, "n_train_images": 4000, "model_seed": 0}
_RESULT_QUICK: dict[str, Any] = {"n_test_images": 16, "n_seeds": 2, "train_steps": 6, "n_train_images": 64}

#: Models with a threshold-analysis chapter each (the trained demo models and the audio-blind
#: saliency baseline; random weights and the binary oracle have nothing to show there).
THRESHOLD_MODELS: tuple[str, ...] = ("demo-ezvsl", "demo-lvs", "demo-negaware", "demo-saliency")

#: The executed chapters of the book, in execution order.
NOTEBOOKS: list[NotebookSpec] = [
    NotebookSpec(
        template="notebooks/metric_definitions.ipynb",
        output="metric_definitions.ipynb",
        parameters={"example_seed": 0},
    ),
    NotebookSpec(
        template="notebooks/embedded_benchmark.ipynb",
        output="embedded_benchmark.ipynb",
        parameters=dict(_RESULT_PARAMETERS),
        quick_parameters={"n_test_images": 16, "n_seeds": 2, "train_steps": 6, "n_train_images": 64},
        prepare="vssl_helpers.embedded:prepare",
    ),
    NotebookSpec(
        template="notebooks/dataset_extension.ipynb",
        output="dataset_extension.ipynb",
        parameters={"n_test_images": 500, "n_seeds": 10},
        quick_parameters={"n_test_images": 16, "n_seeds": 2},
    ),
    *(
        NotebookSpec(
            template="notebooks/threshold_analysis.ipynb",
            output=f"threshold_analysis_{_model.replace('-', '_')}.ipynb",
            parameters={"model": _model, **_RESULT_PARAMETERS},
            quick_parameters={**_RESULT_QUICK, "sweep_points": 9, "sweep_seeds": 1},
            prepare="vssl_helpers.report.runs:prepare",
        )
        for _model in THRESHOLD_MODELS
    ),
    NotebookSpec(
        template="notebooks/results_tables.ipynb",
        output="results_tables.ipynb",
        parameters=dict(_RESULT_PARAMETERS),
        quick_parameters=dict(_RESULT_QUICK),
        prepare="vssl_helpers.report.runs:prepare",
    ),
    NotebookSpec(
        template="notebooks/qualitative_figures.ipynb",
        output="qualitative_figures.ipynb",
        parameters=dict(_RESULT_PARAMETERS),
        quick_parameters={**_RESULT_QUICK, "images": [0]},
        prepare="vssl_helpers.report.runs:prepare",
    ),
]


class NotebookExecutionError(RuntimeError):
    """A notebook failed under papermill; says which notebook, with which parameters, where."""

    def __init__(
        self,
        spec: NotebookSpec,
        parameters: Mapping[str, Any],
        *,
        cell_index: int | None = None,
        execution_count: int | None = None,
        ename: str | None = None,
        evalue: str | None = None,
        cell_source: str | None = None,
        failed_copy: Path | None = None,
    ) -> None:
        self.spec = spec
        self.parameters = dict(parameters)
        self.cell_index = cell_index
        self.execution_count = execution_count
        self.ename = ename
        self.evalue = evalue
        self.cell_source = cell_source
        self.failed_copy = failed_copy
        where = (
            f"in cell {cell_index} of the executed notebook (In [{execution_count}])"
            if cell_index is not None
            else "outside any cell"
        )
        lines = [
            f"notebook {spec.template} -> {spec.output} failed {where}",
            f"  parameters: {json.dumps(self.parameters, sort_keys=True)}",
            f"  error: {ename}: {evalue}",
        ]
        if cell_source:
            snippet = "\n".join("    | " + line for line in cell_source.splitlines()[:15])
            lines.append("  cell source:\n" + snippet)
        if failed_copy is not None:
            lines.append(f"  partially executed notebook: {failed_copy}")
        super().__init__("\n".join(lines))


class BookBuildError(RuntimeError):
    """``jupyter-book build`` failed (including warnings, which are errors under ``-W``)."""


def repo_root() -> Path:
    """Return the repository root: the current directory or a parent holding ``_config.yml``
    and ``notebooks/``, else the folder above this package (source checkout)."""
    for candidate in (Path.cwd(), *Path.cwd().parents):
        if (candidate / "_config.yml").is_file() and (candidate / "notebooks").is_dir():
            return candidate
    return Path(__file__).resolve().parent.parent


def _package_version() -> str:
    from vssl_helpers import __version__

    return __version__


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_source_hash() -> str:
    """SHA-256 over the package's own files (code and data), so that an edit to ``vssl_helpers``
    re-executes the notebooks even when the version number did not change."""
    pkg = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
            h.update(str(f.relative_to(pkg)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _kernel_name() -> str:
    """The project's kernel when installed (it runs the venv's Python), else ``python3``."""
    from jupyter_client.kernelspec import KernelSpecManager

    return PREFERRED_KERNEL if PREFERRED_KERNEL in KernelSpecManager().find_kernel_specs() else "python3"


def _provenance(spec: NotebookSpec, root: Path, quick: bool) -> dict[str, Any]:
    """What an executed notebook records under ``metadata.vssl`` (compared to decide reuse)."""
    return {
        "template": spec.template,
        "template_sha256": _sha256(root / spec.template),
        "parameters": spec.effective_parameters(quick),
        "package_version": _package_version(),
        "package_source_sha256": package_source_hash(),
    }


def is_up_to_date(spec: NotebookSpec, root: Path, out_dir: Path, quick: bool = False) -> bool:
    """True when the executed notebook exists, is newer than its template and was made from the
    same template content, parameters and package version."""
    import nbformat

    output = out_dir / spec.output
    template = root / spec.template
    if not output.is_file() or output.stat().st_mtime <= template.stat().st_mtime:
        return False
    try:
        recorded = nbformat.read(output, as_version=4).metadata.get(METADATA_KEY, {})
    except Exception:  # unreadable or truncated: re-execute
        return False
    expected = _provenance(spec, root, quick)
    return all(recorded.get(key) == value for key, value in expected.items())


def _hide_injected_parameters(nb: Any) -> int:
    """Tag papermill's injected-parameters cell(s) ``remove-cell``; return how many were tagged."""
    count = 0
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if INJECTED_PARAMETERS_TAG in tags:
            if REMOVE_CELL_TAG not in tags:
                tags.append(REMOVE_CELL_TAG)
            count += 1
    return count


def execute_notebook(
    spec: NotebookSpec,
    *,
    root: Path,
    out_dir: Path,
    quick: bool = False,
    progress_bar: bool = False,
    kernel_name: str | None = None,
) -> Path:
    """Execute one template with papermill into ``out_dir/spec.output`` (atomic replace).

    The run happens in a temporary file beside the target, with the repository root as working
    directory. On success the injected-parameters cell is tagged ``remove-cell``, the provenance is
    recorded under ``metadata.vssl`` and the file is renamed into place. On failure the previous
    output (if any) is left untouched, the partial run is kept as ``<stem>.failed.ipynb`` and a
    :class:`NotebookExecutionError` is raised.
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    template = root / spec.template
    if not template.is_file():
        raise FileNotFoundError(f"notebook template not found: {template}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / spec.output
    stem = Path(spec.output).stem
    failed_copy = out_dir / f"{stem}.failed.ipynb"
    params = spec.effective_parameters(quick)
    provenance = _provenance(spec, root, quick)  # before running: describes what was executed

    # A hidden name beside the target (same file system, so os.replace is atomic); created by
    # papermill itself, so it gets the usual permissions (mkstemp would make it 0600).
    tmp = out_dir / f".{stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.ipynb"
    try:
        try:
            papermill.execute_notebook(
                str(template),
                str(tmp),
                parameters=params,
                kernel_name=kernel_name or _kernel_name(),
                language="python",
                cwd=str(root),
                progress_bar=progress_bar,
                execution_timeout=spec.timeout,
            )
        except PapermillExecutionError as exc:
            os.replace(tmp, failed_copy)
            raise NotebookExecutionError(
                spec,
                params,
                cell_index=exc.cell_index,
                execution_count=exc.exec_count,
                ename=exc.ename,
                evalue=exc.evalue,
                cell_source=exc.source,
                failed_copy=failed_copy,
            ) from exc
        except Exception as exc:  # kernel death, timeout, missing kernel, bad notebook, ...
            kept = None
            if tmp.is_file() and tmp.stat().st_size > 0:
                os.replace(tmp, failed_copy)
                kept = failed_copy
            raise NotebookExecutionError(
                spec, params, ename=type(exc).__name__, evalue=str(exc), failed_copy=kept
            ) from exc

        nb = nbformat.read(tmp, as_version=4)
        _hide_injected_parameters(nb)
        nb.metadata[METADATA_KEY] = provenance
        nbformat.write(nb, tmp)
        os.replace(tmp, target)
        failed_copy.unlink(missing_ok=True)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def execute_notebooks(
    specs: Sequence[NotebookSpec] | None = None,
    *,
    root: Path | None = None,
    out_dir: Path | None = None,
    quick: bool = False,
    force: bool = False,
    progress_bar: bool = False,
    log: Callable[[str], object] = print,
) -> list[Path]:
    """Execute the templates that are not up to date; return the paths of all executed notebooks.

    Every spec is attempted even when an earlier one fails (its output, and every other output, is
    left intact); failures are raised at the end, a single one as :class:`NotebookExecutionError`,
    several as an ``ExceptionGroup`` of them.
    """
    specs = list(NOTEBOOKS if specs is None else specs)
    root = (root or repo_root()).resolve()
    out_dir = (root / DEFAULT_OUT if out_dir is None else root / out_dir).resolve()
    outputs = [out_dir / s.output for s in specs]
    if len(set(outputs)) != len(outputs):
        raise ValueError("two notebook specs write the same output file")
    kernel = _kernel_name()
    failures: list[NotebookExecutionError] = []
    for spec, output in zip(specs, outputs):
        if not force and is_up_to_date(spec, root, out_dir, quick):
            log(f"[pipeline] up to date: {output.relative_to(root) if output.is_relative_to(root) else output}")
            continue
        start = time.perf_counter()
        if spec.prepare:
            log(f"[pipeline] preparing {spec.template}: {spec.prepare}")
            _run_prepare(spec.prepare, spec.effective_parameters(quick))
        log(f"[pipeline] executing {spec.template} (kernel {kernel}) ...")
        try:
            execute_notebook(
                spec, root=root, out_dir=out_dir, quick=quick, progress_bar=progress_bar, kernel_name=kernel
            )
        except NotebookExecutionError as exc:
            log(f"[pipeline] FAILED: {spec.template}")
            failures.append(exc)
            continue
        log(f"[pipeline]   -> {output} ({time.perf_counter() - start:.1f} s)")
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise ExceptionGroup(f"{len(failures)} notebooks failed", failures)
    return outputs


def _run_prepare(target: str, params: Mapping[str, Any]) -> None:
    import importlib

    module, _, func = target.partition(":")
    getattr(importlib.import_module(module), func)(**params)


def _toc_files(entry: Any) -> Iterator[str]:
    """Yield every ``file``/``root`` entry of a parsed ``_toc.yml``."""
    if isinstance(entry, Mapping):
        for key, value in entry.items():
            if key in ("file", "root") and isinstance(value, str):
                yield value
            else:
                yield from _toc_files(value)
    elif isinstance(entry, list):
        for item in entry:
            yield from _toc_files(item)


def check_toc(notebooks: Iterable[Path], root: Path) -> None:
    """Raise ``ValueError`` if an executed notebook is not listed in ``_toc.yml`` (Jupyter Book
    would silently leave it out of the book)."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    listed = {str(Path(f).with_suffix("")) if Path(f).suffix in (".ipynb", ".md") else f for f in _toc_files(toc)}
    missing = []
    for nb in notebooks:
        rel = nb.resolve().relative_to(root) if nb.resolve().is_relative_to(root) else nb
        if str(rel.with_suffix("")) not in listed:
            missing.append(str(rel.with_suffix("")))
    if missing:
        raise ValueError(
            "executed notebooks missing from _toc.yml (the book reads book/generated/): " + ", ".join(missing)
        )


def _jupyter_book_command() -> list[str]:
    """``jupyter-book`` of the running environment (the script beside ``sys.executable``)."""
    bindir = Path(sys.executable).parent
    for name in ("jupyter-book", "jupyter-book.exe"):
        if (bindir / name).is_file():
            return [str(bindir / name)]
    return [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]


def build_book(root: Path | None = None, *, clean: bool = False) -> Path:
    """Build the HTML book with warnings as errors; return ``_build/html/index.html``.

    Runs ``jupyter-book build <root> --builder html -W --keep-going`` in a subprocess (Sphinx patches
    docutils globals, so it is not run in-process). ``clean`` removes ``_build`` first.
    """
    root = (root or repo_root()).resolve()
    build_dir = root / "_build"
    if clean and build_dir.exists():
        shutil.rmtree(build_dir)
    cmd = [*_jupyter_book_command(), "build", str(root), "--builder", "html", "-W", "--keep-going"]
    result = subprocess.run(cmd, cwd=root, check=False)
    if result.returncode != 0:
        raise BookBuildError(
            f"jupyter-book build failed with exit code {result.returncode} (warnings count as errors; "
            "see the messages above)"
        )
    index = build_dir / "html" / "index.html"
    if not index.is_file():
        raise BookBuildError(f"jupyter-book build succeeded but {index} is missing")
    return index


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vssl_helpers.pipeline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=["book", "execute"], help="book: execute + build; execute: only execute")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="folder for the executed notebooks, relative to the repository root (default: %(default)s; "
        "the book's _toc.yml reads this folder)",
    )
    parser.add_argument("--quick", action="store_true", help="use each notebook's quick (small, fast) parameters")
    parser.add_argument("--force", action="store_true", help="re-execute notebooks even when up to date")
    parser.add_argument("--clean", action="store_true", help="remove _build before building the book")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="papermill progress bars (default: on when stderr is a terminal)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    root = repo_root()
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    start = time.perf_counter()
    try:
        if args.command == "book":  # fail before executing anything if the book would miss a chapter
            check_toc([root / args.out / spec.output for spec in NOTEBOOKS], root)
        execute_notebooks(root=root, out_dir=args.out, quick=args.quick, force=args.force, progress_bar=progress)
        if args.command == "book":
            index = build_book(root, clean=args.clean)
    except NotebookExecutionError as exc:
        print(f"[pipeline] {exc}", file=sys.stderr)
        return 1
    except ExceptionGroup as group:
        for exc in group.exceptions:
            print(f"[pipeline] {exc}", file=sys.stderr)
        return 1
    except (BookBuildError, ValueError, FileNotFoundError) as exc:
        print(f"[pipeline] {exc}", file=sys.stderr)
        return 1
    print(f"[pipeline] done in {time.perf_counter() - start:.1f} s")
    if args.command == "book":
        print(index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
