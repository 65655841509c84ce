"""The image engine: r/Place crops dreamed on by Stable Diffusion img2img. No Discord in here.

    store = ModelStore({"1.4": "CompVis/stable-diffusion-v1-4"}, device="auto")
    [result] = Renderer(store).render([RenderRequest(model="1.4").resolve()])
    save_result(result, Path("out"))
"""

from pipeline.engine import Renderer, RenderResult
from pipeline.errors import ModelLoadError, OutOfMemory, PipelineError, RenderCancelled
from pipeline.models import ModelStore
from pipeline.params import Crop, RenderJob, RenderRequest

__all__ = [
    "Crop",
    "ModelLoadError",
    "ModelStore",
    "OutOfMemory",
    "PipelineError",
    "RenderCancelled",
    "RenderJob",
    "RenderRequest",
    "RenderResult",
    "Renderer",
]
