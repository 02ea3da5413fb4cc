#!/usr/bin/env python3
"""Check an ONNX file wgcnn wrote (or will read) with the ONNX tools themselves, and run it.

    scripts/onnx_check.py MODEL.onnx [--inputs X.f32 --shape N,C,H,W --out LOGITS.f32]

`onnx.checker.check_model(full_check=True)` (which also infers every shape) must pass; with
--inputs, onnxruntime runs the graph on the raw little-endian float32 array X (shaped as --shape)
and writes its first output as raw float32 to --out. Prints one JSON line: the opset, the graph's
input and output names and shapes, its op types, and the output's shape when it ran.

Needs `pip install onnx onnxruntime` (CI installs them; `tests/onnx.rs` runs this).
"""
import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def dims(value_info):
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_param if d.HasField("dim_param") else d.dim_value)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--inputs")
    ap.add_argument("--shape")
    ap.add_argument("--out")
    a = ap.parse_args()
    model = onnx.load(a.model)
    onnx.checker.check_model(model, full_check=True)
    report = {
        "ir_version": model.ir_version,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": [{"name": v.name, "shape": dims(v)} for v in model.graph.input],
        "outputs": [{"name": v.name, "shape": dims(v)} for v in model.graph.output],
        "ops": sorted({n.op_type for n in model.graph.node}),
        "initializers": len(model.graph.initializer),
    }
    if a.inputs:
        shape = [int(s) for s in a.shape.split(",")]
        x = np.fromfile(a.inputs, dtype="<f4").reshape(shape)
        opts = ort.SessionOptions()
        # The graph as written: no fusions that would change how sums are rounded.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        y = sess.run(None, {name: x})[0]
        np.asarray(y, dtype="<f4").tofile(a.out)
        report["ran"] = {"output_shape": list(y.shape)}
    print(json.dumps(report))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one line a test can quote
        print(f"onnx_check: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
