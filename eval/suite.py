"""A suite: a corpus and the cases to run against it."""

from __future__ import annotations

from dataclasses import dataclass

from eval.cases import EvalCase
from retrieval.records import Document, Section


class SuiteError(ValueError):
    """An unknown or malformed suite name."""


@dataclass(frozen=True)
class Suite:
    """A corpus and the cases to run against it."""

    name: str
    documents: list[Document]
    cases: list[EvalCase]
    protocol: str


def passage_document(document_id: str, title: str, text: str, language: str, source: str) -> Document:
    return Document(document_id, title, source, "text", language, [Section(path=(), blocks=(text,))])
