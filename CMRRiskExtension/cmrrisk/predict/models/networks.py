"""The networks of the models, defined at module level (importable, inspectable, and the same
class for every model that uses them). Parameter names match the stored weights of earlier
model directories."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Sequential):
    """Linear -> ReLU -> BatchNorm -> Dropout per hidden layer, then a linear output layer."""

    def __init__(self, d_in: int, d_out: int, hidden, dropout: float):
        layers, d = [], d_in
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.BatchNorm1d(h), nn.Dropout(dropout)]
            d = h
        layers.append(nn.Linear(d, d_out))
        super().__init__(*layers)


class TimeMLP(nn.Module):
    """Cox-Time's network g(x, t): the MLP on the covariates with the (scaled) time appended."""

    def __init__(self, d_in: int, hidden, dropout: float):
        super().__init__()
        self.mlp = MLP(d_in + 1, 1, hidden, dropout)

    def forward(self, x, t):
        return self.mlp(torch.cat([x, t.reshape(-1, 1)], dim=1)).squeeze(-1)


def _block(i, o, pool):
    layers = [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def slice_cnn(c_in: int, width: int) -> nn.Sequential:
    """The per-slice 2D CNN: 4 blocks (widths w, 2w, 4w, 4w), 2x2 pooling after the first three;
    ``block4`` is the Grad-CAM target."""
    net = nn.Sequential()
    net.add_module("block1", _block(c_in, width, True))
    net.add_module("block2", _block(width, 2 * width, True))
    net.add_module("block3", _block(2 * width, 4 * width, True))
    net.add_module("block4", _block(4 * width, 4 * width, False))
    return net


class MultiInputNet(nn.Module):
    """Cine CNN branch (+ optional LGE branch) + covariate branch -> head (see
    :mod:`cmrrisk.predict.multiinput`)."""

    def __init__(self, n_channels: int, n_cov: int, n_out: int, width: int = 16, slices: int = 8,
                 dropout: float = 0.3, n_lge_channels: int = 0):
        super().__init__()
        w = width
        self.cnn = slice_cnn(n_channels, w)
        self.position = nn.Parameter(torch.zeros(slices, 4 * w))
        if n_lge_channels:
            self.cnn_lge = slice_cnn(n_lge_channels, w)
            self.position_lge = nn.Parameter(torch.zeros(slices, 4 * w))
        else:
            self.cnn_lge = None
        self.cov = nn.Sequential(nn.Linear(n_cov, 16), nn.ReLU()) if n_cov else None
        d = 8 * w * (2 if n_lge_channels else 1) + (16 if n_cov else 0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, n_out))

    @staticmethod
    def _branch(net, position, images):
        n, k, c, h, w_ = images.shape
        f = net(images.reshape(n * k, c, h, w_)).mean(dim=(2, 3)).reshape(n, k, -1)
        f = f + position[None, :k]
        return torch.cat([f.mean(1), f.amax(1)], dim=1)

    def forward(self, images, covariates=None, lge=None):
        z = self._branch(self.cnn, self.position, images)
        if self.cnn_lge is not None:
            if lge is None:
                raise ValueError("this network has an LGE branch: pass the LGE tensor")
            z = torch.cat([z, self._branch(self.cnn_lge, self.position_lge, lge)], dim=1)
        if self.cov is not None:
            z = torch.cat([z, self.cov(covariates)], dim=1)
        return self.head(z)
