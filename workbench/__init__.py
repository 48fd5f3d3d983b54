"""FER Workbench explanation engine: faces in, aligned explanations out, for every model.

    from workbench import Workbench
    result = Workbench(["patt_lite", "path/to/saved_model"]).analyze("photo.jpg", methods=["gradcam"])
    result.faces[0].models["patt_lite"].cams["gradcam"]      # H×W float32 in [0,1]
    result.save("bundle/")

Models are read only through the explanation protocol of `hub_models/shared/fer_base.py`.
"""

from .cams import FAST_METHODS, METHODS, SLOW_METHODS
from .engine import Workbench, add_faithfulness, prepare_face, resolve_target
from .errors import ArgumentError, BundleError, BundleExistsError, ImageError, ModelLoadError, WorkbenchError
from .faces import Detection, align_face, get_detector
from .images import LoadedImage, load_image
from .models import LoadedModel, load_model
from .regions import REGIONS, region_masks
from .result import FAITHFULNESS_METRICS, AnalysisResult, FaceAnalysis, ModelAnalysis
from .visualise import bar_chart, colorbar_strip, draw_faces, overlay

__all__ = [
    "FAITHFULNESS_METRICS",
    "FAST_METHODS",
    "METHODS",
    "REGIONS",
    "SLOW_METHODS",
    "AnalysisResult",
    "ArgumentError",
    "BundleError",
    "BundleExistsError",
    "Detection",
    "FaceAnalysis",
    "ImageError",
    "LoadedImage",
    "LoadedModel",
    "ModelAnalysis",
    "ModelLoadError",
    "Workbench",
    "WorkbenchError",
    "add_faithfulness",
    "align_face",
    "bar_chart",
    "colorbar_strip",
    "draw_faces",
    "get_detector",
    "load_image",
    "load_model",
    "overlay",
    "prepare_face",
    "region_masks",
    "resolve_target",
]
