#!/usr/bin/env python3
"""Reference for `cargo xtask bench allreduce`: Python torch.distributed (Gloo on CPU, NCCL on
CUDA) all-reduces one f32 tensor, timed exactly as `inheritune bench allreduce` times its own
(barrier, then one all-reduce; median of the timed calls), and prints one JSON line on rank 0.

Launch like any torch.distributed program:
  python -m torch.distributed.run --standalone --nproc-per-node 2 torch_allreduce.py --numel 100000000
"""
import argparse
import json
import time

import torch
import torch.distributed as dist


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--numel", type=int, default=100_000_000)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    cuda = a.device == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if cuda:
        torch.cuda.set_device(int(__import__("os").environ.get("LOCAL_RANK", "0")))
    t = torch.ones(a.numel, dtype=torch.float32, device="cuda" if cuda else "cpu")
    times = []
    for i in range(a.warmup + a.iters):
        dist.barrier()
        began = time.perf_counter()
        dist.all_reduce(t)
        if cuda:
            torch.cuda.synchronize()
        if i >= a.warmup:
            times.append(time.perf_counter() - began)
    want = float(world) ** (a.warmup + a.iters)
    assert abs(t[0].item() - want) <= 1e-3 * want, (t[0].item(), want)
    times.sort()
    if rank == 0:
        print(json.dumps({
            "impl": "torch.distributed (Python)",
            "world": world,
            "numel": a.numel,
            "bytes": a.numel * 4,
            "iters": a.iters,
            "median_s": times[len(times) // 2],
            "min_s": times[0],
            "device": a.device,
        }))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
