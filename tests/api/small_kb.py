"""A tiny knowledge base on the fast hashing embedder, for API tests that need answers but not the model."""

from __future__ import annotations

from pathlib import Path

from retrieval.config import Settings
from retrieval.embedding import HashingEmbedder

FAQ = """---
title: Refunds FAQ
locale: en
type: faq
---
## How long does a refund take?
Refunds reach your card within 5-10 business days after approval.

## Can I get a refund for an annual plan?
Annual plans can be refunded within 60 days of purchase, pro rata.
"""
GUIDE = """---
title: Passwords
locale: en
type: guide
---
# Resetting your password
Click Forgot password on the login page and follow the link we e-mail you.
"""
# The hashing embedder's cosines are far below e5's, so the profile decides on the dense score
# alone: answerability = sigmoid((score - 0.45) / 0.05).
PROFILE = (
    'name = "hashing"\nscore_midpoint = 0.45\n[answerability]\nfeatures = ["dense_top"]\nmeans = [0.45]\n'
    "scales = [0.05]\ncoefficients = [1.0]\nintercept = 0.0\n"
)


def write_kb(root: Path, documents: dict[str, str] | None = None) -> Path:
    """``documents`` (relative path → text; default: a refunds FAQ and a password guide) under ``root``."""
    for relative, text in (documents or {"en/faq-refunds.md": FAQ, "en/guide-passwords.md": GUIDE}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def small_kb_settings(tmp_path: Path, documents: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Settings for a fresh data dir holding ``documents``, ingested with the hashing embedder;
    per-key rate limiting is off (tests send requests back to back)."""
    from ingest.pipeline import build_ingestor
    from retrieval.pipeline import build_components

    profile_path = tmp_path / "profile.toml"
    profile_path.write_text(PROFILE, encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", profile_path=profile_path, rate_limit_per_second=0.0)
    settings = settings.model_copy(update=overrides)
    embedder, store, registry = build_components(settings, HashingEmbedder())
    ingestor = build_ingestor(settings, settings.load_profile(), embedder, store, registry)
    ingestor.ingest([write_kb(tmp_path / "kb", documents)])
    return settings
