from .configuration_swin_ema import SwinEmaConfig
from .modeling_swin_ema import SwinEmaForImageClassification

__all__ = ["SwinEmaConfig", "SwinEmaForImageClassification"]
