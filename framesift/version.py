"""framesift's version: one place, read by the package, the metrics, the server and exports."""

__version__ = "0.1.0"
