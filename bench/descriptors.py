"""Poolings of EfficientNet-Lite0's feature maps compared on the real card of bench/real_shoots.py.

Run by hand (~1 min on 2 cores):
    python -m bench.descriptors

The card "wedding" of bench/real_shoots.py is decoded once (from the JPEG bytes the upload would
store) and run once through the offline encoder; every pooling is computed from the same maps:
the last feature maps (1280 x 7 x 7 at 224 px) and an earlier block's (112 x 14 x 14). For each
it prints the ROC AUC of bench/real_shoots.py (pairs of one burst against look-alike pairs of
different moments), and how many bursts single linkage could keep apart at all (the weakest link
inside the burst above its most alike image elsewhere), with the tree's figures (two moments of
a fixed camera). Grouping through the API is what bench/real_shoots.py measures; this is for the
choice of pooling, and for the range of MOMENT_LINK_COSINE that keeps the grouping with capture
times at its best (ImageGrouper called directly on the same vectors).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Sequence
from datetime import timedelta

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.sparse.csgraph import minimum_spanning_tree
from sklearn.metrics import roc_auc_score

from bench.real_shoots import (
    SHOOT_START,
    Shot,
    jpeg_bytes,
    score,
    wedding_card,
    within_and_between,
)
from processing import feature_extraction as fe
from processing import grouping
from processing.grouping import Capture, ImageGrouper, camera_key

Maps = dict[str, torch.Tensor]


def feature_maps(images: Sequence[Image.Image]) -> Maps:
    """The last maps ("head"), block 15's ("last_block", before the head's 1x1 conv) and block
    10's ("mid") of EfficientNet-Lite0, at 224 px."""
    embedder = fe.EfficientNetLiteEmbedder()
    embedder.load()
    model: torch.nn.Module = embedder._model  # type: ignore[assignment]
    spec = fe.Preprocessing(size=224, mean=fe.LITE_MEAN, std=fe.LITE_STD)
    heads, mids, lasts = [], [], []
    for start in range(0, len(images), 16):
        x = fe.preprocess(images[start : start + 16], spec)
        with torch.inference_mode():
            y = model._swish(model._bn0(model._conv_stem(x)))  # type: ignore[operator]
            for index, block in enumerate(model._blocks):  # type: ignore[arg-type]
                y = block(y)
                if index == 10:
                    mids.append(y)
            lasts.append(y)
            heads.append(model._swish(model._bn1(model._conv_head(y))))  # type: ignore[operator]
    return {"head": torch.cat(heads), "mid": torch.cat(mids), "last_block": torch.cat(lasts)}


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.flatten(1), dim=1)


def rmac(maps: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """R-MAC (Tolias et al. 2016): max over square regions at `levels` scales, each region's
    vector L2-normalised, summed."""
    height, width = maps.shape[2:]
    regions = []
    for level in range(1, levels + 1):
        side = max(1, int(2 * min(height, width) / (level + 1)))
        ys = sorted({round(v) for v in np.linspace(0, height - side, level)})
        xs = sorted({round(v) for v in np.linspace(0, width - side, level)})
        for y, x in itertools.product(ys, xs):
            regions.append(_unit(maps[:, :, y : y + side, x : x + side].amax(dim=(2, 3))))
    return torch.stack(regions).sum(dim=0)


def gem(maps: torch.Tensor, p: float = fe.GEM_P) -> torch.Tensor:
    return maps.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


POOLINGS: dict[str, Callable[[Maps], torch.Tensor]] = {
    "mean (efficientnet-lite0)": lambda m: m["head"].mean(dim=(2, 3)),
    "GeM p=3 (efficientnet-lite0+gem)": lambda m: gem(m["head"]),
    "GeM p=6": lambda m: gem(m["head"], 6.0),
    "MAC (efficientnet-lite0+mac)": lambda m: m["head"].amax(dim=(2, 3)),
    "R-MAC, 3 scales": lambda m: rmac(m["head"]),
    "mean of a 2x2 grid, side by side": lambda m: _unit(
        _unit_cells(F.adaptive_avg_pool2d(m["head"], 2))
    ),
    "mean of a 3x3 grid, side by side": lambda m: _unit(
        _unit_cells(F.adaptive_avg_pool2d(m["head"], 3))
    ),
    "MAC + MAC of block 15": lambda m: torch.cat(
        [_unit(m["head"].amax(dim=(2, 3))), _unit(m["last_block"].amax(dim=(2, 3)))], dim=1
    ),
    "mean + 7x7 grid of block 10": lambda m: torch.cat(
        [_unit(m["head"].mean(dim=(2, 3))), _unit(F.adaptive_avg_pool2d(m["mid"], 7))], dim=1
    ),
    "7x7 grid of block 10 alone": lambda m: F.adaptive_avg_pool2d(m["mid"], 7).flatten(1),
}


def _unit_cells(cells: torch.Tensor) -> torch.Tensor:
    """(n, c, g, g) region descriptors -> (n, g*g, c), each region L2-normalised."""
    return F.normalize(cells.flatten(2).transpose(1, 2), dim=2)


def similarities(vectors: torch.Tensor) -> np.ndarray:
    unit = F.normalize(vectors.flatten(1).double(), dim=1).numpy()
    sims: np.ndarray = unit @ unit.T
    return sims


def auc(shots: Sequence[Shot], sims: np.ndarray) -> float:
    within, between = within_and_between(shots, sims)
    labels = np.r_[np.ones(within.size), np.zeros(between.size)]
    return float(roc_auc_score(labels, np.r_[within, between]))


def separable(shots: Sequence[Shot], sims: np.ndarray) -> tuple[int, int, dict[str, str]]:
    """Bursts whose weakest single-linkage link is above their most alike image elsewhere."""
    bursts = sorted({s.truth for s in shots if not s.truth.startswith("single:")})
    kept, notes = 0, {}
    for burst in bursts:
        inside = [i for i, s in enumerate(shots) if s.truth == burst]
        outside = [i for i, s in enumerate(shots) if s.truth != burst]
        distances = 1.0 - sims[np.ix_(inside, inside)] + 1e-9
        np.fill_diagonal(distances, 0.0)
        weakest = 1.0 - float(minimum_spanning_tree(distances).toarray().max())
        elsewhere = float(sims[np.ix_(inside, outside)].max())
        kept += weakest > elsewhere
        notes[burst] = f"{weakest:.3f} within / {elsewhere:.3f} elsewhere"
    return kept, len(bursts), notes


def link_sweep(shots: Sequence[Shot], vectors: torch.Tensor) -> list[str]:
    """ARI and bursts exact at 2/1 with capture times, for several MOMENT_LINK_COSINE values."""
    captures = [
        Capture(
            None if s.at is None else SHOOT_START + timedelta(seconds=s.at),
            None if s.camera is None else camera_key(*vars(s.camera).values()),
        )
        for s in shots
    ]
    truth = [s.truth for s in shots]
    x = vectors.flatten(1).numpy()
    rows, saved = [], grouping.MOMENT_LINK_COSINE
    try:
        for link in (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85):
            grouping.MOMENT_LINK_COSINE = link
            labels = ImageGrouper(2, 1).fit_labels(x, captures, 10.0).labels
            got = score(truth, labels, 2)
            rows.append(f"{link:.2f}: ARI {got.ari:.3f} prec {got.precision:.3f}")
            rows[-1] += f" exact {got.bursts_exact}/{got.bursts}"
    finally:
        grouping.MOMENT_LINK_COSINE = saved
    return rows


def main() -> None:
    print("command: python -m bench.descriptors")
    shots = wedding_card()
    images = [Image.open(io.BytesIO(jpeg_bytes(s))).convert("RGB") for s in shots]
    maps = feature_maps(images)
    print(f"card wedding: {len(shots)} images\n")
    print(f"{'pooling':<36} {'AUC':>6}  separable  tree-1 | tree-B (two moments, fixed camera)")
    for name, pool in POOLINGS.items():
        vectors = pool(maps)
        sims = similarities(vectors)
        kept, total, notes = separable(shots, sims)
        print(
            f"{name:<36} {auc(shots, sims):6.3f}  {kept:>4}/{total:<4}  "
            f"{notes['tree-1']} | {notes['tree-B']}"
        )
    for name in ("mean (efficientnet-lite0)", "MAC (efficientnet-lite0+mac)"):
        print(f"\nMOMENT_LINK_COSINE sweep, {name}, 2/1 with capture times:")
        for line in link_sweep(shots, POOLINGS[name](maps)):
            print("   " + line)


if __name__ == "__main__":
    main()
