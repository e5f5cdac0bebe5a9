"""A straightforward numpy implementation of METHOD.md §2's per-window metrics, for `cargo xtask bench analyze`.

    python crates/analysis/bench/numpy_metrics.py FILE
reads `attn.{l}` (N, H, T, T) from a safetensors file and computes, per matrix, k*(0.9) from squared
singular values over the Frobenius norm, sorted m*(0.9) and dom, in float64; prints one JSON line with
the seconds and the checksum (sum of all k* and m*) to compare with bench_metrics.
"""
import json
import sys
import time

import numpy as np
from safetensors.numpy import load_file


def metrics(a, tau=0.9, eta=0.9):
    a = a.astype(np.float64)
    s2 = np.linalg.svd(a, compute_uv=False) ** 2
    total = (a ** 2).sum(axis=(-2, -1))[..., None]
    k = np.minimum((np.cumsum(s2, axis=-1) / total < tau).sum(axis=-1) + 1, a.shape[-1])
    c = (a ** 2).sum(axis=-2)
    shares = c / c.sum(axis=-1, keepdims=True)
    m = np.minimum((np.cumsum(-np.sort(-shares, axis=-1), axis=-1) < eta).sum(axis=-1) + 1, a.shape[-1])
    dom = shares.max(axis=-1)
    return k, m, dom


def main():
    layers = load_file(sys.argv[1])
    start = time.perf_counter()
    checksum = 0
    for name in sorted(layers, key=lambda k: int(k.split(".")[1])):
        k, m, _ = metrics(layers[name])
        checksum += int(k.sum() + m.sum())
    print(json.dumps({"impl": "numpy", "seconds": round(time.perf_counter() - start, 4), "checksum": checksum}))


if __name__ == "__main__":
    main()
