"""The pre-norm Vision-Transformer block shared by AST, TMAE and MuLaP, cross-attention
(MuLaP's co-attention), and 2-D patch embedding."""
import torch
import torch.nn.functional as F
from torch import nn


def _heads(x, heads):
    """(batch, n, dim) -> (batch, heads, n, dim / heads)."""
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def _attend(q, k, v, mask):
    """Scaled dot-product attention over heads; `mask` (batch, keys) is True for the keys that
    may be attended (not padding)."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask[:, None, None, :])
    return out.transpose(1, 2).flatten(2)


class Attention(nn.Module):
    """Self-attention with one fused projection for queries, keys and values."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        q, k, v = (_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        return self.proj(_attend(q, k, v, mask))


class CrossAttention(nn.Module):
    """Attention of one sequence's queries over another sequence's keys and values (MuLaP's
    co-attention: text attending to audio, audio to text)."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, context, context_mask=None):
        k, v = (_heads(t, self.heads) for t in self.kv(context).chunk(2, dim=-1))
        return self.proj(_attend(_heads(self.q(x), self.heads), k, v, context_mask))


def mlp(dim, mlp_ratio=4.0):
    hidden = int(dim * mlp_ratio)
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = mlp(dim, mlp_ratio)

    def forward(self, x, mask=None):
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """(batch, 1, height, width) spectrograms -> (batch, patches, dim), patches in row-major order."""

    def __init__(self, dim, patch=16, stride=16):
        super().__init__()
        self.proj = nn.Conv2d(1, dim, patch, stride=stride)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


def init_weights(module):
    """ViT's initialisation: truncated-normal linear layers, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def sincos_positions(n_rows, n_cols, dim):
    """Fixed 2-D sine-cosine position embeddings (MAE's), (n_rows * n_cols, dim)."""
    def one_axis(positions, d):
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d // 2))
        angles = positions.double()[:, None] * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)
    rows, cols = torch.meshgrid(torch.arange(n_rows), torch.arange(n_cols), indexing="ij")
    return torch.cat([one_axis(rows.flatten(), dim // 2), one_axis(cols.flatten(), dim // 2)], dim=1).float()
