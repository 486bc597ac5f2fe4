"""The embedded default stack: a local nats-server, both services on SQLite and one CPU worker.

Used by `make up` / `make down` (background, state in ``{data_dir}/stack.json``), by `make demo` and by the
e2e tests (``Stack`` as a context manager, which stops everything it started, also on Ctrl-C).

The reliability tests also ``kill``, ``start_process`` and ``restart`` one named process (nats-server comes
back on the same port and store directory; a service on the same ports) and ``add_worker`` for a second one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.auth import issue_worker_token
from common.nats_launcher import free_port, start_local_nats
from common.tls import ClientTLS, sync_channel

ROOT = Path(__file__).resolve().parents[1]
# The signing key never reaches a worker: it gets a worker token (RAVEN_WORKER_TOKEN_FILE) instead.
SIGNING_KEYS = ("RAVEN_JWT_SECRET", "RAVEN_JWT_PRIVATE_KEY")


@dataclass
class Stack:
    data_dir: Path
    jwt_secret: str = "raven-dev-secret"
    worker: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    # Only the two servers get these (e.g. RAVEN_TLS_CERT_FILE / _KEY_FILE: workers never hold a server key).
    server_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    nats_url: str = ""
    specs: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RAVEN_DATA_DIR": str(self.data_dir),
            "RAVEN_NATS_URL": self.nats_url,
            "RAVEN_JWT_SECRET": self.jwt_secret,
            "RAVEN_TRAINING_RUN_ADDR": f"127.0.0.1:{self.ports['training_run']}",
            "RAVEN_TRAINED_MODEL_ADDR": f"127.0.0.1:{self.ports['trained_model']}",
            "RAVEN_DEVICE": "cpu",
            "RAVEN_SHUTDOWN_GRACE_SECONDS": "3",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def client_tls(self) -> ClientTLS | None:
        """How a client reaches the servers: the RAVEN_TLS_* client settings this stack hands out."""
        env = self.extra_env
        if not env.get("RAVEN_TLS_CA_FILE"):
            return None
        return ClientTLS(
            env["RAVEN_TLS_CA_FILE"],
            env.get("RAVEN_TLS_CLIENT_CERT_FILE", ""),
            env.get("RAVEN_TLS_CLIENT_KEY_FILE", ""),
            env.get("RAVEN_TLS_SERVER_NAME", ""),
        )

    def start(self) -> Stack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        self._start_nats()
        self.ports = {"training_run": free_port(), "trained_model": free_port()}
        self.ports.update(metrics_training_run=free_port(), metrics_trained_model=free_port())
        for service in ("training_run", "trained_model"):
            self._spawn(
                service,
                ["-m", f"services.{service}"],
                {
                    "RAVEN_GRPC_PORT": str(self.ports[service]),
                    "RAVEN_METRICS_PORT": str(self.ports[f"metrics_{service}"]),
                    **self.server_env,
                },
            )
        for service in ("training_run", "trained_model"):
            wait_serving(f"127.0.0.1:{self.ports[service]}", timeout=120, tls=self.client_tls())
        self.rotate_worker_token()
        if self.worker:
            self._spawn(
                "trainer_worker", ["-m", "services.trainer_worker"], {"RAVEN_WORKER_ID": "demo-worker-1"}
            )
        return self

    @property
    def worker_token_file(self) -> Path:
        return self.data_dir / "worker.token"

    def rotate_worker_token(self, ttl_seconds: float = 7 * 24 * 3600) -> str:
        """What an operator does with `ravenctl token --worker`: a new worker token in the workers' file.

        Running workers pick the new one up at their next call (rotation without a restart).
        """
        token = issue_worker_token("embedded-workers", secret=self.jwt_secret, ttl_seconds=ttl_seconds)
        staged = self.worker_token_file.with_suffix(".new")
        staged.write_text(token)
        staged.chmod(0o600)
        staged.replace(self.worker_token_file)  # atomic: a worker never reads half a token
        return token

    def _start_nats(self, port: int = 0) -> None:
        logs = self.data_dir / "logs"
        nats = start_local_nats(self.data_dir / "nats", port=port, log_file=logs / "nats-server.log")
        self.processes["nats"] = nats.process
        self.nats_url = nats.url

    def add_worker(self, worker_id: str, **env: str) -> str:
        """Starts one more trainer worker (own id, same settings); returns its process name."""
        name = f"trainer_worker-{worker_id}"
        self._spawn(name, ["-m", "services.trainer_worker"], {"RAVEN_WORKER_ID": worker_id, **env})
        return name

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30.0) -> None:
        """Sends ``sig`` to the named process (SIGKILL: its group, a worker's training child too), waits."""
        process = self.processes[name]
        if process.poll() is None:
            self._signal(name, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(name, signal.SIGKILL)
            process.wait()

    def _signal(self, name: str, sig: int) -> None:
        process = self.processes[name]
        if name == "nats" or sig != signal.SIGKILL:  # SIGKILL takes a worker's training child along
            process.send_signal(sig)
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass

    def start_process(self, name: str, wait: bool = True) -> None:
        """Starts a stopped process again as it was first started (same ports, store dir, settings)."""
        process = self.processes.get(name)
        if process is not None and process.poll() is None:
            raise RuntimeError(f"{name} is still running")
        if name == "nats":
            self._start_nats(int(self.nats_url.rsplit(":", 1)[1]))
            return
        args, env = self.specs[name]
        self._spawn(name, args, env)
        if wait and name in ("training_run", "trained_model"):
            wait_serving(f"127.0.0.1:{self.ports[name]}", timeout=120, tls=self.client_tls())

    def restart(self, name: str, sig: int = signal.SIGTERM, wait: bool = True) -> None:
        self.kill(name, sig)
        self.start_process(name, wait)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.specs[name] = (args, env)
        environment = {**self.env(), **env}
        if name.startswith("trainer_worker"):
            environment = {k: v for k, v in environment.items() if k not in SIGNING_KEYS}
            environment["RAVEN_WORKER_TOKEN_FILE"] = str(self.worker_token_file)
            environment.pop("RAVEN_WORKER_TOKEN", None)
        with open(self.data_dir / "logs" / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            self.processes[name] = subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, timeout: float = 20.0) -> None:
        workers = [n for n in self.processes if n.startswith("trainer_worker")]
        for name in (*workers, "training_run", "trained_model", "nats"):
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def state(self) -> dict[str, object]:
        return {
            "pids": {n: p.pid for n, p in self.processes.items()},
            "ports": self.ports,
            "nats_url": self.nats_url,
            "data_dir": str(self.data_dir),
        }


def wait_serving(address: str, timeout: float, tls: ClientTLS | None = None) -> None:
    deadline = time.monotonic() + timeout
    with sync_channel(address, tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} not SERVING after {timeout}s")
            time.sleep(0.2)


def _up(data_dir: Path) -> int:
    state_file = data_dir / "stack.json"
    if state_file.exists():
        print(f"stack already up (see {state_file}); run `make down` first")
        return 1
    stack = Stack(data_dir).start()
    state_file.write_text(json.dumps(stack.state(), indent=2))
    env = stack.env()
    print("stack up:")
    print(f"  export RAVEN_TRAINING_RUN_ADDR={env['RAVEN_TRAINING_RUN_ADDR']}")
    print(f"  export RAVEN_TRAINED_MODEL_ADDR={env['RAVEN_TRAINED_MODEL_ADDR']}")
    print(f"  export RAVEN_JWT_SECRET={env['RAVEN_JWT_SECRET']}")
    print(f"  worker token (the worker's only credential) in {stack.worker_token_file}")
    print(f"  logs in {data_dir / 'logs'}; `make down` stops it")
    return 0


def _down(data_dir: Path) -> int:
    state_file = data_dir / "stack.json"
    if not state_file.exists():
        print("stack is not up")
        return 0
    pids = json.loads(state_file.read_text())["pids"]
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 20
    for pid in pids.values():
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    state_file.unlink()
    print("stack down")
    return 0


def main(argv: list[str]) -> int:
    data_dir = Path(os.environ.get("RAVEN_DATA_DIR", ROOT / "var")).resolve()
    command = argv[0] if argv else "up"
    if command == "up":
        return _up(data_dir)
    if command == "down":
        return _down(data_dir)
    print("usage: python -m scripts.stack up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
