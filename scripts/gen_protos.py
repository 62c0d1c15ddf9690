"""Generate the Python stubs (with .pyi) for every contract in protos/.

Output goes to libs/protos (package `fabula.<domain>.v1`), the one place every
service imports its contracts from. `make proto` runs this; a test runs it into
a temporary folder and fails when the committed stubs are stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = ROOT / "libs" / "protos"


def generate(out_dir: Path) -> list[Path]:
    """Write stubs for all protos into out_dir; return the files written."""
    import grpc_tools
    from grpc_tools import protoc

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
    # Regular packages (not namespace ones) so imports resolve the same way in
    # an editable install, a wheel and a container image.
    packages = {(out_dir / p.relative_to(PROTO_ROOT)).parent for p in protos}
    for package in sorted(packages):
        for folder in [package, *package.relative_to(out_dir).parents]:
            target = out_dir / folder if not folder.is_absolute() else folder
            if target == out_dir or target == out_dir / ".":
                continue
            (target / "__init__.py").touch()
    return sorted(p for p in out_dir.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ns = parser.parse_args()
    files = generate(ns.out)
    print(f"generated {len(files)} files under {ns.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
