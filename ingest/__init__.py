"""Ingestion: parse files, cut them into structure-aware chunks, embed and store them."""
