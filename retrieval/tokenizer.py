"""e5's XLM-R tokenizer run by sentencepiece, derived from the prepared ``tokenizer.json``.

It gives the ids ``tokenizers`` gives for that file (tests/retrieval/test_tokenizer.py: every text of
the sample KB, the eval questions and edge cases; 23k multilingual texts of the training data when
it was written), except where two segmentations score the same, as a run of dashes split into
"-" + "----------" or the reverse: sentencepiece (which XLM-R was trained with) keeps one order,
``tokenizers`` the other (2 markdown table rules of the sample KB). It takes ~35–55 MB resident
instead of ~280 MB: ``tokenizers`` keeps the 250k-piece
vocabulary in a trie of hash maps, sentencepiece in a double-array trie (docs/benchmarks.md, Issue
#13, "Round 5"). About 4× faster per question too (6 vs 24 µs).

``tokenizer.json`` describes a pipeline sentencepiece runs in two steps: its ``Precompiled``
character map (a sentencepiece normaliser) and runs of spaces collapsed to one, then ``Metaspace``
(a ``▁`` before the text unless it starts with a space, spaces as ``▁``) and the Unigram model over
the words, framed by ``<s> … </s>``. So one small processor holds the character map and normalises,
and another holds the vocabulary with no normaliser of its own. Both are written next to
``tokenizer.json`` on first use (4.8 MB), so later starts skip parsing the 17 MB JSON.

One deliberate difference: ``tokenizers`` turns the literal text ``<s>``, ``</s>``, ``<pad>``,
``<unk>`` or ``<mask>`` in a passage into that special token; here it is text like any other.
A ``tokenizer.json`` of another shape (another model) is not converted: :func:`load_tokenizer` then
returns ``tokenizers``' own tokenizer behind the same interface.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

TOKENIZER_JSON = "tokenizer.json"
ENCODER_FILE = "sentencepiece.model"
NORMALIZER_FILE = "sentencepiece-normalizer.model"
_SPACES = re.compile(" {2,}")
_METASPACE = "\u2581"


class TextTokenizer(Protocol):
    """Token ids of a text, framed by the model's start and end tokens, untruncated."""

    pad_id: int

    def ids(self, text: str) -> list[int]: ...


class SentencePieceTokenizer:
    """XLM-R tokenization on two sentencepiece processors (module docstring)."""

    def __init__(self, encoder: Any, normalizer: Any, start_id: int, end_id: int, pad_id: int) -> None:
        self._encoder = encoder
        self._normalizer = normalizer
        self._start_id = start_id
        self._end_id = end_id
        self.pad_id = pad_id

    def ids(self, text: str) -> list[int]:
        text = _SPACES.sub(" ", self._normalizer.normalize(text))
        if not text:
            return [self._start_id, self._end_id]
        words = self._encoder.encode(text if text.startswith(" ") else " " + text)
        return [self._start_id, *words, self._end_id]


class HuggingFaceTokenizer:
    """``tokenizers``' tokenizer for a ``tokenizer.json`` not of XLM-R's shape."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_padding()  # batches are padded by the embedder, after sorting by length
        self._tokenizer.no_truncation()  # counts over-long passages truthfully; the embedder truncates
        pad_id = self._tokenizer.token_to_id("<pad>")
        self.pad_id = 1 if pad_id is None else pad_id

    def ids(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text).ids)


def load_tokenizer(folder: Path) -> TextTokenizer:
    """The tokenizer of the prepared model in ``folder``: sentencepiece when ``tokenizer.json`` has
    XLM-R's shape (its two models derived and saved there on first use), else ``tokenizers``."""
    import sentencepiece

    encoder_path, normalizer_path = folder / ENCODER_FILE, folder / NORMALIZER_FILE
    spec_path = folder / TOKENIZER_JSON
    # Saved models older than tokenizer.json were derived from another one: derived again.
    changed = spec_path.stat().st_mtime_ns if spec_path.is_file() else 0
    if not all(path.is_file() and path.stat().st_mtime_ns >= changed for path in (encoder_path, normalizer_path)):
        models = _sentencepiece_models(json.loads(spec_path.read_text(encoding="utf-8")))
        if models is None:
            logger.info("%s is not an XLM-R Unigram tokenizer: using tokenizers for it", spec_path)
            return HuggingFaceTokenizer(spec_path)
        encoder_bytes, normalizer_bytes = models
        _save(encoder_path, encoder_bytes)
        _save(normalizer_path, normalizer_bytes)
        encoder = sentencepiece.SentencePieceProcessor(model_proto=encoder_bytes)
        normalizer = sentencepiece.SentencePieceProcessor(model_proto=normalizer_bytes)
    else:
        encoder = sentencepiece.SentencePieceProcessor(model_file=str(encoder_path))
        normalizer = sentencepiece.SentencePieceProcessor(model_file=str(normalizer_path))
    return SentencePieceTokenizer(
        encoder, normalizer, encoder.piece_to_id("<s>"), encoder.piece_to_id("</s>"), encoder.piece_to_id("<pad>")
    )


def _sentencepiece_models(spec: dict[str, Any]) -> tuple[bytes, bytes] | None:
    """The encoder and normaliser models for a ``tokenizer.json`` of XLM-R's shape, else None."""
    from sentencepiece import sentencepiece_model_pb2

    model_pb2: Any = sentencepiece_model_pb2  # generated protobuf classes: no types to check

    model, normalizer = spec.get("model") or {}, spec.get("normalizer") or {}
    steps = normalizer.get("normalizers") if normalizer.get("type") == "Sequence" else None
    pre, post = spec.get("pre_tokenizer") or {}, spec.get("post_processor") or {}
    template = [next(iter(step)) for step in post.get("single", [])]
    shaped = (
        model.get("type") == "Unigram"
        and not model.get("byte_fallback")
        and steps is not None
        and [step.get("type") for step in steps] == ["Precompiled", "Replace"]
        and steps[1].get("pattern") == {"Regex": " {2,}"}
        and steps[1].get("content") == " "
        and pre.get("type") == "Metaspace"
        and pre.get("replacement") == _METASPACE
        and pre.get("prepend_scheme") == "always"
        and pre.get("split", True)
        and post.get("type") == "TemplateProcessing"
        and template == ["SpecialToken", "Sequence", "SpecialToken"]
        and [step.get("SpecialToken", {}).get("id") for step in post["single"]] == ["<s>", None, "</s>"]
    )
    vocabulary = [piece for piece, _ in model.get("vocab", [])] if shaped else []
    if not shaped or not {"<s>", "</s>", "<pad>", "<unk>"} <= set(vocabulary):
        return None
    piece_type = model_pb2.ModelProto.SentencePiece
    special = {"<s>": piece_type.CONTROL, "</s>": piece_type.CONTROL, "<pad>": piece_type.CONTROL}
    special |= {"<mask>": piece_type.CONTROL, vocabulary[model.get("unk_id", 3)]: piece_type.UNKNOWN}

    def proto(vocab: list[list[Any]], charsmap: bytes | None) -> bytes:
        built = model_pb2.ModelProto()
        built.trainer_spec.model_type = model_pb2.TrainerSpec.UNIGRAM
        ids = {piece: position for position, (piece, _) in enumerate(vocab)}
        built.trainer_spec.unk_id = ids["<unk>"]
        built.trainer_spec.bos_id, built.trainer_spec.eos_id = ids["<s>"], ids["</s>"]
        built.trainer_spec.pad_id = ids["<pad>"]
        built.normalizer_spec.name = "identity" if charsmap is None else "nmt_nfkc"  # the map given overrides it
        if charsmap is not None:
            built.normalizer_spec.precompiled_charsmap = charsmap
        built.normalizer_spec.add_dummy_prefix = False  # the ▁ before the text is added by ids()
        built.normalizer_spec.remove_extra_whitespaces = False  # only runs of spaces go, after the map
        built.normalizer_spec.escape_whitespaces = charsmap is None  # the encoder sees spaces as ▁
        for piece, score in vocab:
            added = built.pieces.add()
            added.piece, added.score = piece, float(score)
            added.type = special.get(piece, piece_type.NORMAL)
        return bytes(built.SerializeToString())

    charsmap = base64.b64decode(steps[0]["precompiled_charsmap"]) if steps else b""
    specials_only = [entry for entry in model["vocab"] if entry[0] in special]
    return proto(model["vocab"], None), proto([*specials_only, ["a", -1.0]], charsmap)


def _save(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; a read-only model folder only costs the next start the JSON."""
    temporary: Path | None = None
    try:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        temporary = Path(name)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        temporary.replace(path)
    except OSError as exc:
        logger.info("could not save %s (%s); it is derived again at the next start", path, exc)
        if temporary is not None:
            temporary.unlink(missing_ok=True)
