"""Is every store the server depends on usable? One check for ``/readyz``, server start and ``answerdesk check``.

The stores: the SQL databases (document registry, support tables, API keys; one SQLite file by
default), the vector store (Chroma) and the lexical index. Each fault has a stable code:

- ``database_gone``: a SQLite file was deleted or replaced while open (common/sql.py FileGuard);
- ``database_unavailable``: a database is damaged, unreadable or (a server) does not answer;
- ``schema_outdated``: a database server's schema is behind this version (``answerdesk db upgrade``);
- ``store_unavailable``: the vector store does not answer;
- ``lexical_index_unavailable``: the lexical index's table is missing or unreadable;
- ``registry_lost``: the registry is empty while the vector store holds chunks (the database was
  lost or replaced by an empty one: every document would be invisible and every key unknown).

Problems name the store, never a server path (``/readyz`` needs no key); the log has the details.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from sqlalchemy import text
from sqlalchemy.engine import Engine

from common.errors import AnswerDeskError
from common.schema import SchemaOutdatedError
from common.sql import DatabaseGoneError, open_database
from retrieval.chroma_servers import build_vector_store
from retrieval.config import Settings
from retrieval.lexical import LexicalIndex
from retrieval.registry import DocumentRegistry
from retrieval.vector_store import ChromaStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreFault:
    store: str  # registry, support database, keys, vector store, lexical index
    code: str
    problem: str  # safe to show anyone
    detail: str = ""  # the underlying error, for the operator (log, command line)


def check_stores(
    registry: DocumentRegistry,
    store: ChromaStore,
    lexical: LexicalIndex | None,
    databases: Mapping[str, Engine] | None = None,
    thorough: bool = False,
) -> list[StoreFault]:
    """Every store's fault (empty when all are usable). ``databases`` are further SQL databases by
    name; ``thorough`` also checks each SQLite file's pages (``PRAGMA quick_check``, for the CLI)."""
    engines = {"registry": registry.engine, **(databases or {})}
    # At once: a database server that hangs costs the probe one timeout, not one per database.
    with ThreadPoolExecutor(len(engines)) as pool:
        pings = {
            name: pool.submit(_probe, name, "database_unavailable", partial(_ping, engine, thorough))
            for name, engine in engines.items()
        }
        faults: list[StoreFault] = [fault for ping in pings.values() for fault in ping.result()]
    faults += _probe("vector store", "store_unavailable", store.ping)
    if lexical is not None:
        faults += _probe("lexical index", "lexical_index_unavailable", lexical.ping)
    if not faults:
        faults += _probe("registry", "database_unavailable", lambda: _registry_kept(registry, store))
    return faults


class StorageError(AnswerDeskError, RuntimeError):
    """A data dir the server must not start on; the message lists each fault."""

    code = "storage_fault"

    def __init__(self, faults: list[StoreFault]) -> None:
        super().__init__(describe(faults))
        self.faults = faults


def describe(faults: list[StoreFault]) -> str:
    lines = [
        f"{fault.store}: {fault.code}: {fault.problem}" + (f" ({fault.detail})" if fault.detail else "")
        for fault in faults
    ]
    return "; ".join(lines)


def check_data_dir(settings: Settings, thorough: bool = False) -> list[StoreFault]:
    """Open every store of ``settings`` and check it (server start, ``answerdesk check``); a new data
    dir is created, like the stores in it."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        registry = DocumentRegistry(settings.database_url)
    except SchemaOutdatedError as exc:
        return [StoreFault("registry", "schema_outdated", str(exc))]
    except Exception as exc:
        return [StoreFault("registry", "database_unavailable", f"cannot be opened ({type(exc).__name__})", str(exc))]
    try:
        lexical = LexicalIndex(settings.database_url)  # its rows are in the registry's database
    except Exception as exc:
        registry.engine.dispose()
        problem = f"cannot be opened ({type(exc).__name__})"
        return [StoreFault("lexical index", "lexical_index_unavailable", problem, str(exc))]
    support_url = settings.support_database_url
    databases = {"support database": open_database(support_url)} if support_url else {}
    try:
        store = build_vector_store(settings)
        return check_stores(registry, store, lexical, databases, thorough)
    finally:
        lexical.close()
        registry.engine.dispose()
        for engine in databases.values():
            engine.dispose()


class RegistryLostError(AnswerDeskError, RuntimeError):
    code = "registry_lost"


def _registry_kept(registry: DocumentRegistry, store: ChromaStore) -> None:
    if registry.is_empty() and (chunks := store.count()) > 0:
        raise RegistryLostError(
            f"the document registry is empty while the vector store holds {chunks} chunks: the database was "
            "lost or replaced; restore it from a backup, or ingest the documents again into a new data dir"
        )


def _ping(engine: Engine, thorough: bool) -> None:
    with engine.connect() as connection:
        connection.execute(
            text("SELECT 1 FROM sqlite_master LIMIT 1" if engine.dialect.name == "sqlite" else "SELECT 1")
        )
        if thorough and engine.dialect.name == "sqlite":
            result = connection.execute(text("PRAGMA quick_check")).scalar()
            if result != "ok":
                raise RuntimeError(f"damaged: {result}")


def _probe(store: str, code: str, check: Callable[[], object]) -> list[StoreFault]:
    try:
        check()
    except DatabaseGoneError as exc:
        fault = StoreFault(store, "database_gone", "its file was deleted or replaced while in use", str(exc))
    except RegistryLostError as exc:
        fault = StoreFault(store, "registry_lost", str(exc))
    except Exception as exc:
        fault = StoreFault(store, code, f"damaged or unreadable ({type(exc).__name__})", str(exc)[:500])
    else:
        return []
    logger.error("%s: %s %s", store, fault.problem, fault.detail)
    return [fault]
