"""PyTorch peer of bench/train-step.ts: the same reference training step, driven over stdin.

The model mirrors src/model/nn.ts exactly: pre-LN transformer blocks with separate
q / k / v / out projections, quick-GELU MLP (x * sigmoid(1.702 x)), an additive causal
bias, a final LayerNorm and a Linear head; MSE loss; Adam (betas 0.9 / 0.999, eps 1e-8).
Manual attention (matmul, softmax, matmul), as torch 1.13 has no fused SDPA.

Protocol (one line per message, so the TypeScript driver can interleave its variants
with ours step by step):
  argv: batch tokens width layers heads mlp_ratio torch_threads
  -> prints "ready <torch version> <torch threads> <BLAS info>"
  <- "step"  -> runs one step, prints "ms <milliseconds> loss <value>"
  <- "quit"  -> exits
Thread settings come from the environment (OPENBLAS_NUM_THREADS, set by the driver)
and argv (torch.set_num_threads), so the driver decides how the two cores are used.
"""
import sys
import time

import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, c, heads, ratio):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(c, eps=1e-5)
        self.q = nn.Linear(c, c)
        self.k = nn.Linear(c, c)
        self.v = nn.Linear(c, c)
        self.out = nn.Linear(c, c)
        self.ln2 = nn.LayerNorm(c, eps=1e-5)
        self.fc1 = nn.Linear(c, c * ratio)
        self.fc2 = nn.Linear(c * ratio, c)

    def split(self, x):
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)  # [B, H, N, hs]

    def forward(self, x, bias):
        h = self.ln1(x)
        q, k, v = self.split(self.q(h)), self.split(self.k(h)), self.split(self.v(h))
        s = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5) + bias  # [B, H, N, N]
        a = torch.softmax(s, dim=-1) @ v  # [B, H, N, hs]
        b, _, n, _ = a.shape
        x = x + self.out(a.transpose(1, 2).reshape(b, n, -1))
        h = self.fc1(self.ln2(x))
        return x + self.fc2(h * torch.sigmoid(1.702 * h))


class Net(nn.Module):
    def __init__(self, c, layers, heads, ratio):
        super().__init__()
        self.blocks = nn.ModuleList([Block(c, heads, ratio) for _ in range(layers)])
        self.ln = nn.LayerNorm(c, eps=1e-5)
        self.head = nn.Linear(c, c)

    def forward(self, x, bias):
        for blk in self.blocks:
            x = blk(x, bias)
        return self.head(self.ln(x))


def main():
    batch, tokens, width, layers, heads, ratio, threads = (int(a) for a in sys.argv[1:8])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = Net(width, layers, heads, ratio)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    x = torch.randn(batch, tokens, width)
    target = torch.randn(batch, tokens, width)
    bias = torch.triu(torch.full((tokens, tokens), -1e9), diagonal=1)
    blas = "unknown"
    try:
        cfg = torch.__config__.show().replace(",", " ").split()
        blas = next((tok for tok in cfg if tok.startswith("BLAS_INFO=")), "BLAS_INFO=unknown")
    except Exception:  # noqa: BLE001 - the report is informative only
        pass
    print(f"ready {torch.__version__} {torch.get_num_threads()} {blas}", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd != "step":
            print(f"error unknown command {cmd!r}", flush=True)
            continue
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((net(x, bias) - target) ** 2)
        loss.backward()
        opt.step()
        value = float(loss)
        ms = (time.perf_counter() - t0) * 1000.0
        print(f"ms {ms:.3f} loss {value:.6f}", flush=True)


if __name__ == "__main__":
    main()
