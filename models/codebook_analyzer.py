"""Full-pass TFT analyzers that fit the RQ codebook levels inside Transform.

Each level is one `tft.experimental.ptransform_analyzer` over the residuals left by the levels
before it. The Beam side reduces the data to a mergeable, bounded summary — a weighted histogram
of values rounded to a fixed grid (`resolution`, in transformed units) — so no worker ever holds
the whole data set, then fits the centroids on that summary with `models.codebook.fit_level`.
The result is deterministic for the same data, which keeps pipeline caching meaningful.

Each level's output is a text asset of the transform graph (one centroid per line), annotated
as `codebook_asset_key(level)`: the transform graph reads it to compute every example's codes,
and the trainer reads it back through `TFTransformOutput.vocabulary_file_by_name` to bake the
centroids into the serving model, so training and serving share one codebook.
"""

import os
from typing import Dict, List, Sequence, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from models import codebook


def codebook_asset_key(level: int) -> str:
    """Name of the asset holding level `level`'s centroids (levels count from 1)."""
    return f"rq_codebook_level_{level}"


class _ValueHistogram(beam.CombineFn):
    """Weighted counts of values rounded to a grid: {grid index: weight}."""

    def __init__(self, resolution: float):
        self._resolution = resolution

    def create_accumulator(self) -> Dict[int, float]:
        return {}

    def add_input(self, acc: Dict[int, float], batch: Tuple[np.ndarray, np.ndarray]) -> Dict[int, float]:
        values, weights = (np.asarray(b, dtype=np.float64).ravel() for b in batch)
        keep = weights > 0
        keys = np.rint(values[keep] / self._resolution).astype(np.int64)
        uniq, inverse = np.unique(keys, return_inverse=True)
        sums = np.bincount(inverse, weights=weights[keep])
        for key, weight in zip(uniq.tolist(), sums.tolist()):
            acc[key] = acc.get(key, 0.0) + weight
        return acc

    def merge_accumulators(self, accs):
        merged: Dict[int, float] = {}
        for acc in accs:
            for key, weight in acc.items():
                merged[key] = merged.get(key, 0.0) + weight
        return merged

    def extract_output(self, acc: Dict[int, float]) -> Tuple[np.ndarray, np.ndarray]:
        keys = np.fromiter(acc.keys(), dtype=np.int64, count=len(acc))
        weights = np.fromiter(acc.values(), dtype=np.float64, count=len(acc))
        return keys.astype(np.float64) * self._resolution, weights


class FitCodebookLevel(tft_beam.experimental.PTransformAnalyzer):
    """Beam side of one codebook level: (values, weights) batches -> path of the centroid asset."""

    def __init__(self, level: int, size: int, median: bool, resolution: float, reserve_zero: bool):
        super().__init__()
        self._level = level
        self._size = size
        self._median = median
        self._resolution = resolution
        self._reserve_zero = reserve_zero

    def _fit(self, histogram: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        values, weights = histogram
        if self._reserve_zero:
            centroids = np.concatenate(
                [[0.0], codebook.fit_level(values, weights, self._size - 1, median=self._median)])
        else:
            centroids = codebook.fit_level(values, weights, self._size, median=self._median)
        return centroids.astype(np.float32)

    def _write_asset(self, centroids: np.ndarray) -> np.ndarray:
        directory = os.path.join(self.base_temp_dir, f"rq_codebook_{self._level}")
        tf.io.gfile.makedirs(directory)
        path = os.path.join(directory, codebook_asset_key(self._level))
        with tf.io.gfile.GFile(path, "w") as f:
            f.write("".join(f"{c!r}\n" for c in centroids.astype(float).tolist()))
        return np.array(path.encode())

    def expand(self, pcoll):
        return (
            pcoll
            | "Histogram" >> beam.CombineGlobally(_ValueHistogram(self._resolution))
            | "Fit" >> beam.Map(self._fit)
            | "WriteAsset" >> beam.Map(self._write_asset))


def read_centroids(path: tf.Tensor, size: int) -> tf.Tensor:
    """Parses a centroid asset (one number per line) into a [size] float32 tensor."""
    lines = tf.strings.split(tf.strings.strip(tf.io.read_file(path)), "\n")
    return tf.ensure_shape(tf.strings.to_number(lines, tf.float32), [size])


def _nearest(values: tf.Tensor, centroids: tf.Tensor) -> tf.Tensor:
    """Index of the nearest centroid of each value; [B] float, [K] float -> [B] int64."""
    distance = tf.abs(values[:, None] - centroids[None, :])
    return tf.argmin(distance, axis=1, output_type=tf.int64)


def rq_codes(target: tf.Tensor, sizes: Sequence[int], first_level_median: bool, resolution: float
             ) -> Tuple[tf.Tensor, List[tf.Tensor]]:
    """Fits the codebook levels on `target` and returns its codes.

    Mirrors `models.codebook.fit`/`encode`: level 1 reserves code 0 for targets <= 0; finer
    levels are fitted on the residuals of positive targets only.

    Args:
      target: [B] float32 transformed target, >= 0.
      sizes: codes per level (level 1 includes the zero code).
      first_level_median: fit level 1 with k-medians.
      resolution: grid of the value histogram, in transformed units.

    Returns:
      ([B, L] int64 codes, list of L centroid tensors).
    """
    positive = tf.cast(target > 0, tf.float32)
    levels, codes = [], []
    residual = target
    for level, size in enumerate(sizes, start=1):
        (asset,) = tft.experimental.ptransform_analyzer(
            inputs=[residual, positive],
            ptransform=FitCodebookLevel(level, size, first_level_median and level == 1,
                                        resolution, reserve_zero=level == 1),
            output_dtypes=[tf.string],
            output_shapes=[[]],
            output_asset_default_values=["\n".join(["0"] * size).encode()],
            name=codebook_asset_key(level))
        tft.annotate_asset(codebook_asset_key(level), codebook_asset_key(level))
        centroids = read_centroids(asset, size)
        if level == 1:
            code = tf.where(target > 0, _nearest(target, centroids[1:]) + 1, tf.zeros_like(target, tf.int64))
        else:
            code = _nearest(residual, centroids)
        residual = residual - tf.gather(centroids, code)
        levels.append(centroids)
        codes.append(code)
    return tf.stack(codes, axis=1), levels
