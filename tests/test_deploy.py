"""The deployment recipe (deploy/Procfile, deploy/answerdesk.env, README.md "Production set-up"),
command by command, on this machine: ``createdb``, ``answerdesk db upgrade`` and ``keys create``
under ``honcho run``, then ``honcho start`` with two replicas, a worker and two Chroma servers; both
replicas get ready, a document uploaded through the first is answered by the second, and honcho stops
them all cleanly on SIGTERM. The recipe's env file is used as it is, after it a second one that
moves only what must differ on a shared test machine: ports, the database's name, folders, the model.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from eval.fleet import Service, free_port, venv_command
from retrieval.config import Settings
from tests.conftest import service_unreachable
from tests.databases import ADMIN_URL, drop_database
from tests.helpers import FAQ, REPO, bearer

ENV_FILE = REPO / "deploy" / "answerdesk.env"
PROCFILE = REPO / "deploy" / "Procfile"
QUESTION = {"question": "How long does a refund take?"}


def _every_setting() -> set[str]:
    return {
        "ANSWERDESK_DATABASE_URL" if name == "database_url_setting" else f"ANSWERDESK_{name.upper()}"
        for name in Settings.model_fields
    }


def test_the_env_file_names_every_setting() -> None:
    named = set(re.findall(r"^#? ?(ANSWERDESK_[A-Z_]+)=", ENV_FILE.read_text(encoding="utf-8"), re.MULTILINE))
    assert sorted(_every_setting() - {"ANSWERDESK_PORT"} - named) == []  # PORT: honcho sets it


def test_the_operations_guide_documents_every_setting() -> None:
    guide = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    table = guide.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert sorted(name for name in _every_setting() if f"`{name}`" not in table) == []


def _free_pair() -> int:
    """A port whose next one is free too (honcho gives replica n the port PORT + n - 1)."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and _is_free(port + 1):
            return port
    raise AssertionError("no two free ports in a row")


def _is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _listens(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


class Honcho(Service):
    """``honcho start`` of the Procfile; ready when every replica's /readyz is 200."""

    def __init__(self, log: Path, env: dict[str, str], env_files: str, urls: list[str]) -> None:
        command = [_honcho(), "start", "-f", str(PROCFILE), "-e", env_files, "-c", "api=2,worker=1", "--no-colour"]
        super().__init__("honcho", command, log, env)
        self.urls = urls

    def answers(self) -> bool:
        try:
            return all(httpx.get(f"{url}/readyz", timeout=2).status_code == 200 for url in self.urls)
        except httpx.HTTPError:
            return False


def _honcho() -> str:
    found = venv_command("honcho")
    assert found is not None
    return found


@pytest.mark.slow
def test_the_recipe_runs_two_replicas_a_worker_and_chroma_servers(tmp_path: Path, model_dir: Path) -> None:
    for command, what in (("honcho", "honcho (the dev extras)"), ("chroma", "the chroma command")):
        if venv_command(command) is None:
            service_unreachable("Deployment tools", f"{what} is not installed")
    if shutil.which("createdb") is None:
        service_unreachable("PostgreSQL", "createdb is not installed")
    admin = make_url(ADMIN_URL)
    name = f"answerdesk_deploy_{secrets.token_hex(6)}"
    created = subprocess.run(
        ["createdb", "-h", admin.host or "127.0.0.1", "-p", str(admin.port or 5432), "-U", admin.username or "postgres",
         name], capture_output=True, text=True, timeout=60,
    )
    if created.returncode != 0:
        service_unreachable("PostgreSQL", f"createdb: {created.stderr.strip()}")
    database = admin.set(database=name).render_as_string(hide_password=False)
    port, chroma_ports = _free_pair(), (free_port(), free_port())
    overrides = tmp_path / "test.env"
    overrides.write_text(
        f"ANSWERDESK_DATABASE_URL={database}\n"
        f"ANSWERDESK_CHROMA_URLS=http://127.0.0.1:{chroma_ports[0]},http://127.0.0.1:{chroma_ports[1]}\n"
        f"ANSWERDESK_REDIS_PREFIX=answerdesk-deploy-test-{secrets.token_hex(6)}\n"
        f"ANSWERDESK_DATA_DIR={tmp_path / 'data'}\nANSWERDESK_MODEL_DIR={model_dir}\n"
        f"CHROMA_PATH={tmp_path / 'chroma'}\nCHROMA_1_PORT={chroma_ports[0]}\nCHROMA_2_PORT={chroma_ports[1]}\n"
        f"PORT={port}\n",
        encoding="utf-8",
    )
    env_files = f"{ENV_FILE},{overrides}"
    # answerdesk, chroma and honcho from this interpreter's venv, as after `. .venv/bin/activate`.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    urls = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
    honcho = Honcho(tmp_path / "honcho.log", env, env_files, urls)
    try:
        def run(*args: str) -> str:
            done = subprocess.run(
                [_honcho(), "run", "-e", env_files, *args], cwd=REPO, env=env, capture_output=True, text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        assert "upgraded from nothing" in " ".join(run("answerdesk", "db", "upgrade").split())
        assert "already current" in " ".join(run("answerdesk", "db", "upgrade").split())  # idempotent
        editor = bearer(run("answerdesk", "keys", "create", "--role", "editor", "--name", "deploy").split()[-1])
        reader = bearer(run("answerdesk", "keys", "create", "--role", "reader", "--name", "deploy").split()[-1])

        honcho.start(timeout=300)
        upload = httpx.post(f"{urls[0]}/v1/documents", files=[("file", ("en/faq-refunds.md", FAQ.encode()))],
                            headers=editor, timeout=60)
        assert upload.status_code == 201, upload.text
        answer = httpx.post(f"{urls[1]}/v1/ask", json=QUESTION, headers=reader, timeout=60)
        assert answer.status_code == 200 and answer.json()["status"] == "answered", answer.text
        assert answer.json()["citations"][0]["document_id"] == "en/faq-refunds"

        started = time.monotonic()
        honcho.stop(timeout=30)  # SIGTERM: honcho passes it on to every process
        log = honcho.log.read_text(errors="replace")
        assert "SIGKILL" not in log, log[-3000:]  # each stopped within honcho's 5 s
        assert time.monotonic() - started < 15
        stopped = re.findall(r"\|\s*(\w+\.\d+) stopped", log)
        assert sorted(stopped) == ["api.1", "api.2", "chroma1.1", "chroma2.1", "worker.1"], log[-3000:]
        assert not any(_listens(p) for p in (port, port + 1, *chroma_ports))
    except BaseException:
        print(honcho.log_tail(8000))
        raise
    finally:
        honcho.stop(timeout=30)  # after a failure: honcho takes its processes down with it
        drop_database(database)
