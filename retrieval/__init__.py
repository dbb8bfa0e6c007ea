"""Retrieval core: settings, records, embedding, the vector store and the answer engine.

Everything else (ingest, api, eval, the CLI) builds on this package.
"""
