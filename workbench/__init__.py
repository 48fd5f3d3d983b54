"""FER Workbench explanation engine: faces in, aligned explanations out, for every model.

    from workbench import Workbench
    result = Workbench(["patt_lite", "path/to/saved_model"]).analyze("photo.jpg", methods=["gradcam"])
    result.faces[0].models["patt_lite"].cams["gradcam"]      # H×W float32 in [0,1]
    result.save("bundle/")

Models are read only through the explanation protocol of `hub_models/shared/fer_base.py`.
Front ends (the app, the CLI) use only the names below. The C² functions are re-exported for the
app's activation plots: they are CF-DAN's layers, defined once in `hub_models/shared/fer_layers.py`.
"""

from hub_models.cf_dan.configuration_cf_dan import C2_PRELU_INIT, C2_SIGMOID_INIT
from hub_models.shared.fer_layers import c2_prelu, c2_sigmoid

from .atlas import Atlas, ModelAtlas, atlas_figure, attention_atlas
from .cams import FAST_METHODS, METHODS, SLOW_METHODS
from .datasets import (
    DataError,
    ModelScores,
    TestFaces,
    confusion_matrix,
    data_status,
    draw_reliability,
    score_faces,
    test_faces,
)
from .engine import Workbench, add_faithfulness, prepare_face, resolve_target
from .errors import ArgumentError, BundleError, BundleExistsError, ImageError, ModelLoadError, WorkbenchError
from .faces import Detection, align_face, get_detector
from .images import LoadedImage, load_image
from .labels import canonical, label_union
from .models import LABEL_SETS, LoadedModel, architectures, default_models, load_model, trained_models
from .probes import PERTURBATIONS, RegionProbe, probe_perturbations, probe_regions, probe_test_faces
from .regions import REGIONS, region_masks
from .result import FAITHFULNESS_METRICS, AnalysisResult, FaceAnalysis, ModelAnalysis
from .timing import median_ms, time_ms
from .video import VideoResult, explain_video
from .visualise import (
    TILE_CAPTION,
    bar_chart,
    captioned_tile,
    colorbar_strip,
    draw_faces,
    map_panels,
    overlay,
    short_model_name,
)

__all__ = [
    "C2_PRELU_INIT",
    "C2_SIGMOID_INIT",
    "FAITHFULNESS_METRICS",
    "FAST_METHODS",
    "LABEL_SETS",
    "METHODS",
    "PERTURBATIONS",
    "REGIONS",
    "SLOW_METHODS",
    "TILE_CAPTION",
    "AnalysisResult",
    "ArgumentError",
    "Atlas",
    "BundleError",
    "BundleExistsError",
    "DataError",
    "Detection",
    "FaceAnalysis",
    "ImageError",
    "LoadedImage",
    "LoadedModel",
    "ModelAnalysis",
    "ModelAtlas",
    "ModelLoadError",
    "ModelScores",
    "RegionProbe",
    "TestFaces",
    "VideoResult",
    "Workbench",
    "WorkbenchError",
    "add_faithfulness",
    "align_face",
    "architectures",
    "atlas_figure",
    "attention_atlas",
    "bar_chart",
    "c2_prelu",
    "c2_sigmoid",
    "canonical",
    "captioned_tile",
    "colorbar_strip",
    "confusion_matrix",
    "data_status",
    "default_models",
    "draw_faces",
    "draw_reliability",
    "explain_video",
    "get_detector",
    "label_union",
    "load_image",
    "load_model",
    "map_panels",
    "median_ms",
    "overlay",
    "prepare_face",
    "probe_perturbations",
    "probe_regions",
    "probe_test_faces",
    "region_masks",
    "resolve_target",
    "score_faces",
    "short_model_name",
    "test_faces",
    "time_ms",
    "trained_models",
]
