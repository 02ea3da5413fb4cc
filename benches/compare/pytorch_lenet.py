#!/usr/bin/env python3
"""Train the LeNet-5 that `wgcnn bench` trains, with PyTorch, and print images/s the same way.

Same model (conv 6@5x5 pad 2 -> ReLU -> max-pool 2 -> conv 16@5x5 -> ReLU -> max-pool 2 -> FC 120 ->
ReLU -> FC 84 -> ReLU -> FC 10, mean cross-entropy), same optimizer (SGD lr 0.01 momentum 0.9), same
batch sizes and timing: warm-up steps, then windows of steps, each window's clock stopped after the
device has finished; the median window is reported. Inference: forward passes at batch 1000.

The data are random images with MNIST's shape (throughput does not depend on pixel values), so the
script needs nothing but torch. Device: CUDA when present (or --device), else the CPU with
torch's default thread count (--threads to set it).

    python3 benches/compare/pytorch_lenet.py [--json] [--batch-sizes 64,256] [--device cpu|cuda]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from torch_lenet import LeNet5  # noqa: E402  (the module wgcnn's LeNet-5 mirrors)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_training(device, batch, warmup, windows, steps):
    torch.manual_seed(1)
    model = LeNet5().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    pool = 8 * batch  # a resident "dataset" the steps cycle through, like wgcnn's
    xs = torch.rand(pool, 1, 28, 28, device=device)
    ys = torch.randint(0, 10, (pool,), device=device)

    def step(i):
        s = (i * batch) % pool
        x, y = xs[s : s + batch], ys[s : s + batch]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    i = 0
    for _ in range(warmup):
        step(i)
        i += 1
    sync(device)
    rates = []
    for _ in range(windows):
        t = time.perf_counter()
        for _ in range(steps):
            step(i)
            i += 1
        sync(device)
        rates.append(steps * batch / (time.perf_counter() - t))
    return rates


def time_inference(device, batch, windows):
    torch.manual_seed(1)
    model = LeNet5().to(device).eval()
    x = torch.rand(2 * batch, 1, 28, 28, device=device)
    with torch.no_grad():
        model(x[:batch])
        sync(device)
        rates = []
        for _ in range(windows):
            t = time.perf_counter()
            for s in range(0, x.shape[0], batch):
                model(x[s : s + batch]).argmax(1)
            sync(device)
            rates.append(x.shape[0] / (time.perf_counter() - t))
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", default="64,256")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--infer-batch", type=int, default=1000)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if a.threads:
        torch.set_num_threads(a.threads)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    rows = []
    for b in [int(s) for s in a.batch_sizes.split(",")]:
        r = time_training(device, b, a.warmup, a.windows, a.steps)
        rows.append({"batch": b, "images_per_sec": round(statistics.median(r), 1), "windows": [round(v, 1) for v in r]})
    inf = time_inference(device, a.infer_batch, a.windows)
    out = {
        "engine": f"pytorch {torch.__version__}",
        "device": name,
        "training": rows,
        "inference": {"batch": a.infer_batch, "images_per_sec": round(statistics.median(inf), 1)},
    }
    if a.json:
        print(json.dumps(out))
    else:
        print(f"{out['engine']} on {name}")
        for r in rows:
            print(f"  training batch {r['batch']:>4}: {r['images_per_sec']:>10.1f} images/s")
        print(f"  inference batch {a.infer_batch}: {out['inference']['images_per_sec']:>10.1f} images/s")


if __name__ == "__main__":
    main()
