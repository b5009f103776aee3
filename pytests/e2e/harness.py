"""Real processes for the end-to-end tests: an etcd or ZooKeeper server and
Patroni nodes.

Everything listens on 127.0.0.1 on ports picked free at start, and lives in a
directory given by the caller (pytest's tmp_path_factory). PostgreSQL refuses
to run as root, so when the tests run as root each node (the Patroni daemon
and therefore its PostgreSQL) runs as the unprivileged user `patroni-rs-test`,
the same user the Rust integration tests use.

The daemon under test is either ours or Python Patroni 4.1.5; both read the
same YAML file, which is the point of these tests.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import pathlib
import pwd
import signal
import socket
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
from typing import Callable, Dict, List, Optional, TypeVar

import yaml

PG_BIN_DIR = "/usr/lib/postgresql/15/bin"
ETCD_BIN = "/usr/bin/etcd"
# ZooKeeper 3.8 from the Debian `zookeeper` package: the jar (its manifest
# names its dependencies) and the log4j settings directory.
ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
ZOOKEEPER_CONF_DIR = "/etc/zookeeper/conf"
VENV = pathlib.Path(os.environ.get("PATRONI_RS_VENV", "/opt/patroni-rs/venv"))
PYTHON_PATRONI = VENV / "bin" / "patroni"
PATRONICTL = VENV / "bin" / "patronictl"
TEST_USER = "patroni-rs-test"

SUPERUSER = ("postgres", "e2e-superuser")
REPLICATION = ("replicator", "e2e-replicator")
REWIND = ("rewind_user", "e2e-rewind")

# Timings written to the DCS at bootstrap: short, so that a failover test
# takes seconds. Patroni's validator requires ttl >= 20, loop_wait >= 1,
# retry_timeout >= 3 and loop_wait + 2 * retry_timeout <= ttl.
TTL = 20
LOOP_WAIT = 2
RETRY_TIMEOUT = 5

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A wait_for that ran out of time; the message says what was awaited."""


def wait_for(predicate: Callable[[], Optional[T]], timeout: float, what: str,
             interval: float = 0.25, check: Optional[Callable[[], None]] = None) -> T:
    """Poll `predicate` until it returns something truthy and return that.

    Exceptions from the predicate count as "not yet" (a node that is still
    starting refuses connections); the last one is quoted in the timeout
    message. `check` runs every round and may raise to fail early, for example
    when a daemon that should be running has exited.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        if check is not None:
            check()
        try:
            result = predicate()
            if result:
                return result
            last = result
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last result: {last!r}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (another process may take it
    before we do, which is unlikely enough on a test machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float = 3.0) -> int:
    """The status code of a GET, whatever it is."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def http_json(url: str, timeout: float = 3.0, data: Optional[bytes] = None) -> object:
    """GET (or POST `data`) and decode the JSON answer, whatever the status:
    Patroni answers 503 with a JSON body on health endpoints."""
    req = urllib.request.Request(url, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    return json.loads(body)


# --- the unprivileged user -------------------------------------------------

@dataclasses.dataclass
class RunAs:
    """The identity node processes run under (None fields: ourselves)."""
    uid: Optional[int]
    gid: Optional[int]
    home: pathlib.Path


def node_user() -> RunAs:
    """Ourselves when not root; otherwise `patroni-rs-test`, created like the
    Rust tests do (`useradd -m`) when missing, with a home directory it owns."""
    if os.geteuid() != 0:
        return RunAs(None, None, pathlib.Path(os.environ.get("HOME", "/")))
    try:
        pw = pwd.getpwnam(TEST_USER)
    except KeyError:
        result = subprocess.run(["useradd", "-m", "-s", "/bin/bash", TEST_USER],
                                capture_output=True, text=True)
        try:  # a parallel run may have created it meanwhile
            pw = pwd.getpwnam(TEST_USER)
        except KeyError:
            raise RuntimeError(f"could not create user {TEST_USER}: {result.stderr.strip()}") from None
    home = pathlib.Path(pw.pw_dir)
    if not home.is_dir():
        home.mkdir(parents=True, exist_ok=True)
    if home.stat().st_uid != pw.pw_uid:
        os.chown(home, pw.pw_uid, pw.pw_gid)
    return RunAs(pw.pw_uid, pw.pw_gid, home)


def make_reachable(path: pathlib.Path, stop_at: pathlib.Path) -> None:
    """Let other users traverse `path` and its parents up to `stop_at`
    (pytest creates its temporary root with mode 0700). Directories above
    `stop_at` are not ours to open: if one is closed, say so."""
    opening = True
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            if not opening:
                raise RuntimeError(f"{p} is not searchable by other users, so {TEST_USER} cannot reach {path}; "
                                   "use a --basetemp under a searchable directory")
            os.chmod(p, stat.S_IMODE(mode) | stat.S_IXOTH)
        if p == stop_at:
            opening = False


def chown_tree(path: pathlib.Path, run_as: RunAs) -> None:
    if run_as.uid is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, run_as.uid, run_as.gid)
        for name in files:
            os.chown(os.path.join(root, name), run_as.uid, run_as.gid)


# --- process helpers ---------------------------------------------------------

def process_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def descendants(pid: int) -> List[int]:
    """Every process below `pid`, found through /proc parent links."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def freeze_tree(pid: int) -> List[int]:
    """SIGSTOP `pid`, then every process below it (twice, for a child forked
    in between): a PostgreSQL frozen as a stalled VM would be. Returns the
    stopped pids for thaw()."""
    kill_quietly(pid, signal.SIGSTOP)
    stopped = [pid]
    for _ in range(2):
        for child in descendants(pid):
            if child not in stopped:
                kill_quietly(child, signal.SIGSTOP)
                stopped.append(child)
    return stopped


def thaw(pids: List[int]) -> None:
    """SIGCONT what freeze_tree() stopped, children first."""
    for pid in reversed(pids):
        kill_quietly(pid, signal.SIGCONT)


def kill_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def killpg_quietly(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM a server's process group, SIGKILL it after 10 s."""
    killpg_quietly(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        killpg_quietly(proc.pid, signal.SIGKILL)
        proc.wait(10)


def tail(path: pathlib.Path, lines: int = 60) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no such file)"
    return "\n".join(text.splitlines()[-lines:])


# --- etcd --------------------------------------------------------------------

class Etcd:
    """One etcd 3.4 member on loopback with the v2 API enabled, so that the
    same server serves both the `etcd3:` and the `etcd:` (v2) DCS."""

    def __init__(self, workdir: pathlib.Path):
        self.dir = workdir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.log = workdir / "etcd.log"
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        argv = [ETCD_BIN, "--name", "e2e", "--data-dir", str(self.dir / "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"e2e={peer}", "--initial-cluster-state", "new",
                "--enable-v2"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)

        def check() -> None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"etcd exited with {self.proc.returncode}:\n{tail(self.log)}")

        wait_for(lambda: http_json(self.url + "/health").get("health") == "true", 30, "etcd health",
                 check=check)

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_group(self.proc)
        self.proc = None

    def get(self, dcs: str, key: str) -> Optional[str]:
        """The value of `key` (an absolute Patroni key such as
        /service/e2e/leader) through the API that `dcs` uses, or None."""
        if dcs == "etcd3":
            body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
            answer = http_json(self.url + "/v3/kv/range", data=body)
            kvs = answer.get("kvs") or []
            return base64.b64decode(kvs[0]["value"]).decode() if kvs and "value" in kvs[0] else None
        answer = http_json(self.url + "/v2/keys" + key)
        return (answer.get("node") or {}).get("value")


# --- ZooKeeper -----------------------------------------------------------------

class ZooKeeper:
    """One standalone ZooKeeper on loopback, with the same interface as
    Etcd (start, stop, get, keys, log, client_port). Its tick is short so
    that session timeouts from 1 s to 120 s are accepted (Patroni asks for
    `ttl` seconds)."""

    def __init__(self, workdir: pathlib.Path):
        self.dir = workdir
        self.client_port = free_port()
        self.log = workdir / "zookeeper.log"
        self.proc: Optional[subprocess.Popen] = None
        self._client = None
        self._lock = threading.Lock()

    def start(self) -> None:
        data = self.dir / "zookeeper-data"
        data.mkdir(parents=True, exist_ok=True)
        cfg = self.dir / "zoo.cfg"
        cfg.write_text(f"tickTime=500\ndataDir={data}\nclientPort={self.client_port}\n"
                       "clientPortAddress=127.0.0.1\nminSessionTimeout=1000\nmaxSessionTimeout=120000\n"
                       "admin.enableServer=false\n4lw.commands.whitelist=ruok\n")
        argv = ["java", "-cp", f"{ZOOKEEPER_CONF_DIR}:{ZOOKEEPER_JAR}", f"-Dzookeeper.log.dir={self.dir}",
                "-Dzookeeper.root.logger=INFO,CONSOLE", "org.apache.zookeeper.server.ZooKeeperServerMain", str(cfg)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

        def check() -> None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"ZooKeeper exited with {self.proc.returncode}:\n{tail(self.log)}")

        def ruok() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.client_port), timeout=1) as s:
                    s.settimeout(1)
                    s.sendall(b"ruok")
                    return s.recv(16) == b"imok"
            except OSError:
                return False

        wait_for(ruok, 30, "ZooKeeper ruok", check=check)

    def client(self):
        """A kazoo client (started once, shared by the test threads)."""
        from kazoo.client import KazooClient
        with self._lock:
            if self._client is None:
                self._client = KazooClient(hosts=f"127.0.0.1:{self.client_port}", timeout=10)
                self._client.start(timeout=10)
            return self._client

    def stop(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.stop()
                    self._client.close()
                except Exception:  # noqa: BLE001 - the server may be gone already
                    pass
                self._client = None
        if self.proc is None:
            return
        stop_group(self.proc)
        self.proc = None

    def get(self, dcs: str, key: str) -> Optional[str]:
        """The data of the znode `key` (an absolute Patroni key), or None."""
        from kazoo.exceptions import NoNodeError
        try:
            data, _ = self.client().get(key)
        except NoNodeError:
            return None
        return data.decode("utf-8")

    def keys(self, prefix: str) -> Dict[str, str]:
        """Every znode under `prefix` (absolute, ending in '/') that has no
        children, with its data: Patroni's keys (parents are directories)."""
        from kazoo.exceptions import NoNodeError
        out: Dict[str, str] = {}
        client = self.client()

        def walk(path: str) -> None:
            try:
                children = client.get_children(path)
                if not children:
                    out[path] = client.get(path)[0].decode("utf-8")
                for child in children:
                    walk(f"{path}/{child}")
            except NoNodeError:
                pass
        walk(prefix.rstrip("/"))
        return out


def dcs_server(workdir: pathlib.Path, dcs: str) -> "Etcd | ZooKeeper":
    """The server process the `dcs` section talks to."""
    return ZooKeeper(workdir) if dcs == "zookeeper" else Etcd(workdir)


# --- Patroni nodes -------------------------------------------------------------

class Node:
    """One Patroni member: its config, directories and daemon process."""

    def __init__(self, cluster: "Cluster", index: int, tags: Dict[str, object]):
        self.cluster = cluster
        self.name = f"node{index}"
        self.dir = cluster.dir / self.name
        self.data_dir = self.dir / "data"
        self.log_dir = self.dir / "log"
        self.config_path = self.dir / "patroni.yml"
        self.stdout_path = self.dir / "stdout.log"
        self.rest_port = free_port()
        self.pg_port = free_port()
        self.tags = tags
        self.proc: Optional[subprocess.Popen] = None
        # The command that starts this node, without the config file; None:
        # the cluster's. Set by restart_with() to swap implementations.
        self.daemon: Optional[List[str]] = None
        self.starts = 0
        # False after a deliberate stop or kill: its exit is then no failure.
        self.expected_running = False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def config(self) -> dict:
        c = self.cluster
        return {
            "scope": c.scope,
            "namespace": c.namespace,
            "name": self.name,
            "restapi": {"listen": f"127.0.0.1:{self.rest_port}",
                        "connect_address": f"127.0.0.1:{self.rest_port}"},
            c.dcs: ({"hosts": [f"127.0.0.1:{c.etcd.client_port}"]} if c.dcs == "zookeeper"
                     else {"hosts": f"127.0.0.1:{c.etcd.client_port}"}),
            "log": {"level": "INFO", "dir": str(self.log_dir)},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY_TIMEOUT,
                    "maximum_lag_on_failover": 1048576,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {"wal_level": "replica", "hot_standby": "on", "max_wal_senders": 10,
                                       "max_replication_slots": 10, "wal_log_hints": "on"},
                    },
                    **c.dynamic,
                },
                "initdb": [{"encoding": "UTF8"}, "data-checksums"],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{self.pg_port}",
                "connect_address": f"127.0.0.1:{self.pg_port}",
                "data_dir": str(self.data_dir),
                "bin_dir": PG_BIN_DIR,
                "pgpass": str(self.dir / "pgpass"),
                "authentication": {
                    "superuser": {"username": SUPERUSER[0], "password": SUPERUSER[1]},
                    "replication": {"username": REPLICATION[0], "password": REPLICATION[1]},
                    "rewind": {"username": REWIND[0], "password": REWIND[1]},
                },
                "parameters": {"unix_socket_directories": str(self.dir),
                               "logging_collector": "on",
                               "log_directory": str(self.log_dir / "pg"),
                               "log_filename": "postgresql.log"},
                "pg_hba": ["local all all trust",
                           f"host replication {REPLICATION[0]} 127.0.0.1/32 scram-sha-256",
                           "host all all 127.0.0.1/32 scram-sha-256"],
            },
            "tags": dict(self.tags),
        }

    def prepare(self) -> None:
        for d in (self.dir, self.log_dir, self.log_dir / "pg"):
            d.mkdir(parents=True, exist_ok=True)
        # The socket path must fit in sun_path (107 bytes).
        if len(str(self.dir / f".s.PGSQL.{self.pg_port}")) > 100:
            raise RuntimeError(f"socket directory path too long for PostgreSQL: {self.dir}")
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        os.chmod(self.dir, 0o700)
        chown_tree(self.dir, self.cluster.run_as)

    def start(self) -> None:
        """Start the daemon in its own process group, as the node user."""
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        run_as = self.cluster.run_as
        # PATRONI_* variables would configure the daemon: keep the test
        # runner's (PATRONI_RS_BIN, PATRONI_E2E_IMPL...) away from it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATRONI")}
        env.update(HOME=str(run_as.home), LANG="C.UTF-8", LC_ALL="C.UTF-8",
                   PATH=f"{PG_BIN_DIR}:{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin")
        if run_as.uid is not None:
            env.update(USER=TEST_USER, LOGNAME=TEST_USER)
        argv = [*(self.daemon or self.cluster.daemon), str(self.config_path)]
        kwargs = {}
        if run_as.uid is not None:
            kwargs = dict(user=run_as.uid, group=run_as.gid, extra_groups=[])
        with open(self.stdout_path, "ab") as out:
            out.write(f"\n===== start #{self.starts + 1}: {' '.join(argv)} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.dir, env=env, start_new_session=True, **kwargs)
        self.starts += 1
        self.expected_running = True

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_running(self) -> None:
        """Raise if the daemon should be running and has exited."""
        if self.expected_running and self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name}: daemon exited with status {self.proc.returncode}\n"
                                 f"{self.log_tail(40)}")

    def postmaster_pid(self) -> Optional[int]:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            pid = int(first.strip())
        except (OSError, IndexError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def stop(self, timeout: float = 30) -> Optional[int]:
        """SIGTERM to the daemon alone, as a service manager stopping it
        would (Patroni's systemd unit uses KillMode=process): the daemon
        shuts its PostgreSQL down itself. SIGKILL to its whole process group
        if it is still there after `timeout`. Returns the exit status."""
        self.expected_running = False
        if self.proc is None:
            return None
        kill_quietly(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            killpg_quietly(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        return self.proc.returncode

    def restart_with(self, daemon: List[str], timeout: float = 60) -> None:
        """Swap the daemon on this node: stop the current one (SIGTERM, which
        shuts its PostgreSQL down too), wait until no postmaster is left on
        the data directory, then start `daemon` on the same data directory
        and config file. The rolling replacement an operator would do."""
        postmaster = self.postmaster_pid()
        status = self.stop(timeout=timeout) if self.running else None
        if status not in (0, None):
            print(f"{self.name}: daemon exited with status {status} on SIGTERM")
        wait_for(lambda: not (postmaster and process_alive(postmaster)) and self.postmaster_pid() is None,
                 timeout, f"{self.name}: PostgreSQL to stop after its daemon")
        self.daemon = list(daemon)
        self.start()

    def kill_host(self) -> None:
        """A lost host: SIGKILL the daemon's group, the postmaster and every
        process below it at once, so nothing gets to say goodbye."""
        self.expected_running = False
        postmaster = self.postmaster_pid()
        victims = descendants(postmaster) if postmaster else []
        if self.proc is not None:
            killpg_quietly(self.proc.pid, signal.SIGKILL)
        if postmaster:
            kill_quietly(postmaster, signal.SIGKILL)
            try:
                if os.getpgid(postmaster) == postmaster:
                    killpg_quietly(postmaster, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in victims:
            kill_quietly(pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)
        wait_for(lambda: not any(process_alive(p) for p in [postmaster or 0, *victims] if p), 10,
                 f"{self.name}: killed PostgreSQL processes to disappear")

    def cleanup(self) -> None:
        """Teardown: stop the daemon and make sure no postmaster survives it."""
        postmaster = self.postmaster_pid()
        self.stop(timeout=20)
        postmaster = self.postmaster_pid() or postmaster
        if postmaster and process_alive(postmaster):
            victims = descendants(postmaster)
            kill_quietly(postmaster, signal.SIGKILL)
            for pid in victims:
                kill_quietly(pid, signal.SIGKILL)

    # --- observation -------------------------------------------------------

    def patroni(self) -> dict:
        """GET /patroni on this node."""
        return http_json(self.api_url + "/patroni")

    def psql(self, sql: str, timeout: float = 10) -> str:
        """Run `sql` as the superuser over TCP; the unaligned, tuples-only output."""
        env = dict(os.environ, PGPASSWORD=SUPERUSER[1], PGCONNECT_TIMEOUT="3")
        dsn = f"host=127.0.0.1 port={self.pg_port} user={SUPERUSER[0]} dbname=postgres"
        result = subprocess.run([f"{PG_BIN_DIR}/psql", dsn, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                                capture_output=True, text=True, timeout=timeout, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"psql on {self.name} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def log_tail(self, lines: int = 60) -> str:
        parts = [f"--- {self.name} daemon output ({self.stdout_path.name}) ---", tail(self.stdout_path, lines)]
        for path in sorted(self.log_dir.glob("*.log")):
            parts += [f"--- {self.name} {path.name} ---", tail(path, lines)]
        pg = self.log_dir / "pg" / "postgresql.log"
        if pg.exists():
            parts += [f"--- {self.name} PostgreSQL log ---", tail(pg, lines // 2)]
        return "\n".join(parts)


class Cluster:
    """A DCS server (etcd, or ZooKeeper) and Patroni nodes sharing one scope."""

    def __init__(self, workdir: pathlib.Path, dcs: str, daemon: List[str], run_as: RunAs,
                 node_tags: List[Dict[str, object]], dynamic: Optional[Dict[str, object]] = None):
        assert dcs in ("etcd3", "etcd", "zookeeper"), dcs
        # Extra `bootstrap.dcs` settings (e.g. synchronous_mode).
        self.dynamic = dict(dynamic or {})
        self.dir = workdir
        self.dcs = dcs
        self.daemon = daemon
        self.run_as = run_as
        self.scope = f"e2e-{dcs}"
        self.namespace = "/service/"
        # The DCS server; named `etcd` for history, a ZooKeeper for "zookeeper".
        self.etcd = dcs_server(workdir, dcs)
        self.nodes = [Node(self, i, tags) for i, tags in enumerate(node_tags)]
        # Every leader name seen in the DCS, in order, recorded by a
        # background poller for the whole life of the cluster.
        self.leaders_seen: List[str] = []
        self.started_at = 0.0
        # The first scenario that failed on this cluster: the later ones
        # start from its wreckage, so they are skipped rather than run.
        self.failed_scenario: Optional[str] = None
        self._watching = threading.Event()
        self._watcher: Optional[threading.Thread] = None

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def start(self) -> None:
        self.etcd.start()
        for n in self.nodes:
            n.prepare()
        self.started_at = time.monotonic()
        self._watching.set()
        self._watcher = threading.Thread(target=self._watch_leaders, name=f"{self.scope}-leaders", daemon=True)
        self._watcher.start()
        for n in self.nodes:
            n.start()

    def _watch_leaders(self) -> None:
        while self._watching.is_set():
            try:
                leader = self.leader_key()
            except Exception:  # noqa: BLE001 - etcd briefly unreachable: try again
                leader = None
            if leader and (not self.leaders_seen or self.leaders_seen[-1] != leader):
                self.leaders_seen.append(leader)
            time.sleep(0.2)

    def cleanup(self) -> None:
        self._watching.clear()
        if self._watcher is not None:
            self._watcher.join(5)
        for n in self.nodes:
            try:
                n.cleanup()
            except Exception as exc:  # noqa: BLE001 - keep cleaning the others
                print(f"cleanup of {n.name} failed: {exc}")
        self.etcd.stop()

    def check_running(self) -> None:
        for n in self.nodes:
            n.check_running()

    def leader_key(self) -> Optional[str]:
        """The member name in the DCS leader key, or None."""
        return self.etcd.get(self.dcs, f"{self.namespace}{self.scope}/leader")

    def rest_cluster(self) -> dict:
        """GET /cluster from the first node that answers."""
        errors = []
        for n in self.nodes:
            if not n.running:
                continue
            try:
                return http_json(n.api_url + "/cluster")
            except Exception as exc:  # noqa: BLE001
                errors.append(f"{n.name}: {exc}")
        raise RuntimeError("no node answered GET /cluster: " + "; ".join(errors))

    def members(self) -> Dict[str, dict]:
        return {m["name"]: m for m in self.rest_cluster().get("members", [])}

    def healthy(self, leader: Optional[str], replicas: List[str]) -> Optional[str]:
        """The leader's name when /cluster shows exactly `leader` (any, if
        None) running as leader and every one of `replicas` streaming."""
        members = self.members()
        leaders = [m["name"] for m in members.values() if m.get("role") == "leader"]
        if len(leaders) != 1 or (leader is not None and leaders[0] != leader):
            return None
        if members[leaders[0]].get("state") != "running" or self.leader_key() != leaders[0]:
            return None
        for name in replicas:
            m = members.get(name, {})
            if m.get("role") not in ("replica", "sync_standby", "quorum_standby") or m.get("state") != "streaming":
                return None
        return leaders[0]

    def wait_healthy(self, timeout: float, leader: Optional[str] = None,
                     replicas: Optional[List[str]] = None) -> str:
        """Wait until one leader and all the other nodes stream from it."""
        def ready() -> Optional[str]:
            current = leader or self.leader_key()
            if current is None:
                return None
            others = replicas if replicas is not None else [n.name for n in self.nodes if n.name != current]
            return self.healthy(current, others)
        return wait_for(ready, timeout, f"a leader{'' if leader is None else ' ' + leader} with all replicas "
                        "streaming", check=self.check_running)

    def patronictl(self, *args: str, timeout: float = 30) -> str:
        """Python patronictl against the first node's config."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATRONI")}
        env["HOME"] = str(self.dir)
        result = subprocess.run([str(PATRONICTL), "-c", str(self.nodes[0].config_path), *args],
                                capture_output=True, text=True, timeout=timeout, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"patronictl {' '.join(args)} failed ({result.returncode}): "
                               f"{result.stdout}{result.stderr}")
        return result.stdout

    def log_tails(self, lines: int = 60) -> str:
        parts = [n.log_tail(lines) for n in self.nodes]
        parts.append(f"--- {'zookeeper' if self.dcs == 'zookeeper' else 'etcd'} ---\n{tail(self.etcd.log, 15)}")
        return "\n".join(parts)


# --- additions for the patronictl and HAProxy tests ---------------------------

def etcd_keys(etcd: "Etcd | ZooKeeper", dcs: str, prefix: str) -> Dict[str, str]:
    """Every key under `prefix` (absolute, ending in '/') with its value,
    read through the API that `dcs` uses."""
    if isinstance(etcd, ZooKeeper):
        return etcd.keys(prefix)
    if dcs == "etcd3":
        start = prefix.encode()
        end = start[:-1] + bytes([start[-1] + 1])
        body = json.dumps({"key": base64.b64encode(start).decode(),
                           "range_end": base64.b64encode(end).decode()}).encode()
        answer = http_json(etcd.url + "/v3/kv/range", data=body)
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
                for kv in answer.get("kvs") or []}
    answer = http_json(etcd.url + "/v2/keys" + prefix.rstrip("/") + "?recursive=true")
    out: Dict[str, str] = {}

    def walk(node: dict) -> None:
        if node.get("dir"):
            for child in node.get("nodes") or []:
                walk(child)
        elif "key" in node:
            out[node["key"]] = node.get("value", "")
    walk(answer.get("node") or {})
    return out


def cluster_key(cluster: Cluster, name: str) -> Optional[str]:
    """The raw value of one of the cluster's keys (`config`, `failover`,
    `members/node0`...), or None when absent."""
    return cluster.etcd.get(cluster.dcs, f"{cluster.namespace}{cluster.scope}/{name}")


def cluster_json(cluster: Cluster, name: str) -> Optional[object]:
    """The JSON value of one of the cluster's keys, or None when absent
    (or empty, as Patroni leaves /failover once it is consumed)."""
    raw = cluster_key(cluster, name)
    return json.loads(raw) if raw else None


def patronictl_run(cluster: Cluster, *args: str, stdin: Optional[str] = None, timeout: float = 60,
                   extra_env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Python patronictl against the first node's config, whatever its exit
    status (the caller checks it), with `stdin` answering its prompts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATRONI")}
    env["HOME"] = str(cluster.dir)
    env["COLUMNS"] = "250"
    env.update(extra_env or {})
    return subprocess.run([str(PATRONICTL), "-c", str(cluster.nodes[0].config_path), *args],
                          input=stdin if stdin is not None else "", capture_output=True, text=True,
                          timeout=timeout, env=env)
