"""``texttune serve``: an HTTP server for any model texttune saved.

``create_app`` builds the ASGI app (FastAPI) around a predictor; ``serve`` runs
it under uvicorn. Nothing here imports the training engine.
"""

from texttune.extras import require

require("serve", what="texttune serve")  # before FastAPI is imported: one line naming the extra, not an ImportError

from texttune.serving.app import create_app  # noqa: E402
from texttune.serving.predictor import ModelPredictor, Predictor  # noqa: E402
from texttune.serving.server import serve  # noqa: E402

__all__ = ["create_app", "serve", "ModelPredictor", "Predictor"]
