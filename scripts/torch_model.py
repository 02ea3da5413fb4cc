"""The PyTorch twin of a wgcnn model file: an nn.Module with the same layers, the same state_dict names
(dotted names such as `layer1.0.conv1` become nested modules, as in torchvision) and the same forward
DAG, so any wgcnn checkpoint loads with load_state_dict(strict=True) and trains on from there, e.g.
under torch.nn.parallel.DistributedDataParallel on many GPUs.

    from torch_model import ModelFileNet, from_checkpoint
    net = ModelFileNet(open("models/lenet5.toml").read())
    net = from_checkpoint("model.safetensors")   # the model its metadata names, with its weights

Needs: torch (and safetensors for from_checkpoint). Python 3.11+ (tomllib).
"""
import tomllib

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


class ModelFileNet(nn.Module):
    def __init__(self, text):
        super().__init__()
        spec = tomllib.loads(text)
        m = spec["model"]
        self.name = m["name"]
        self.loss_kind = m.get("loss", "cross_entropy")
        self.layers = []  # (name, op, inputs, fields)
        shapes = {"input": tuple(m["input"])}
        prev = "input"
        for t in spec["layer"]:
            name, op = t["name"], t["op"]
            inputs = t.get("inputs", [prev])
            x = shapes[inputs[0]]
            if op == "conv2d":
                k, s, p = t["kernel_size"], t.get("stride", 1), t.get("padding", 0)
                self._set(name, nn.Conv2d(x[0], t["out_channels"], k, s, p, bias=t.get("bias", True)))
                out = (t["out_channels"], (x[1] + 2 * p - k) // s + 1, (x[2] + 2 * p - k) // s + 1)
            elif op == "linear":
                self._set(name, nn.Linear(x[0], t["out_features"], bias=t.get("bias", True)))
                out = (t["out_features"],)
            elif op in ("maxpool2d", "avgpool2d"):
                k = t["kernel_size"]
                s, p = t.get("stride", k), t.get("padding", 0)
                cls = nn.MaxPool2d if op == "maxpool2d" else nn.AvgPool2d  # AvgPool2d counts padding, as wgcnn
                self._set(name, cls(k, s, p))
                out = (x[0], (x[1] + 2 * p - k) // s + 1, (x[2] + 2 * p - k) // s + 1)
            elif op == "flatten":
                out = (x[0] * x[1] * x[2],) if len(x) == 3 else x
            elif op == "concat":
                out = (sum(shapes[i][0] for i in inputs),) + tuple(x[1:])
            elif op == "global_avgpool":
                out = (x[0], 1, 1)
            elif op == "batchnorm2d":
                self._set(name, nn.BatchNorm2d(x[0], eps=t.get("eps", 1e-5), momentum=t.get("momentum", 0.1)))
                out = x
            elif op == "dropout":
                self._set(name, nn.Dropout(t.get("p", 0.5)))
                out = x
            elif op in ACTIVATIONS or op == "add":
                out = x
            else:
                raise ValueError(f"layer {name}: unknown op {op!r}")
            shapes[name] = out
            self.layers.append((name, op, inputs))
            prev = name

    def _set(self, dotted, module):
        """Register `module` under a dotted name through nested containers (state_dict names match)."""
        *path, last = dotted.split(".")
        parent = self
        for part in path:
            if part not in parent._modules:
                parent.add_module(part, nn.Module())
            parent = parent._modules[part]
        old = parent._modules.get(last)
        if old is not None:  # a container made for a longer name ("a.b3.reduce" before "a.b3"): keep its children
            for child_name, child in old.named_children():
                module.add_module(child_name, child)
        parent.add_module(last, module)

    def _get(self, dotted):
        m = self
        for part in dotted.split("."):
            m = m._modules[part]
        return m

    def forward(self, x):
        values = {"input": x}
        for name, op, inputs in self.layers:
            a = values[inputs[0]]
            if op in ACTIVATIONS:
                y = ACTIVATIONS[op](a)
            elif op == "flatten":
                y = torch.flatten(a, 1)
            elif op == "add":
                y = a + values[inputs[1]]
            elif op == "concat":
                y = torch.cat([values[i] for i in inputs], dim=1)
            elif op == "global_avgpool":
                y = F.adaptive_avg_pool2d(a, 1)
            else:
                y = self._get(name)(a)
            values[name] = y
        return values[self.layers[-1][0]]

    def loss(self, logits, labels):
        """Mean over the batch, as wgcnn: cross-entropy, or the article's squared error of the softmax."""
        if self.loss_kind == "mse":
            target = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
            return 0.5 * ((torch.softmax(logits, 1) - target) ** 2).sum(1).mean()
        return F.cross_entropy(logits, labels)


def from_checkpoint(path):
    """The model a wgcnn checkpoint describes (metadata `wgcnn.model_toml`), with its weights loaded."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    if "wgcnn.model_toml" not in meta:
        raise ValueError(f"{path}: no wgcnn.model_toml in the metadata (written before model files?)")
    net = ModelFileNet(meta["wgcnn.model_toml"])
    net.load_state_dict(load_file(path), strict=True)
    return net
