"""onnxruntime, imported once with its telemetry off (the embedder, the verifier and the model build share it)."""

from __future__ import annotations

from typing import Any


def onnxruntime() -> Any:
    """The onnxruntime module with its telemetry events turned off (``DO_NOT_TRACK`` does not), the
    one import of it that creates sessions; ``ORT_DISABLE_TELEMETRY`` (retrieval/__init__.py) keeps
    the import itself from writing under the user's home."""
    import onnxruntime as ort

    ort.disable_telemetry_events()
    return ort
