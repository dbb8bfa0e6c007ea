"""Structure-aware chunking: one FAQ pair or one heading section per chunk, split only when too long.

Sizes are counted in the embedder's own tokens, including the heading context that is embedded with
each chunk, so no chunk is ever truncated by the model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from retrieval.types import Chunk, Document, Section, compose_embedding_text, make_chunk_id

TokenCounter = Callable[[str], int]


class Chunker:
    """Cuts a Document into Chunks. Long sections are split at sentence boundaries with overlap."""

    def __init__(
        self,
        count_tokens: TokenCounter,
        target_tokens: int = 250,
        max_tokens: int = 480,
        overlap_tokens: int = 32,
    ) -> None:
        if not 0 <= overlap_tokens < target_tokens <= max_tokens:
            raise ValueError("need 0 <= overlap_tokens < target_tokens <= max_tokens")
        self.count_tokens = count_tokens
        self.target_tokens = target_tokens
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens

    def chunk(self, document: Document, updated_at: str = "") -> list[Chunk]:
        document_hash = document.content_hash
        seen: Counter[str] = Counter()
        chunks: list[Chunk] = []
        for section in document.sections:
            kind = "faq" if section.is_faq else "section"
            for text in self._section_texts(document, section):
                occurrence = seen[text]
                seen[text] += 1
                chunks.append(
                    Chunk(
                        chunk_id=make_chunk_id(document.document_id, text, occurrence),
                        document_id=document.document_id,
                        text=text,
                        title=document.title,
                        section_path=section.path,
                        kind=kind,
                        language=document.language,
                        source=document.source,
                        position=len(chunks),
                        document_hash=document_hash,
                        updated_at=updated_at,
                    )
                )
        return chunks

    def _section_texts(self, document: Document, section: Section) -> list[str]:
        # A FAQ chunk carries its question, so the question is embedded and can be quoted.
        lead = f"{section.path[-1]}\n" if section.is_faq and section.path else ""
        body = "\n".join(section.blocks)
        embedded = compose_embedding_text(document.title, section.path, lead + body, is_faq=section.is_faq)
        embedded_tokens = self.count_tokens(embedded)
        if embedded_tokens <= self.max_tokens:
            return [lead + body]
        context_tokens = embedded_tokens - self.count_tokens(body)
        budget = max(self.max_tokens - context_tokens, self.overlap_tokens + 16)
        return [lead + piece for piece in self._split(body, min(self.target_tokens, budget))]

    def _split(self, text: str, size: int) -> Sequence[str]:
        from llama_index.core.node_parser import SentenceSplitter

        splitter = SentenceSplitter(
            chunk_size=size,
            chunk_overlap=min(self.overlap_tokens, size // 4),
            paragraph_separator="\n",
            # SentenceSplitter only takes len() of what the tokenizer returns.
            tokenizer=lambda piece: range(self.count_tokens(piece)),
        )
        return [piece for piece in splitter.split_text(text) if piece.strip()]
