"""One-off developer step: convert torchvision's ImageNet MobileNetV2 pickle (IMAGENET1K_V1,
`mobilenet_v2-b0353104.pth`, BSD-3-Clause code; ImageNet-trained) into the safetensors file that
`training/finetune.py --backbone-weights` loads into the `backbone="mobilenet_v2"` trunk of CF-DAN
or PAtt-Lite.
Only the trunk's tensors are kept (torchvision's ``features.0``–``features.13``); training code
never unpickles anything.

    python tools/convert_mobilenet_v2.py [SOURCE.pth] [build/weights/mobilenet_v2_imagenet.safetensors]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from hub_models.shared.fer_layers import MobileNetV2Trunk

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "../shared/weights/imagenet/mobilenet_v2-b0353104.pth"
TARGET = ROOT / "build/weights/mobilenet_v2_imagenet.safetensors"


def main(source: Path = SOURCE, target: Path = TARGET) -> None:
    state = torch.load(source, map_location="cpu", weights_only=True)
    trunk = MobileNetV2Trunk()
    keep = len(trunk)
    trunk_state = {key.removeprefix("features."): value for key, value in state.items()
                   if key.startswith("features.") and int(key.split(".")[1]) < keep}
    trunk.load_state_dict(trunk_state, strict=True)  # fails loudly if the layout differs
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in trunk_state.items()}, str(target),
              metadata={"source": "torchvision mobilenet_v2 IMAGENET1K_V1 (mobilenet_v2-b0353104.pth), "
                                  f"features.0-{keep - 1}",
                        "license": "BSD-3-Clause (torchvision); trained on ImageNet-1k"})
    print(f"wrote {target} ({target.stat().st_size:,} bytes, {len(trunk_state)} tensors)")


if __name__ == "__main__":
    main(*(Path(arg) for arg in sys.argv[1:3]))
