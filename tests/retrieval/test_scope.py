"""Tenant and audience isolation: nothing outside a caller's scope is ever retrieved or cited."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.parse import ParseError
from ingest.pipeline import Outcome, Placement, build_ingestor
from retrieval.config import RetrievalProfile, Settings
from retrieval.embedding import HashingEmbedder
from retrieval.pipeline import AnswerPipeline, build_components
from retrieval.records import Document
from retrieval.scope import (
    AUDIENCES,
    INTERNAL,
    PUBLIC,
    Scope,
    ScopeError,
    local_id,
    qualify,
    shown_source,
    tenant_of,
)

TENANTS = ("default", "acme", "globex", "initech")
TOPICS = ("refund", "invoice", "password", "shipping", "warranty", "discount", "export", "onboarding")
WORDS = ("policy", "customer", "account", "days", "request", "team", "plan", "support", "billing", "portal")


def test_qualified_ids_keep_tenants_apart() -> None:
    assert qualify("default", "faq/refunds") == "faq/refunds"
    assert qualify("acme", "faq/refunds") == "acme:faq/refunds"
    assert qualify("acme", "acme:faq/refunds") == "acme:faq/refunds"
    assert tenant_of("acme:faq/refunds") == "acme"
    assert tenant_of("faq/refunds") == "default"
    with pytest.raises(ScopeError):
        qualify("globex", "acme:faq/refunds")  # another tenant's prefix is not a way in
    with pytest.raises(ScopeError):
        qualify("default", "acme:faq/refunds")


def test_placement_qualifies_ids_and_checks_the_audience(tmp_path: Path) -> None:
    document = Document("faq/a", "A", "a.md", "faq", "en", metadata={"audience": "Internal"})
    placed = Placement("acme").place(document, tmp_path / "a.md")
    assert placed.document_id == "acme:faq/a"
    assert placed.metadata["audience"] == INTERNAL
    assert Placement("acme", INTERNAL).place(Document("b", "B", "b.md", "faq", "en"), tmp_path).metadata == {
        "audience": INTERNAL
    }
    with pytest.raises(ParseError) as bad_audience:
        Placement().place(Document("c", "C", "c.md", "faq", "en", metadata={"audience": "everyone"}), tmp_path)
    assert bad_audience.value.code == "invalid_placement"
    with pytest.raises(ParseError):
        Placement("globex").place(Document("acme:x", "X", "x.md", "faq", "en"), tmp_path)
    with pytest.raises(ScopeError):
        Placement("Not A Tenant")


def _write_corpus(root: Path, rng: random.Random) -> dict[tuple[str, str], list[Path]]:
    """Documents of every tenant and audience, on overlapping topics, so a question aimed at one
    tenant's text also matches every other tenant's."""
    folders: dict[tuple[str, str], list[Path]] = {}
    for tenant in TENANTS:
        for audience in AUDIENCES:
            folder = root / tenant / audience
            folder.mkdir(parents=True)
            for number in range(6):
                topic = rng.choice(TOPICS)
                body = " ".join(rng.choice(WORDS) for _ in range(25))
                path = folder / f"{audience}-{number}.md"
                path.write_text(
                    f"---\ntitle: {tenant} {topic} {number}\naudience: {audience}\nproduct: p{number % 2}\n"
                    f"tags: [{topic}, t{number % 3}]\n---\n# {tenant} {topic}\n\n## How does {topic} work?\n"
                    f"{tenant} secret {topic} {body}.\n",
                    encoding="utf-8",
                )
            folders[tenant, audience] = [folder]
    return folders


@pytest.fixture(scope="module")
def multi_tenant_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnswerPipeline]:
    root = tmp_path_factory.mktemp("tenants")
    folders = _write_corpus(root / "kb", random.Random(7))
    settings = Settings(data_dir=root / "data")
    embedder, store, registry = build_components(settings, HashingEmbedder())
    profile = RetrievalProfile(top_k=8)
    ingestor = build_ingestor(settings, profile, embedder, store, registry)
    for (tenant, _), paths in folders.items():
        results = ingestor.ingest(paths, placement=Placement(tenant))
        assert all(result.outcome == Outcome.ADDED for result in results), results
    # The same folder ingested into another tenant must stay two separate sets of documents.
    copies = ingestor.ingest(folders["acme", PUBLIC], placement=Placement("hooli"))
    assert {result.outcome for result in copies} == {Outcome.ADDED}
    yield AnswerPipeline(embedder, store, profile, registry)


def test_the_same_file_in_two_tenants_is_two_documents(multi_tenant_engine: AnswerPipeline) -> None:
    registry = multi_tenant_engine.retriever.registry
    assert registry is not None
    ids = {record.document_id for record in registry.all()}
    assert "acme:public-0" in ids and "hooli:public-0" in ids


_scopes = st.builds(
    Scope,
    tenant=st.sampled_from(TENANTS),
    audiences=st.sampled_from([frozenset({PUBLIC}), frozenset(AUDIENCES), frozenset({INTERNAL})]),
    products=st.one_of(st.none(), st.sets(st.sampled_from(["p0", "p1", "p9"]), min_size=1).map(frozenset)),
    tags=st.one_of(st.none(), st.sets(st.sampled_from([*TOPICS, "t0", "t1"]), min_size=1).map(frozenset)),
)
# Questions aimed at any tenant's content: its name, topics and the words of its secret text.
_questions = st.lists(st.sampled_from([*TENANTS, *TOPICS, *WORDS, "secret", "how", "does"]), min_size=1, max_size=8)


@pytest.mark.slow
@settings(
    max_examples=1200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scope=_scopes, words=_questions)
def test_no_hit_or_citation_ever_leaves_the_callers_scope(
    multi_tenant_engine: AnswerPipeline, scope: Scope, words: list[str]
) -> None:
    question = " ".join(words) + "?"
    answer, hits = multi_tenant_engine.run(multi_tenant_engine.query(question, "en", scope))
    for hit in hits:
        chunk = hit.chunk
        assert chunk.tenant == scope.tenant, (question, scope, chunk.chunk_id)
        assert chunk.audience in scope.audiences
        assert scope.products is None or chunk.product in scope.products
        assert scope.tags is None or chunk.tags & scope.tags
    cited = {citation.document_id for citation in answer.citations}
    assert all(tenant_of(document_id) == scope.tenant for document_id in cited)
    other_tenants = set(TENANTS) - {scope.tenant}
    assert not any(f"{tenant} secret" in answer.answer for tenant in other_tenants)


def test_a_scope_that_matches_few_chunks_still_fills_the_page(multi_tenant_engine: AnswerPipeline) -> None:
    """When the nearest unfiltered neighbours are mostly out of scope the store asks Chroma with the
    filter, so a narrow scope gets its own best chunks rather than nothing."""
    narrow = Scope(tenant="initech", audiences=frozenset({INTERNAL}), products=frozenset({"p1"}))
    hits = multi_tenant_engine.retriever.retrieve("acme globex secret refund invoice", "en", narrow)
    assert hits, "the in-scope chunks must be found through the filtered query"
    assert {hit.chunk.document_id.split(":")[0] for hit in hits} == {"initech"}


def test_an_empty_document_filter_returns_nothing(multi_tenant_engine: AnswerPipeline) -> None:
    scope = Scope.everything("acme").narrowed(document_ids=[])
    assert multi_tenant_engine.retriever.retrieve("refund", "en", scope) == []


def test_an_internal_playbook_is_never_cited_to_a_customer(kb_settings: Settings) -> None:
    """The sample KB's agent playbook answers this question exactly, but only agents may see it."""
    embedder, store, registry = build_components(kb_settings)
    engine = AnswerPipeline(embedder, store, kb_settings.load_profile(), registry)
    question = "Can a team lead approve a goodwill refund of half a monthly charge after a four-hour outage?"
    playbook = "internal/playbook-refund-exceptions"

    customer_answer, customer_hits = engine.run(engine.query(question, "en", Scope()))
    assert playbook not in {hit.chunk.document_id for hit in customer_hits}
    assert playbook not in {citation.document_id for citation in customer_answer.citations}

    agent_hits = engine.retriever.retrieve(question, "en", Scope.everything())
    assert agent_hits[0].chunk.document_id == playbook


@pytest.mark.parametrize(
    ("document_id", "source", "shown"),
    [
        ("acme:en/faq-refunds", "/srv/answerdesk/var/uploads/.tenants/acme/en/faq-refunds.md", "en/faq-refunds.md"),
        ("en/faq-refunds", "/home/me/kb/en/faq-refunds.md", "en/faq-refunds.md"),
        ("refund-policy", "/home/me/kb/en/policies/refunds.html", "refunds.html"),  # an id from front matter
        ("notes", "notes.txt", "notes.txt"),
        ("en/x", "", ""),
    ],
)
def test_sources_are_shown_below_the_ingested_folder(document_id: str, source: str, shown: str) -> None:
    assert shown_source(document_id, source) == shown


def test_local_ids_drop_only_a_tenant_prefix() -> None:
    assert local_id("acme:en/faq#v2-abc") == "en/faq#v2-abc"
    assert local_id("en/faq#v2-abc") == "en/faq#v2-abc"
