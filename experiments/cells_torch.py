"""PyTorch peer of `pool_tasks.ts --task cells` (issue #5, docs/stage0b-grounding.md).

Is the vision encoder's slow learning of shapes our code, or the architecture? Trains, on
the very pictures and targets the TypeScript task uses (written by `--dump`), the quick
preset's ViT as torch modules, a ViT with a convolutional stem, and a plain CNN, each
predicting every visual cell's category shares (13 categories, masked cross-entropy, as
the task), AdamW at a constant 1e-3, batch 32. Prints the held-out cross-entropy.

    npx tsx experiments/pool_tasks.ts --task cells --steps 1000 --dump scratch/cells
    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 experiments/cells_torch.py scratch/cells vit
    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 experiments/cells_torch.py scratch/cells conv-vit
    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 experiments/cells_torch.py scratch/cells cnn
"""
import sys
import time

import numpy as np
import torch
import torch.nn as nn

SIDE, CELLS, K = 64, 16, 13


def load(path):
    px = np.fromfile(path + ".px", np.uint8).reshape(-1, SIDE, SIDE, 3)
    t = np.fromfile(path + ".t", np.float32).reshape(-1, CELLS, K)
    return torch.tensor(px).permute(0, 3, 1, 2).float() / 255 - 0.5, torch.tensor(t)


def conv(cin, cout, stride):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ViT(nn.Module):
    """The quick preset's encoder: 8-px patches (or `stem`), width 64, 2 pre-LN blocks, 2x2 merge to 4x4 tokens."""

    def __init__(self, stem=None, width=64, depth=2, patch=8):
        super().__init__()
        self.patch, self.stem = patch, stem
        self.embed = nn.Linear(patch * patch * 3, width)
        self.pos = nn.Parameter(torch.randn(1, (SIDE // patch) ** 2, width) * 0.02)
        block = nn.TransformerEncoderLayer(width, 4, 4 * width, 0.0, activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, depth)
        self.norm = nn.LayerNorm(width)
        self.merge = nn.Sequential(nn.Linear(4 * width, 4 * width), nn.GELU(), nn.Linear(4 * width, 128))
        self.head = nn.Linear(128, K)

    def forward(self, x):
        b, g, p = x.shape[0], SIDE // self.patch, self.patch
        if self.stem is None:
            h = self.embed(x.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 4, 5, 1).reshape(b, g * g, p * p * 3))
        else:
            h = self.stem(x).permute(0, 2, 3, 1).reshape(b, g * g, -1)
        h = self.norm(self.blocks(h + self.pos))
        h = h.reshape(b, 4, 2, 4, 2, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, CELLS, -1)
        return self.head(self.merge(h))


def conv_stem():
    """VisionEncoderConfig stem 'conv' at width 64: 3x3 to 16 channels, then stride-2 3x3 to 32, 64, 64."""
    return nn.Sequential(conv(3, 16, 1), nn.GELU(), conv(16, 32, 2), nn.GELU(), conv(32, 64, 2), nn.GELU(), conv(64, 64, 2))


class CNN(nn.Module):
    """Five 3x3 convs down to the 4x4 cell grid, then a 1x1 to the categories."""

    def __init__(self):
        super().__init__()
        g = nn.GELU
        self.f = nn.Sequential(conv(3, 32, 1), g(), conv(32, 64, 2), g(), conv(64, 64, 2), g(), conv(64, 128, 2), g(), conv(128, 128, 2), g(), nn.Conv2d(128, K, 1))

    def forward(self, x):
        return self.f(x).permute(0, 2, 3, 1).reshape(x.shape[0], CELLS, K)


def loss(logits, target):
    mask = (target.sum(-1) > 0).float()
    ce = -(torch.log_softmax(logits, -1) * target).sum(-1)
    return (ce * mask).sum() / mask.sum()


def main():
    prefix, kind = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    torch.manual_seed(0)
    x, t = load(prefix + "_train")
    xh, th = load(prefix + "_held")
    net = {"vit": lambda: ViT(), "conv-vit": lambda: ViT(conv_stem()), "cnn": CNN}[kind]()
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0)
    t0 = time.time()
    steps = x.shape[0] // 32
    for s in range(steps):
        i = slice(s * 32, s * 32 + 32)
        l = loss(net(x[i]), t[i])
        opt.zero_grad()
        l.backward()
        opt.step()
        if (s + 1) % 250 == 0 or s + 1 == steps:
            with torch.no_grad():
                held = loss(net(xh), th).item()
            print(f"{kind} step {s + 1}: held-out {held:.3f} ({(time.time() - t0) / (s + 1):.3f} s/step)", flush=True)


if __name__ == "__main__":
    main()
