"""Settings (environment, prefix ``ANSWERDESK_``) and the retrieval profile (tunable knobs, TOML).

Settings say where things live and which model to load; the profile holds every knob that changes
what an answer is, so two profiles can be compared on the same eval suite.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.errors import AnswerDeskError
from retrieval.answerability import AnswerabilityModel, default_model

DEFAULT_MODEL = "intfloat/multilingual-e5-small"


class RetrievalProfile(BaseModel):
    """Tunable retrieval and answering knobs; loaded from a small TOML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "default"
    chunk_target_tokens: int = Field(default=250, ge=32, le=512)
    chunk_max_tokens: int = Field(default=480, ge=32, le=512)
    chunk_overlap_tokens: int = Field(default=32, ge=0, le=128)
    top_k: int = Field(default=8, ge=1, le=100)
    # Added to the e5 cosine of a passage in another language than the question when the language
    # centroids (language_centring, below) do not cover both languages.
    cross_lingual_bonus: float = Field(default=0.02, ge=0, le=0.2)
    # Hybrid retrieval: the dense and lexical (BM25) rankings, each `top_k * candidate_factor` deep,
    # fused by weighted reciprocal rank: Σ weight / (rrf_k + rank) (retrieval/fusion.py).
    dense_weight: float = Field(default=1.0, ge=0)
    lexical_weight: float = Field(default=1.0, ge=0)
    rrf_k: float = Field(default=60.0, ge=0)
    candidate_factor: int = Field(default=3, ge=1, le=10)
    # The USE leg's weight in the dense ranking: (1 - use_weight)·z_e5 + use_weight·z_use per query
    # (retrieval/pipeline.py DenseRetriever; 0 turns it off). Chosen among 0.2/0.35/0.5/0.65 on MLQA dev
    # (de/es/zh → en, from the training folder) and the sample set, never on XQuAD-R (docs/cross-lingual.md).
    use_weight: float = Field(default=0.5, ge=0, le=1)
    # Correct e5's same-language preference per question by language centroids (retrieval/language_bias.py)
    # instead of the constant cross_lingual_bonus (which stays for languages without a centroid);
    # with centred_query, the question moved off its language's centroid also fetches neighbours.
    language_centring: bool = True
    centred_query: bool = True
    # Put the question-language version of the best document first when the KB has one and its best
    # passage scores within localized_margin of the best hit (retrieval/translations.py).
    prefer_localized: bool = True
    localized_margin: float = Field(default=0.03, ge=0, le=1)
    # The cosine threshold of the eval baselines (dense, the LlamaIndex peer): they answer when the
    # best score reaches score_midpoint. The engine decides with `answerability` instead.
    score_midpoint: float = 0.865
    # The engine answers when the answerability model's probability reaches this.
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    # A second source is quoted only when it scores nearly as well as the best one.
    second_source_margin: float = Field(default=0.02, ge=0)
    max_answer_sentences: int = Field(default=3, ge=1, le=10)
    # Sentence evidence (retrieval/evidence.py): the sentences of the first `evidence_chunks` hits are
    # scored; a quote grows around the best sentence by neighbours scoring within `quote_margin` of it.
    evidence_chunks: int = Field(default=3, ge=1, le=20)
    evidence_term_weight: float = Field(default=0.05, ge=0, le=1)
    quote_margin: float = Field(default=0.05, ge=0, le=1)
    # The trained verifier (retrieval/verify.py), when a model is prepared: the first `verify_depth`
    # hits are reranked by it (0 = off), the top chunk's sentences are scored as windows of
    # `verify_window` sentences and the quote grows by neighbours within `verify_quote_margin`.
    # Off by default: the adapter trained on 2 CPU cores does not yet beat the bi-encoder (docs/verifier.md).
    verify_depth: int = Field(default=0, ge=0, le=50)
    verify_window: int = Field(default=1, ge=1, le=5)
    verify_quote_margin: float = Field(default=0.15, ge=0, le=1)
    # P(answering from the top hit is right), fitted by `answerdesk eval calibrate` (retrieval/answerability.py).
    answerability: AnswerabilityModel = Field(default_factory=default_model)

    @classmethod
    def from_toml(cls, path: Path) -> RetrievalProfile:
        with path.open("rb") as fh:
            return cls.model_validate(tomllib.load(fh))


class Settings(BaseSettings):
    """Where state lives and which models and services to use."""

    model_config = SettingsConfigDict(env_prefix="ANSWERDESK_", extra="ignore")

    data_dir: Path = Path("var")
    embedding_backend: Literal["onnx", "sentence-transformers"] = "onnx"
    embedding_model: str = DEFAULT_MODEL
    # Prepared model folder; defaults to <data_dir>/models/multilingual-e5-small.
    model_dir: Path | None = None
    embedding_batch_size: int = Field(default=16, ge=1, le=256)
    # onnxruntime threads for the embedder; None lets onnxruntime use every physical core.
    embedding_threads: int | None = Field(default=None, ge=1, le=64)
    # onnxruntime threads for the answer verifier (retrieval/verifier.py); None: every physical core.
    verifier_threads: int | None = Field(default=None, ge=1, le=64)
    collection: str = "answerdesk"
    # Compute USE vectors at ingestion and use them to answer (retrieval/use_encoder.py).
    use_vectors: bool = True
    profile_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, validation_alias=AliasChoices("ANSWERDESK_PORT", "PORT"))
    max_question_chars: int = Field(default=2000, ge=1, le=2000)  # AskRequest's schema allows at most 2000
    # Logs (common/logs.py): JSON lines, redacted; question and answer text only when log_questions.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_questions: bool = False
    # OpenTelemetry traces of /v1/ask over OTLP/HTTP (api/tracing.py); off: no SDK object is made.
    # The endpoint, headers and service name come from the standard OTEL_EXPORTER_OTLP_* variables.
    otel: bool = False
    # Questions answered at once (None: one per CPU core); more wait in line, first come first served.
    max_concurrent_answers: int | None = Field(default=None, ge=1, le=256)
    # Abuse limits of the API: JSON bodies (uploads have max_request_bytes), requests per API key
    # (a token bucket: rate_limit_burst at once, refilled at rate_limit_per_second; 0 turns it off).
    max_json_bytes: int = Field(default=262_144, ge=1024)
    rate_limit_per_second: float = Field(default=20.0, ge=0)
    rate_limit_burst: int = Field(default=40, ge=1)
    # Chroma servers (comma-separated http://host:port), tenants placed on them (retrieval/chroma_servers.py);
    # empty = the embedded store in <data_dir>/chroma.
    chroma_urls: str = ""
    # Seconds a Chroma server may take to answer one request (connect, send, read) before its tenants'
    # requests fail with 503 store_unavailable: a server that accepts but hangs must not hang /v1/ask.
    chroma_timeout_s: float = Field(default=5.0, gt=0, le=300)
    # Where the buckets live: a Redis URL (redis://host:6379/0) shares them between replicas
    # (api/redis_limits.py); empty = in this process. Keys in Redis start with redis_prefix.
    redis_url: str = ""
    redis_prefix: str = "answerdesk"
    # Failed authentications (unknown or revoked keys) per client address, the same kind of bucket.
    failed_auth_per_second: float = Field(default=0.5, ge=0)
    failed_auth_burst: int = Field(default=20, ge=1)
    # Public eval data (never copied into the repo); None means ../shared/data beside the repo.
    eval_data_dir: Path | None = None
    # The public training data (verifier, calibration); None means ../shared/data/train beside the repo.
    train_data_dir: Path | None = None
    # Ingestion limits: a bigger file is refused with a reason; an API upload bigger than
    # ``sync_upload_bytes`` (or of several files) runs as a job.
    max_file_bytes: int = Field(default=20_000_000, ge=1)
    # Translations (ingest/translations.py): front-matter fields whose value links the language
    # versions of one article, first found wins (JSON list in the environment), and an explicit map
    # (a YAML/JSON file {key: [document id, …]}) that wins over them. Without either, en/x ↔ ru/x.
    translation_keys: list[str] = ["translation_key", "translationKey", "permalink"]
    translation_map: Path | None = None
    max_request_bytes: int = Field(default=100_000_000, ge=1)
    sync_upload_bytes: int = Field(default=1_000_000, ge=0)
    # How long a synchronous write (one small upload, a delete) may wait for other writes to free
    # the writer; then an upload is answered as a job (202) and a delete as 503 writer_busy.
    sync_write_seconds: float = Field(default=20.0, gt=0)
    # Who runs upload jobs (ingest/service.py): "auto" = `answerdesk worker` on PostgreSQL (any
    # number, beside any number of API replicas), the API process itself on SQLite; "api" = the API
    # process always (one process on PostgreSQL without a worker; it resumes unfinished jobs at start).
    job_runner: Literal["auto", "api"] = "auto"
    # A worker silent (no heartbeat) this long is taken for dead: its job is queued again (ingest/queue.py).
    worker_stalled_seconds: float = Field(default=30.0, gt=0)
    # All SQL state (registry, support, API keys) in one database, e.g. postgresql+psycopg://host/db;
    # None = the SQLite file <data_dir>/answerdesk.db. Its schema comes from `answerdesk db upgrade`.
    database_url_setting: str | None = Field(
        default=None, validation_alias=AliasChoices("ANSWERDESK_DATABASE_URL", "database_url_setting")
    )
    # Support (conversations, escalations, outbox, feedback, audit) and API keys elsewhere; None = database_url.
    support_database_url: str | None = None
    escalate_after_abstentions: int = Field(default=2, ge=0)  # N abstentions in a row escalate; 0 = never
    sensitive_topics: list[str] = [
        "legal_threat", "security_incident", "chargeback", "account_takeover", "cancellation_threat"
    ]
    triage_rules_path: Path | None = None  # extra sensitive topics (TOML), see support/triage.py
    webhook_urls: list[str] = []  # JSON list in the environment: '["https://desk.example/hooks"]'
    webhook_secret: SecretStr | None = None  # HMAC-SHA256 key; required when webhook_urls is set
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=12, ge=1)
    webhook_backoff_seconds: float = Field(default=2.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=900.0, gt=0)
    outbox_poll_seconds: float = Field(default=5.0, gt=0)
    # Privacy (docs/privacy.md): raw question text is stored only when this is on (else redacted),
    # and `answerdesk privacy purge` erases conversations idle for more than retention_days.
    store_raw_questions: bool = False
    retention_days: int | None = Field(default=None, ge=1)

    @property
    def resolved_model_dir(self) -> Path:
        return self.model_dir or self.data_dir / "models" / "multilingual-e5-small"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def chroma_servers(self) -> list[str]:
        return [url.strip().rstrip("/") for url in self.chroma_urls.split(",") if url.strip()]

    @property
    def uploads_dir(self) -> Path:
        """Where files uploaded through the API are kept (they are the documents' sources)."""
        return self.data_dir / "uploads"

    @property
    def database_url(self) -> str:
        return self.database_url_setting or f"sqlite:///{self.data_dir / 'answerdesk.db'}"

    @property
    def jobs_in_worker(self) -> bool:
        """Whether upload jobs go to the queue that ``answerdesk worker`` runs (PostgreSQL only)."""
        return self.job_runner == "auto" and self.database_url.startswith("postgresql")

    @property
    def database_urls(self) -> list[str]:
        """Every distinct SQL database in use (each gets the whole schema)."""
        return list(dict.fromkeys([self.database_url, self.support_database_url or self.database_url]))

    def load_profile(self) -> RetrievalProfile:
        return RetrievalProfile.from_toml(self.profile_path) if self.profile_path else RetrievalProfile()


@lru_cache
def get_settings() -> Settings:
    return Settings()


class ProfileError(AnswerDeskError, ValueError):
    """A retrieval profile that cannot be read; the message names the file."""

    code = "invalid_profile"


def load_settings(profile: Path | None = None) -> tuple[Settings, RetrievalProfile]:
    """The process settings and the retrieval profile (``profile`` overrides the configured one)."""
    settings = get_settings()
    if profile:
        settings = settings.model_copy(update={"profile_path": profile})
    try:
        return settings, settings.load_profile()
    except (OSError, ValueError) as exc:
        raise ProfileError(f"cannot load profile {settings.profile_path}: {exc}") from exc
