"""Networks of the contrastive objectives: a conv autoencoder, MLP heads, and MoCo's queue.

- :class:`ConvAutoencoder`: the hybrid bound's autoencoder (Sinha, Song and Ermon): a small
  residual conv net that halves the resolution once, so a 32x32x3 CIFAR image becomes the paper's
  16x16x6 latent (``latent_channels = 6``) and an 8x8 digit a 4x4x6 one. The paper uses a
  shortened NVAE encoder and decoder; this one is smaller (two residual blocks each side) and has
  no BatchNorm, so train and eval mode compute the same function and the momentum key encoder
  cannot read the query batch through batch statistics (the leak MoCo's shuffled BN prevents).
- :class:`MLPHead`: ``Linear -> ReLU -> Linear``, the projection head of SimCLR and MoCo-v2.
- :class:`MoCoQueue`: the ring buffer of negative keys of MoCo (He et al. 2020), a module whose
  keys and write position are buffers, so checkpoints restore them exactly.
- :func:`momentum_update`: the key encoder's exponential moving average of the query encoder.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


class ResidualBlock(nn.Module):
    """``x + Conv3x3(SiLU(Conv3x3(SiLU(x))))``, the shape kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ConvAutoencoder(nn.Module):
    """Images ``(B, C, H, W)`` -> latent ``(B, latent_channels, H/2, W/2)`` -> images.

    Encoder: ``Conv3x3(C, hidden) -> SiLU -> Conv4x4/2 -> 2 x ResidualBlock -> Conv1x1(hidden, latent)``;
    decoder the mirror image with a ``ConvTranspose4x4/2`` and a linear output (no sigmoid: the
    squared error is taken on pixels in [0, 1], and figures clip to that range). H and W must be
    even.

    Args:
        in_channels: image channels (1 or 3).
        hidden_channels: width of the residual blocks.
        latent_channels: channels of the latent; even, since the hybrid objective splits them in two.
    """

    def __init__(self, in_channels: int, hidden_channels: int, latent_channels: int):
        super().__init__()
        _positive_int("in_channels", in_channels)
        _positive_int("hidden_channels", hidden_channels)
        if _positive_int("latent_channels", latent_channels) % 2:
            raise ValueError(f"latent_channels must be even (the latent is split in two halves), got {latent_channels}")
        self.latent_channels = latent_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hidden_channels, hidden_channels, 4, stride=2, padding=1),
            ResidualBlock(hidden_channels), ResidualBlock(hidden_channels),
            nn.SiLU(), nn.Conv2d(hidden_channels, latent_channels, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, hidden_channels, 1),
            ResidualBlock(hidden_channels), ResidualBlock(hidden_channels),
            nn.SiLU(), nn.ConvTranspose2d(hidden_channels, hidden_channels, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(hidden_channels, in_channels, 3, padding=1),
        )

    def encode(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"ConvAutoencoder needs an even height and width, got {tuple(x.shape[-2:])}")
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


class MLPHead(nn.Module):
    """``Linear(in, hidden) -> ReLU -> Linear(hidden, out)`` on flattened inputs."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(_positive_int("in_features", in_features), _positive_int("hidden_features", hidden_features)),
            nn.ReLU(),
            nn.Linear(hidden_features, _positive_int("out_features", out_features)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MoCoQueue(nn.Module):
    """A first-in first-out queue of ``size`` unit-length keys of dimension ``dim``.

    Starts full of random unit vectors (as MoCo does). :meth:`enqueue` overwrites the oldest
    keys with a batch of new ones, so the queue always holds ``size`` keys: the newest ``size``
    ever enqueued once enough have been. ``keys`` is stored as a ring buffer with the write
    position ``pointer``; :meth:`ordered` returns them oldest first. Both are buffers (in
    ``state_dict``, never trained). ``enqueue`` replaces the buffer rather than writing into it,
    so a loss that used the previous keys can still be backpropagated.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        _positive_int("queue size", size)
        _positive_int("key dimension", dim)
        self.size, self.dim = size, dim
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Append ``keys`` ``(N, dim)``, N <= size, dropping the N oldest."""
        if keys.dim() != 2 or keys.shape[1] != self.dim or not 1 <= keys.shape[0] <= self.size:
            raise ValueError(f"enqueue needs (N, {self.dim}) keys with 1 <= N <= {self.size}, got {tuple(keys.shape)}")
        positions = (self.pointer + torch.arange(len(keys), device=keys.device)) % self.size
        self.keys = self.keys.index_copy(0, positions, keys.to(self.keys.dtype))
        self.pointer = (self.pointer + len(keys)) % self.size

    def ordered(self) -> Tensor:
        """The keys, oldest first: ``(size, dim)``."""
        return torch.roll(self.keys, shifts=-int(self.pointer), dims=0)


@torch.no_grad()
def momentum_update(online: nn.Module, momentum: nn.Module, m: float) -> None:
    """``momentum <- m * momentum + (1 - m) * online``, parameter by parameter (MoCo's key encoder).

    The two modules must have the same architecture; ``momentum``'s parameters get no gradient.
    """
    for p_online, p_momentum in zip(online.parameters(), momentum.parameters(), strict=True):
        p_momentum.mul_(m).add_(p_online.detach(), alpha=1 - m)
