"""A throwaway PostgreSQL cluster in a temporary directory, for the warehouse test and
`make warehouse`: initdb, trust auth, a unix socket only (no TCP port to collide
with), removed when the context ends.

PostgreSQL refuses to run as root; as root (a container) the cluster runs as the
`postgres` system user (or `nobody`), which owns the temporary directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "warehouse"
_BINARIES = ("initdb", "pg_ctl", "postgres")
_TIMEOUT_S = 60


class PostgresNotFound(RuntimeError):
    pass


def find_bin_dir() -> Path:
    """The directory holding initdb, pg_ctl and postgres: PATH first, then the Debian
    layout /usr/lib/postgresql/<version>/bin (newest version first)."""
    on_path = [shutil.which(name) for name in _BINARIES]
    if all(on_path):
        return Path(os.path.realpath(on_path[0])).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for directory in map(Path, candidates):
        if all((directory / name).is_file() for name in _BINARIES):
            return directory
    raise PostgresNotFound(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH nor in "
        "/usr/lib/postgresql/*/bin; install the PostgreSQL 15 server "
        "(e.g. `apt-get install postgresql-15`) to run the warehouse test"
    )


def _run_as() -> str | None:
    """The user to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PostgresNotFound("running as root and there is no 'postgres' or 'nobody' user to run PostgreSQL as")


@dataclass(frozen=True)
class KeptCluster:
    """A cluster left running after the context (`keep=True`), and how to stop it."""

    conninfo: str
    stop_command: str


@contextmanager
def throwaway_cluster(keep: list[KeptCluster] | None = None) -> Iterator[str]:
    """Start a fresh cluster; yield a libpq conninfo for its `postgres` database.

    Given a `keep` list, a cluster whose context ends without an error is left running
    (its directory too) and described in the list, for a person to query and stop."""
    bin_dir = find_bin_dir()
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="warehouse-pg-"))
    data, log = root / "data", root / "server.log"
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)

    def run(*args: str) -> None:
        done = subprocess.run(
            [str(bin_dir / args[0]), *args[1:]], user=user, capture_output=True, text=True,
            timeout=_TIMEOUT_S, cwd=root,
        )
        if done.returncode != 0:
            server_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}\n{server_log}")

    started = kept = False
    try:
        # -N: no fsync; a throwaway cluster need not survive a power cut.
        run("initdb", "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-locale", "-N")
        server_options = f"-k {root} -c listen_addresses='' -F"
        run("pg_ctl", "-D", str(data), "-o", server_options, "-l", str(log), "-w", "-t", str(_TIMEOUT_S), "start")
        started = True
        conninfo = f"host={root} dbname=postgres user={SUPERUSER}"
        yield conninfo
        if keep is not None:
            stop = f"{bin_dir / 'pg_ctl'} -D {data} stop && rm -rf {root}"
            keep.append(KeptCluster(conninfo, f"su -s /bin/sh {user} -c '{stop}'" if user else stop))
            kept = True
    finally:
        if not kept:
            if started:
                run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
            shutil.rmtree(root, ignore_errors=True)
