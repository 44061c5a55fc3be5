"""``texttune serve``: an HTTP server for any model texttune saved.

``create_app`` builds the ASGI app (FastAPI) around a predictor; ``serve`` runs
it under uvicorn. Nothing here imports the training engine.
"""

from texttune.serving.app import create_app
from texttune.serving.predictor import ModelPredictor, Predictor
from texttune.serving.server import serve

__all__ = ["create_app", "serve", "ModelPredictor", "Predictor"]
