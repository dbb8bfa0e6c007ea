"""The HTTP API (FastAPI) over the answer engine."""
