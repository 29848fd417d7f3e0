"""`framesift serve`: the inference HTTP API Roboflow's `inference_sdk` client talks to, with active learning on
every request (an ASGI application on Starlette, run by uvicorn: `pip install framesift[serve]`)."""

from framesift.serve.server import ServeOptions, serve

__all__ = ["ServeOptions", "serve"]
