from .configuration_attention_cnn import AttentionCnnConfig
from .modeling_attention_cnn import AttentionCnnForImageClassification

__all__ = ["AttentionCnnConfig", "AttentionCnnForImageClassification"]
