"""Encoders and heads that objectives build on.

Models here know nothing of losses: an encoder maps a batch of images ``(B, C, H, W)`` to its
representation, and each objective in ``trainables/objectives`` combines them into terms.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

# --- stochastic MLP encoders ---


class GaussianMLPEncoder(nn.Module):
    """MLP encoder of a diagonal Gaussian posterior p(z|x) = N(mean(x), diag(std(x)^2)).

    The VIB encoder of Alemi et al. (2017): ``Flatten -> [Linear -> ReLU] x depth ->
    Linear(hidden_dim, 2 * latent_dim)``; the paper's MNIST model is 784-1024-1024-2K (depth 2,
    K = 256). The second half of the output, rho, becomes ``std = softplus(rho - 5)``, as in the
    official VIB demo: the shift starts the posterior narrow (std about 0.0067 at rho = 0).

    Args:
        in_features: number of input features, C * H * W.
        hidden_dim: width of each hidden layer.
        latent_dim: K, the number of latent dimensions.
        depth: number of hidden ``Linear -> ReLU`` layers (>= 1).

    Shape:
        input ``(B, C, H, W)`` (or any ``(B, ...)`` with ``in_features`` elements per example);
        returns ``(mean, std)``, each ``(B, latent_dim)``.
    """

    def __init__(self, in_features: int, hidden_dim: int, latent_dim: int, depth: int = 2):
        super().__init__()
        for name, value in (("in_features", in_features), ("hidden_dim", hidden_dim),
                            ("latent_dim", latent_dim), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
            width = hidden_dim
        layers.append(nn.Linear(width, 2 * latent_dim))
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, rho = self.net(x).split(self.latent_dim, dim=-1)
        return mean, F.softplus(rho - 5.0)
