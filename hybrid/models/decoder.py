"""CATS-style decoder: learnable queries cross-attend to the patch sequence (no self-attention)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hybrid.errors import ConfigError

POSITIONAL_ENCODINGS = ("learnable", "sincos2d", "none")


def learned_queries(latent: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """The seed's first-layer queries: the latent queries themselves, the same for every image."""
    return latent.unsqueeze(0).expand(memory.shape[0], -1, -1)


def attention_pooled_queries(latent: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """ "Dynamic" first-layer queries: each latent query attends to the image's patch embeddings
    (the keys and values themselves, no projection weights) and starts from what it pooled."""
    scores = latent @ memory.transpose(1, 2) / math.sqrt(memory.shape[-1])  # [B, Q, N]
    return scores.softmax(dim=-1) @ memory


# model.query_init -> how the latent queries (through W_feat2emb) become the first layer's queries
QUERY_INITS = {"learned": learned_queries, "attention_pooling": attention_pooled_queries}


def check_heads(emb_dim: int, num_heads: int) -> None:
    """The decoder width splits evenly over the attention heads."""
    if int(emb_dim) % int(num_heads):
        raise ConfigError(f"model.emb_dim={emb_dim} is not divisible by model.num_heads={num_heads}")


def check_positional_encoding(kind: str, emb_dim: int) -> None:
    """A known position code; the 2D sine-cosine table needs the width in quarters (two axes, sin and cos)."""
    if kind not in POSITIONAL_ENCODINGS:
        raise ConfigError(f"model.positional_encoding={kind!r}; choose one of {list(POSITIONAL_ENCODINGS)}")
    if kind == "sincos2d" and int(emb_dim) % 4:
        raise ConfigError(f"model.positional_encoding=sincos2d needs model.emb_dim divisible by 4, got {emb_dim}")


def check_query_masking(start_prob: float, end_prob: float) -> None:
    """Query-adaptive masking rates are probabilities below 1 (a query must survive sometimes)."""
    for name, value in (("qam_start", start_prob), ("qam_end", end_prob)):
        if not 0.0 <= float(value) < 1.0:
            raise ConfigError(f"model.{name} must be in [0, 1), got {value}")


def check_query_init(kind: str) -> None:
    """A known way to start the queries."""
    if kind not in QUERY_INITS:
        raise ConfigError(f"model.query_init={kind!r}; choose one of {list(QUERY_INITS)}")


def check_num_layers(num_layers: int) -> None:
    """At least one cross-attention layer."""
    if int(num_layers) < 1:
        raise ConfigError(f"model.num_layers must be at least 1, got {num_layers}")


def check_decoder(
    emb_dim: int, num_heads: int, num_layers: int, positional_encoding: str, qam_start, qam_end, query_init="learned"
) -> None:
    """Every rule on the decoder's hyperparameters (run before building, and by the decoder itself)."""
    check_heads(emb_dim, num_heads)
    check_query_init(query_init)
    check_num_layers(num_layers)
    check_positional_encoding(positional_encoding, emb_dim)
    check_query_masking(qam_start, qam_end)


def sincos_2d(grid_size: int, dim: int) -> torch.Tensor:
    """Fixed 2D sine-cosine table ``[grid_size**2, dim]`` (half the channels per axis)."""
    check_positional_encoding("sincos2d", dim)
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    ys, xs = torch.meshgrid(
        torch.arange(grid_size, dtype=torch.float64),
        torch.arange(grid_size, dtype=torch.float64),
        indexing="ij",
    )
    angles_y = ys.reshape(-1, 1) * omega
    angles_x = xs.reshape(-1, 1) * omega
    table = torch.cat([angles_y.sin(), angles_y.cos(), angles_x.sin(), angles_x.cos()], dim=1)
    return table.float()


class PositionalEncoding(nn.Module):
    """Adds a position code to each patch embedding: learnable, fixed 2D sin-cos, or nothing."""

    def __init__(self, kind: str, grid_size: int, dim: int):
        super().__init__()
        check_positional_encoding(kind, dim)
        self.kind = kind
        num_patches = grid_size**2
        if kind == "learnable":
            self.table = nn.Parameter(torch.empty(1, num_patches, dim))
            nn.init.trunc_normal_(self.table, std=0.02)
        elif kind == "sincos2d":
            self.register_buffer("table", sincos_2d(grid_size, dim).unsqueeze(0), persistent=False)
        else:
            self.table = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.table is None else x + self.table


class QueryAdaptiveMasking(nn.Module):
    """Drop whole query vectors during training, with a rate rising linearly over the queries.

    The first query is dropped with ``start_prob``, the last with ``end_prob`` (CATS). Kept vectors
    are rescaled like dropout so the expected value matches evaluation, where nothing is dropped.
    """

    def __init__(self, start_prob: float, end_prob: float):
        super().__init__()
        check_query_masking(start_prob, end_prob)
        self.start_prob = start_prob
        self.end_prob = end_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, Q, D]``."""
        if not self.training or (self.start_prob == 0 and self.end_prob == 0):
            return x
        drop = torch.linspace(self.start_prob, self.end_prob, x.shape[1], device=x.device)
        keep = 1.0 - drop.view(1, -1, 1)
        mask = torch.bernoulli(keep.expand(x.shape[0], -1, 1)).to(x.dtype)
        return x * mask / keep.to(x.dtype)


class GEGLU(nn.Module):
    """Gated GELU unit: half the features gate the other half."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = x.chunk(2, dim=-1)
        return value * F.gelu(gate)


class CrossAttention(nn.Module):
    """Multi-head attention of queries over keys/values, exposing weights and raw scores.

    With ``residual_scores`` the previous layer's pre-softmax scores are added to this layer's
    (RealFormer / PatchTST "residual attention"), which CATS offers as an option.
    """

    def __init__(self, dim: int, num_heads: int, attn_dropout: float):
        super().__init__()
        check_heads(dim, num_heads)
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.attn_dropout = nn.Dropout(attn_dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self, queries: torch.Tensor, memory: torch.Tensor, prev_scores: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns the output ``[B, Q, D]``, weights ``[B, H, Q, N]`` and scores ``[B, H, Q, N]``."""
        q, k, v = self._heads(self.q(queries)), self._heads(self.k(memory)), self._heads(self.v(memory))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        if prev_scores is not None:
            scores = scores + prev_scores
        weights = scores.softmax(dim=-1)
        mixed = self.attn_dropout(weights) @ v
        b, _, nq, _ = mixed.shape
        out = self.out(mixed.transpose(1, 2).reshape(b, nq, self.num_heads * self.head_dim))
        return out, weights, scores


class CatsDecoderLayer(nn.Module):
    """Cross-attention then GEGLU feed-forward, each with a post-norm residual."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float,
        attn_dropout: float,
        qam_start: float,
        qam_end: float,
    ):
        super().__init__()
        self.attention = CrossAttention(dim, num_heads, attn_dropout)
        self.query_masking = QueryAdaptiveMasking(qam_start, qam_end)
        self.dropout = nn.Dropout(dropout)
        self.norm_attention = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, 2 * ffn_dim), GEGLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim)
        )
        self.norm_feed_forward = nn.LayerNorm(dim)

    def forward(
        self, queries: torch.Tensor, memory: torch.Tensor, prev_scores: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attended, weights, scores = self.attention(queries, memory, prev_scores)
        attended = self.query_masking(self.dropout(attended))
        queries = self.norm_attention(queries + attended)
        queries = self.norm_feed_forward(queries + self.dropout(self.feed_forward(queries)))
        return queries, weights, scores


class CatsDecoder(nn.Module):
    """Learnable queries cross-attend to patch features and are mapped back to feature size.

    ``query_init`` (:data:`QUERY_INITS`): the first layer's queries are the latent queries
    (``learned``, the seed) or what they pool from the image by attention (``attention_pooling``).

    ``[B, num_patches, featured_patch_dim]`` -> ``[B, num_queries * featured_patch_dim]`` with
    ``num_queries = ceil(num_labels / featured_patch_dim)`` (the seed's rule) unless given. Patches and queries share the
    embedding ``W_feat2emb``.
    """

    def __init__(
        self,
        num_patches: int,
        grid_size: int,
        num_labels: int,
        featured_patch_dim: int,
        emb_dim: int,
        num_heads: int,
        num_layers: int,
        ffn_ratio: float,
        dropout: float,
        attn_dropout: float,
        positional_encoding: str,
        residual_attention: bool,
        qam_start: float,
        qam_end: float,
        query_init_std: float,
        query_init: str,
        num_queries: int | None,
    ):
        super().__init__()
        if grid_size**2 != num_patches:
            raise ConfigError(f"num_patches={num_patches} is not grid_size**2 for grid_size={grid_size}")
        check_decoder(emb_dim, num_heads, num_layers, positional_encoding, qam_start, qam_end, query_init)
        self.first_queries = QUERY_INITS[query_init]
        self.featured_patch_dim = featured_patch_dim
        # the seed's rule (the fewest queries whose features cover the labels), or model.num_queries
        self.num_queries = int(num_queries) if num_queries else math.ceil(num_labels / featured_patch_dim)
        self.out_features = self.num_queries * featured_patch_dim
        self.residual_attention = residual_attention
        self.W_feat2emb = nn.Linear(featured_patch_dim, emb_dim)
        self.learnable_queries = nn.Parameter(torch.randn(self.num_queries, featured_patch_dim) * query_init_std)
        self.positional_encoding = PositionalEncoding(positional_encoding, grid_size, emb_dim)
        ffn_dim = max(1, round(emb_dim * ffn_ratio))
        self.layers = nn.ModuleList(
            CatsDecoderLayer(emb_dim, num_heads, ffn_dim, dropout, attn_dropout, qam_start, qam_end)
            for _ in range(num_layers)
        )
        self.head = nn.Linear(emb_dim, featured_patch_dim)

    def forward(
        self, patches: torch.Tensor, *, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Decode; with ``return_attention`` also return the last layer's weights ``[B, H, Q, N]``."""
        memory = self.positional_encoding(self.W_feat2emb(patches))
        queries = self.first_queries(self.W_feat2emb(self.learnable_queries), memory)
        scores = None
        for layer in self.layers:
            queries, weights, new_scores = layer(queries, memory, scores)
            scores = new_scores if self.residual_attention else None
        out = self.head(queries).flatten(1)
        return (out, weights) if return_attention else out

    def parameter_groups(self) -> dict[str, nn.Module | nn.Parameter]:
        """Named parts for the parameter report."""
        return {
            "embedding": self.W_feat2emb,
            "queries": self.learnable_queries,
            "positional": self.positional_encoding,
            "layers": self.layers,
            "head": self.head,
        }
