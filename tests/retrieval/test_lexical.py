"""The lexical index: BM25 over analysed terms, durable, kept in sync, never outside a scope."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval.analysis import analyze
from retrieval.lexical import LexicalIndex, LexicalRetriever
from retrieval.records import Chunk
from retrieval.registry import DocumentRecord, DocumentRegistry
from retrieval.scope import INTERNAL, PUBLIC, Scope


def chunk(document_id: str, text: str, version: int = 1, language: str = "en", **fields: object) -> Chunk:
    return Chunk(
        chunk_id=f"{document_id}#v{version}-{abs(hash(text)) % 10**8}",
        document_id=document_id,
        text=text,
        title="",
        language=language,
        version=version,
        **fields,  # type: ignore[arg-type]
    )


REFUNDS = chunk("en/refunds", "Refunds are sent to your card within 10 days.")
INVOICES = chunk("en/invoices", "Download invoices as PDF from the billing page.")
RU_REFUNDS = chunk("ru/refunds", "Возврат денег занимает до 10 дней.", language="ru")
ACME_REFUNDS = chunk("acme:en/refunds", "Refunds for Acme are sent by bank transfer.", tags=frozenset({"billing"}))
INTERNAL_REFUNDS = chunk("en/refund-runbook", "Refunds runbook: approve refunds in the console.", audience=INTERNAL)


def ids(index: LexicalIndex, query: str, language: str = "en", scope: Scope | None = None) -> list[str]:
    return [match.document_id for match in index.search(analyze(query, language), 10, scope or Scope())]


@pytest.fixture
def index(tmp_path: Path) -> LexicalIndex:
    built = LexicalIndex(tmp_path / "lexical", background_rebuild=False)
    built.upsert([REFUNDS, INVOICES, RU_REFUNDS, ACME_REFUNDS, INTERNAL_REFUNDS])
    return built


def test_finds_by_stemmed_terms_in_each_language(index: LexicalIndex) -> None:
    assert ids(index, "How are refunded payments sent?") == ["en/refunds"]
    assert ids(index, "сколько дней идёт возврат", "ru") == ["ru/refunds"]
    assert ids(index, "invoice pdf") == ["en/invoices"]
    assert ids(index, "nothing matches this") == []
    assert index.search([], 10, Scope()) == []


def test_scope_is_applied_to_every_hit(index: LexicalIndex) -> None:
    assert ids(index, "refunds") == ["en/refunds"]  # default tenant, public only
    assert set(ids(index, "refunds", scope=Scope.everything())) == {"en/refunds", "en/refund-runbook"}
    assert ids(index, "refunds", scope=Scope.everything("acme")) == ["acme:en/refunds"]
    assert ids(index, "refunds", scope=Scope.everything("acme").narrowed(tags=["shipping"])) == []
    assert ids(index, "refunds", scope=Scope.everything("acme").narrowed(tags=["billing"])) == ["acme:en/refunds"]
    assert ids(index, "10", scope=Scope().narrowed(languages=["ru"])) == ["ru/refunds"]
    assert ids(index, "refunds", scope=Scope().narrowed(document_ids=[])) == []
    assert ids(index, "refunds", scope=Scope(audiences=frozenset())) == []


def test_deletes_and_replacements_are_seen(index: LexicalIndex) -> None:
    index.delete([REFUNDS.chunk_id])
    assert ids(index, "refunds card") == []
    index.upsert([chunk("en/refunds", "Refunds now go back to the card in 5 days.", version=2)])
    assert ids(index, "refunds card") == ["en/refunds"]
    assert index.inventory()[next(iter(i for i in index.inventory() if i.startswith("en/refunds#v2")))] == (
        "en/refunds",
        2,
    )


def test_persisted_and_seen_by_another_process(index: LexicalIndex, tmp_path: Path) -> None:
    """A second index on the same folder stands for the server while the CLI (``index``) writes."""
    reader = LexicalIndex(tmp_path / "lexical", background_rebuild=False)
    assert ids(reader, "invoice") == ["en/invoices"]
    assert reader.inventory() == index.inventory()
    index.upsert([chunk("en/exports", "Export every invoice as CSV.")])
    assert set(ids(reader, "invoice")) == {"en/invoices", "en/exports"}  # no restart needed
    index.delete([INVOICES.chunk_id])
    assert ids(reader, "invoice") == ["en/exports"]


def test_background_rebuild_keeps_serving_until_refreshed(tmp_path: Path) -> None:
    writer = LexicalIndex(tmp_path / "lexical", background_rebuild=False)
    writer.upsert([INVOICES])
    reader = LexicalIndex(tmp_path / "lexical")
    assert ids(reader, "invoice") == ["en/invoices"]  # first build happens in the caller's thread
    writer.upsert([chunk("en/exports", "Export every invoice as CSV.")])
    assert set(ids(reader, "invoice")) <= {"en/invoices", "en/exports"}  # stale or fresh, never wrong
    reader.refresh()
    assert set(ids(reader, "invoice")) == {"en/invoices", "en/exports"}


def test_retriever_returns_only_live_versions(tmp_path: Path) -> None:
    index = LexicalIndex(tmp_path / "lexical", background_rebuild=False)
    registry = DocumentRegistry(f"sqlite:///{tmp_path / 'registry.db'}")
    old, new = chunk("en/refunds", "Refunds take 10 days.", 1), chunk("en/refunds", "Refunds take 5 days.", 2)
    index.upsert([old, new])  # the new version is written before it goes live (retrieval/publish.py)
    record = DocumentRecord("en/refunds", "Refunds", "r.md", "en", "faq", "h", 1, [old.chunk_id], "now")
    registry.put(record)
    retriever = LexicalRetriever(index, registry)
    assert [m.chunk_id for m in retriever.retrieve("refunds", "en", 10, Scope())] == [old.chunk_id]
    registry.put(DocumentRecord("en/refunds", "Refunds", "r.md", "en", "faq", "h2", 2, [new.chunk_id], "now"))
    assert [m.chunk_id for m in retriever.retrieve("refunds", "en", 10, Scope())] == [new.chunk_id]


TENANTS = ("default", "acme", "globex")
WORDS = ("refund", "invoice", "password", "export", "billing", "team", "plan", "card")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_no_hit_outside_any_scope(tmp_path: Path, data: st.DataObject) -> None:
    rng = random.Random(data.draw(st.integers(0, 10**6)))
    index = LexicalIndex(tmp_path / f"lexical-{rng.random()}", background_rebuild=False)
    chunks = []
    for number in range(40):
        tenant = rng.choice(TENANTS)
        prefix = "" if tenant == "default" else f"{tenant}:"
        chunks.append(
            chunk(
                f"{prefix}doc{number}",
                " ".join(rng.choices(WORDS, k=6)) + f" {number}",
                language=rng.choice(("en", "ru")),
                audience=rng.choice((PUBLIC, INTERNAL)),
                product=rng.choice(("", "app", "api")),
                tags=frozenset(rng.sample(("billing", "security", "mobile"), rng.randint(0, 2))),
            )
        )
    index.upsert(chunks)
    scope = Scope(
        tenant=data.draw(st.sampled_from(TENANTS)),
        audiences=frozenset(data.draw(st.sets(st.sampled_from((PUBLIC, INTERNAL))))),
        languages=data.draw(st.none() | st.frozensets(st.sampled_from(("en", "ru", "lv")))),
        products=data.draw(st.none() | st.frozensets(st.sampled_from(("", "app", "api")))),
        tags=data.draw(st.none() | st.frozensets(st.sampled_from(("billing", "security", "mobile")))),
    )
    by_id = {c.chunk_id: c for c in chunks}
    for word in WORDS:
        found = {match.chunk_id for match in index.search(analyze(word, "en"), 100, scope)}
        expected = {
            c.chunk_id
            for c in chunks
            if word in c.text
            and c.tenant == scope.tenant
            and c.audience in scope.audiences
            and (scope.languages is None or c.language in scope.languages)
            and (scope.products is None or c.product in scope.products)
            and (scope.tags is None or c.tags & scope.tags)
        }
        assert found == expected, [by_id[i] for i in found ^ expected]
