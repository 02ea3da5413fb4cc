#!/usr/bin/env python3
"""Train a wgcnn checkpoint's PyTorch twin on many processes or machines with DistributedDataParallel,
and write a wgcnn checkpoint back (`wgcnn eval --model OUT` reads it).

    torchrun --nproc_per_node 2 scripts/ddp_train.py CKPT --data DIR --steps 20 --batch 64 --out OUT
    torchrun --nnodes 4 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        scripts/ddp_train.py CKPT --data DIR --epochs 10 --batch 2048 --out OUT

CKPT is any wgcnn checkpoint (its model file and input preparation are in its metadata: the twin is
scripts/torch_model.py's ModelFileNet, so any model file works). DIR holds MNIST-format IDX files
(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]), prepared as the checkpoint records
((x / 255 - mean) / std per channel). --batch is the global batch: each of the N processes takes its
N-th share of every batch, in file order (--shuffle draws one permutation per epoch from --seed, the
same on every process), and DDP averages the gradients, so the run is the one-process run up to
float32 rounding. Batch-norm layers take their statistics over the whole global batch, as one process
computes them: SyncBatchNorm on GPUs; on the CPU, where torch's SyncBatchNorm refuses to run, this
script's GlobalBatchNorm2d (the same with torch.distributed.nn's differentiable all_reduce);
--no-sync-bn keeps per-process statistics. Dropout draws its masks per
process, so models with dropout do not repeat the one-process run. SGD with wgcnn's defaults (lr 0.05,
momentum 0.9, weight decay 1e-3; flags change them). The backend is NCCL when CUDA is present (one GPU
per process, LOCAL_RANK), else gloo on the CPU.

--compare REF prints the largest difference, relative to each tensor's largest value, between OUT and
another checkpoint (e.g. a one-process run), as one JSON line.

Needs torch and safetensors (not CI); run from the repository root.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_check import find, read_idx  # noqa: E402
from torch_model import ModelFileNet  # noqa: E402


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """Batch-norm over the whole global batch on the CPU, where torch's SyncBatchNorm refuses to run
    ("SyncBatchNorm layers only work with GPU modules"): the statistics are all-reduced over the
    processes with torch.distributed.nn's differentiable all_reduce (two passes: the mean, then the
    squared deviations), so forward, backward and the running statistics are those of one process
    holding the whole batch."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        count = torch.tensor([float(x.numel() // c)], dtype=x.dtype, device=x.device)
        total = all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), count]))
        n = total[c]
        mean = total[:c] / n
        centred = x - mean.view(1, c, 1, 1)
        var = all_reduce((centred * centred).sum(dim=(0, 2, 3))) / n
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
            self.num_batches_tracked.add_(1)
        y = centred / torch.sqrt(var + self.eps).view(1, c, 1, 1)
        return y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)


def global_batchnorm(module):
    """`module` with every BatchNorm2d replaced by a GlobalBatchNorm2d holding the same tensors."""
    for name, child in list(module.named_children()):
        if type(child) is nn.BatchNorm2d:
            g = GlobalBatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum)
            g.load_state_dict(child.state_dict())
            module._modules[name] = g
        else:
            global_batchnorm(child)
    return module


def max_relative(a, b):
    return max(((a[k].double() - b[k].double()).abs().max() / max(b[k].double().abs().max().item(), 1e-30)).item()
               for k in b if b[k].is_floating_point())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--data", default="data/mnist-sample")
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: --epochs)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64, help="the global batch, split over the processes")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=1e-3)
    ap.add_argument("--shuffle", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-sync-bn", action="store_true")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                    help="float64: to check the method, free of float32 rounding (the checkpoint is float32)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--compare")
    a = ap.parse_args()

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(a.seed * 1000 + rank)  # dropout's masks: reproducible, different per process
    if a.batch % world:
        sys.exit(f"--batch {a.batch} does not split evenly over {world} processes")
    share = a.batch // world
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)

    with safe_open(a.checkpoint, framework="pt") as f:
        meta = f.metadata() or {}
    if "wgcnn.model_toml" not in meta:
        sys.exit(f"{a.checkpoint}: not a wgcnn checkpoint with its model (wgcnn.model_toml)")
    net = ModelFileNet(meta["wgcnn.model_toml"])
    net.load_state_dict(load_file(a.checkpoint), strict=True)
    prep = json.loads(meta.get("wgcnn.preparation", "{}"))
    mean = np.array(prep.get("mean", [0.0]), dtype=np.float32).reshape(-1, 1, 1)
    std = np.array(prep.get("std", [1.0]), dtype=np.float32).reshape(-1, 1, 1)
    bn = any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    sync = bn and not a.no_sync_bn and world > 1
    if sync:
        # SyncBatchNorm on GPUs; on the CPU (gloo), where it refuses to run, the same computed here.
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net) if cuda else global_batchnorm(net)
    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    net.to(device=device, dtype=dtype).train()
    ddp = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if cuda else None)

    images = read_idx(find(a.data, "train-images-idx3-ubyte"))
    labels = read_idx(find(a.data, "train-labels-idx1-ubyte")).astype(np.int64)
    x_all = images.reshape(len(images), -1, images.shape[-2], images.shape[-1])
    n = len(labels) // a.batch * a.batch  # whole global batches
    opt = torch.optim.SGD(ddp.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay)
    loss_of = net.loss if hasattr(net, "loss") else nn.functional.cross_entropy
    step, losses = 0, []
    rng = np.random.default_rng(a.seed)
    for epoch in range(a.epochs if a.steps == 0 else 1 << 30):
        order = rng.permutation(len(labels)) if a.shuffle else np.arange(len(labels))
        for first in range(0, n, a.batch):
            idx = order[first + rank * share : first + (rank + 1) * share]
            xb = torch.from_numpy((x_all[idx].astype(np.float32) / np.float32(255.0) - mean) / std).to(device, dtype)
            yb = torch.from_numpy(labels[idx]).to(device)
            opt.zero_grad()
            loss = loss_of(ddp(xb), yb)
            loss.backward()
            opt.step()
            # The global batch's mean loss, for the log.
            t = loss.detach().clone()
            dist.all_reduce(t)
            losses.append(t.item() / world)
            step += 1
            if a.steps and step >= a.steps:
                break
        if a.steps and step >= a.steps:
            break

    if rank == 0:
        state = {k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous()
                 for k, v in net.state_dict().items()}
        keep = {k: v for k, v in meta.items() if k.startswith("wgcnn.") or k == "format"}
        tmp = a.out + ".tmp"
        save_file(state, tmp, metadata=keep)
        os.replace(tmp, a.out)  # atomic, as wgcnn writes its files
        report = {"processes": world, "dtype": a.dtype, "backend": dist.get_backend(), "global_batch": a.batch, "per_process": share,
                  "steps": step, "batchnorm": ("SyncBatchNorm" if cuda else "GlobalBatchNorm2d") if sync else "per process" if bn else "none",
                  "first_loss": losses[0], "last_loss": losses[-1], "out": a.out}
        if a.compare:
            report["max_relative_diff_vs"] = {a.compare: max_relative(state, load_file(a.compare))}
        print(json.dumps(report))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
