#!/usr/bin/env python3
"""torchvision's resnet18 in wgcnn, both ways in, checked against PyTorch and onnxruntime.

    scripts/torchvision_check.py [--size 64] [--images 8] [--wgcnn target/release/wgcnn]

1. A randomly initialised torchvision resnet18 (seed 0; batch-norm running statistics and affine
   parameters drawn too, so inference-mode batch-norm matters), its state_dict saved with
   safetensors.torch.save_file (num_batches_tracked left out, as some tools do), is loaded strictly
   into models/torchvision/resnet18.toml (input set to --size) by
   `wgcnn predict --model FILE --weights W --normalize imagenet --json`; its logits on --images
   random pictures are compared with PyTorch's.
2. The same network exported by torch.onnx.export (opset 17, TorchScript exporter, batch-norm folded
   into the convolutions as that exporter does) is imported by `wgcnn import`, and the imported
   checkpoint's logits are compared with onnxruntime's on the same pictures.
3. Where onnxscript is installed, the same with torch's dynamo exporter (opset 18: weights in an
   external data file, ReduceMean for the average pool, Reshape for the flatten).

Prints the largest difference of each comparison relative to the row's largest logit, and exits 1
when either is above 1e-4. Needs torch, torchvision, safetensors, onnx, onnxruntime and Pillow (not
needed by CI); run it from the repository root after `cargo build --release`.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def rel(a, b):
    """Largest |a - b| over each row's largest |b|."""
    scale = np.maximum(np.abs(b).max(axis=1, keepdims=True), 1e-30)
    return float((np.abs(a - b) / scale).max())


def wgcnn_logits(exe, args, pictures):
    out = subprocess.run([exe, "predict", *args, "--json", *pictures], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"wgcnn predict failed: {out.stderr.strip()}")
    return np.array([row["logits"] for row in json.loads(out.stdout)], dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--wgcnn", default="target/release/wgcnn")
    a = ap.parse_args()
    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    net.eval()
    work = tempfile.mkdtemp(prefix="wgcnn-torchvision-")
    # The model file at --size (the network adapts: a global average pool before fc).
    text = open("models/torchvision/resnet18.toml").read()
    text = re.sub(r"input = \[3, 224, 224\]", f"input = [3, {a.size}, {a.size}]", text)
    model_file = os.path.join(work, "resnet18.toml")
    open(model_file, "w").write(text)
    state = {k: v.contiguous() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    weights = os.path.join(work, "resnet18.safetensors")
    save_file(state, weights)
    # Random pictures, and PyTorch's input: (x / 255 - mean) / std per channel.
    rng = np.random.default_rng(1)
    pictures, xs = [], []
    for i in range(a.images):
        px = rng.integers(0, 256, size=(a.size, a.size, 3), dtype=np.uint8)
        p = os.path.join(work, f"{i}.png")
        Image.fromarray(px).save(p)
        pictures.append(p)
        xs.append(((px.astype(np.float32) / np.float32(255.0) - MEAN) / STD).transpose(2, 0, 1))
    x = torch.from_numpy(np.stack(xs))
    with torch.no_grad():
        torch_logits = net(x).numpy()
    ours = wgcnn_logits(a.wgcnn, ["--model", model_file, "--weights", weights, "--normalize", "imagenet"], pictures)
    d_state = rel(ours, torch_logits)
    print(f"state_dict into {a.size}x{a.size} resnet18.toml: wgcnn vs PyTorch, {a.images} pictures: "
          f"max difference {d_state:.2e} of the row's largest logit")
    # torch.onnx.export -> wgcnn import -> wgcnn predict, against onnxruntime.
    onnx_path = os.path.join(work, "resnet18.onnx")
    torch.onnx.export(net, x[:1], onnx_path, opset_version=17, dynamo=False, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    imported = os.path.join(work, "imported.safetensors")
    out = subprocess.run([a.wgcnn, "import", onnx_path, "--out", imported, "--normalize", "imagenet"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"wgcnn import failed: {out.stderr.strip()}")
    print("wgcnn import: " + " / ".join(out.stdout.strip().splitlines()))
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ort_logits = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    ours_onnx = wgcnn_logits(a.wgcnn, ["--model", imported], pictures)
    d_onnx = rel(ours_onnx, ort_logits)
    print(f"torch.onnx.export -> wgcnn import: wgcnn vs onnxruntime, {a.images} pictures: "
          f"max difference {d_onnx:.2e} of the row's largest logit (vs PyTorch: {rel(ours_onnx, torch_logits):.2e})")
    worst = max(d_state, d_onnx)
    # torch's newer exporter (dynamo=True, the default from torch 2.9; needs onnxscript): weights as
    # external data beside the graph, the average pool as ReduceMean, the flatten as a Reshape.
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        print("dynamo exporter: skipped (pip install onnxscript)")
        sys.exit(0 if worst <= 1e-4 else 1)
    dyn_path = os.path.join(work, "resnet18-dynamo.onnx")
    torch.onnx.export(net, (x[:2],), dyn_path, opset_version=18, dynamo=True, input_names=["input"],
                      output_names=["logits"], dynamic_shapes={"x": {0: torch.export.Dim("N")}})
    dyn_ckpt = os.path.join(work, "dynamo.safetensors")
    out = subprocess.run([a.wgcnn, "import", dyn_path, "--out", dyn_ckpt, "--normalize", "imagenet"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        # torch 2.15 may write the flatten after the pool as Shape/Range/Gather arithmetic (an
        # as_strided), which wgcnn refuses naming the node: reported, not counted.
        print(f"torch.onnx.export(dynamo=True) -> wgcnn import: refused: {out.stderr.strip()}")
        sys.exit(0 if worst <= 1e-4 else 1)
    dyn_ort = ort.InferenceSession(dyn_path, opts, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    d_dyn = rel(wgcnn_logits(a.wgcnn, ["--model", dyn_ckpt], pictures), dyn_ort)
    print(f"torch.onnx.export(dynamo=True) -> wgcnn import: wgcnn vs onnxruntime, {a.images} pictures: "
          f"max difference {d_dyn:.2e} of the row's largest logit")
    sys.exit(0 if max(worst, d_dyn) <= 1e-4 else 1)


if __name__ == "__main__":
    main()
