"""Engine vs the reference-style pipeline on a synthetic set in the VGG-SS layout.

The engine (``evaluate``: media decoded in DataLoader workers, each image encoded once, each
distinct audio once, maps stored in shards, batched metrics from the store) is timed end to end on
``--n-images`` samples x ``--seeds`` seeds. The naive pipeline (what the paper's code does: batch 1,
the full model re-run for every sample x audio type (positive, silence, noise, off-screen) x seed,
media and spectrogram per sample, metrics per sample in NumPy) is timed on the first
``--naive-samples`` samples and checked against the engine's maps and per-sample metrics. Both are
extrapolated linearly per sample to VGG-SS size (5,158 images); the output says what was measured
and what was extrapolated. ``--full`` writes and evaluates all 5,158 images with the engine.

Model: ``ezvsl`` (ResNet-18 image and audio towers, random weights) if registered, else a local
ResNet-18 two-tower.

    .venv/bin/python benchmarks/engine.py [--n-images 32] [--naive-samples 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

VGGSS_SIZE = 5158


def naive_sample(model, ds, manifest, row: int, t: float) -> tuple[dict, dict]:
    """Reference-style: every (type, seed) a fresh full forward at batch 1 with media read again."""
    from vssl_helpers.metrics import upsample
    from vssl_helpers.negatives import noise_waveform

    pre = model.config.preprocessing
    n = int(round(pre.sample_rate * pre.audio_seconds))
    sid = manifest.ids[row]
    maps, vals = {}, {}
    for s in range(manifest.n_seeds):
        for kind in ("positive", "silence", "noise", "offscreen"):
            smp = ds.load(ds.index(sid))  # per-sample decode, as a per-item Dataset does
            if kind == "positive":
                wave = smp.audio
            elif kind == "silence":
                wave = np.zeros(n, np.float32)
            elif kind == "noise":
                wave = noise_waveform(int(manifest.noise_seeds[row, s]), n)
            else:
                wave = ds.load(ds.index(manifest.pool[manifest.offscreen[row, s]].id)).audio
            x = pre.image_transform(smp.image)[None]  # the model's own transform of the decoded image
            a = torch.from_numpy(np.asarray(wave, np.float32))[None]  # whole clip: the model picks its window
            with torch.no_grad():
                m = model.joint_maps(x, a)[0]
            maps[(kind, s)] = m
            act = upsample(m[None])[0].numpy() > t  # per-sample NumPy metrics
            if kind == "positive":
                g = smp.gt_mask
                inter, union = np.logical_and(act, g).sum(), np.logical_or(act, g).sum()
                vals[(kind, s)] = inter / union if union else np.nan
            else:
                vals[(kind, s)] = act.mean()
    return maps, vals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-images", type=int, default=32)
    ap.add_argument("--naive-samples", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--full", action="store_true", help=f"engine on all {VGGSS_SIZE} images (writes ~{VGGSS_SIZE} files)")
    ap.add_argument("--root", type=Path, help="where to write the VGG-SS layout (default: a temp dir)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()

    import vssl_helpers
    from vssl_helpers.engine import evaluate
    from vssl_helpers.models import create_model, list_models
    from vssl_helpers.negatives import manifest_for_samples
    from vssl_helpers.testsets.synthetic import SyntheticConfig, SyntheticSet, write_vggss_layout
    from vssl_helpers.testsets.vggss import load_vggss

    n_img = VGGSS_SIZE if args.full else args.n_images
    if "ezvsl" not in list_models():
        raise SystemExit("model 'ezvsl' is not registered in this checkout")
    model = create_model("ezvsl").eval()
    print(f"vssl_helpers {vssl_helpers.__version__}, torch {torch.__version__}, device {args.device}, "
          f"{torch.get_num_threads()} threads; model ezvsl (ResNet-18 towers, random weights)")
    tmp = tempfile.TemporaryDirectory()
    root = args.root or Path(tmp.name) / "vggss"
    t0 = time.perf_counter()
    if not (root / "vggss.json").is_file():
        write_vggss_layout(SyntheticSet(SyntheticConfig(split="test", n_images=n_img, seed=0)), root, progress=False)
    print(f"VGG-SS layout: {n_img} images written to {root} in {time.perf_counter() - t0:.1f} s (not timed below)")
    ds = load_vggss(root / "vggss.json", media_root=root)
    manifest = manifest_for_samples(ds.samples, name="vggss-synthetic", n_seeds=args.seeds)

    t0 = time.perf_counter()
    res = evaluate(model, ds, manifest, Path(tmp.name) / "store", batch_size=args.batch_size,
                          shard_size=256, num_workers=args.workers, device=args.device, dtype=args.dtype)
    t_engine = time.perf_counter() - t0
    th = res.threshold.value
    print(f"engine  : {n_img} samples x {args.seeds} seeds end to end in {t_engine:.1f} s "
          f"(pool audio {res.timings['pool_audio_s']:.1f}, maps {res.timings['maps_s']:.1f}, metrics {res.timings['metrics_s']:.1f}) "
          f"= {t_engine / n_img:.3f} s/sample  [measured]")

    k = args.naive_samples
    t0 = time.perf_counter()
    worst_map, worst_val = 0.0, 0.0
    from vssl_helpers import metrics as M

    for row in range(k):
        maps, vals = naive_sample(model, ds, manifest, row, th)
        for (kind, s), m in maps.items():
            ref = {"positive": res.maps.positive[row], "silence": res.maps.silence[row],
                   "noise": res.maps.noise[s, row], "offscreen": res.maps.offscreen[s, row]}[kind]
            worst_map = max(worst_map, float((m - ref).abs().max()))
            ev = (M.ciou(ref[None], res.gt[row : row + 1], th)[0] if kind == "positive" else M.pia(ref[None], th)[0]).item()
            if not (np.isnan(ev) and np.isnan(vals[(kind, s)])):
                worst_val = max(worst_val, abs(ev - vals[(kind, s)]))
    t_naive = time.perf_counter() - t0
    per = t_naive / k
    print(f"naive   : {k} sample(s) x {args.seeds} seeds x 4 audio types = {k * args.seeds * 4} full forwards in "
          f"{t_naive:.1f} s = {per:.2f} s/sample  [measured]")
    print(f"equal results: max |map diff| {worst_map:.2e}, max |per-sample IoU/pIA diff| {worst_val:.2e} "
          f"(on the {k} naive sample(s))")
    print(f"ratio (per sample, measured sizes): {per / (t_engine / n_img):.1f}x")
    print(f"extrapolated to VGG-SS ({VGGSS_SIZE} images, {args.seeds} seeds): engine {t_engine / n_img * VGGSS_SIZE / 60:.1f} min"
          f"{' [measured]' if args.full else ' [extrapolated]'}, naive {per * VGGSS_SIZE / 3600:.1f} h [extrapolated]")
    tmp.cleanup()


if __name__ == "__main__":
    main()
