"""Every bad input of the command line is one clear error before any heavy work (issue 17, item 3),
what a run records (item 4), readable tables (item 5) and a real-data book that fails fast (item 7).

Each case asserts the exit status, that the message names the option or file and what was
expected, that no traceback is printed, and (where a run had stored maps already) that the stored
shards are untouched. The CLI runs in process (``main([...])`` with capsys); one case runs it as a
subprocess to see the exit status and stderr as a user does.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from official_checkpoints import write_official_checkpoint
from vssl_helpers.cli import main
from vssl_helpers.testsets.synthetic import SyntheticConfig, SyntheticSet, write_is3_layout, write_vggss_layout

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "demo-random", "--testset", "synthetic", "--n-images", "8", "--seeds", "2", "--no-progress"]


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VSSL_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Pristine tiny real-layout roots (copied per test before being damaged) and checkpoints."""
    root = tmp_path_factory.mktemp("media")
    write_vggss_layout(SyntheticSet(SyntheticConfig(split="test", n_images=6, sources=1, seed=3)), root / "vggss", progress=False)
    write_is3_layout(SyntheticSet(SyntheticConfig(split="test", n_images=2, sources=2, seed=4)), root / "is3", progress=False)
    return {"root": root, "vggss": root / "vggss", "is3": root / "is3",
            "ezvsl": write_official_checkpoint("ezvsl", root / "ezvsl.pth", seed=0),
            "lvs": write_official_checkpoint("lvs", root / "lvs.pth", seed=1)}


def _copy_root(media: dict[str, Path], name: str, dest: Path) -> Path:
    out = dest / name
    shutil.copytree(media[name], out)
    return out


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err


def _shards(store: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(store.glob("*/*/shards/*.npz"))}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One finished tiny run (results file and store), shared by the cases that must not touch it."""
    base = tmp_path_factory.mktemp("stored")
    out = base / "tiny.json"
    mp = pytest.MonkeyPatch()
    mp.setenv("VSSL_CACHE", str(base / "cache"))
    try:
        assert main(["evaluate", *TINY, "--store", str(base / "store"), "--shard-size", "4", "--out", str(out)]) == 0
    finally:
        mp.undo()
    return {"base": base, "store": base / "store", "results": out}


# --- checkpoints ---------------------------------------------------------------------------------------


def _damaged_checkpoints(tmp: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    (tmp / "truncated.pth").write_bytes(data[: len(data) // 2])
    (tmp / "empty.pth").write_bytes(b"")
    (tmp / "notes.pth").write_text("these are my notes, not weights\n")
    return {k: tmp / f"{k}.pth" for k in ("truncated", "empty", "notes")}


@pytest.mark.parametrize("kind", ["truncated", "empty", "notes"])
@pytest.mark.parametrize("model", ["demo-random", "ezvsl"])
def test_checkpoint_that_is_not_a_checkpoint(cache: Path, media: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                             kind: str, model: str) -> None:
    """Plain state dicts (demo models) and official layouts alike: exit 2, option + file + expectation."""
    good = media["ezvsl"] if model == "ezvsl" else cache / "good.pth"
    if model != "ezvsl":
        from vssl_helpers.models import create_model

        torch.save(create_model("demo-random", seed=1).state_dict(), good)
    bad = _damaged_checkpoints(cache, good)[kind]
    args = ["evaluate", "--model", model, "--testset", "synthetic", "--n-images", "8", "--seeds", "2", "--no-progress",
            "--checkpoint", str(bad)]
    assert main(args) == 2
    err = _err(capsys)
    assert err.startswith("vssl: error: --checkpoint") and str(bad) in err
    assert ("empty (0 bytes)" in err) if kind == "empty" else ("cannot be read as a PyTorch checkpoint" in err)
    assert "torch.save" in err, "says what was expected"
    if kind == "truncated":
        assert "truncated" in err
    assert len(err.strip().splitlines()) == 1
    assert not (cache / "cache" / "maps").exists(), "refused before any map was computed"


# --- --threshold files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"threshold": {"value": 0.5,', "not valid JSON"),
        ('{"model": "demo-random", "pooled": {}}', "has no 'threshold' entry"),
        ('{"threshold": {"value": "high"}}', "threshold.value is 'high' (str)"),
        ('{"threshold": {"value": true}}', "threshold.value is True (bool)"),
        ('[0.5]', "has no 'threshold' entry"),
    ],
)
def test_threshold_file_that_is_not_a_results_file(cache: Path, capsys: pytest.CaptureFixture[str],
                                                   content: str, expected: str) -> None:
    f = cache / "thr.json"
    f.write_text(content)
    assert main(["evaluate", *TINY, "--threshold", str(f)]) == 2
    err = _err(capsys)
    assert err.startswith(f"vssl: error: --threshold {f}: ") and expected in err
    assert "numeric threshold.value" in err, "says what was expected"
    assert not (cache / "cache" / "maps").exists()


def test_threshold_that_is_not_finite(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", *TINY, "--threshold", "nan"]) == 2
    assert "--threshold: expected a finite number, got 'nan'" in _err(capsys)


def test_threshold_file_with_a_bare_number_is_read(cache: Path, stored: dict[str, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """{"threshold": 0.25} is accepted (a number where a mapping is expected is unambiguous)."""
    from vssl_helpers.inputs import read_threshold

    f = cache / "t.json"
    f.write_text('{"threshold": 0.25}')
    assert float(read_threshold(str(f))) == 0.25
    assert float(read_threshold(str(stored["results"]))) == json.loads(stored["results"].read_text())["threshold"]["value"]


def test_threshold_outside_the_map_range_is_warned_and_recorded(stored: dict[str, Path],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """demo-random's maps lie in [-1, 1]: 5 is legal but makes every map inactive."""
    out = stored["base"] / "useless.json"
    assert main(["evaluate", *TINY, "--store", str(stored["store"]), "--shard-size", "4", "--threshold", "5",
                 "--out", str(out)]) == 0
    err = _err(capsys)
    assert "vssl: warning: threshold 5 is above the map range [-1, 1] of model 'demo-random'" in err
    r = json.loads(out.read_text())
    assert r["threshold"]["value"] == 5 and any("above the map range" in w for w in r["warnings"])
    assert r["pooled"]["ciou_uth"] == 0 and r["pooled"]["pia_silence"] == 0, "nothing is active at it"


def test_threshold_inside_the_range_but_above_every_map_is_warned(stored: dict[str, Path],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Inside [-1, 1] but above the largest value this run's maps reach: warned after the run."""
    top = 0.0
    for p in stored["store"].glob("*/*/shards/*.npz"):
        with np.load(p) as z:
            top = max(top, *(float(z[k].max()) for k in ("positive", "silence", "noise", "offscreen")))
    thr = (top + 1.0) / 2  # strictly between the largest map value and the range's end
    assert main(["evaluate", *TINY, "--store", str(stored["store"]), "--shard-size", "4", "--threshold", str(thr)]) == 0
    err = _err(capsys)
    assert "at or above the largest map value of this run" in err and "entirely inactive" in err


def test_usual_threshold_gives_no_warning(stored: dict[str, Path]) -> None:
    assert json.loads(stored["results"].read_text())["warnings"] == []


# --- output paths ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["parent_is_file", "ancestor_is_file", "is_folder"])
@pytest.mark.parametrize("command", ["evaluate", "threshold"])
def test_output_path_is_checked_before_computing(stored: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                                 case: str, command: str) -> None:
    base = stored["base"]
    (base / "afile.txt").write_text("x")
    (base / "afolder").mkdir(exist_ok=True)
    out = {"parent_is_file": base / "afile.txt" / "r.json", "ancestor_is_file": base / "afile.txt" / "a" / "b" / "r.json",
           "is_folder": base / "afolder"}[case]
    before = _shards(stored["store"])
    fresh = base / f"fresh-{case}-{command}"
    for store in (stored["store"], fresh):  # a finished run and a fresh one
        assert main([command, *TINY, "--store", str(store), "--shard-size", "4", "--out", str(out)]) == 2
        err = _err(capsys)
        assert err.startswith(f"vssl: error: --out {out}: ")
        assert ("is a folder; expected a file name" in err) if case == "is_folder" else ("afile.txt is a file, not a folder" in err)
    assert _shards(stored["store"]) == before, "stored shards untouched"
    assert not fresh.exists(), "refused before computing anything"


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root may write anywhere")
def test_output_path_without_permission(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = cache / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["evaluate", *TINY, "--out", str(locked / "sub" / "r.json")]) == 2
        assert "cannot be created: no permission to write in" in _err(capsys)
    finally:
        locked.chmod(0o700)


def _unwritable_folder() -> Path | None:
    """A folder of this machine where no file can be created (sysfs refuses even root), or None."""
    for d in (Path("/sys"), Path("/proc")):
        try:
            (d / "vssl-probe").write_bytes(b"")
        except OSError:
            return d
        (d / "vssl-probe").unlink(missing_ok=True)
    return None


@pytest.mark.skipif(_unwritable_folder() is None, reason="no folder here refuses new files")
def test_output_path_that_cannot_be_created(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = _unwritable_folder()
    out = where / "vssl-results" / "r.json"
    assert main(["evaluate", *TINY, "--out", str(out)]) == 2
    err = _err(capsys)
    assert err.startswith(f"vssl: error: --out {out}: cannot be created") and str(where) in err
    assert not (cache / "cache" / "maps").exists()


def test_table_output_is_checked_before_reading(stored: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", str(stored["results"]), "--out", str(stored["base"] / "t.txt")]) == 2
    assert "--out" in (err := _err(capsys)) and "expected a .csv, .md or .json file name" in err
    (stored["base"] / "f").write_text("")
    assert main(["table", str(stored["results"]), "--out", str(stored["base"] / "f" / "t.csv")]) == 2
    assert "is a file, not a folder" in _err(capsys)


# --- audio -----------------------------------------------------------------------------------------------


def _vggss_ids(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "audio").glob("*.wav"))


def test_nan_audio_names_file_and_sample(cache: Path, media: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy_root(media, "vggss", cache)
    sid = _vggss_ids(root)[2]
    wav, sr = sf.read(root / "audio" / f"{sid}.wav", dtype="float32")
    wav[1234] = np.nan
    wav[2000] = np.inf
    sf.write(root / "audio" / f"{sid}.wav", wav, sr, subtype="FLOAT")
    store = cache / "store"
    # shards of an earlier run on this store (another seed count) must survive the failed run
    good = _copy_root(media, "vggss", cache / "good")
    assert main(["evaluate", "--model", "demo-random", "--testset", "vggss", "--data-root", str(good), "--seeds", "1",
                 "--shard-size", "2", "--no-progress", "--store", str(store)]) == 0
    before = _shards(store)
    assert before
    capsys.readouterr()
    out = cache / "r.json"
    assert main(["evaluate", "--model", "demo-random", "--testset", "vggss", "--data-root", str(root), "--seeds", "2",
                 "--shard-size", "2", "--no-progress", "--store", str(store), "--out", str(out)]) == 2
    err = _err(capsys)
    assert f"{sid}.wav" in err and f"(sample {sid})" in err
    assert "2 NaN/infinite sample value(s), the first at frame 1234" in err and "expected finite samples" in err
    assert _shards(store) == before and not out.exists()
    # decoded in DataLoader workers: the same one line (torch's re-raised worker traceback is not shown)
    assert main(["evaluate", "--model", "demo-random", "--testset", "vggss", "--data-root", str(root), "--seeds", "2",
                 "--shard-size", "2", "--no-progress", "--store", str(store), "--workers", "2"]) == 2
    err = _err(capsys)
    assert err.strip().splitlines()[-1].startswith(f"vssl: error: audio file {root / 'audio' / sid}.wav (sample {sid})")
    assert "Original Traceback" not in err and _shards(store) == before


def test_read_audio_refuses_nan_and_truncated_files(tmp_path: Path) -> None:
    from vssl_helpers.testsets.media import MediaError, read_audio, wav_declared_frames

    x = (0.1 * np.sin(np.arange(16000) / 7)).astype(np.float32)
    sf.write(tmp_path / "ok.wav", x, 16000, subtype="PCM_16")
    assert wav_declared_frames(tmp_path / "ok.wav") == 16000
    assert read_audio(tmp_path / "ok.wav")[0].shape == (16000,)
    data = (tmp_path / "ok.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:-6000])  # 3000 frames of 16-bit mono missing
    assert wav_declared_frames(tmp_path / "cut.wav") == 16000
    with pytest.raises(MediaError, match=r"cut\.wav \(sample s1\): its header declares 16000 frames .* but 13000 decode"):
        read_audio(tmp_path / "cut.wav", sample_id="s1")
    # a data chunk declared shorter than the file: what decodes is what the header says, so it agrees
    k = data.find(b"data")
    (tmp_path / "short_header.wav").write_bytes(data[: k + 4] + struct.pack("<I", 8000 * 2) + data[k + 8:])
    assert read_audio(tmp_path / "short_header.wav")[0].shape == (8000,)
    y = x.copy()
    y[10] = -np.inf
    sf.write(tmp_path / "inf.wav", y, 16000, subtype="FLOAT")
    with pytest.raises(MediaError, match=r"inf\.wav: 1 NaN/infinite sample value\(s\), the first at frame 10 "):
        read_audio(tmp_path / "inf.wav")


@pytest.mark.parametrize("damage", ["short", "truncated"])
def test_short_or_truncated_audio_is_refused_before_any_work(cache: Path, media: dict[str, Path],
                                                             capsys: pytest.CaptureFixture[str], damage: str) -> None:
    from vssl_helpers.testsets.media import MIN_AUDIO_SECONDS

    root = _copy_root(media, "vggss", cache)
    sid = _vggss_ids(root)[0]
    path = root / "audio" / f"{sid}.wav"
    if damage == "short":
        wav, sr = sf.read(path, dtype="float32")
        sf.write(path, wav[: int(0.2 * sr)], sr, subtype="PCM_16")
    else:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 4000])
    args = ["evaluate", "--model", "demo-random", "--testset", "vggss", "--data-root", str(root), "--seeds", "2",
            "--no-progress"]
    assert main(args) == 2
    err = _err(capsys)
    assert err.startswith(f"vssl: error: --data-root {root}: VGG-SS: 1 of 6 samples") and sid in err
    assert (f"audio too short ({sid}.wav: 0.200 s < {MIN_AUDIO_SECONDS} s minimum)" in err if damage == "short"
            else "audio truncated" in err and "header declares" in err)
    assert "--on-missing skip" in err and "on_missing=" not in err, "the CLI's spelling"
    assert not (cache / "cache" / "maps").exists()
    # --on-missing skip: the run goes on without it, and the results file records it with the reason
    out = cache / "skip.json"
    assert main([*args, "--on-missing", "skip", "--out", str(out)]) == 0
    err = _err(capsys)
    assert "--on-missing skip: 1 sample(s)" in err and "on_missing=" not in err
    r = json.loads(out.read_text())
    assert r["skipped"]["count"] == 1 and r["skipped"]["on_missing"] == "skip"
    assert [s["id"] for s in r["skipped"]["samples"]] == [sid]
    assert ("too short" if damage == "short" else "truncated") in r["skipped"]["samples"][0]["reason"]
    assert int(r["pooled"]["n_samples"]) == 5


def test_min_audio_seconds_is_documented() -> None:
    from vssl_helpers import cli
    from vssl_helpers.testsets.media import MIN_AUDIO_SECONDS

    assert cli._MIN_AUDIO == MIN_AUDIO_SECONDS
    assert f"audio under {MIN_AUDIO_SECONDS} s" in cli.build_parser()._subparsers._group_actions[0].choices["evaluate"].format_help()
    assert f"shorter than {MIN_AUDIO_SECONDS} s" in (ROOT / "README.md").read_text()


def test_complete_media_records_no_skipped_sample(cache: Path, media: dict[str, Path]) -> None:
    out = cache / "r.json"
    assert main(["evaluate", "--model", "demo-random", "--testset", "vggss", "--data-root", str(media["vggss"]),
                 "--seeds", "2", "--no-progress", "--on-missing", "skip", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["skipped"] == {"count": 0, "on_missing": "skip", "samples": []}


# --- user-supplied manifests --------------------------------------------------------------------------------


def _synthetic(n: int = 8) -> SyntheticSet:
    return SyntheticSet(SyntheticConfig(split="test", n_images=n, sources=1, seed=0))


def test_manifest_that_was_edited(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vssl_helpers.negatives import manifest_for_samples

    f = manifest_for_samples(_synthetic(), name="mine", n_seeds=2).save(cache / "m.txt")
    lines = f.read_text().split("\n")
    last = lines[-2].split("\t")
    last[0] = str((int(last[0]) + 1) % 8)
    lines[-2] = "\t".join(last)
    f.write_text("\n".join(lines))
    assert main(["evaluate", *TINY, "--manifest", str(f)]) == 2
    err = _err(capsys)
    assert err.startswith(f"vssl: error: --manifest: {f}: content hash") and "edited or corrupted" in err


@pytest.mark.parametrize("content, expected", [
    ("id\tseed\tclip\n", "not a vssl negatives manifest"),
    ("", "not a vssl negatives manifest"),
    (b"\xfd7zXZ\x00garbage", "cannot be decompressed"),
])
def test_manifest_that_is_not_a_manifest(cache: Path, capsys: pytest.CaptureFixture[str], content: str | bytes,
                                         expected: str) -> None:
    f = cache / "m.txt"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["evaluate", *TINY, "--manifest", str(f)]) == 2
    err = _err(capsys)
    assert err.startswith(f"vssl: error: --manifest: {f}: ") and expected in err
    assert not (cache / "cache" / "maps").exists()


def test_manifest_of_another_test_set(cache: Path, media: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from vssl_helpers.negatives import manifest_for_samples

    f = manifest_for_samples(_synthetic(), name="synthetic", n_seeds=2).save(cache / "m.txt")
    assert main(["evaluate", "--model", "demo-random", "--testset", "vggss", "--data-root", str(media["vggss"]),
                 "--manifest", str(f), "--no-progress"]) == 2
    err = _err(capsys)
    assert err.startswith(f"vssl: error: --manifest {f}: 8 of its 8 items are not samples of this test set")
    assert "syn-test" in err and "expected a manifest drawn for this test set" in err


def test_manifest_with_offscreen_clips_of_the_samples_own_category(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exclusion lists written for other data: the draws satisfy the file, not the test set."""
    from vssl_helpers.categories import BROAD_CATEGORIES
    from vssl_helpers.negatives import build_manifest, items_from_samples, pool_from_items
    from dataclasses import replace

    items = items_from_samples(_synthetic())
    own = items[0].audio_category
    other = next(c for c in BROAD_CATEGORIES if c != own)
    pool = [c for c in pool_from_items(items) if c.category == own]
    fake = [replace(it, exclude=(other,)) for it in items]
    f = build_manifest(fake, pool, n_seeds=2, name="fake").save(cache / "m.txt")
    assert main(["evaluate", *TINY[:-3], "--manifest", str(f), "--no-progress"]) == 2
    err = _err(capsys)
    assert f"--manifest {f}:" in err and "an off-screen clip of a category that sounds or shows in their own image" in err
    assert items[0].id in err and f"is {own}" in err


def test_options_a_manifest_fixes(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vssl_helpers.negatives import manifest_for_samples

    f = manifest_for_samples(_synthetic(), name="mine", n_seeds=2).save(cache / "m.txt")
    base = ["evaluate", "--model", "demo-random", "--testset", "synthetic", "--manifest", str(f), "--no-progress"]
    assert main([*base, "--seeds", "3"]) == 2
    err = _err(capsys)
    assert err.startswith("vssl: error: --seeds: 3 given, but the manifest") and "fixes 2 seeds" in err
    assert main([*base, "--n-images", "16"]) == 2
    err = _err(capsys)
    assert err.startswith("vssl: error: --n-images: 16 given, but the manifest") and "covers 8 images" in err
    # left out: taken from the manifest (applied, and said so)
    out = cache / "r.json"
    assert main([*base, "--out", str(out)]) == 0
    err = _err(capsys)
    assert "--seeds 2: fixed by the manifest" in err and "--n-images 8: fixed by the manifest" in err
    r = json.loads(out.read_text())
    assert r["n_seeds"] == 2 and int(r["pooled"]["n_samples"]) == 8 and r["manifest"] == "mine"
    # agreeing values are accepted
    assert main([*base, "--seeds", "2", "--n-images", "8"]) == 0


def test_n_images_is_refused_for_real_sets(cache: Path, media: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--model", "demo-random", "--testset", "vggss", "--data-root", str(media["vggss"]),
                 "--n-images", "3"]) == 2
    assert "--n-images: only for --testset synthetic" in _err(capsys)


def test_subprocess_exit_status_and_single_line(cache: Path) -> None:
    """As a user sees it: status 2, one line on stderr, nothing on stdout."""
    bad = cache / "empty.pth"
    bad.write_bytes(b"")
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "vssl_helpers.cli", "evaluate", *TINY, "--checkpoint", str(bad)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [f"vssl: error: --checkpoint {bad}: the file is empty (0 bytes); "
                                             "expected a PyTorch checkpoint (torch.save)"]


# --- vssl table ------------------------------------------------------------------------------------------


def test_table_is_readable(stored: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    r = json.loads(stored["results"].read_text())
    a, b = stored["base"] / "model_a.json", stored["base"] / "model_b.json"
    a.write_text(json.dumps({**r, "model": "ezvsl", "threshold": {**r["threshold"], "value": 0.154},
                             "checkpoint": "/ckpt/ezvsl_vggss.pth", "checkpoint_sha256": "ab" * 32}))
    b.write_text(json.dumps({**r, "model": "lvs", "threshold": {**r["threshold"], "value": 0.1549}}))
    capsys.readouterr()
    assert main(["table", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    row_a = next(ln for ln in lines if ln.startswith("model_a.json"))
    row_b = next(ln for ln in lines if ln.startswith("model_b.json"))
    assert " 0.154 " in row_a and " 0.1549 " in row_b, "thresholds told apart"
    assert "ezvsl_vggss.pth (abababababab)" in row_a, "checkpoint file and short hash"
    assert "no file (state " in row_b
    header = lines[0]
    assert "results" in header and "cIoU U.th. ↑" in header and "pIA sil. ↓" in header and "F_LOC ↑" in header
    assert "↑ higher is better, ↓ lower is better" in out, "legend"
    assert "seed 0" not in out and "seed 1" not in out, "no per-seed rows unless asked"
    assert main(["table", str(a), str(b), "--per-seed"]) == 0
    out = capsys.readouterr().out
    assert sum(ln.startswith("model_a.json") for ln in out.splitlines()) == 3
    assert "seed 0" in out and "seed 1" in out
    seed1 = next(ln for ln in out.splitlines() if ln.startswith("model_b.json") and "seed 1" in ln)
    assert f"{r['per_seed'][1]['auc_n_offscreen']:.1f}" in seed1


@pytest.mark.parametrize("content", ['{"model": "x", "pooled": {}, "threshold": {"value": "low"}}', "[1, 2]", "{", ""])
def test_table_of_a_file_that_is_not_a_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str) -> None:
    f = tmp_path / "r.json"
    f.write_text(content)
    assert main(["table", str(f)]) == 2
    err = _err(capsys)
    assert err.startswith(f"vssl: error: {f}: not a results file of `vssl evaluate --out` (expected JSON with model")


def test_table_threshold_digits() -> None:
    from vssl_helpers.report.tables import distinguishing_digits

    assert distinguishing_digits([0.154, 0.1549]) == 4
    assert distinguishing_digits([0.154, 0.154]) == 4
    assert distinguishing_digits([0.15491, 0.15492, 0.2]) == 5
    assert distinguishing_digits([0.5, 0.50000001]) == 8
    assert f"{0.154:.1g}" == f"{0.1549:.1g}" == "0.2", "the issue's example: one digit cannot tell them apart"


def test_evaluate_prints_per_seed_rows_only_on_request(stored: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["evaluate", *TINY, "--store", str(stored["store"]), "--shard-size", "4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pooled" in out and "seed 0" not in out and "--per-seed" in out
    assert main([*args, "--per-seed"]) == 0
    out = capsys.readouterr().out
    assert "seed 0" in out and "seed 1" in out


def test_seeds_help_says_it_is_a_count(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("evaluate", "book"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--seeds N how many negative seeds per sample (a count: seeds 0..N-1" in text


# --- the real-data book fails fast ------------------------------------------------------------------------


@pytest.fixture()
def no_notebooks(monkeypatch: pytest.MonkeyPatch) -> list:
    """papermill must not run: record any call."""
    import papermill

    calls: list = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: calls.append(a))
    return calls


@pytest.mark.parametrize(
    "case, expected",
    [
        ("wrong_model", "models.ezvsl.checkpoint {lvs}: does not fit model 'ezvsl'"),
        ("wrong_root", "testsets.vggss: VGG-SS media root {is3} has no 'frames/' folder"),
        ("partial_root", "testsets.vggss: VGG-SS: 1 of 6 samples have missing"),
    ],
)
def test_book_refuses_bad_input_before_any_notebook(cache: Path, media: dict[str, Path], no_notebooks: list,
                                                    capsys: pytest.CaptureFixture[str], case: str, expected: str) -> None:
    vggss = media["vggss"]
    ckpt = media["ezvsl"]
    if case == "wrong_model":
        ckpt = media["lvs"]
    elif case == "wrong_root":
        vggss = media["is3"]
    else:
        vggss = _copy_root(media, "vggss", cache)
        (vggss / "audio" / f"{_vggss_ids(vggss)[3]}.wav").unlink()
    out = cache / "real"
    rc = main(["book", "--data-root", f"vggss={vggss}", "--checkpoint", f"ezvsl={ckpt}", "--seeds", "2", "--quick",
               "--no-progress", "--out", str(out), "--store", str(cache / "maps")])
    err = _err(capsys)
    assert rc == 2, err
    assert err.startswith("vssl: error: ") and "[pipeline]" not in err
    assert expected.format(**{k: str(v) for k, v in media.items()}) in err
    if case == "partial_root":
        assert "testsets.vggss.on_missing: skip (vssl book --on-missing skip)" in err and "on_missing='skip'" not in err
    assert no_notebooks == [], "no notebook was executed"
    assert not list(out.glob("*.ipynb")) and not (cache / "maps").exists()


def test_book_config_file_with_bad_checkpoint_uses_the_same_convention(cache: Path, media: dict[str, Path],
                                                                       no_notebooks: list,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = _damaged_checkpoints(cache, media["ezvsl"])["truncated"]
    cfg = cache / "real.yaml"
    cfg.write_text(f"testsets:\n  vggss: {{data_root: {media['vggss']}}}\nmodels:\n  ezvsl: {{checkpoint: {bad}}}\nseeds: 2\n")
    assert main(["book", "--config", str(cfg), "--quick", "--out", str(cache / "real")]) == 2
    err = _err(capsys)
    assert err.startswith(f"vssl: error: {cfg}: models.ezvsl.checkpoint {bad}: cannot be read as a PyTorch checkpoint")
    assert no_notebooks == []
    # the library entry `vssl book` calls (python -m vssl_helpers.pipeline is no separate command line now)
    from vssl_helpers.pipeline import run_book

    assert run_book(config=cfg, out=cache / "real", quick=True) == 2
    assert _err(capsys).startswith("vssl: error: ") and no_notebooks == []


def test_book_front_page_names_checkpoints_and_skipped_samples(cache: Path, media: dict[str, Path]) -> None:
    """The pre-flight record and the real-data front page made from it (the build itself is in
    tests/test_real_book.py)."""
    from vssl_helpers.models import file_sha256
    from vssl_helpers.pipeline import write_real_intro
    from vssl_helpers.report.runs import book_config_from_dict, preflight

    vggss = _copy_root(media, "vggss", cache)
    gone = _vggss_ids(vggss)[1]
    (vggss / "frames" / f"{gone}.jpg").unlink()
    cfg = book_config_from_dict({"testsets": {"vggss": {"data_root": str(vggss), "on_missing": "skip"},
                                              "is3": {"data_root": str(media["is3"])}},
                                 "models": {"ezvsl": {"checkpoint": str(media["ezvsl"])}}, "seeds": 2})
    record = preflight(cfg)
    assert record["threshold_set"] == "vggss"
    assert record["models"] == [{"name": "ezvsl", "checkpoint": str(media["ezvsl"].resolve()),
                                 "sha256": file_sha256(media["ezvsl"])}]
    sets = {t["name"]: t for t in record["testsets"]}
    assert [s["id"] for s in sets["vggss"]["skipped"]] == [gone] and "image missing" in sets["vggss"]["skipped"][0]["reason"]
    assert sets["vggss"]["n_samples"] == 5 and sets["is3"]["n_samples"] == 4 and sets["is3"]["skipped"] == []
    intro = write_real_intro(record, ROOT, cache / "out").read_text()
    assert file_sha256(media["ezvsl"]) in intro and str(media["ezvsl"].resolve()) in intro
    assert sum(gone in line for line in intro.splitlines()) == 1, "the skipped ids once, in a table"
    assert "| Extended VGG-SS | sample id" not in intro and f"| Extended VGG-SS | `{gone}` |" in intro
    assert "not on the embedded procedural benchmark" in intro and "## What the paper found" in intro
    assert "The embedded benchmark*: the data and the demo models every later chapter uses" not in intro
