"""Retrieval core: settings, records, embedding, the vector store and the answer engine.

Everything else (ingest, api, eval, the CLI) builds on this package.
"""

import os

# onnxruntime writes a telemetry queue (device id, OS, CPU, interpreter path) under the user's cache
# folder as soon as it is imported, whatever DO_NOT_TRACK says; only this variable, set before the
# import, stops it. Every process imports this package before anything that loads onnxruntime
# (chromadb, our embedder); retrieval/embedding.py turns telemetry events off as well.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
