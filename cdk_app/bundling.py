"""Docker-free Lambda asset: pip for the Lambda platform, trim, link check, size guard.

The asset is `runtime/requirements.txt` installed from wheels built for the function's
platform (manylinux, the function's CPU and Python version), plus `runtime/` itself as
the package `runtime`, so the handler `runtime.handler.lambda_handler` resolves from
the asset root (/var/task). Nothing is compiled: `--only-binary=:all:` takes wheels
only, so any machine with Python and pip can build an arm64 asset.

Then it removes what the function never loads (each rule below says why), checks that
every shared library still finds the libraries it links against, compiles bytecode
when an interpreter of the target Python version is at hand, and refuses to produce an
asset that would reach Lambda's 250 MB unzipped limit.

CDK calls `LocalPipBundling.try_bundle` through `BundlingOptions(local=...)`; the
Docker image named beside it is required by the API and never pulled.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_DIR = PROJECT_ROOT / "runtime"
PIP_CACHE_DIR = PROJECT_ROOT / ".cache" / "pip"

# Lambda's quota for a function's unzipped code and layers: 250 MB, in bytes.
LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000

# Lambda's Python runtimes on Amazon Linux 2023 ship glibc 2.34: every manylinux tag up
# to it is loadable there. pip does not expand a manylinux_2_x tag to older ones, so
# each is named (manylinux2014 = manylinux_2_17, the oldest current wheels use).
_GLIBC_MINORS = range(17, 35)

# Libraries every Lambda Python runtime provides (glibc, the C++ runtime, and zlib, which
# CPython's own zlib module links); anything else a bundled extension links against must
# be in the bundle.
_SYSTEM_LIBRARIES = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "librt.so.1",
        "libpthread.so.0",
        "libutil.so.1",
        "libstdc++.so.6",
        "libgcc_s.so.1",
        "ld-linux-aarch64.so.1",
        "ld-linux-x86-64.so.2",
        "libz.so.1",
    }
)


class BundlingError(RuntimeError):
    """The asset cannot be built, or would not work or fit on Lambda."""


@dataclass(frozen=True)
class Target:
    """The platform the bundle is built for: CPython version and CPU."""

    python_version: str  # "3.12"
    machine: str  # "aarch64" or "x86_64", as in manylinux platform tags

    @classmethod
    def for_lambda(cls, runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> Target:
        """The platform of a Lambda function with this runtime and architecture."""
        if not runtime.name.startswith("python3."):
            raise BundlingError(f"not a Python runtime: {runtime.name}")
        machine = {"arm64": "aarch64", "x86_64": "x86_64"}[architecture.name]
        return cls(python_version=runtime.name.removeprefix("python"), machine=machine)

    @classmethod
    def this_machine(cls) -> Target:
        """The interpreter running this code, e.g. to run a bundle locally."""
        return cls(python_version=f"{sys.version_info[0]}.{sys.version_info[1]}",
                   machine=os.uname().machine)  # fmt: skip

    @property
    def abi(self) -> str:
        return "cp" + self.python_version.replace(".", "")

    def pip_platform_args(self) -> list[str]:
        platforms = [f"manylinux2014_{self.machine}"] + [
            f"manylinux_2_{minor}_{self.machine}" for minor in _GLIBC_MINORS
        ]
        args: list[str] = []
        for platform in platforms:
            args += ["--platform", platform]
        return args + [
            "--implementation", "cp",
            "--python-version", self.python_version,
            "--abi", self.abi,
            "--only-binary=:all:",
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.abi}-{self.machine}"


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
        "__pycache__ written by other interpreters; recompiled for the target below when possible",
        ("**/__pycache__",),
    ),
)


@dataclass
class BundleReport:
    """What a build did, for logs and tests."""

    target: Target
    installed_bytes: int = 0
    trimmed_bytes: dict[str, int] = field(default_factory=dict)
    duplicate_library_bytes: int = 0
    bytecode: str = ""
    unzipped_bytes: int = 0
    files: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        trimmed = sum(self.trimmed_bytes.values()) + self.duplicate_library_bytes
        return (
            f"bundle {self.target}: {_mb(self.unzipped_bytes)} unzipped in {self.files} files "
            f"(installed {_mb(self.installed_bytes)}, trimmed {_mb(trimmed)}; "
            f"limit {_mb(LAMBDA_UNZIPPED_LIMIT_BYTES)}); {self.bytecode}; {self.seconds:.1f} s"
        )


def build_bundle(
    output_dir: Path,
    *,
    target: Target,
    runtime_dir: Path = RUNTIME_DIR,
    cache_dir: Path = PIP_CACHE_DIR,
    log: Callable[[str], None] = print,
) -> BundleReport:
    """Install, trim, check and measure the asset in `output_dir` (which must be empty)."""
    started = time.monotonic()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if any(output_dir.iterdir()):
        raise BundlingError(f"{output_dir} is not empty")
    report = BundleReport(target=target)

    _pip_install(output_dir, target=target, requirements=runtime_dir / "requirements.txt",
                 cache_dir=cache_dir, log=log)  # fmt: skip
    report.installed_bytes = tree_size(output_dir)

    for rule in TRIM_RULES:
        report.trimmed_bytes[rule.name] = _remove(_matches(output_dir, rule.patterns))
    report.duplicate_library_bytes = _remove_duplicate_libraries(output_dir)
    check_links(output_dir)

    shutil.copytree(runtime_dir, output_dir / "runtime",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.txt"))  # fmt: skip
    report.bytecode = _compile_bytecode(output_dir, target=target, log=log)

    report.unzipped_bytes = tree_size(output_dir)
    report.files = sum(1 for p in output_dir.rglob("*") if p.is_file())
    report.seconds = time.monotonic() - started
    log(report.summary())
    for name, size in [*report.trimmed_bytes.items(), ("duplicate library copies", report.duplicate_library_bytes)]:
        if size:
            log(f"  trimmed {name}: {_mb(size)}")
    if report.unzipped_bytes >= LAMBDA_UNZIPPED_LIMIT_BYTES:
        raise BundlingError(
            f"the Lambda asset would be {report.unzipped_bytes:,} bytes unzipped, at or over "
            f"Lambda's limit of {LAMBDA_UNZIPPED_LIMIT_BYTES:,} bytes (250 MB): drop a "
            f"dependency from runtime/requirements.txt or trim more in {__name__}"
        )
    return report


def _pip_install(output_dir: Path, *, target: Target, requirements: Path, cache_dir: Path,
                 log: Callable[[str], None]) -> None:  # fmt: skip
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "install",
        "--requirement", str(requirements),
        "--target", str(output_dir),
        *target.pip_platform_args(),
        "--no-compile",  # bytecode is compiled below, by a matching interpreter or not at all
        "--cache-dir", str(cache_dir),
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
    ]  # fmt: skip
    log(f"pip install -r {requirements.name} for {target} (wheels cached in {cache_dir})")
    # PIP_TARGET/PIP_PREFIX from the environment would fight --target; the rest of the
    # environment (index URL, proxies) is the user's to set.
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_TARGET", "PIP_PREFIX", "PIP_USER")}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise BundlingError(
            f"pip could not install {requirements} for {target}:\n{result.stderr.strip()}"
        )


def _matches(root: Path, patterns: Iterable[str]) -> list[Path]:
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


def _remove(paths: Iterable[Path]) -> int:
    freed = 0
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            freed += tree_size(path)
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            freed += path.lstat().st_size
            path.unlink()
    return freed


def _remove_duplicate_libraries(root: Path) -> int:
    """Drop extra copies of a shared library that wheels ship under several names.

    Wheels cannot hold symlinks, so e.g. pyarrow ships libarrow_python.so,
    libarrow_python.so.2600 and libarrow_python.so.2600.1.0 as three identical files.
    The dynamic linker only ever opens the SONAME (libarrow_python.so.2600); the others
    exist for compilers linking against the package. Only byte-identical copies of a
    library in the same directory are removed, and only when the SONAME copy is there.
    """
    groups: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for path in _shared_objects(root):
        info = read_elf_dynamic(path)
        if info is not None and info.soname:
            groups[(path.parent, info.soname)].append(path)
    freed = 0
    for (directory, soname), paths in groups.items():
        keeper = directory / soname
        if len(paths) < 2 or keeper not in paths:
            continue
        digest = _sha256(keeper)
        for path in paths:
            if path != keeper and path.stat().st_size == keeper.stat().st_size and _sha256(path) == digest:
                freed += path.stat().st_size
                path.unlink()
    return freed


def check_links(root: Path) -> None:
    """Fail if a bundled shared library links against one that is neither bundled nor system.

    This is what catches a trim rule that removed a library something still needs
    (e.g. libarrow_substrait, which libarrow_python links against).
    """
    bundled = {path.name for path in _shared_objects(root)}
    missing: dict[str, list[str]] = defaultdict(list)
    for path in _shared_objects(root):
        info = read_elf_dynamic(path)
        if info is None:
            continue
        for needed in info.needed:
            if needed not in bundled and needed not in _SYSTEM_LIBRARIES:
                missing[needed].append(str(path.relative_to(root)))
    if missing:
        lines = [f"  {lib} (needed by {', '.join(sorted(users)[:3])})" for lib, users in sorted(missing.items())]
        raise BundlingError("bundled libraries link against libraries not in the bundle:\n" + "\n".join(lines))


def _compile_bytecode(root: Path, *, target: Target, log: Callable[[str], None]) -> str:
    """Compile .pyc with an interpreter of the target version, if one is on this machine.

    Lambda's /var/task is read-only, so without bytecode in the asset every cold start
    compiles each imported module in memory (pandas and pyarrow: seconds). The pycs are
    "unchecked-hash": the asset's zip stores fixed 1980 timestamps, which would make
    timestamp-checked pycs look stale and be ignored.
    """
    interpreter = _interpreter_for(target.python_version)
    if interpreter is None:
        message = (
            f"bytecode not compiled: no python{target.python_version} interpreter on this "
            f"machine; Lambda will compile modules at each cold start"
        )
        log(message)
        return message
    result = subprocess.run(
        [interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
         str(root)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        # Some dependencies ship modules that only parse on other versions (e.g. py2
        # leftovers); compileall reports them and still compiles the rest.
        log(f"compileall reported problems:\n{result.stdout.strip()}\n{result.stderr.strip()}")
    return f"bytecode compiled by {interpreter}"


def _interpreter_for(version: str) -> str | None:
    """This interpreter if it is of `version`, else a working `python{version}` on PATH."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    found = shutil.which(f"python{version}")
    if found is None:
        return None
    # A version-manager shim may be on PATH without that version being usable.
    probe = subprocess.run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    return found if probe.returncode == 0 and probe.stdout.strip() == version else None


@dataclass(frozen=True)
class ElfDynamic:
    soname: str | None
    needed: tuple[str, ...]


def read_elf_dynamic(path: Path) -> ElfDynamic | None:
    """SONAME and NEEDED entries of a little-endian ELF64 file; None if it is not one."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    for _name, sh_type, _flags, _addr, offset, size, link, _info, _align, _entsize in sections:
        if sh_type != 6:  # SHT_DYNAMIC
            continue
        strtab_offset = sections[link][4]
        soname, needed = None, []
        for entry in range(offset, offset + size, 16):
            tag, value = struct.unpack_from("<qQ", data, entry)
            if tag == 0:  # DT_NULL
                break
            if tag in (1, 14):  # DT_NEEDED, DT_SONAME
                end = data.index(b"\0", strtab_offset + value)
                name = data[strtab_offset + value : end].decode()
                if tag == 1:
                    needed.append(name)
                else:
                    soname = name
        return ElfDynamic(soname=soname, needed=tuple(needed))
    return ElfDynamic(soname=None, needed=())


def _shared_objects(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.so*") if p.is_file() and ".so" in p.name and not p.is_symlink())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_size(root: Path) -> int:
    """Bytes of all regular files under `root` (what Lambda counts as unzipped size)."""
    return sum(p.lstat().st_size for p in Path(root).rglob("*") if p.is_file() and not p.is_symlink())


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


@jsii.implements(cdk.ILocalBundling)
class LocalPipBundling:
    """CDK's local bundling hook: builds the asset on this machine, never in Docker."""

    def __init__(self, *, target: Target, runtime_dir: Path, cache_dir: Path) -> None:
        self._target = target
        self._runtime_dir = runtime_dir
        self._cache_dir = cache_dir

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_options: object) -> bool:
        build_bundle(Path(output_dir), target=self._target, runtime_dir=self._runtime_dir,
                     cache_dir=self._cache_dir, log=lambda line: print(line, file=sys.stderr))  # fmt: skip
        return True  # never fall back to Docker: a failure above raises instead


def bundled_code(
    *,
    runtime: lambda_.Runtime,
    architecture: lambda_.Architecture,
    runtime_dir: Path = RUNTIME_DIR,
    cache_dir: Path = PIP_CACHE_DIR,
) -> lambda_.Code:
    """The function's code: runtime/ and its dependencies, bundled for the function's platform.

    The asset hash covers runtime/ (with requirements.txt), the target platform and this
    module's source, so a change to any of them rebuilds the asset and an unchanged
    `cdk synth` reuses the staged one in cdk.out.
    """
    target = Target.for_lambda(runtime, architecture)
    return lambda_.Code.from_asset(
        str(runtime_dir),
        exclude=["__pycache__", "*.pyc"],
        bundling=cdk.BundlingOptions(
            # Required by the API; local bundling always succeeds or raises, so it is
            # never pulled or run.
            image=cdk.DockerImage.from_registry("local-bundling-only"),
            local=LocalPipBundling(target=target, runtime_dir=runtime_dir, cache_dir=cache_dir),
            # Never run: it describes the build so that it is part of the asset hash.
            command=["pip-install-and-trim", str(target), _source_digest()],
        ),
    )


def unbundled_code(*, runtime_dir: Path = RUNTIME_DIR) -> lambda_.Code:
    """runtime/ as it is, without dependencies: for template tests, never for deployment."""
    return lambda_.Code.from_asset(str(runtime_dir), exclude=["__pycache__", "*.pyc"])


def _source_digest() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

