#!/usr/bin/env python3
"""Load a wgcnn checkpoint into its PyTorch twin (scripts/torch_model.py) and evaluate it, or replay training.

    python3 scripts/pytorch_check.py MODEL.safetensors [DATA_DIR]
    python3 scripts/pytorch_check.py --replay INIT.safetensors AFTER.safetensors STEPS BATCH OPT LR [DATA_DIR]

The second form starts PyTorch from wgcnn's INIT checkpoint, runs STEPS steps of torch.optim OPT
(sgd with momentum 0.9, or adam) at LR on the training files in file order (wgcnn's --no-shuffle), and
prints the largest difference from wgcnn's AFTER checkpoint, per parameter, and how far each of wgcnn and
PyTorch (both float32) ends from the same run in float64. INIT: `wgcnn train --model M --steps 1 --lr 0
--weight-decay 0 --save INIT` (then delete INIT's .optim file); AFTER: `wgcnn train --init INIT
--no-shuffle --steps STEPS --schedule constant --lr LR --weight-decay 0 --save AFTER`.

Builds the PyTorch module of the model the checkpoint's metadata describes (any wgcnn model file;
LeNet-5 for checkpoints written before model files), loads the file with safetensors.torch.load_file +
load_state_dict(strict=True), and prints the test accuracy and mean loss on DATA_DIR's t10k-* IDX files
(default: the bundled MNIST sample). The figures should match `wgcnn eval --model MODEL.safetensors` to
float rounding.
Needs: torch, safetensors, numpy.
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

from torch_lenet import LeNet5
from torch_model import ModelFileNet


def load_net(path):
    """The twin of the model `path` describes, with its weights; legacy checkpoints are LeNet-5."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    if "wgcnn.model_toml" in meta:
        net = ModelFileNet(meta["wgcnn.model_toml"])
    else:
        net = LeNet5(meta.get("wgcnn.activation", "relu"), meta.get("wgcnn.pool", "max"))
        net.loss = lambda z, y: F.cross_entropy(z, y)
    net.load_state_dict(load_file(path), strict=True)
    return net


def read_idx(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndims = data[3]
    dims = struct.unpack(">" + "I" * ndims, data[4 : 4 + 4 * ndims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims)


def find(d, stem):
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    sys.exit(f"no {stem} in {d}")


def train_steps(init_path, x, y, steps, batch, opt, lr, dtype):
    """PyTorch's own run from wgcnn's INIT weights, in `dtype`: (weights as f64, losses)."""
    net = load_net(init_path).to(dtype)
    if opt == "sgd":
        o = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    else:
        o = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for s in range(steps):
        first = (s * batch) % len(y)
        xb, yb = x[first : first + batch].to(dtype), y[first : first + batch]
        o.zero_grad()
        loss = net.loss(net(xb), yb)
        loss.backward()
        o.step()
        losses.append(loss.item())
    return {k: v.double() for k, v in net.state_dict().items()}, losses


def max_relative(a, b):
    """max over tensors of max|a - b| / max|b|: the largest difference relative to the tensor's scale."""
    return max(((a[k] - b[k]).abs().max() / max(b[k].abs().max().item(), 1e-30)).item() for k in b)


def replay(init_path, after_path, steps, batch, opt, lr, data_dir):
    """wgcnn's weights after STEPS against PyTorch's f32 run and against an f64 run (the exact answer up
    to f64 rounding): where float32 rounding tips a discrete choice (a ReLU or max-pool near a tie), the
    f64 run says which side is right."""
    x = torch.from_numpy(read_idx(find(data_dir, "train-images-idx3-ubyte")).astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(read_idx(find(data_dir, "train-labels-idx1-ubyte")).astype(np.int64))
    w32, losses = train_steps(init_path, x, y, steps, batch, opt, lr, torch.float32)
    w64, _ = train_steps(init_path, x, y, steps, batch, opt, lr, torch.float64)
    after = {k: v.double() for k, v in load_file(after_path).items()}
    diffs = {k: (w32[k] - after[k]).abs().max().item() for k in after}
    norm_rel = {k: ((w32[k] - after[k]).norm() / max(after[k].norm().item(), 1e-30)).item() for k in after}
    print(json.dumps({"torch": torch.__version__, "steps": steps, "batch": batch, "optimizer": opt, "lr": lr,
                      "torch_losses": losses, "max_abs_diff": diffs,
                      "max_relative_diff": max_relative(w32, after),
                      "max_norm_relative_diff": max(norm_rel.values()),
                      "wgcnn_vs_f64": max_relative(after, w64), "torch_f32_vs_f64": max_relative(w32, w64)}))


def main():
    if sys.argv[1] == "--replay":
        a = sys.argv[2:]
        data_dir = a[6] if len(a) > 6 else os.path.join(os.path.dirname(__file__), "..", "data", "mnist-sample")
        return replay(a[0], a[1], int(a[2]), int(a[3]), a[4], float(a[5]), data_dir)
    model_path = sys.argv[1]
    data_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "data", "mnist-sample")
    net = load_net(model_path)
    state = load_file(model_path)
    x = torch.from_numpy(read_idx(find(data_dir, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(read_idx(find(data_dir, "t10k-labels-idx1-ubyte")).astype(np.int64))
    net.eval()  # dropout off, as `wgcnn eval`
    with torch.no_grad():
        logits = net(x)
    acc = (logits.argmax(1) == y).float().mean().item()
    loss = net.loss(logits, y).item()
    print(json.dumps({"model": model_path, "name": getattr(net, "name", "lenet5"), "torch": torch.__version__, "count": len(y), "accuracy": acc, "loss": loss,
                      "state_dict": {k: list(v.shape) for k, v in state.items()}}))


if __name__ == "__main__":
    main()
