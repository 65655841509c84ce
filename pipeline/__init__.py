"""The image engine: r/Place crops dreamed on by Stable Diffusion img2img. No Discord in here.

    from pipeline.engine import Renderer
    from pipeline.models import ModelStore
    from pipeline.outputs import save_result
    from pipeline.params import RenderRequest

    store = ModelStore({"1.4": "CompVis/stable-diffusion-v1-4"}, device="auto")
    [result] = Renderer(store).render([RenderRequest(model="1.4").resolve()])
    save_result(result, Path("out"))

Modules: params (what to render: every render parameter, defined once), config (the PLACE_*
settings the bot and the CLI share), canvases (the r/Place canvases in canvas_files/, and
crops), models (lazy loading, VRAM modes), engine (the recursion, batched), results (what a
render produces, plain data: the bot handles results without torch), outputs
(PNG/filmstrip/animation), cli (`python -m pipeline`). The package itself imports nothing
heavy: torch loads only with models/engine, so tools that only validate input start fast.
"""
