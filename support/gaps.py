"""Knowledge-base gaps: cluster the questions the engine could not answer, so editors see what to write.

Questions that were abstained on (or escalated without a confident answer) are embedded with the
answer engine's own embedder and grouped by average-linkage agglomerative clustering on cosine
distance (scipy), which needs no cluster count and groups the same need asked in different
languages. Each cluster lists its size, example questions in their languages (PII-redacted) and the
nearest existing document, the article to extend or the place a new one belongs next to.
"""

from __future__ import annotations

import html
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from common.redact import redact_text
from retrieval.embedding import Embedder
from retrieval.records import live_key
from retrieval.registry import DocumentRegistry
from retrieval.scope import Scope
from retrieval.vector_store import ChromaStore
from support.store import AuditRecord

logger = logging.getLogger(__name__)

# Average cosine distance under which questions share a cluster. On 19 unanswerable questions in
# en/ru/lv/zh, 0.14 grouped every same-need pair across languages and merged no two needs; 0.16
# started merging unrelated ones (see tests/support/test_gaps.py).
DEFAULT_DISTANCE = 0.14
UNANSWERED_CODES = frozenset({"low_confidence", "no_sources"})


@dataclass(frozen=True)
class NearestDocument:
    document_id: str
    title: str
    section: str
    score: float


@dataclass(frozen=True)
class GapCluster:
    """Questions about one missing (or too thin) topic."""

    size: int
    languages: dict[str, int]
    examples: list[tuple[str, str]]  # (language, question), redacted
    nearest: NearestDocument | None
    answer_ids: list[str] = field(default_factory=list)


def is_unanswered(record: AuditRecord) -> bool:
    """Abstained, or escalated while the engine had no confident answer."""
    if record.status == "abstained":
        return True
    return record.status == "escalated" and any(reason.code in UNANSWERED_CODES for reason in record.reasons)


def cluster_vectors(vectors: NDArray[np.float32], max_distance: float = DEFAULT_DISTANCE) -> list[list[int]]:
    """Indices grouped by average-linkage clustering on cosine distance, largest group first."""
    count = len(vectors)
    if count == 0:
        return []
    if count == 1:
        return [[0]]
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    # A question without words embeds as a zero vector (the hashing embedder), whose cosine is
    # undefined: it is as far as can be from every other question, so it stays on its own.
    distances = np.nan_to_num(pdist(np.asarray(vectors, dtype=np.float64), "cosine"), nan=1.0)
    tree = linkage(distances, method="average")
    labels = fcluster(tree, t=max_distance, criterion="distance")
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(int(label), []).append(index)
    return sorted(groups.values(), key=lambda members: (-len(members), members[0]))


def gap_clusters(
    records: Sequence[AuditRecord],
    embedder: Embedder,
    store: ChromaStore,
    registry: DocumentRegistry | None = None,
    *,
    max_distance: float = DEFAULT_DISTANCE,
    examples: int = 3,
    scope: Scope | None = None,
) -> list[GapCluster]:
    """Cluster the unanswered questions among ``records`` and find each cluster's nearest document."""
    unanswered = [record for record in records if is_unanswered(record)]
    if not unanswered:
        return []
    # The stand-alone reading ("refund … and how long?") is what a follow-up was about.
    vectors = np.stack([embedder.embed_query(record.query or record.question) for record in unanswered])
    clusters = []
    for members in cluster_vectors(vectors, max_distance):
        group = [unanswered[index] for index in members]
        centroid = vectors[members].mean(axis=0)
        norm = float(np.linalg.norm(centroid))
        nearest = _nearest(store, registry, (centroid / norm).astype(np.float32), scope) if norm > 0 else None
        clusters.append(
            GapCluster(
                size=len(group),
                languages=dict(Counter(record.language for record in group).most_common()),
                examples=_examples(group, examples),
                nearest=nearest,
                answer_ids=[record.answer_id for record in group],
            )
        )
    return clusters


def _examples(group: Sequence[AuditRecord], limit: int) -> list[tuple[str, str]]:
    """Distinct questions, one per language first, so every language of the cluster shows."""
    seen: set[str] = set()
    chosen: list[tuple[str, str]] = []
    by_language_first = sorted(group, key=lambda record: record.language)
    for pass_languages in (True, False):
        languages_shown = {language for language, _ in chosen}
        for record in by_language_first:
            text = " ".join(record.question.split())
            if len(chosen) >= limit or text.lower() in seen:
                continue
            if pass_languages and record.language in languages_shown:
                continue
            seen.add(text.lower())
            languages_shown.add(record.language)
            chosen.append((record.language, redact_text(text)))
    return chosen


def _nearest(
    store: ChromaStore, registry: DocumentRegistry | None, vector: NDArray[np.float32], scope: Scope | None = None
) -> NearestDocument | None:
    hits = store.query(vector, 10, scope)  # the scope's tenant's documents only (default: the default tenant)
    if registry is not None and hits:
        hits = registry.keep_live(hits, live_key)
    if not hits:
        return None
    top = hits[0]
    return NearestDocument(top.chunk.document_id, top.chunk.title, top.chunk.section, round(top.score, 4))


def render_html(clusters: Sequence[GapCluster], *, title: str = "Knowledge-base gaps", subtitle: str = "") -> str:
    """A self-contained HTML page (no scripts, no external assets); every value is escaped."""
    rows = []
    for number, cluster in enumerate(clusters, 1):
        languages = ", ".join(f"{language} {count}" for language, count in cluster.languages.items())
        examples = "".join(
            f'<li><span class="lang">{html.escape(language)}</span> {html.escape(question)}</li>'
            for language, question in cluster.examples
        )
        if cluster.nearest:
            nearest = (
                f"{html.escape(cluster.nearest.title)}<br><code>{html.escape(cluster.nearest.document_id)}</code>"
                f"<br>{html.escape(cluster.nearest.section)} · {cluster.nearest.score:.3f}"
            )
        else:
            nearest = "—"
        rows.append(
            f"<tr><td>{number}</td><td>{cluster.size}</td><td>{html.escape(languages)}</td>"
            f"<td><ul>{examples}</ul></td><td>{nearest}</td></tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="5">No unanswered questions in this period.</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #ccc; padding: .4rem .6rem; vertical-align: top; text-align: left; }}
th {{ background: #f3f3f3; }}
ul {{ margin: 0; padding-left: 1.1rem; }}
.lang {{ font-family: monospace; background: #eef; padding: 0 .3rem; border-radius: 3px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(subtitle)}</p>
<table>
<thead><tr><th>#</th><th>questions</th><th>languages</th><th>examples</th><th>nearest document</th></tr></thead>
<tbody>
{body}
</tbody></table>
</body></html>
"""
