from .configuration_ddamfn import DdamfnConfig
from .modeling_ddamfn import DdamfnForImageClassification, dda_attention_loss

__all__ = ["DdamfnConfig", "DdamfnForImageClassification", "dda_attention_loss"]
