"""One-off developer step: convert the RetinaFace-MobileNet0.25 pickle (biubug6/Pytorch_Retinaface,
MIT) into the safetensors file the workbench ships. Runtime code never unpickles anything.

    python tools/convert_retinaface.py [SOURCE.pth] [workbench/faces/retinaface_mobilenet0.25.safetensors]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from workbench.faces.retinaface import RetinaFace

SOURCE = Path(__file__).resolve().parents[1] / "../shared/weights/face_detection/retinaface/mobilenet0.25_Final.pth"
TARGET = Path(__file__).resolve().parents[1] / "workbench/faces/retinaface_mobilenet0.25.safetensors"


def main(source: Path = SOURCE, target: Path = TARGET) -> None:
    state = torch.load(source, map_location="cpu", weights_only=True)
    state = {key.removeprefix("module."): value for key, value in state.items()}
    RetinaFace().load_state_dict(state, strict=True)  # fails loudly if the layout differs
    save_file({key: value.contiguous() for key, value in state.items()}, str(target),
              metadata={"source": "biubug6/Pytorch_Retinaface mobilenet0.25_Final.pth", "license": "MIT"})
    print(f"wrote {target} ({target.stat().st_size:,} bytes, {len(state)} tensors)")


if __name__ == "__main__":
    main(*(Path(arg) for arg in sys.argv[1:3]))
