"""A throwaway PostgreSQL server for the test suite, started from the local binaries.

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user (or
``nobody``). The server listens on a free loopback port with trust authentication, with
durability off (it is thrown away), and is stopped and deleted at the end of the session.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgServer", "find_bin_dir", "start_server"]


def find_bin_dir() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl``: Debian's newest, else the PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    for folder in candidates:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).parent
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) exists")


@dataclass
class PgServer:
    bin_dir: Path
    data_dir: Path
    port: int
    user: str | None

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *args: str) -> list[str]:
        cmd = list(args)
        return ["runuser", "-u", self.user, "--", *cmd] if self.user else cmd

    def stop(self) -> None:
        subprocess.run(
            self._cmd(
                str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "immediate"
            ),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start_server() -> PgServer:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("no initdb/pg_ctl found (install Debian's postgresql package)")
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="tighten-pg-"))
    data = root / "data"
    if user:
        info = pwd.getpwnam(user)
        os.chown(root, info.pw_uid, info.pw_gid)
    os.chmod(root, 0o755)
    server = PgServer(bin_dir, data, _free_port(), user)
    run = {"capture_output": True, "text": True, "check": True, "cwd": str(root)}
    subprocess.run(
        server._cmd(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"),
        **run,
    )  # fmt: skip
    options = (
        f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
    )
    try:
        subprocess.run(
            server._cmd(str(bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(data),
                        "-o", options, "-l", str(root / "server.log")),
            **run,
        )  # fmt: skip
    except subprocess.CalledProcessError:
        log = (root / "server.log").read_text(errors="replace")[-2000:]
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {log}") from None
    return server
