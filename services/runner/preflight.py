"""What ``owc run`` checks before it starts anything: it never fights another program.

- the gateway's port: taken (by Grafana, say) -> one line naming the setting to change, exit 2;
- the data folder: a second ``owc run`` on it is refused (an ``flock`` on ``owc.lock`` in the
  folder, held for the life of the run and by the embedded redis-server it starts), so two
  redis-servers never append to one AOF.

Standard library only: the stdlib-only keeper of one-process mode inherits the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import sys
import time
from pathlib import Path

from services.common.infra.ports import PreflightError, check_gateway_port

__all__ = ["PreflightError", "check_gateway_port", "lock_data_dir"]

LOCK_FILE = "owc.lock"


def lock_data_dir(data_dir: Path) -> int:
    """Lock ``data_dir`` for this run; return the lock's file descriptor (inheritable: keep it open).

    Refuses with a message naming the run that holds it (its pid, command and start time,
    written into the lock file) when another ``owc run`` uses the folder.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        with contextlib.suppress(OSError):
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip()
        os.close(fd)
        who = holder or "another process"
        raise PreflightError(
            f"the data folder {data_dir} is in use by another `owc run` ({who}): stop that one first "
            "(Ctrl+C in its terminal), or start this one with another folder (OWC_HOME, or redis.data_dir)"
        ) from None
    os.ftruncate(fd, 0)
    # the command only: its --set values may be secrets
    command = shlex.join(["owc", *sys.argv[1:2]])
    os.write(fd, f"pid {os.getpid()}, `{command}`, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    os.set_inheritable(fd, True)
    return fd
