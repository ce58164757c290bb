"""What the function never loads, removed from the asset (each rule says why)."""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cdk_app.bundling.elf import read_elf_dynamic, sha256_of, shared_objects


@dataclass(frozen=True)
class TrimRule:
    """Paths (globs relative to the bundle root) the function never loads, and why."""

    name: str
    reason: str
    patterns: tuple[str, ...]


# Checked against pyarrow 26, pandas 3.1, numpy 2, pandera, pycountry, powertools, boto3.
# What stays on purpose: libarrow_substrait, libarrow_dataset and libarrow_acero, because
# libarrow_python (which `import pyarrow` loads) links against all three, and
# pyarrow.parquet reads through the dataset layer; pyarrow.compute and pyarrow.json too.
TRIM_RULES: tuple[TrimRule, ...] = (
    TrimRule(
        "test suites",
        "the dependencies' own tests; nothing imports them",
        ("**/tests", "pyarrow/_pyarrow_cpp_tests.*"),
    ),
    TrimRule(
        "headers and extension sources",
        "C/C++ headers and Cython sources are for compiling against a package, not running it",
        ("**/*.h", "**/*.hpp", "**/*.c", "**/*.cc", "**/*.cpp", "**/*.pxd", "**/*.pxi",
         "**/*.pyx", "pyarrow/include", "pyarrow/src", "numpy/_core/include"),
    ),  # fmt: skip
    TrimRule(
        "type stubs",
        "*.pyi files are read by type checkers only; the import system never loads them",
        ("**/*.pyi",),
    ),
    TrimRule(
        "Arrow Flight",
        "Arrow's RPC framework (pyarrow.flight, libarrow_flight): imported only by pyarrow.flight",
        ("pyarrow/_flight.*", "pyarrow/flight.py", "pyarrow/libarrow_flight.so*",
         "pyarrow/libarrow_python_flight.so*"),
    ),  # fmt: skip
    TrimRule(
        "Arrow's own filesystems",
        "pyarrow's S3/GCS/Azure/HDFS clients: the function reaches S3 through boto3, and "
        "pyarrow.fs imports each of these only if present",
        ("pyarrow/_s3fs.*", "pyarrow/libarrow_s3.so*", "pyarrow/_gcsfs.*", "pyarrow/_azurefs.*",
         "pyarrow/_hdfs.*"),
    ),  # fmt: skip
    TrimRule(
        "ORC and Substrait bindings",
        "file formats and query plans the function does not use; pyarrow.dataset imports "
        "ORC only if present (the Substrait C++ library stays, see above)",
        ("pyarrow/_orc.*", "pyarrow/orc.py", "pyarrow/_dataset_orc.*", "pyarrow/_substrait.*",
         "pyarrow/substrait.py"),
    ),  # fmt: skip
    TrimRule(
        "translations",
        "pycountry's gettext catalogues for other languages; currency names are read in "
        "English from its database",
        ("pycountry/locales",),
    ),
    TrimRule(
        "SDK documentation examples",
        "request examples botocore and boto3 read only when generating their documentation",
        ("botocore/data/*/*/examples-1.json", "boto3/examples"),
    ),
    TrimRule(
        "console scripts",
        "bin/: command-line entry points pip wrote for the build machine",
        ("bin",),
    ),
    TrimRule(
        "install records",
        "pip's own bookkeeping; METADATA and entry points stay, importlib.metadata reads them",
        ("*.dist-info/RECORD", "*.dist-info/INSTALLER", "*.dist-info/REQUESTED",
         "*.dist-info/direct_url.json"),
    ),  # fmt: skip
    TrimRule(
        "foreign bytecode",
        "__pycache__ written by other interpreters; recompiled for the target below",
        ("**/__pycache__",),
    ),
)


# The AWS services the function calls (runtime/handler.py builds these clients, and
# botocore resolves credentials on Lambda from the environment, STS kept for role-based
# local runs; Lambda to invoke itself and carry on with a backlog). Every other service model in botocore/data is never loaded; the test
# tests/infra/test_bundling.py checks this list against the clients the runtime creates.
SDK_SERVICES = ("lambda", "s3", "ssm", "sts")


def unused_sdk_models(root: Path) -> list[Path]:
    """botocore's model folders of services the function never calls."""
    data = root / "botocore" / "data"
    if not data.is_dir():
        return []
    return sorted(p for p in data.iterdir() if p.is_dir() and p.name not in SDK_SERVICES)


def matches(root: Path, patterns: Iterable[str]) -> list[Path]:
    found: set[Path] = set()
    for pattern in patterns:
        found.update(root.glob(pattern))
    # Drop paths inside another match: removing the parent removes them.
    ordered = sorted(found, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in ordered:
        if not any(parent in found for parent in path.parents):
            kept.append(path)
    return kept


def remove(paths: Iterable[Path]) -> int:
    freed = 0
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            freed += tree_size(path)
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            freed += path.lstat().st_size
            path.unlink()
    return freed


def remove_duplicate_libraries(root: Path) -> int:
    """Drop extra copies of a shared library that wheels ship under several names.

    Wheels cannot hold symlinks, so e.g. pyarrow ships libarrow_python.so,
    libarrow_python.so.2600 and libarrow_python.so.2600.1.0 as three identical files.
    The dynamic linker only ever opens the SONAME (libarrow_python.so.2600); the others
    exist for compilers linking against the package. Only byte-identical copies of a
    library in the same directory are removed, and only when the SONAME copy is there.
    """
    groups: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for path in shared_objects(root):
        info = read_elf_dynamic(path)
        if info is not None and info.soname:
            groups[(path.parent, info.soname)].append(path)
    freed = 0
    for (directory, soname), paths in groups.items():
        keeper = directory / soname
        if len(paths) < 2 or keeper not in paths:
            continue
        digest = sha256_of(keeper)
        for path in paths:
            if path != keeper and path.stat().st_size == keeper.stat().st_size and sha256_of(path) == digest:
                freed += path.stat().st_size
                path.unlink()
    return freed


def tree_size(root: Path) -> int:
    """Bytes of all regular files under `root` (what Lambda counts as unzipped size)."""
    return sum(p.lstat().st_size for p in Path(root).rglob("*") if p.is_file() and not p.is_symlink())


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"
