"""FER architectures as transformers models. Importing this package registers every one
with AutoConfig / AutoModel / AutoModelForImageClassification."""

from . import zoo
from .attention_cnn import AttentionCnnConfig, AttentionCnnForImageClassification
from .cf_dan import CfDanConfig, CfDanForImageClassification
from .ddamfn import DdamfnConfig, DdamfnForImageClassification
from .patt_lite import PattLiteConfig, PattLiteForImageClassification
from .registry import ARCHITECTURES, create_config, create_model, register
from .shared.fer_base import CKPLUS_LABELS, FER2013_LABELS, FERPLUS_LABELS, FerConfig, FerPreTrainedModel
from .swin_ema import SwinEmaConfig, SwinEmaForImageClassification

# Each architecture registers itself here: one import and one register() call per folder.
register("patt_lite", PattLiteConfig, PattLiteForImageClassification)
register("ddamfn", DdamfnConfig, DdamfnForImageClassification)
register("attention_cnn", AttentionCnnConfig, AttentionCnnForImageClassification)
register("swin_ema", SwinEmaConfig, SwinEmaForImageClassification)
register("cf_dan", CfDanConfig, CfDanForImageClassification)

__all__ = [
    "ARCHITECTURES", "CKPLUS_LABELS", "FER2013_LABELS", "FERPLUS_LABELS", "FerConfig",
    "FerPreTrainedModel", "create_config", "create_model", "register", "zoo",
]

# Embedded checkpoints resolve by Hub id offline (see hub_models.zoo).
zoo.install()
