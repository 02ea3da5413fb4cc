"""The PyTorch module wgcnn's LeNet-5 mirrors (same parameter names and layouts as wgcnn's
checkpoints), shared by scripts/pytorch_check.py and benches/compare/pytorch_lenet.py. Needs torch."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet5(nn.Module):
    def __init__(self, act="relu", pool="max"):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)
        self.act = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[act]
        self.pool = {"max": F.max_pool2d, "avg": F.avg_pool2d}[pool]

    def forward(self, x):
        x = self.pool(self.act(self.conv1(x)), 2)
        x = self.pool(self.act(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = self.act(self.fc1(x))
        x = self.act(self.fc2(x))
        return self.fc3(x)
