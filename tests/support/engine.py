"""A real single-node search engine on 127.0.0.1, built by Maven and run without Docker:
OpenSearch 2.19 (the default) or Elasticsearch 8.7.1, each from its Maven Central distribution."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE_DIR = ROOT / "engine"
# The launcher refuses to run as root, and CI runs as root: then the node runs as this user.
ENGINE_USER = "eventtrail-engine"
HEAP = "512m"
RUN_DIR_PREFIX = "eventtrail-engine-"
START_TIMEOUT = 180.0
BUILD_TIMEOUT = 30 * 60.0


class EngineError(RuntimeError):
    """The engine could not be built or started; the message carries the reason and a log tail."""


@dataclass(frozen=True)
class Flavour:
    """What differs between the engines: where Maven builds each, how its launcher is told
    where its config, temporary files and Java are, and the settings only one of them knows."""

    name: str
    directory: Path  # holds pom.xml; Maven builds into its target/
    env: str  # the launcher's variables: {env}_PATH_CONF, {env}_TMPDIR, {env}_JAVA_HOME
    settings: str  # extra lines of the node's yml

    @property
    def pom(self) -> Path:
        return self.directory / "pom.xml"

    @property
    def label(self) -> str:
        return f"{'OpenSearch' if self.name == 'opensearch' else 'Elasticsearch'} {self.version()}"

    def version(self) -> str:
        tag = re.escape(f"{self.name}.version")
        match = re.search(rf"<{tag}>([^<]+)</{tag}>", self.pom.read_text())
        if not match:
            raise EngineError(f"no <{self.name}.version> in {self.pom}")
        return match.group(1).strip()

    def home(self) -> Path:
        return self.directory / "target" / f"{self.name}-{self.version()}"


OPENSEARCH = Flavour("opensearch", ENGINE_DIR, "OPENSEARCH",
                     # One node holds no replica: indices made without our template stay green.
                     "cluster.default_number_of_replicas: 0\n")
# Its x-pack-security would make HTTP TLS with a password: off, like OpenSearch without its
# security plugin. The tests' reset deletes "*",
# which 8.x refuses unless the name check is off.
ELASTICSEARCH = Flavour("elasticsearch", ENGINE_DIR / "elasticsearch", "ES",
                        "xpack.security.enabled: false\n"
                        "action.destructive_requires_name: false\n")
FLAVOURS = {f.name: f for f in (OPENSEARCH, ELASTICSEARCH)}


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _inputs_digest(flavour: Flavour) -> str:
    """A digest of what Maven builds from, so an edited pom or descriptor triggers a rebuild."""
    digest = hashlib.sha256()
    inputs = [flavour.pom, *(p for p in (flavour.directory / "modules").rglob("*") if p.is_file())]
    for path in sorted(inputs):
        digest.update(str(path.relative_to(ENGINE_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build(quiet: bool = True, flavour: Flavour = OPENSEARCH) -> Path:
    """Have Maven put the engine together in its target/ unless it is there; return its home."""
    home = flavour.home()
    launcher = home / "bin" / flavour.name
    target = flavour.directory / "target"
    stamp = target / f".built-{_inputs_digest(flavour)}"
    if stamp.exists() and launcher.exists():
        return home
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EngineError("Maven (mvn) is not on PATH: install the Debian package 'maven'")
    target.mkdir(exist_ok=True)
    # Two test sessions in one checkout must not build over each other.
    with open(target / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and launcher.exists():
            return home
        for old in target.iterdir():
            if old.is_dir():
                shutil.rmtree(old)
            elif old.name != ".build.lock":
                old.unlink()
        cmd = [mvn, "-B", "-f", str(flavour.pom), "package"]
        if quiet:
            cmd.insert(2, "-q")
        try:
            done = subprocess.run(
                cmd, capture_output=quiet, text=True, timeout=BUILD_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"{' '.join(cmd)} took longer than {BUILD_TIMEOUT:.0f}s") from exc
        if done.returncode != 0 or not launcher.exists():
            output = _tail((done.stdout or "") + (done.stderr or ""))
            raise EngineError(f"{' '.join(cmd)} exited {done.returncode}:\n{output}")
        stamp.touch()
    return home


def java_home(flavour: Flavour = OPENSEARCH) -> Path:
    for var in (f"{flavour.env}_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            return Path(os.environ[var])
    java = shutil.which("java")
    if java is None:
        raise EngineError("no Java: set JAVA_HOME or install openjdk-17-jdk-headless")
    return Path(os.path.realpath(java)).parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _engine_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(ENGINE_USER)
    except KeyError:
        pass
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            ENGINE_USER,
        ],
        capture_output=True,
        check=False,
    )
    try:
        return pwd.getpwnam(ENGINE_USER)
    except KeyError as exc:
        raise EngineError(f"running as root and could not create the user {ENGINE_USER}") from exc


def _remove_stale_run_dirs() -> None:
    """Remove the data directories of sessions that died without stopping their node."""
    for run in Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*"):
        try:
            owner = int((run / "owner.pid").read_text())
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(run, ignore_errors=True)
        except (OSError, ValueError):
            continue


def _jvm_options(source: str, run_dir: Path) -> str:
    """The distribution's jvm.options, with its home-relative paths moved into ``run_dir``.

    The launcher runs from the distribution's home, which the engine user may not write to.
    The heap lines go too: ours come from jvm.options.d.
    """
    out = []
    for line in source.splitlines():
        if re.match(r"^(\d+-?\d*:)?-Xm[sx]", line):
            continue
        line = line.replace("file=logs/", f"file={run_dir}/logs/")
        line = line.replace("ErrorFile=logs/", f"ErrorFile={run_dir}/logs/")
        line = line.replace("HeapDumpPath=data", f"HeapDumpPath={run_dir}/data")
        out.append(line)
    return "\n".join(out) + "\n"


class Engine:
    """One node: ``start()`` returns once the cluster is yellow or green, ``stop()`` leaves nothing."""

    def __init__(self, port: int | None = None, heap: str = HEAP,
                 flavour: Flavour = OPENSEARCH) -> None:
        self.flavour = flavour
        self.port = port
        self.chosen_port = port is None
        self.heap = heap
        self.run_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.started_in: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def console_log(self) -> Path | None:
        return self.run_dir / "logs" / "console.log" if self.run_dir else None

    def log_tail(self, lines: int = 60) -> str:
        log = self.console_log
        if log is None or not log.exists():
            return "(no engine log)"
        with open(log, errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))

    def start(self, timeout: float = START_TIMEOUT) -> Engine:
        began = time.monotonic()
        home = build(flavour=self.flavour)
        for attempt in (1, 2):
            try:
                self._launch(home)
                self._wait_ready(began + timeout)
                break
            except BaseException as exc:
                tail = self.log_tail()
                self.stop()
                if not isinstance(exc, EngineError):
                    raise
                # Another program may take a free port between our check and the node's bind.
                if attempt == 1 and self.chosen_port and "BindException" in tail:
                    self.port = None
                    continue
                raise EngineError(f"{exc}\n--- engine log tail ---\n{tail}") from exc
        self.started_in = time.monotonic() - began
        return self

    def _launch(self, home: Path) -> None:
        _remove_stale_run_dirs()
        self.run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
        run = self.run_dir
        (run / "owner.pid").write_text(str(os.getpid()))
        for sub in ("config/jvm.options.d", "data", "logs", "tmp"):
            (run / sub).mkdir(parents=True)
        self.port = self.port or free_port()
        conf = run / "config"
        shutil.copy(home / "config" / "log4j2.properties", conf)
        (conf / "jvm.options").write_text(
            _jvm_options((home / "config" / "jvm.options").read_text(), run)
        )
        (conf / "jvm.options.d" / "eventtrail.options").write_text(
            # No /tmp/hsperfdata_* files from the node's JVM.
            f"-Xms{self.heap}\n-Xmx{self.heap}\n-XX:-UsePerfData\n"
        )
        flavour = self.flavour
        (conf / f"{flavour.name}.yml").write_text(
            "cluster.name: eventtrail-engine\n"
            "node.name: eventtrail-engine\n"
            "discovery.type: single-node\n"
            "network.host: 127.0.0.1\n"
            f"http.port: {self.port}\n"
            f"transport.port: {free_port()}\n"
            f"path.data: {run / 'data'}\n"
            f"path.logs: {run / 'logs'}\n"
            # A nearly full developer disk must not stop shards from being allocated.
            "cluster.routing.allocation.disk.threshold_enabled: false\n"
            + flavour.settings
        )
        # setpriv's parent-death signal stops the node if this Python process dies unannounced.
        command = ["setpriv", "--pdeathsig", "TERM"]
        if os.geteuid() == 0:
            user = _engine_user()
            shutil.chown(run, user.pw_uid, user.pw_gid)
            for path in run.rglob("*"):
                os.chown(path, user.pw_uid, user.pw_gid)
            if not self._readable_by(user, home, flavour):
                # A checkout under /root is closed to other users: run a private copy.
                home = Path(shutil.copytree(home, run / "home", symlinks=True))
            command += [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
        command += ["--", str(home / "bin" / flavour.name)]
        env = dict(os.environ)
        env.update({
            "JAVA_HOME": str(java_home(flavour)),
            f"{flavour.env}_JAVA_HOME": str(java_home(flavour)),
            f"{flavour.env}_PATH_CONF": str(conf),
            f"{flavour.env}_TMPDIR": str(run / "tmp"),
        })
        env.pop(f"{flavour.env}_JAVA_OPTS", None)
        with open(run / "logs" / "console.log", "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=run,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        atexit.register(self.stop)

    @staticmethod
    def _readable_by(user: pwd.struct_passwd, home: Path, flavour: Flavour) -> bool:
        probe = subprocess.run(
            [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--init-groups",
                "--",
                "test",
                "-x",
                str(home / "bin" / flavour.name),
                "-a",
                "-r",
                str(home / "lib" / f"{flavour.name}-{flavour.version()}.jar"),
            ],
            capture_output=True,
            check=False,
        )
        return probe.returncode == 0

    def _wait_ready(self, deadline: float) -> None:
        health = f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=1s"
        while True:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                raise EngineError(f"the engine exited with code {code} before it was ready")
            try:
                with urllib.request.urlopen(health, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise EngineError(f"the engine was not ready at {self.url} in time")
            time.sleep(0.25)

    def rss_bytes(self) -> int:
        """Resident memory of the node's processes (the JVM, and the launcher while it lives)."""
        if self.process is None:
            return 0
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                group = int(stat.read_text().rsplit(")", 1)[1].split()[2])
                status = (stat.parent / "status").read_text() if group == self.process.pid else ""
            except (OSError, IndexError, ValueError):
                continue
            rss = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(rss.group(1)) * 1024 if rss else 0
        return total

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the whole process group, then remove the data directory."""
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)
            # Stragglers in the group (a launcher child) go too, even after a clean exit.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        run, self.run_dir = self.run_dir, None
        if run is not None:
            shutil.rmtree(run, ignore_errors=True)
            # The launcher's own short JVM leaves its perf-data folder; rmdir spares a busy one.
            with contextlib.suppress(OSError):
                os.rmdir(Path(tempfile.gettempdir()) / f"hsperfdata_{ENGINE_USER}")
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.engine",
        description="Run the local search engine in the foreground until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=9200, help="HTTP port (0: any free one)")
    parser.add_argument("--heap", default=HEAP, help="fixed JVM heap, e.g. 512m or 1g")
    parser.add_argument("--engine", choices=sorted(FLAVOURS), default=OPENSEARCH.name,
                        help="which engine (default: opensearch)")
    args = parser.parse_args(argv)
    flavour = FLAVOURS[args.engine]
    # A polite kill stops the node and removes its data just as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"building (if needed) with Maven: {flavour.pom}", flush=True)
    build(quiet=False, flavour=flavour)
    engine = Engine(port=args.port or None, heap=args.heap, flavour=flavour)
    try:
        engine.start()
        print(
            f"{flavour.label} ready at {engine.url} in "
            f"{engine.started_in:.1f}s (log: {engine.console_log}); Ctrl-C stops it",
            flush=True,
        )
        assert engine.process is not None
        code = engine.process.wait()
        print(f"the engine exited with code {code}\n{engine.log_tail()}", file=sys.stderr)
        return 1
    except EngineError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping", flush=True)
        return 0
    finally:
        engine.stop()


if __name__ == "__main__":
    sys.exit(main())
