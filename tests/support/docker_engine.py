"""A private Docker engine for the compose tier, and the local images it needs.

Nothing here reaches beyond this machine except Debian's mirror and the package
index that the host's own pip and apt are configured for (both by the host, never
from inside a container):

- ``dockerd`` runs with its own pidfile, socket, data-root and exec-root under
  the cache dir, so it never clashes with another engine; it is stopped by its
  PID, also on failure or Ctrl+C;
- before any container starts, ``iptables -I DOCKER-USER -o <uplink> -j DROP``
  keeps every container (and Docker's embedded DNS forwarding, which runs in the
  container's namespace) from sending anything off the machine;
- afterwards exactly what the engine and the test added is removed: iptables
  rules and chains (diffed against a snapshot taken before), bridges, the
  ``ip_forward`` sysctl. A run that died half-way is cleaned up by the next one.

Base images are made from Debian packages (``debootstrap --variant=minbase`` of
the host's configured mirror, then ``apt-get`` in a chroot, then ``docker
import``) and tagged with the names the Dockerfile and compose.yaml use. Wheels
are downloaded on the host (``pip download -c constraints.txt`` of the runtime
dependencies) and served to the build over the Docker bridge: the Dockerfile
takes ``PIP_NO_INDEX`` / ``PIP_FIND_LINKS`` build args that are unset by default.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
DEBIAN_SUITE = "bookworm"
# Debian's docker.io (20.10): its client speaks to its daemon; the legacy builder needs no buildx.
DOCKER_BINARIES = ("dockerd", "containerd", "runc")
REQUIRED_TOOLS = ("dockerd", "docker-compose", "debootstrap", "iptables", "iptables-save", "ip", "chroot", "nft")
WHEELHOUSE_PORT = 38471  # fixed: the build arg (and so the build cache) must not change between runs
DOCKER_USER = "DOCKER-USER"
# Made by dockerd or containerd's shims whatever the data-root and exec-root: removed afterwards
# when they were not there before (directories only when empty), children before parents.
HOST_PATHS = ("/etc/docker/key.json", "/run/docker/plugins", "/run/docker", "/run/containerd/s", "/run/containerd")


def cache_dir() -> Path:
    base = os.environ.get("OWC_COMPOSE_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "owc-compose"


def docker_client() -> str:
    """Debian's client (same version as the daemon); another ``docker`` earlier in PATH may want buildx."""
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "docker")


def unavailable_reason() -> str | None:
    """Why this machine cannot run the tier (None: it can try)."""
    if os.geteuid() != 0:
        return "the compose tier starts its own dockerd and needs root (CI runs it as root)"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (scripts/system-deps.sh compose installs them)"
    if not Path("/usr/bin/docker").exists() and shutil.which("docker") is None:
        return "missing the docker client (Debian package docker.io)"
    return None


def run(
    argv: Sequence[str], timeout: float = 120, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env)
    if check and out.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


# ---- the host's network state ---------------------------------------------------------------


def uplink() -> str | None:
    """The interface of the default route (where traffic would leave the machine)."""
    out = run(["ip", "-o", "route", "show", "default"], check=False).stdout
    m = re.search(r"\bdev (\S+)", out)
    return m.group(1) if m else None


def links() -> set[str]:
    out = run(["ip", "-o", "link", "show"]).stdout
    return {m.group(1).split("@")[0] for m in re.finditer(r"^\d+: ([^:]+):", out, re.M)}


def iptables_dump(v6: bool = False) -> dict[str, list[str]]:
    """``{table: ['-P BUILTIN POLICY', '-N CHAIN', '-A CHAIN …', …]}`` from ``iptables-save``."""
    tool = "ip6tables-save" if v6 else "iptables-save"
    if shutil.which(tool) is None:
        return {}
    return parse_iptables_save(run([tool], check=False).stdout)


def parse_iptables_save(out: str) -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {}
    table = ""
    for line in out.splitlines():
        if line.startswith("*"):
            table = line[1:]
            tables[table] = []
        elif line.startswith(":"):
            chain, policy = line[1:].split()[:2]
            tables[table].append(f"-P {chain} {policy}" if policy != "-" else f"-N {chain}")
        elif line.startswith("-A "):
            tables[table].append(line)
    return tables


def undo_iptables(before: dict[str, list[str]], v6: bool = False) -> list[str]:
    """Delete every rule and chain that is not in ``before``, and put back changed policies.

    (dockerd adds its chains and rules and sets the FORWARD policy to DROP.)
    """
    tool = "ip6tables" if v6 else "iptables"
    now = iptables_dump(v6)
    done: list[str] = []
    builtin = {"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"}
    for table, lines in now.items():
        old = set(before.get(table, []))
        # a table that did not exist had every built-in chain at ACCEPT
        policies = [ln for ln in before[table] if ln.startswith("-P ")] if table in before else [
            f"-P {ln.split()[1]} ACCEPT" for ln in lines if ln.startswith("-P ")]
        for line in policies:
            if line.startswith("-P ") and line not in lines:
                argv = [tool, "-t", table, *line.split()]
                if run(argv, check=False).returncode == 0:
                    done.append(shlex.join(argv))
        for line in reversed(lines):
            if line.startswith("-A ") and line not in old:
                argv = [tool, "-t", table, "-D", *shlex.split(line)[1:]]
                if run(argv, check=False).returncode == 0:
                    done.append(shlex.join(argv))
        for line in lines:
            if line.startswith("-N ") and line not in old:
                chain = line.split()[1]
                if chain in builtin:
                    continue
                run([tool, "-t", table, "-F", chain], check=False)
                if run([tool, "-t", table, "-X", chain], check=False).returncode == 0:
                    done.append(f"{tool} -t {table} -X {chain}")
    done += _drop_new_empty_tables(before, v6)
    return done


def _drop_new_empty_tables(before: dict[str, list[str]], v6: bool) -> list[str]:
    """Tables that did not exist before and are empty now (iptables-nft made them): delete them too.

    iptables cannot delete a table; with the nf_tables backend ``nft`` can.
    """
    tool = "ip6tables" if v6 else "iptables"
    if shutil.which("nft") is None or "nf_tables" not in run([tool, "-V"], check=False).stdout:
        return []
    done = []
    for table, lines in iptables_dump(v6).items():
        if table in before or any(not re.fullmatch(r"-P \S+ ACCEPT", line) for line in lines):
            continue
        family = "ip6" if v6 else "ip"
        if run(["nft", "delete", "table", family, table], check=False).returncode == 0:
            done.append(f"nft delete table {family} {table}")
    return done


def read_ip_forward() -> str:
    return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()


# ---- the engine ------------------------------------------------------------------------------


@dataclass
class HostSnapshot:
    """What the machine looked like before the engine started: restored afterwards."""

    iptables: dict[str, list[str]]
    ip6tables: dict[str, list[str]]
    links: list[str]
    ip_forward: str
    host_paths: list[str]  # of HOST_PATHS, those that existed

    @classmethod
    def take(cls) -> HostSnapshot:
        existing = [d for d in HOST_PATHS if Path(d).exists()]
        return cls(iptables_dump(), iptables_dump(v6=True), sorted(links()), read_ip_forward(), existing)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, path: Path) -> HostSnapshot:
        return cls(**json.loads(path.read_text()))


@dataclass
class DockerEngine:
    """``dockerd`` with everything under ``root``; ``env`` points clients at it."""

    root: Path
    log_path: Path = field(init=False)
    pid: int | None = None
    egress_rule: list[str] | None = None
    egress_dropped: int | None = None  # packets the drop rule stopped (e.g. DNS forwarded by Docker)
    cleanup_log: list[str] = field(default_factory=list)
    _lock_file: TextIO | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / "dockerd.log"

    # paths ------------------------------------------------------------------------------------
    @property
    def sock(self) -> Path:
        return self.root / "docker.sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "dockerd.pid"

    @property
    def snapshot_path(self) -> Path:
        return self.root / "host-before.json"

    @property
    def exec_root(self) -> Path:
        # unix socket paths are limited to 108 bytes: keep the exec-root short and ours alone
        return Path("/run") / f"owc-compose-{hashlib.sha256(str(self.root).encode()).hexdigest()[:8]}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_", "OWC_"))}
        env.update(DOCKER_HOST=f"unix://{self.sock}", DOCKER_BUILDKIT="0", COMPOSE_DOCKER_CLI_BUILD="0")
        return env

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([docker_client(), *args], timeout=timeout, check=check, env=self.env)

    # start / stop -------------------------------------------------------------------------------
    def lock(self, timeout: float = 1800) -> None:
        """One run at a time per cache dir (two would share the data-root): wait for the other to finish."""
        if self._lock_file is not None:
            return
        f = (self.root / "lock").open("w")

        def acquired() -> bool:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        try:
            wait_until(acquired, timeout=timeout, interval=1,
                       message=f"another compose-tier run to release {self.root / 'lock'}")
        except BaseException:
            f.close()
            raise
        self._lock_file = f

    def unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def start(self) -> None:
        """Clean up after an earlier run that died, snapshot the host, start dockerd, block egress."""
        self.lock()
        self.cleanup_leftovers()
        snapshot = HostSnapshot.take()
        snapshot.save(self.snapshot_path)  # written first: a crash from here on is undone by the next run
        self.exec_root.mkdir(parents=True, exist_ok=True)
        self.block_egress()  # before dockerd: no container ever runs without it
        argv = [
            "dockerd",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.pidfile}",
            f"--host=unix://{self.sock}",
            "--storage-driver=overlay2",
            "--exec-opt=native.cgroupdriver=cgroupfs",
            "--ip-masq=false",  # no NAT to the outside world (and the drop rule below)
            "--log-level=warn",
        ]
        with self.log_path.open("wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        self.pid = proc.pid
        try:
            wait_until(lambda: proc.poll() is not None or self.docker("info", check=False, timeout=20).returncode == 0,
                       timeout=90, interval=0.2, message="dockerd to answer")
            if proc.poll() is not None:
                raise RuntimeError(f"dockerd exited {proc.returncode}: {self.log_tail()}")
            if not self.egress_blocked():
                raise RuntimeError(f"the egress drop rule is not in force after dockerd started:\n"
                                   f"{run(['iptables', '-S'], check=False).stdout}")
            self.remove_everything()  # containers a killed run left in the data-root
        except BaseException:
            self.stop()
            raise

    def block_egress(self) -> None:
        """The drop rule on top of DOCKER-USER, which FORWARD consults before Docker's own rules.

        Called before dockerd starts (a data-root from a killed run may hold containers that
        dockerd restarts at once): the chain and FORWARD's jump to it are made here if missing;
        dockerd keeps the chain's rules and moves its jump to the top of FORWARD.
        """
        dev = uplink()
        if dev is None:  # no default route: nothing can leave anyway
            return
        rule = [DOCKER_USER, "-o", dev, "-j", "DROP"]
        if run(["iptables", "-n", "-L", DOCKER_USER], check=False).returncode != 0:
            run(["iptables", "-N", DOCKER_USER])
        if run(["iptables", "-C", *rule], check=False).returncode != 0:
            run(["iptables", "-I", *rule])
        if run(["iptables", "-C", "FORWARD", "-j", DOCKER_USER], check=False).returncode != 0:
            run(["iptables", "-I", "FORWARD", "-j", DOCKER_USER])
        self.egress_rule = rule

    def egress_blocked(self) -> bool:
        """The drop rule is there and FORWARD sends every forwarded packet through DOCKER-USER first."""
        if self.egress_rule is None:
            return uplink() is None
        if run(["iptables", "-C", *self.egress_rule], check=False).returncode != 0:
            return False
        forward = [r for r in run(["iptables", "-S", "FORWARD"]).stdout.splitlines() if r.startswith("-A ")]
        return bool(forward) and forward[0] == f"-A FORWARD -j {DOCKER_USER}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def remove_everything(self) -> None:
        """Every container, volume and network in this private engine (all of them the test's)."""
        ids = self.docker("ps", "-aq", check=False, timeout=30).stdout.split()
        if ids:
            self.docker("rm", "-f", "-v", *ids, check=False, timeout=120)
        self.docker("volume", "prune", "-f", check=False, timeout=60)
        self.docker("network", "prune", "-f", check=False, timeout=60)

    def dropped_packets(self) -> int | None:
        if self.egress_rule is None:
            return None
        out = run(["iptables", "-L", DOCKER_USER, "-v", "-n", "-x"], check=False).stdout
        dev = self.egress_rule[2]
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 7 and fields[2] == "DROP" and dev in fields:
                return int(fields[0])
        return None

    def stop(self) -> None:
        """Stop dockerd by its PID and put the host back as the snapshot found it."""
        with contextlib.suppress(Exception):
            dropped = self.dropped_packets()
            if dropped is not None:
                self.egress_dropped = dropped
        if self.pid is not None and _alive(self.pid):
            with contextlib.suppress(Exception):
                self.remove_everything()
        self._kill_dockerd(self.pid)
        self.pid = None
        if self._lock_file is not None:  # never touch the host while another run holds the lock
            self.restore_host()
        self.unlock()

    def _kill_dockerd(self, pid: int | None) -> None:
        if pid is None or not _alive(pid):
            return
        os.kill(pid, signal.SIGTERM)
        try:
            wait_until(lambda: not _alive(pid), timeout=45, interval=0.1, message="dockerd to stop")
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not _alive(pid), timeout=15, interval=0.1, message="dockerd to die")
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)

    def restore_host(self) -> None:
        if not self.snapshot_path.exists():
            return
        before = HostSnapshot.load(self.snapshot_path)
        self.cleanup_log += undo_iptables(before.iptables)
        self.cleanup_log += undo_iptables(before.ip6tables, v6=True)
        self.egress_rule = None
        for name in sorted(links() - set(before.links)):
            if name == "docker0" or name.startswith(("br-", "veth")):
                run(["ip", "link", "delete", name], check=False)
                self.cleanup_log.append(f"ip link delete {name}")
        if read_ip_forward() != before.ip_forward:
            Path("/proc/sys/net/ipv4/ip_forward").write_text(before.ip_forward + "\n")
            self.cleanup_log.append(f"net.ipv4.ip_forward={before.ip_forward}")
        if self.exec_root.exists() and not _mounted_under(self.exec_root):
            shutil.rmtree(self.exec_root, ignore_errors=True)
        for name in HOST_PATHS:
            path = Path(name)
            if name not in before.host_paths and path.exists():
                with contextlib.suppress(OSError):
                    path.rmdir() if path.is_dir() else path.unlink()  # a directory only when empty
                    self.cleanup_log.append(f"rm {name}")
        self.snapshot_path.unlink()

    def cleanup_leftovers(self) -> None:
        """An earlier run that was killed: stop its dockerd (by its pidfile) and restore the host."""
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pidfile.read_text().strip())
            if _alive(pid) and "dockerd" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                self._kill_dockerd(pid)
        self.restore_host()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, even by SIGKILL (Linux prctl)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _mounted_under(path: Path) -> bool:
    prefix = str(path) + "/"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            if (line.split()[1] + "/").startswith(prefix):
                return True
    return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# ---- base images from Debian packages -------------------------------------------------------


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The main Debian mirror the host's apt is configured for (sources.list or deb822 .sources)."""
    texts = []
    for path in [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]:
        if path.suffix in ("", ".list", ".sources"):
            with contextlib.suppress(OSError):
                texts.append(path.read_text())
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):  # deb822 .sources
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and DEBIAN_SUITE in suites.group(1).split() and "security" not in uris.group(1):
                return uris.group(1).rstrip("/")
        for m in re.finditer(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{DEBIAN_SUITE}\s", text, re.M):
            return m.group(1).rstrip("/")
    return "http://deb.debian.org/debian"


@dataclass(frozen=True)
class BaseImage:
    """A local stand-in for a registry image: Debian packages in a minbase rootfs."""

    tag: str
    packages: tuple[str, ...]
    setup: str  # shell run in the chroot after the packages are installed
    changes: tuple[str, ...]  # `docker import --change` instructions

    def key(self) -> str:
        text = json.dumps([self.packages, self.setup, self.changes, DEBIAN_SUITE])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


REDIS_ENTRYPOINT = """#!/bin/sh
# Like the official image: other containers may connect (protected mode off), data in /data.
set -e
if [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ]; then shift; set -- redis-server "$@" --protected-mode no; fi
exec "$@"
"""


def base_images(python_tag: str, redis_tag: str, prometheus_tag: str) -> list[BaseImage]:
    return [
        BaseImage(
            python_tag,
            ("python3", "python3-pip", "python-is-python3"),
            # like the official image: pip installs system-wide (no PEP 668 marker), UTF-8
            "rm -f /usr/lib/python3*/EXTERNALLY-MANAGED",
            ('ENV LANG=C.UTF-8', 'CMD ["python3"]'),
        ),
        BaseImage(
            redis_tag,
            ("redis-server",),
            "mkdir -p /data && chown redis:redis /data && cat > /usr/local/bin/docker-entrypoint.sh <<'EOF'\n"
            + REDIS_ENTRYPOINT
            + "EOF\nchmod 755 /usr/local/bin/docker-entrypoint.sh",
            ('ENTRYPOINT ["docker-entrypoint.sh"]', 'CMD ["redis-server"]', "WORKDIR /data", "USER redis",
             "VOLUME /data", "EXPOSE 6379"),
        ),
        BaseImage(
            prometheus_tag,
            ("prometheus", "wget"),
            "mkdir -p /prometheus /etc/prometheus && chown nobody:nogroup /prometheus",
            ('ENTRYPOINT ["/usr/bin/prometheus"]',
             'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]',
             "WORKDIR /prometheus", "USER nobody", "VOLUME /prometheus", "EXPOSE 9090"),
        ),
    ]


def minbase_tarball(cache: Path) -> Path:
    """``debootstrap --variant=minbase`` of Debian from the host's mirror, as a tarball (cached)."""
    mirror = debian_mirror()
    tarball = cache / f"rootfs-{DEBIAN_SUITE}-minbase-{hashlib.sha256(mirror.encode()).hexdigest()[:8]}.tar"
    if tarball.exists():
        return tarball
    with tempfile.TemporaryDirectory(dir=cache, prefix="debootstrap-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(rootfs), mirror], timeout=900)
        partial = tarball.with_suffix(".partial")
        run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], timeout=300)
        partial.rename(tarball)
    return tarball


def _chroot_install(rootfs: Path, image: BaseImage) -> None:
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")  # never start a service inside the chroot
    policy.chmod(0o755)
    shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LANG": "C"}
    try:
        run(["chroot", str(rootfs), "apt-get", "update", "-qq"], timeout=600, env=env)
        run(["chroot", str(rootfs), "apt-get", "install", "-y", "-qq", "--no-install-recommends", *image.packages],
            timeout=900, env=env)
        run(["chroot", str(rootfs), "sh", "-ec", image.setup], timeout=120, env=env)
        run(["chroot", str(rootfs), "apt-get", "clean"], timeout=120, env=env)
    finally:
        policy.unlink(missing_ok=True)
        (rootfs / "etc/resolv.conf").write_text("")
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)


def ensure_base_images(engine: DockerEngine, images: list[BaseImage], cache: Path) -> list[str]:
    """Make (or reuse) each image; returns the tags that had to be made."""
    made = []
    minbase: Path | None = None
    for image in images:
        key = image.key()
        labels = engine.docker("image", "inspect", "--format", "{{json .Config.Labels}}", image.tag, check=False)
        if labels.returncode == 0 and (json.loads(labels.stdout or "null") or {}).get("owc.base-key") == key:
            continue
        minbase = minbase or minbase_tarball(cache)
        with tempfile.TemporaryDirectory(dir=cache, prefix="image-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            rootfs.mkdir()
            run(["tar", "-C", str(rootfs), "--numeric-owner", "-xf", str(minbase)], timeout=300)
            _chroot_install(rootfs, image)
            tarball = Path(tmp) / "rootfs.tar"
            run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], timeout=300)
            changes = [*image.changes, f"LABEL owc.base-key={key}"]
            argv = ["import"]
            for change in changes:
                argv += ["--change", change]
            engine.docker(*argv, str(tarball), image.tag, timeout=600)
        made.append(image.tag)
    return made


# ---- wheels for the build --------------------------------------------------------------------


def runtime_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The image's runtime dependencies, derived exactly as the Dockerfile derives them."""
    deps: list[str] = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return deps


def build_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """What ``pip install -e .`` needs to build the project (PEP 517 build isolation)."""
    reqs: list[str] = tomllib.loads(pyproject.read_text())["build-system"]["requires"]
    return reqs


def image_python_version(engine: DockerEngine, tag: str) -> str:
    """The exact Python version of an image (markers such as ``python_full_version < "3.11.3"`` depend on it)."""
    out = engine.docker("run", "--rm", "--network", "none", "--entrypoint", "python3", tag, "-c",
                        "import platform; print(platform.python_version())", timeout=120)
    return out.stdout.strip()


def _python_version(python: str) -> str | None:
    out = run([python, "-c", "import platform, pip; print(platform.python_version())"], check=False, timeout=60)
    return out.stdout.strip() if out.returncode == 0 else None


def downloader(version: str) -> list[str]:
    """A host pip on an interpreter of exactly ``version`` (the image's Debian python3 is the host's).

    Wheels are then chosen for the image's interpreter, tags and markers; any other
    interpreter would get them right only as far as ``--python-version`` goes.
    """
    for python in ("/usr/bin/python3", sys.executable, shutil.which("python3") or ""):
        if python and Path(python).exists() and _python_version(python) == version:
            return [python, "-m", "pip", "download"]
    major_minor = ".".join(version.split(".")[:2])
    platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)] + ["linux_x86_64"]
    return [sys.executable, "-m", "pip", "download", "--python-version", major_minor, "--implementation", "cp",
            *[arg for tag in platforms for arg in ("--platform", tag)]]


def ensure_wheelhouse(cache: Path, python_version: str) -> Path:
    """``pip download`` (with the host's pip configuration) of every wheel the image build installs.

    The list is derived from pyproject.toml like the Dockerfile derives it, pinned by
    constraints.txt: a new runtime dependency flows in without editing anything here.
    """
    reqs = runtime_requirements() + build_requirements()
    constraints = (REPO / "constraints.txt").read_text()
    key = hashlib.sha256(json.dumps([reqs, constraints, python_version]).encode()).hexdigest()[:16]
    house = cache / f"wheelhouse-{key}"
    if (house / ".complete").exists():
        return house
    shutil.rmtree(house, ignore_errors=True)
    house.mkdir(parents=True)
    req_file = cache / f"requirements-{key}.txt"
    req_file.write_text("\n".join(reqs) + "\n")
    try:
        run(
            [*downloader(python_version), "--disable-pip-version-check", "-q", "--only-binary=:all:",
             "-r", str(req_file), "-c", str(REPO / "constraints.txt"), "-d", str(house)],
            timeout=900,
        )
    finally:
        req_file.unlink(missing_ok=True)
    (house / ".complete").write_text(key)
    return house


class WheelServer:
    """Serves a wheelhouse over HTTP on the Docker bridge address (the build containers' gateway)."""

    def __init__(self, folder: Path, host: str, port: int = WHEELHOUSE_PORT) -> None:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        try:
            self.server = http.server.ThreadingHTTPServer((host, port), handler)
        except OSError:
            self.server = http.server.ThreadingHTTPServer((host, 0), handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WheelServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def bridge_gateway(engine: DockerEngine) -> str:
    """The host's address on the default bridge (IPAM does not always record it: read the interface)."""
    fmt = '{{index .Options "com.docker.network.bridge.name"}}'
    name = engine.docker("network", "inspect", "bridge", "--format", fmt).stdout.strip() or "docker0"
    out = run(["ip", "-o", "-4", "addr", "show", "dev", name]).stdout
    m = re.search(r"\binet (\d+\.\d+\.\d+\.\d+)/", out)
    if not m:
        raise RuntimeError(f"no IPv4 address on the Docker bridge {name}: {out!r}")
    return m.group(1)


@dataclass(frozen=True)
class Build:
    seconds: float
    dependencies_cached: bool  # the `pip install -r …` layer came from the build cache
    output: str


def build_image(engine: DockerEngine, tag: str, wheels_url: str) -> Build:
    """The real Dockerfile, unchanged; pip gets the wheels from the host through the build args."""
    host = wheels_url.split("//", 1)[1].split(":", 1)[0]
    t0 = time.monotonic()
    out = engine.docker(
        "build", "--tag", tag, "--build-arg", "PIP_NO_INDEX=1", "--build-arg", f"PIP_FIND_LINKS={wheels_url}",
        "--build-arg", f"PIP_TRUSTED_HOST={host}", str(REPO), timeout=900,
    ).stdout
    seconds = time.monotonic() - t0
    steps = re.split(r"^Step \d+/\d+ : ", out, flags=re.M)
    deps = [step for step in steps if step.startswith("RUN") and "pip install -r" in step]
    return Build(seconds, bool(deps) and "Using cache" in deps[0].splitlines()[1], out)


def iter_dockerfile_froms(dockerfile: Path = REPO / "Dockerfile") -> Iterator[str]:
    for line in dockerfile.read_text().splitlines():
        m = re.match(r"^\s*FROM\s+(\S+)", line, re.I)
        if m:
            yield m.group(1)
