"""Export of a Res-UNet state dict to ONNX (needs torch and onnx), for the torch-free CPU runtime."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from organseg.method.preprocess import INPUT_HEIGHT, INPUT_WIDTH

OPSET = 17


def export_onnx(state_dict: dict[str, np.ndarray], channels: tuple[int, ...], path: Path, in_channels: int = 1
                ) -> None:
    """Write the network as ONNX with a dynamic batch axis; input 'slices', output 'logits'."""
    import torch

    from organseg.method.network import ResUNet2D

    net = ResUNet2D(channels, in_channels)
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()})
    net.eval()
    example = torch.zeros(1, in_channels, INPUT_HEIGHT, INPUT_WIDTH)
    torch.onnx.export(net, (example,), str(path), input_names=["slices"], output_names=["logits"],
                      dynamic_axes={"slices": {0: "batch"}, "logits": {0: "batch"}}, opset_version=OPSET,
                      dynamo=False)
