from .configuration_cf_dan import CfDanConfig
from .modeling_cf_dan import CfDanForImageClassification

__all__ = ["CfDanConfig", "CfDanForImageClassification"]
