"""The eval case format: one JSON object per line."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class EvalCase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    question: str = Field(min_length=1)
    language: str
    gold_document_ids: list[str] = Field(default_factory=list)
    gold_chunk_ids: list[str] | None = None
    answer_spans: list[str] | None = None
    should_abstain: bool = False
    # Answer only from these documents (NoMIRACL's 10 passages per query); None = the whole corpus.
    allowed_document_ids: list[str] | None = None
    # The cited quotes must contain one of these (verbatim from the gold articles, one per language version).
    answer_contains: list[str] | None = None
    # Free labels, e.g. near_miss / out_of_domain for unanswerable cases, typo / short for phrasing.
    tags: list[str] = Field(default_factory=list)
    # Earlier customer turns of the same conversation; ``question`` is the last turn, asked after them.
    history: list[str] = Field(default_factory=list)
    # The message must go to a person, for one of these triage labels (e.g. ``sensitive_topic:chargeback``).
    escalation_reasons: list[str] | None = None

    @property
    def through_desk(self) -> bool:
        """Dialogs and escalation requests are a conversation's business: they go through the support desk."""
        return bool(self.history) or self.escalation_reasons is not None

    @property
    def cross_lingual(self) -> bool:
        """A non-English question whose answer exists only in English articles (ids ``en/...``)."""
        english_only = all(gold.startswith("en/") for gold in self.gold_document_ids)
        return self.language != "en" and bool(self.gold_document_ids) and english_only and not self.should_abstain


class EvalSetError(ValueError):
    """An eval file that cannot be read; the message names the file and line."""


def load_cases(*paths: Path) -> list[EvalCase]:
    cases: list[EvalCase] = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                cases.append(EvalCase.model_validate_json(line))
            except (ValidationError, json.JSONDecodeError) as exc:
                raise EvalSetError(f"{path}:{number}: {exc}") from exc
    ids = [case.id for case in cases]
    duplicates = sorted({case_id for case_id in ids if ids.count(case_id) > 1})
    if duplicates:
        raise EvalSetError(f"duplicate case ids: {', '.join(duplicates[:5])}")
    return cases
