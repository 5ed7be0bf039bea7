"""What a zip Lambda ships, measured offline: handler bundle + layers, against Lambda's limits.

Layer contents are the requirement closure of layers/<name>/requirements.txt, resolved against the
installed distributions (the project venv holds the same versions pip would put in the layer; the
x86_64 wheels measured here are within a few per cent of the aarch64 ones). When
layers/<name>/build/python exists (``python layers/build.py``) the built directory is measured
instead. The import check walks module-level imports statically (nothing is imported), so it
shows what a cold start would try to load.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .paths import LAYERS_DIR, SHARED_PACKAGE

MB = 1_000_000
UNZIPPED_LIMIT = 262_144_000  # 250 MB: function + all layers, unzipped (hard limit)
ZIPPED_DIRECT_LIMIT = 50 * 1024 * 1024  # 50 MB: direct upload of a zip (CDK uploads via S3)
# provided by the python3.12 Lambda runtime; never shipped
RUNTIME_PROVIDED = {canonicalize_name(n) for n in ("boto3", "botocore", "s3transfer", "jmespath")}
_SKIP = re.compile(r"(__pycache__|\.pyc$|\.dist-info/RECORD$)")


def _env() -> dict[str, str]:
    env = dict(default_environment())
    env.update({"python_version": "3.12", "sys_platform": "linux", "platform_system": "Linux", "extra": ""})
    return env


def requirement_names(path: Path) -> list[str]:
    names = []
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line:
            names.append(canonicalize_name(Requirement(line).name))
    return names


def closure(names: Iterable[str]) -> set[str]:
    """Installed distributions needed by ``names`` (Requires-Dist, markers evaluated for Lambda)."""
    env, seen, todo = _env(), set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in _requires(name):
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(canonicalize_name(req.name))
    return seen


@cache
def _requires(name: str) -> tuple[str, ...]:
    try:
        return tuple(md.distribution(name).requires or ())
    except md.PackageNotFoundError:
        return ()


@cache
def _packages_distributions() -> dict[str, list[str]]:
    return dict(md.packages_distributions())  # walks every installed distribution: slow, so once


def dist_files(name: str) -> list[Path]:
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        return []
    return [Path(str(dist.locate_file(f))) for f in dist.files or [] if not _SKIP.search(str(f))]


@dataclass
class Measured:
    unzipped: int
    zipped: int


def measure(files: Iterable[Path]) -> Measured:
    """Unzipped bytes, and zipped bytes with deflate level 1 (an upper bound of zip's level 6).

    Compression is skipped when the unzipped total is already under the zipped limit (a zip is
    never meaningfully larger than its content): it is the slow part of the size test.
    """
    paths = [f for f in files if f.is_file()]
    sizes = [f.stat().st_size for f in paths]
    unzipped = sum(sizes)
    if unzipped + 100 * len(paths) <= ZIPPED_DIRECT_LIMIT:
        return Measured(unzipped, unzipped + 100 * len(paths))
    zipped = sum(len(zlib.compress(f.read_bytes(), 1)) + 100 for f in paths)  # + zip entry headers
    return Measured(unzipped, zipped)


def layer_files(name: str) -> tuple[list[Path], set[str]]:
    """Files of a layer and the distributions in it (built directory if present)."""
    built = LAYERS_DIR / name / "build" / "python"
    if built.is_dir():
        files = [p for p in built.rglob("*") if p.is_file() and not _SKIP.search(str(p))]
        dists = {canonicalize_name(p.name.split("-")[0]) for p in built.glob("*.dist-info")}
        return files, dists
    dists = closure(requirement_names(LAYERS_DIR / name / "requirements.txt")) - RUNTIME_PROVIDED
    return [f for d in sorted(dists) for f in dist_files(d)], dists


# ------------------------------------------------------------------ import closure (static)


def _module_file(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] != "tradingbot":
        return None
    base = SHARED_PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    return (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING") or (
        isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(path: Path, package: str) -> set[str]:
    """Absolute module names imported when ``path`` is imported (function bodies excluded)."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    mod = ".".join([*base, node.module] if node.module else base)
                else:
                    mod = node.module or ""
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in node.names)  # "from pkg import submodule"
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)  # the except branch is the fallback, not a requirement

    visit(ast.parse(path.read_text()).body)
    return found


def third_party_imports(handler: Path) -> set[str]:
    """Top-level third-party module names a cold start of ``handler`` imports."""
    seen: set[Path] = set()
    third: set[str] = set()
    todo: list[tuple[Path, str]] = [(handler, "")]
    while todo:
        path, package = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for mod in _top_level_imports(path, package):
            top = mod.split(".")[0]
            if top == "tradingbot":
                parts = mod.split(".")
                for i in range(1, len(parts) + 1):  # parent packages' __init__ run first
                    f = _module_file(".".join(parts[:i]))
                    if f is not None:
                        pkg = ".".join(parts[:i]) if f.name == "__init__.py" else ".".join(parts[: i - 1])
                        todo.append((f, pkg))
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                third.add(top)
    return third


def distributions_for(modules: Iterable[str]) -> dict[str, set[str]]:
    mapping = _packages_distributions()
    return {m: {canonicalize_name(d) for d in mapping.get(m, [m])} for m in modules}
