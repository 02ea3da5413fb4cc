#!/usr/bin/env python3
"""Time a wgcnn model file's PyTorch twin (scripts/torch_model.py) as `wgcnn bench` times the model:
SGD (lr 0.01, momentum 0.9) training steps on a resident pool of random inputs of the model's shape,
warm-up steps, then windows of steps (the median window's images/s), and forward passes at the
inference batch. CPU by default, on `--threads` threads (wgcnn bench --zoo passes the machine's count,
the threads lavapipe uses).

    python3 scripts/torch_bench.py models/resnet-mini.toml --batch-sizes 64,256 --threads 2

Prints one JSON object: {"model", "threads", "training": {batch: images/s}, "inference": images/s}.
Needs torch.
"""
import argparse
import json
import os
import statistics
import sys
import time
import tomllib

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import ModelFileNet  # noqa: E402


def rate(fn, images, warmup, windows, steps):
    for _ in range(warmup):
        fn()
    rates = []
    for _ in range(windows):
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        rates.append(images * steps / (time.perf_counter() - t))
    return statistics.median(rates)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch-sizes", default="64,256")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--infer-batch", type=int, default=1000)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    text = open(a.model).read()
    net = ModelFileNet(text)
    spec = tomllib.loads(text)["model"]
    shape = tuple(spec["input"])
    classes = spec["classes"]
    out = {"model": net.name, "threads": a.threads, "training": {}, "inference": None}
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    for batch in [int(b) for b in a.batch_sizes.split(",")]:
        pool = 4 * batch
        xs = torch.rand(pool, *shape)
        ys = torch.randint(0, classes, (pool,))
        state = {"i": 0}
        net.train()

        def step():
            s = (state["i"] * batch) % pool
            state["i"] += 1
            opt.zero_grad(set_to_none=True)
            loss = net.loss(net(xs[s : s + batch]), ys[s : s + batch])
            loss.backward()
            opt.step()

        out["training"][str(batch)] = rate(step, batch, a.warmup, a.windows, a.steps)
    net.eval()
    x = torch.rand(a.infer_batch, *shape)

    def infer():
        with torch.no_grad():
            net(x)

    out["inference"] = rate(infer, a.infer_batch, 1, a.windows, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
