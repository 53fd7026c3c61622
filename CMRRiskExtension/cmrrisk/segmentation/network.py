"""The segmentation network: MONAI's BasicUNet applied per slice with neighbouring slices as
channels (2.5D)."""

from __future__ import annotations

import torch


def build_network(config: dict) -> torch.nn.Module:
    """Build the network described by a model config's ``network`` section."""
    from monai.networks.nets import BasicUNet

    net_cfg = config["network"]
    if net_cfg.get("name") != "BasicUNet":
        raise ValueError(f"unknown network {net_cfg.get('name')!r}; this version knows BasicUNet")
    return BasicUNet(
        spatial_dims=2,
        in_channels=int(net_cfg["in_channels"]),
        out_channels=int(net_cfg["out_channels"]),
        features=tuple(int(f) for f in net_cfg["features"]),
        norm=net_cfg.get("norm", "batch"),
        act=("leakyrelu", {"negative_slope": 0.01}),
        dropout=float(net_cfg.get("dropout", 0.0)),
    )


DEFAULT_NETWORK = {
    "name": "BasicUNet",
    "in_channels": 3,          # slice k-1, k, k+1
    "out_channels": 4,         # background + 3 structures
    "features": [16, 32, 64, 128, 256, 16],
    "norm": "batch",
    "dropout": 0.0,
}
