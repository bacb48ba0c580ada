"""The production deployment on one machine, for tests and benchmarks.

The shipped `deploy/dagster.yaml` (PostgreSQL storage from `DAGSTER_PG_*`, the run queue, pools)
in a fresh DAGSTER_HOME pointed at a given database, a gRPC code server started the way the
Dockerfile starts it, and `dagster-daemon run` with a workspace shaped like
`deploy/workspace.yaml`. Everything binds to 127.0.0.1; both processes are stopped (SIGTERM, then
SIGKILL) when the block ends. Only Dagster's command line is used to talk to them.

For `SKILLMEAT_EXECUTOR=celery`: a RabbitMQ virtual host of its own (`rabbitmq_vhost`), the
settings of that mode (`celery_settings`), and `dagster-celery` workers started with the standard
command and `deploy/celery.yaml` (`celery_worker`), each in a process group of its own so a test
can kill one whole worker as a lost machine would lose it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import URL

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = PROJECT_ROOT / "deploy"  # dagster.yaml and workspace.yaml of the production images
BIN = Path(sys.executable).parent
STARTUP_S = 90.0  # a code server on a busy 2-core machine
STOP_S = 30.0
DEFINITIONS_MODULE = "skillmeat_pipeline.definitions"
RABBITMQ_HOST = "127.0.0.1:5672"  # the machine's RabbitMQ, guest/guest


@dataclass
class LocalDeployment:
    home: Path  # DAGSTER_HOME, holding the instance's dagster.yaml
    workspace: Path
    logs: Path  # code-server.log and daemon.log
    code_server: subprocess.Popen[bytes]
    daemon: subprocess.Popen[bytes]

    def instance(self):  # -> dg.DagsterInstance; dagster is imported only when asked for
        """The same instance, in this process (close it with `.dispose()`)."""
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.home))

    def log_tails(self, chars: int = 4000) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}"
            for log in sorted(self.logs.iterdir())
        )

    def launch(
        self,
        job: str,
        *,
        tags: Mapping[str, str] | None = None,
        run_config: Mapping[str, Any] | None = None,
    ) -> str:
        """`dagster job launch` against the workspace: the run goes to the instance's queue.

        Returns the run's id (chosen here and passed with `--run-id`).
        """
        run_id = str(uuid.uuid4())
        command = [
            *(str(BIN / "dagster"), "job", "launch", "-w", str(self.workspace)),
            *("-j", job, "--run-id", run_id),
        ]
        if tags:
            command += ["--tags", json.dumps(dict(tags))]
        if run_config:
            command += ["--config-json", json.dumps(dict(run_config))]
        done = subprocess.run(
            command, cwd=self.logs.parent, capture_output=True, text=True, timeout=STARTUP_S
        )
        if done.returncode != 0:
            raise RuntimeError(f"dagster job launch {job} failed:\n{done.stdout}\n{done.stderr}")
        return run_id

    def stop_sensor(self, name: str) -> None:
        """`dagster sensor stop`: the daemon ticks it no more (it may be running by default)."""
        command = [str(BIN / "dagster"), "sensor", "stop", "-w", str(self.workspace), name]
        for _attempt in range(2):
            done = subprocess.run(
                command, cwd=self.logs.parent, capture_output=True, text=True, timeout=STARTUP_S
            )
            # the daemon stored the sensor's state between the command's read and its write
            if "is already present in storage" not in done.stderr + done.stdout:
                break
        if done.returncode != 0:
            raise RuntimeError(f"dagster sensor stop {name} failed:\n{done.stdout}\n{done.stderr}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout_s: float = STOP_S) -> None:
    """SIGTERM, then SIGKILL if it does not end in time; always reaped."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def postgres_environment(url: URL) -> dict[str, str]:
    """The `DAGSTER_PG_*` variables dagster.yaml reads, for the database at `url`."""
    return {
        "DAGSTER_PG_USERNAME": url.username or "",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_DB": url.database or "",
    }


@contextlib.contextmanager
def local_deployment(
    database: URL,
    work: Path,
    settings: Mapping[str, str],
    *,
    edit_instance: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[LocalDeployment]:
    """The production instance on `database`, a code server and the daemon, under `work`.

    `settings` (the pipeline's own variables) and the `DAGSTER_PG_*` ones are set in this
    process's environment too while the block runs, so `LocalDeployment.instance()` resolves
    the same dagster.yaml. `edit_instance` may change the parsed dagster.yaml before it is written
    (a benchmark's run limit, say).
    """
    home = work / "dagster_home"
    logs = work / "logs"
    home.mkdir(parents=True)
    logs.mkdir()
    if edit_instance is None:
        shutil.copy(DEPLOY_DIR / "dagster.yaml", home / "dagster.yaml")
    else:
        config = yaml.safe_load((DEPLOY_DIR / "dagster.yaml").read_text())
        edit_instance(config)
        (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    workspace = yaml.safe_load((DEPLOY_DIR / "workspace.yaml").read_text())
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=port)
    workspace_path = work / "workspace.yaml"
    workspace_path.write_text(yaml.safe_dump(workspace))
    added = {"DAGSTER_HOME": str(home), **postgres_environment(database), **settings}
    env = {**os.environ, **added}
    saved = {name: os.environ.get(name) for name in added}
    os.environ.update(added)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with (logs / "code-server.log").open("wb") as log:
            code_server = subprocess.Popen(
                [
                    *(str(BIN / "dagster"), "code-server", "start"),
                    *("-h", "127.0.0.1", "-p", str(port), "-m", DEFINITIONS_MODULE),
                ],
                env=env,
                cwd=work,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(code_server)
        wait_for_code_server(code_server, port)
        with (logs / "daemon.log").open("wb") as log:
            daemon = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", str(workspace_path)],
                env=env,
                cwd=work,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(daemon)
        yield LocalDeployment(home, workspace_path, logs, code_server, daemon)
    finally:
        for process in reversed(processes):
            stop_process(process)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def wait_for_code_server(process: subprocess.Popen, port: int) -> None:
    """Until the gRPC server answers a health check; raises if it exits or takes over STARTUP_S.

    `dagster api grpc-health-check` is the command Dagster's Helm chart probes code servers with.
    """
    command = [
        *(str(BIN / "dagster"), "api", "grpc-health-check"),
        *("-p", str(port), "-h", "127.0.0.1"),
    ]
    deadline = threading.Event()
    timer = threading.Timer(STARTUP_S, deadline.set)
    timer.start()
    try:
        while not deadline.is_set():
            if process.poll() is not None:
                raise RuntimeError(f"the code server exited with {process.returncode}")
            if subprocess.run(command, capture_output=True, timeout=STARTUP_S).returncode == 0:
                return
            with contextlib.suppress(subprocess.TimeoutExpired):  # a pause that sees an exit
                process.wait(timeout=0.5)
        raise RuntimeError(f"the code server did not answer within {STARTUP_S} s")
    finally:
        timer.cancel()


# -- Celery workers -------------------------------------------------------------------------------


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A new RabbitMQ virtual host, deleted on exit; yields its broker URL.

    Queues are per virtual host, so tasks of another test run or deployment never reach these
    workers. `rabbitmqctl` talks to the local node (as root, as CI runs).
    """
    name = f"skillmeat-test-{uuid.uuid4().hex[:12]}"
    rabbitmqctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([rabbitmqctl, "add_vhost", name], check=True, capture_output=True, timeout=60)
    try:
        subprocess.run(
            [rabbitmqctl, "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield f"pyamqp://guest:guest@{RABBITMQ_HOST}/{name}"
    finally:
        subprocess.run([rabbitmqctl, "delete_vhost", name], capture_output=True, timeout=60)


def celery_settings(broker_url: str, step_storage: Path) -> dict[str, str]:
    """The variables of `SKILLMEAT_EXECUTOR=celery`, for the code server and every worker."""
    from skillmeat_pipeline.definitions import (
        CELERY_BACKEND_ENV,
        CELERY_BROKER_ENV,
        EXECUTOR_ENV,
        STEP_STORAGE_ENV,
    )

    step_storage.mkdir(parents=True, exist_ok=True)
    return {
        EXECUTOR_ENV: "celery",
        CELERY_BROKER_ENV: broker_url,
        CELERY_BACKEND_ENV: "rpc://",
        STEP_STORAGE_ENV: str(step_storage),
    }


@dataclass
class CeleryWorker:
    name: str  # the node is name@<this host>, as the Celery worker events record it
    process: subprocess.Popen[bytes]  # leader of its own process group
    log: Path
    tmp: Path  # its TMPDIR: where its clones go, as on a machine of its own

    @property
    def node(self) -> str:
        return f"{self.name}@{socket.gethostname()}"

    def kill(self) -> None:
        """SIGKILL to the whole worker (the CLI, Celery's main process, its pool, its clones)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """A warm shutdown (SIGTERM to the group), SIGKILL if it does not end in time."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                self.kill()


def start_celery_worker(
    name: str,
    queues: Sequence[str],
    work: Path,
    *,
    tmp: Path | None = None,
    concurrency: int = 1,
) -> CeleryWorker:
    """`dagster-celery worker start -A dagster_celery.app -y deploy/celery.yaml -q ...`.

    The environment is this process's (inside `local_deployment`: DAGSTER_HOME, the PostgreSQL
    and the pipeline's variables), with TMPDIR `tmp` (default: a new folder under `work`), where
    its log goes too. Returns once Celery says the worker is ready.
    """
    tmp = tmp or work / f"tmp-{name}"
    work.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    log = work / f"worker-{name}.log"
    env = {**os.environ, "TMPDIR": str(tmp), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    command = [
        *(str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app"),
        *("-y", str(DEPLOY_DIR / "celery.yaml"), "-n", name),
        # one -q: dagster-celery passes each as a -Q to Celery 5, where the last one wins
        *("-q", ",".join(queues)),
        *("--", f"--concurrency={concurrency}"),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = CeleryWorker(name, process, log, tmp)
    try:
        wait_for_log_line(process, log, f"{worker.node} ready.")
    except BaseException:
        worker.stop()
        raise
    return worker


@contextlib.contextmanager
def celery_workers(
    names: Sequence[str], queues: Sequence[str], work: Path, *, concurrency: int = 1
) -> Iterator[dict[str, CeleryWorker]]:
    """Workers `names`, each on `queues`, stopped on exit (those still running)."""
    workers: dict[str, CeleryWorker] = {}
    try:
        for name in names:
            workers[name] = start_celery_worker(name, queues, work, concurrency=concurrency)
        yield workers
    finally:
        for worker in workers.values():
            worker.stop()


def wait_for_log_line(process: subprocess.Popen, log: Path, line: str) -> None:
    """Until `log` contains `line`; raises if the process exits or it takes over STARTUP_S."""
    deadline = time.monotonic() + STARTUP_S
    while line not in log.read_text(errors="replace"):
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args[0]} exited with {process.returncode}:\n"
                f"{log.read_text(errors='replace')[-4000:]}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {line!r} in {log} within {STARTUP_S} s")
        with contextlib.suppress(subprocess.TimeoutExpired):  # a pause that sees an exit
            process.wait(timeout=0.2)
