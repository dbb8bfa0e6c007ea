"""Structure-aware chunking: one FAQ pair or one heading section per chunk, split only when too long.

Sizes are counted in the embedder's own tokens, including the heading context that is embedded with
each chunk, so no chunk is ever truncated by the model. A long section is cut between its blocks
(paragraphs, list items, tables, code blocks); only a block that alone is too long is cut inside:
a table between rows, repeating its caption and header; a code block between lines, re-fenced;
prose at sentence boundaries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from ingest.parse import CODE_FENCE, TABLE_CAPTION
from retrieval.records import Chunk, Document, Section, compose_embedding_text, make_chunk_id
from retrieval.scope import PUBLIC, tag_set

TokenCounter = Callable[[str], int]


class Chunker:
    """Cuts a Document into Chunks. Long sections are split between blocks, long prose with overlap."""

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

    def chunk(self, document: Document, updated_at: str = "", version: int = 1) -> list[Chunk]:
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
                        chunk_id=make_chunk_id(document.document_id, text, occurrence, version),
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
                        version=version,
                        audience=document.metadata.get("audience", PUBLIC),
                        product=document.metadata.get("product", "").strip().lower(),
                        tags=tag_set(document.metadata.get("tags", "")),
                        translation_key=document.metadata.get("translation_key", ""),
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
        size = min(self.target_tokens, max(self.max_tokens - context_tokens, self.overlap_tokens + 16))
        pieces = [piece for block in section.blocks for piece in self._fit(block, size)]
        return [lead + text for text in self._pack(pieces, size)]

    def _pack(self, pieces: Sequence[str], size: int) -> list[str]:
        """Join consecutive pieces while they fit in ``size`` tokens."""
        packed: list[str] = []
        current: list[str] = []
        for piece in pieces:
            if current and self.count_tokens("\n".join([*current, piece])) > size:
                packed.append("\n".join(current))
                current = []
            current.append(piece)
        if current:
            packed.append("\n".join(current))
        return packed

    def _fit(self, block: str, size: int) -> list[str]:
        """``block`` whole when it fits in ``size`` tokens, else cut where its kind allows."""
        if self.count_tokens(block) <= size:
            return [block]
        lines = block.split("\n")
        if block.startswith(CODE_FENCE) and block.endswith(CODE_FENCE) and len(lines) > 2:
            fence = lines[0]
            return [f"{fence}\n{part}\n{CODE_FENCE}" for part in self._lines(lines[1:-1], size - 8)]
        if _is_table(lines):
            head = lines[:2] if lines[0].startswith(TABLE_CAPTION) else lines[:1]
            rows = lines[len(head) :]
            if rows:
                head_text = "\n".join(head)
                budget = size - self.count_tokens(head_text)
                if budget > 16:
                    return [f"{head_text}\n{part}" for part in self._lines(rows, budget)]
        return list(self._split(block, size))

    def _lines(self, lines: Sequence[str], size: int) -> list[str]:
        """Group whole lines into parts of at most ``size`` tokens (an over-long line is split alone)."""
        parts: list[str] = []
        for line in lines:
            parts.extend(self._split(line, size) if self.count_tokens(line) > size else [line])
        return self._pack(parts, size)

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


def _is_table(lines: Sequence[str]) -> bool:
    """A table block: an optional ``Table:`` caption, then rows of `` | ``-separated cells."""
    rows = lines[1:] if lines and lines[0].startswith(TABLE_CAPTION) else lines
    return len(rows) >= 2 and all(" | " in row for row in rows)
