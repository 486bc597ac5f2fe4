"""Generate the Python package for protos/ into common/proto (messages, gRPC stubs, .pyi).

protoc writes ``from raven.v1 import x_pb2``; we rewrite those to absolute imports under ``common.proto`` so
the generated code imports as a normal package. ``--check`` regenerates into a temporary directory and fails
on drift.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
OUT_PACKAGE = ROOT / "common" / "proto"
PACKAGE_PREFIX = "common.proto"
IMPORT_RE = re.compile(r"^(from|import) raven\.", re.MULTILINE)


def generate(out_dir: Path) -> list[Path]:
    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    generated = []
    for path in sorted(out_dir.rglob("*.py*")):
        text = path.read_text()
        path.write_text(IMPORT_RE.sub(rf"\1 {PACKAGE_PREFIX}.raven.", text))
        generated.append(path)
    for directory in [out_dir, *[d for d in out_dir.rglob("*") if d.is_dir()]]:
        (directory / "__init__.py").touch()
    return generated


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="fail when common/proto differs from protos/")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            diff = _diff(Path(tmp), OUT_PACKAGE)
        if diff:
            print("generated code is out of date with protos/ (run `make protos`):", *diff, sep="\n  ")
            return 1
        print("protos: generated code is up to date")
        return 0
    if OUT_PACKAGE.exists():
        shutil.rmtree(OUT_PACKAGE)
    OUT_PACKAGE.mkdir(parents=True)
    files = generate(OUT_PACKAGE)
    print(f"protos: generated {len(files)} files into {OUT_PACKAGE.relative_to(ROOT)}")
    return 0


def _diff(a: Path, b: Path) -> list[str]:
    names_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    names_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    problems = [f"missing: {n}" for n in sorted(names_a - names_b)]
    problems += [f"unexpected: {n}" for n in sorted(names_b - names_a)]
    problems += [
        f"differs: {n}" for n in sorted(names_a & names_b) if not filecmp.cmp(a / n, b / n, shallow=False)
    ]
    return problems


if __name__ == "__main__":
    sys.exit(main())
