"""The reference side of `cargo xtask bench analyze --model DIR`: transformers' eager attention of a
checkpoint folder on the given windows, and numpy's METHOD.md §2 metrics of every matrix
(numpy_metrics.py), timed as one process does it: load the model, run the windows in batches of
`BATCH`, compute k*(0.9) and m*(0.9) layer by layer.

    python crates/analysis/bench/transformers_numpy.py MODEL_DIR WINDOWS.json
    python crates/analysis/bench/transformers_numpy.py make-windows MODEL_DIR WINDOWS.json N T
prints one JSON line: seconds (whole process after imports), peak resident memory, and the
checksum (sum of every k* and m*) to compare with `inheritune analyze`'s analysis.json.
"""
import json
import pathlib
import resource
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from numpy_metrics import metrics  # noqa: E402

BATCH = 16


def make_windows(model_dir, out, n, t):
    """`n` consecutive windows of `t` tokens of the State of the Union addresses (datasets/sotu,
    newest first), under the folder's tokenizer."""
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    root = pathlib.Path(__file__).parents[3]
    rows = pq.read_table(root / "datasets" / "sotu" / "sotu.parquet").to_pylist()
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = []
    for row in reversed(rows):
        ids += tok(row["text"], add_special_tokens=False)["input_ids"]
        if len(ids) >= n * t:
            break
    pathlib.Path(out).write_text(json.dumps([ids[i * t:(i + 1) * t] for i in range(n)]))


def main():
    if sys.argv[1] == "make-windows":
        make_windows(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    from transformers import AutoModelForCausalLM

    start = time.perf_counter()
    model_dir, windows_file = sys.argv[1], sys.argv[2]
    windows = json.loads(pathlib.Path(windows_file).read_text())
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    per_layer = None
    with torch.no_grad():
        for b in range(0, len(windows), BATCH):
            out = model(input_ids=torch.tensor(windows[b:b + BATCH]), output_attentions=True)
            sums = []
            for a in out.attentions:
                k, m, _ = metrics(a.double().numpy())
                sums.append(int(k.sum() + m.sum()))
            per_layer = sums if per_layer is None else [x + y for x, y in zip(per_layer, sums)]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    print(json.dumps({"impl": "transformers+numpy", "seconds": round(seconds, 2), "peak_rss_gb": round(peak, 2),
                      "checksum": sum(per_layer)}))


if __name__ == "__main__":
    main()
