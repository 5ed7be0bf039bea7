#!/usr/bin/env python3
"""Build the Lambda layers without Docker: pip installs manylinux wheels for the target platform.

    python layers/build.py                  # all layers, arm64 (the default architecture)
    python layers/build.py ml --arch x86_64

Each layers/<name>/requirements.txt becomes layers/<name>/build/python/, which the CDK app uses
when present (cdk.json's require_built_layers=true refuses to deploy without it). Binary wheels
only (--only-binary=:all:): nothing is compiled, so the result is right for Lambda's Amazon
Linux 2023 whatever machine builds it. Needs PyPI (or a mirror).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAYERS = sorted(p.name for p in HERE.iterdir() if (p / "requirements.txt").is_file())
# Lambda python3.12 runs on Amazon Linux 2023 (glibc 2.34): any of these wheel tags load there
PLATFORMS = {
    "arm64": ["manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"],
    "x86_64": ["manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"],
}
# the runtime ships these; a transitive copy would only add weight
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath")


def build(name: str, arch: str) -> int:
    target = HERE / name / "build" / "python"
    if target.parent.exists():
        shutil.rmtree(target.parent)
    target.mkdir(parents=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--disable-pip-version-check",
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        "3.12",
        "--only-binary=:all:",
        "--ignore-installed",
        "-r",
        str(HERE / name / "requirements.txt"),
    ]
    for platform in PLATFORMS[arch]:
        cmd += ["--platform", platform]
    subprocess.run(cmd, check=True)
    for pattern in [*(f"{p}" for p in RUNTIME_PROVIDED), *(f"{p}-*.dist-info" for p in RUNTIME_PROVIDED)]:
        for path in target.glob(pattern):
            shutil.rmtree(path)
    for cache in target.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    return sum(f.stat().st_size for f in target.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("layers", nargs="*", help=f"default: all ({', '.join(LAYERS)})")
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="arm64")
    args = parser.parse_args()
    unknown = set(args.layers) - set(LAYERS)
    if unknown:
        parser.error(f"unknown layer(s): {', '.join(sorted(unknown))}; choose from {', '.join(LAYERS)}")
    for name in args.layers or LAYERS:
        started = time.perf_counter()
        size = build(name, args.arch)
        print(f"{name:10} {size / 1e6:7.1f} MB unzipped  ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
