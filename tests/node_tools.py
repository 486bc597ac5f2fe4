"""The repo's Node tooling for tests: buf (tooling/) and the TypeScript client (clients/typescript/).

Both are installed by ``scripts/setup_node.sh`` (``make setup``) from their committed lock files; calling it
again here is a no-op when nothing changed, so a test run after a fresh clone installs them itself.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUF = ROOT / "tooling" / "node_modules" / ".bin" / "buf"
TYPESCRIPT_CLIENT = ROOT / "clients" / "typescript"


@functools.cache
def ensure_node_tools() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not found: install Node.js 20+ with npm")
    result = subprocess.run(
        [str(ROOT / "scripts" / "setup_node.sh")], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/setup_node.sh failed:\n{result.stdout}{result.stderr}")


def buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Runs the pinned buf in ``cwd`` (a directory with a buf.yaml)."""
    ensure_node_tools()
    return subprocess.run(
        [str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def build_typescript_client() -> Path:
    """Compiles clients/typescript (tsc) and returns the directory of the compiled program."""
    ensure_node_tools()
    tsc = TYPESCRIPT_CLIENT / "node_modules" / ".bin" / "tsc"
    result = subprocess.run(
        [str(tsc), "-p", str(TYPESCRIPT_CLIENT)], capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"tsc failed:\n{result.stdout}{result.stderr}")
    return TYPESCRIPT_CLIENT / "dist"
