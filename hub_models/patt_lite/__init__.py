from .configuration_patt_lite import PattLiteConfig
from .modeling_patt_lite import PattLiteForImageClassification

__all__ = ["PattLiteConfig", "PattLiteForImageClassification"]
