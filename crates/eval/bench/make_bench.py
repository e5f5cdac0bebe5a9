#!/usr/bin/env python3
"""Workload for `cargo xtask bench eval`: the oracle kit's tokenizer, docs and task YAMLs, with a
larger random GPT-2 (4 layers, 256 wide, context 128) and every doc of seven zero-shot tasks
repeated REPEAT times. Writes into $BENCH_DIR: model/, data/<task>/..., tasks/*.yaml.

Usage: BENCH_DIR=dir KIT=crates/eval/lmeval-oracle REPEAT=40 python make_bench.py
"""
import glob
import json
import os
import shutil
import subprocess
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel

OUT = os.path.abspath(os.environ["BENCH_DIR"])
KIT = os.path.abspath(os.environ["KIT"])
REPEAT = int(os.environ.get("REPEAT", "40"))
TASKS = ["arc_easy", "piqa", "sciq", "hellaswag", "lambada_openai", "winogrande", "boolq"]

os.makedirs(OUT, exist_ok=True)
env = dict(os.environ, ORACLE_ROOT=OUT)
subprocess.run([sys.executable, f"{KIT}/make_model.py"], env=env, cwd=OUT, check=True, capture_output=True)
subprocess.run([sys.executable, f"{KIT}/make_data.py"], env=env, cwd=OUT, check=True, capture_output=True)
tiny = f"{OUT}/model/tiny-gpt2"
model_dir = f"{OUT}/model/bench-gpt2"
shutil.rmtree(model_dir, ignore_errors=True)
os.makedirs(model_dir)
for f in glob.glob(f"{tiny}/tokenizer*") + glob.glob(f"{tiny}/special_tokens_map.json"):
    shutil.copy(f, model_dir)
cfg = json.load(open(f"{tiny}/config.json"))
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(vocab_size=cfg["vocab_size"], n_positions=128, n_embd=256, n_layer=4, n_head=4,
                                   bos_token_id=cfg.get("bos_token_id"), eos_token_id=cfg.get("eos_token_id")))
model.save_pretrained(model_dir)
docs = 0
for task in TASKS:
    (path,) = glob.glob(f"{OUT}/data/{task}/*.jsonl")
    rows = open(path).read().splitlines()
    open(path, "w").write("\n".join(rows * REPEAT) + "\n")
    docs += len(rows) * REPEAT
os.makedirs(f"{OUT}/tasks", exist_ok=True)
for f in glob.glob(f"{KIT}/tasks/*.yaml"):
    text = open(f).read().replace("@DATA@", f"{OUT}/data")
    open(f"{OUT}/tasks/{os.path.basename(f)}", "w").write(text)
import lm_eval

T = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
for src, dst in [("hellaswag/utils.py", "hellaswag_utils.py"), ("winogrande/preprocess_winogrande.py", "winogrande_utils.py")]:
    shutil.copy(f"{T}/{src}", f"{OUT}/tasks/{dst}")
print(json.dumps({"model": model_dir, "docs": docs, "tasks": TASKS}))
