"""The real-data path end to end: official-layout checkpoints and media trees in the official VGG-SS
and IS3 layouts (written here from the synthetic generator), evaluated by ``vssl evaluate`` and
turned into a book by ``vssl book --data-root ... --checkpoint ...``.

The book test rewrites ``book/real/`` and ``_build/real/`` of the repository (as a user's run would)
and takes about a minute and a half on 2 cores.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from official_checkpoints import write_official_checkpoint
from vssl_helpers.cli import main
from vssl_helpers.models import file_sha256
from vssl_helpers.report.runs import BookConfigError, book_config_from_dict, load_book_config
from vssl_helpers.testsets.synthetic import SyntheticConfig, SyntheticSet, write_is3_layout, write_vggss_layout

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("ezvsl", "lvs")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("realdata")
    write_vggss_layout(SyntheticSet(SyntheticConfig(split="test", n_images=6, sources=1, seed=3)), root / "vggss", progress=False)
    write_is3_layout(SyntheticSet(SyntheticConfig(split="test", n_images=3, sources=2, seed=4)), root / "is3", progress=False)
    out = {"root": root, "vggss": root / "vggss", "is3": root / "is3", "cache": root / "cache"}
    for k, name in enumerate(MODELS):
        out[name] = write_official_checkpoint(name, root / f"{name}_official.pth", seed=k)
    return out


# --- the configuration --------------------------------------------------------------------------


def test_config_resolves_relative_paths_and_round_trips(data: dict[str, Path]) -> None:
    cfg_file = data["root"] / "book.yaml"
    cfg_file.write_text(
        "testsets:\n  is3: {data_root: is3}\n  vggss: vggss\n"
        "models:\n  lvs: {checkpoint: lvs_official.pth}\n  ezvsl: ezvsl_official.pth\nseeds: 3\nworkers: 1\n"
    )
    cfg = load_book_config(cfg_file)
    assert [t.name for t in cfg.testsets] == ["vggss", "is3"], "VGG-SS first: it sets the thresholds"
    assert cfg.testsets[0].data_root.resolve() == data["vggss"].resolve()
    assert cfg.model_names == ["lvs", "ezvsl"], "models keep the file's order"
    assert dict(cfg.models)["ezvsl"].resolve() == data["ezvsl"].resolve()
    assert (cfg.n_seeds, cfg.workers, cfg.device, cfg.batch_size) == (3, 1, "auto", 64)
    again = load_book_config(cfg.write(data["root"] / "copy.json"))
    assert again.to_dict() == cfg.to_dict()


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"colour": "red"}, "unknown key(s) ['colour']"),
        ({"testsets": {"flickr": {"data_root": "."}}}, "testsets.flickr: unknown test set"),
        ({"testsets": {"vggss": {"data_root": "/no/such/dir"}}}, "testsets.vggss.data_root: no such folder: /no/such/dir"),
        ({"testsets": {"vggss": {"root": "."}}}, "testsets.vggss: expected {data_root"),
        ({"models": {"ezvsl": {"checkpoint": "/no/ckpt.pth"}}}, "models.ezvsl.checkpoint: no such file: /no/ckpt.pth"),
        ({"models": {"resnet": None}}, "models.resnet: unknown model 'resnet'"),
        ({"seeds": 0}, "seeds: expected an integer >= 1, got 0"),
        ({"models": {}}, "models: give at least one model"),
    ],
)
def test_bad_config_names_the_field(data: dict[str, Path], edit: dict, message: str) -> None:
    good = {"testsets": {"vggss": {"data_root": str(data["vggss"])}}, "models": {"ezvsl": {"checkpoint": str(data["ezvsl"])}}}
    with pytest.raises(BookConfigError) as info:
        book_config_from_dict({**good, **edit}, source="my.yaml").validate()
    assert str(info.value).startswith("my.yaml: ") and message in str(info.value)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data-root", "vggss"], "--data-root: expected SET=DIR"),
        (["--data-root", "vggss=/no/such/dir", "--checkpoint", "ezvsl=/x.pth"], "testsets.vggss.data_root: no such folder"),
        (["--data-root", "VGGSS={vggss}", "--checkpoint", "ezvsl={ezvsl}"], "testsets.VGGSS: unknown test set"),
        (["--data-root", "vggss={vggss}"], "--checkpoint: a real-data book needs at least one model"),
        (["--data-root", "vggss={vggss}", "--checkpoint", "nosuch={ezvsl}"], "models.nosuch: unknown model"),
        (["--config", "{root}/none.yaml"], "no such file"),
    ],
)
def test_vssl_book_rejects_bad_options_before_any_work(data: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                                       args: list[str], message: str) -> None:
    args = [a.format(**{k: str(v) for k, v in data.items()}) for a in args]
    t0 = time.perf_counter()
    assert main(["book", *args]) in (1, 2)
    assert message in capsys.readouterr().err
    assert time.perf_counter() - t0 < 5


def test_real_sets_group_samples_by_image(data: dict[str, Path]) -> None:
    """IS3 has one sample per sounding source of an image: the book's figures group them again."""
    from vssl_helpers.inputs import load_testset
    from vssl_helpers.report.runs import TestSetRun

    ds, manifest = load_testset("is3", data_root=data["is3"], n_seeds=2)
    groups = TestSetRun("is3", ds, manifest).image_groups()
    assert len(groups) == 3 and all(len(g) == 2 for g in groups)
    for g in groups:
        bases = {ds[ds.index(manifest.ids[r])].meta["image_id"] for r in g}
        assert len(bases) == 1
    ds, manifest = load_testset("vggss", data_root=data["vggss"], n_seeds=2)
    assert TestSetRun("vggss", ds, manifest).image_groups() == [[r] for r in range(6)]


# --- vssl evaluate with an official checkpoint -------------------------------------------------------


def test_evaluate_reads_the_official_checkpoint_layout(data: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSSL_CACHE", str(data["cache"]))
    out = data["root"] / "ezvsl_vggss.json"
    args = ["evaluate", "--model", "ezvsl", "--testset", "vggss", "--data-root", str(data["vggss"]), "--seeds", "2",
            "--no-progress"]
    assert main([*args, "--checkpoint", str(data["ezvsl"]), "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["checkpoint_sha256"] == file_sha256(data["ezvsl"])
    assert r["model"] == "ezvsl" and r["n_seeds"] == 2 and int(r["pooled"]["n_samples"]) == 6
    capsys.readouterr()
    # the LVS file has another layout (top-level 'model_state_dict', other key names): refused,
    # naming the option, the file, the model and what the file holds
    assert main([*args, "--checkpoint", str(data["lvs"])]) == 2
    err = capsys.readouterr().err
    assert f"--checkpoint {data['lvs']}: does not fit model 'ezvsl'" in err and "model_state_dict" in err


# --- the real-data book -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_book(data: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "vssl_helpers.cli", "book", "--data-root", f"vggss={data['vggss']}",
           "--data-root", f"is3={data['is3']}", *[a for m in MODELS for a in ("--checkpoint", f"{m}={data[m]}")],
           "--seeds", "2", "--quick", "--no-progress", "--force", "--store", str(data["cache"] / "maps")]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def _text(page: Path) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8")))


def test_real_book_has_every_chapter_for_every_model(real_book: subprocess.CompletedProcess[str]) -> None:
    site = ROOT / "_build" / "real" / "_build" / "html"
    assert real_book.stdout.strip().splitlines()[-1] == str(site / "index.html")
    pages = site / "book" / "real"
    # (intro: the real-data front page, generated with the build's provenance; issue 17 item 7)
    expected = {"intro", "metric_definitions", "dataset_extension", "results_tables", "qualitative_figures",
                *(f"threshold_analysis_{m}" for m in MODELS),
                "beyond_audio_sensitivity", "beyond_uncertainty", "beyond_threshold_sensitivity",
                "beyond_metric_relations"}
    assert {p.stem for p in pages.glob("*.html")} == expected, "no embedded-benchmark chapter, one threshold page per model"
    table = _text(pages / "results_tables.html")
    for label in ("Extended VGG-SS", "Extended IS3"):
        assert label in table
    assert "Extended VGG-SS-like" not in table and "Extended IS3-like" not in table, "no synthetic set in the real book"
    for m in MODELS:
        assert re.search(rf"\b{m}\b", table), f"{m} missing from Table I"
        page = (pages / f"threshold_analysis_{m}.html").read_text(encoding="utf-8")
        assert f"<title>Threshold analysis: {m}" in page
        assert "notebooks/threshold_analysis.ipynb" in page, "edit link opens the template"
    # 6 VGG-SS samples, 6 IS3 samples (3 images x 2 sources), with the media folders named
    assert "6 samples × 2 seeds" in table and "media under" in table


def test_real_book_notebooks_record_their_configuration(real_book: subprocess.CompletedProcess[str], data: dict[str, Path]) -> None:
    out = ROOT / "book" / "real"
    cfg = load_book_config(out / "book_config.json")
    assert cfg.model_names == list(MODELS) and [t.name for t in cfg.testsets] == ["vggss", "is3"]
    nb = json.loads((out / "results_tables.ipynb").read_text())
    params = nb["metadata"]["vssl"]["parameters"]
    assert params["book_config"] == str((out / "book_config.json").resolve()) and params["models"] == list(MODELS)
    toc = (out / "_toc.yml").read_text()
    assert "embedded_benchmark" not in toc and "book/models/ezvsl" in toc and "book/real/threshold_analysis_lvs" in toc


def test_real_book_front_page_shows_its_provenance(real_book: subprocess.CompletedProcess[str], data: dict[str, Path]) -> None:
    """Issue 17 item 7: the front page names the data and every checkpoint file with its sha256, and
    does not describe the embedded benchmark as the data of every chapter."""
    site = ROOT / "_build" / "real" / "_build" / "html"
    assert "book/real/intro.html" in (site / "index.html").read_text(encoding="utf-8")
    page = (site / "book" / "real" / "intro.html").read_text(encoding="utf-8")
    text = _text(site / "book" / "real" / "intro.html")
    for m in MODELS:
        assert str(data[m].resolve()) in text and file_sha256(data[m]) in text
    assert str(data["vggss"].resolve()) in text and "6 × 2" in text
    assert "not on the embedded procedural benchmark" in text and "Skipped samples" in text
    assert "every later chapter uses by default" not in text
    assert "vssl_helpers/pipeline.py" in page, "its edit link opens the code that writes it"
