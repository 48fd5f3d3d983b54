"""Building blocks shared by the FER architectures, each written once (timm `layers/` style).

Linked into every architecture folder (see fer_base.py for why); imports only torch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
