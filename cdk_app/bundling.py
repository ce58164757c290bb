"""Docker-free Lambda asset: pinned wheels for the Lambda platform, trim, bytecode, size guard.

The asset is the lock file for the function's platform (`runtime/requirements-<abi>-<cpu>.lock`:
every package, transitive ones included, pinned with its sha256; `make lock` writes it from
`runtime/requirements.txt`) installed from wheels built for that platform, plus `runtime/`
itself as the package `runtime`, so the handler `runtime.handler.lambda_handler` resolves from
the asset root (/var/task). Nothing is compiled from C: `--only-binary=:all:` takes wheels only,
so any machine with Python and pip can build an arm64 asset.

Then it removes what the function never loads (each rule below says why), checks that every
shared library still finds the libraries it links against, compiles every module to bytecode
with an interpreter of the runtime's Python version (found on PATH, under pyenv or by uv; the
build fails without one unless bytecode is switched off explicitly), and refuses to produce an
asset that would reach Lambda's 250 MB unzipped limit.

CDK calls `LocalPipBundling.try_bundle` through `BundlingOptions(local=...)`; the Docker image
named beside it is required by the API and never pulled.
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

from cdk_app.interpreter import Interpreter, find_interpreter
from cdk_app.lambda_platform import Target
from cdk_app.lock import LockError, checked_lock

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_DIR = PROJECT_ROOT / "runtime"
PIP_CACHE_DIR = PROJECT_ROOT / ".cache" / "pip"

# Lambda's quota for a function's unzipped code and layers: 250 MB, in bytes.
LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000

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

# PEP 552: hash-based pycs. CDK's asset zip stores every file with a fixed 1980 timestamp,
# so timestamp pycs would be stale once deployed and recompiled at every cold start.
# "unchecked-hash" rather than "checked-hash": /var/task is read-only and the asset is
# built as a whole (a source never changes without its pyc being rebuilt beside it), so
# checking would only cost a read and a SipHash of every imported source per cold start.
INVALIDATION_MODE = "unchecked-hash"
# Where Lambda unpacks the asset: compiled file names point there, not at the build folder
# (so the bytes do not depend on where it was built, and tracebacks name /var/task).
LAMBDA_TASK_ROOT = "/var/task"


@dataclass(frozen=True)
class Bytecode:
    """How the asset's modules are compiled: by this interpreter, or (opted out) not at all."""

    interpreter: Interpreter | None
    mode: str = INVALIDATION_MODE

    @property
    def fingerprint(self) -> str:
        """What of the compiler changes the asset's bytes (part of the asset hash)."""
        if self.interpreter is None:
            return "no-bytecode"
        return f"cpython-{self.interpreter.version}-{self.mode}"


def resolve_bytecode(target: Target, *, required: bool, env: dict[str, str] | None = None) -> Bytecode:
    """Find the compiler for `target`'s Python; without one, fail unless not `required`."""
    search = find_interpreter(target.python_version, env)
    if search.interpreter is not None or not required:
        return Bytecode(search.interpreter)
    tried = "\n".join(f"  - {line}" for line in search.tried)
    raise BundlingError(
        f"no Python {target.python_version} interpreter found to compile the asset's bytecode.\n"
        f"Looked at:\n{tried}\n"
        f"Without bytecode every cold start compiles about a thousand modules (seconds of "
        f"billed INIT, near Lambda's 10 s cap). Install Python {target.python_version} "
        f"(`pyenv install {target.python_version}`, `uv python install {target.python_version}` "
        f"or your system's package), or point LAMBDA_PYTHON at one; to build without bytecode "
        f"anyway, synthesize with `-c require_bytecode=false`."
    )


@dataclass
class BundleReport:
    """What a build did, for logs and tests."""

    target: Target
    installed_bytes: int = 0
    trimmed_bytes: dict[str, int] = field(default_factory=dict)
    duplicate_library_bytes: int = 0
    bytecode: str = ""
    compiled_modules: int = 0
    unzipped_bytes: int = 0
    files: int = 0
    seconds: float = 0.0

    @property
    def headroom_bytes(self) -> int:
        return LAMBDA_UNZIPPED_LIMIT_BYTES - self.unzipped_bytes

    def summary(self) -> str:
        trimmed = sum(self.trimmed_bytes.values()) + self.duplicate_library_bytes
        return (
            f"bundle {self.target}: {_mb(self.unzipped_bytes)} unzipped in {self.files} files "
            f"(installed {_mb(self.installed_bytes)}, trimmed {_mb(trimmed)}; limit "
            f"{_mb(LAMBDA_UNZIPPED_LIMIT_BYTES)}, headroom {_mb(self.headroom_bytes)}); "
            f"{self.bytecode}; {self.seconds:.1f} s"
        )


def build_bundle(
    output_dir: Path,
    *,
    target: Target,
    bytecode: Bytecode | None = None,
    runtime_dir: Path = RUNTIME_DIR,
    cache_dir: Path = PIP_CACHE_DIR,
    log: Callable[[str], None] = print,
) -> BundleReport:
    """Install, trim, compile, check and measure the asset in `output_dir` (which must be empty).

    `bytecode` None finds the compiler itself and fails without one.
    """
    started = time.monotonic()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if any(output_dir.iterdir()):
        raise BundlingError(f"{output_dir} is not empty")
    if bytecode is None:
        bytecode = resolve_bytecode(target, required=True)
    try:
        lock = checked_lock(runtime_dir, target)
    except LockError as exc:
        raise BundlingError(str(exc)) from exc
    report = BundleReport(target=target)

    _pip_install(output_dir, target=target, lock=lock, cache_dir=cache_dir, log=log)
    report.installed_bytes = tree_size(output_dir)

    for rule in TRIM_RULES:
        report.trimmed_bytes[rule.name] = _remove(_matches(output_dir, rule.patterns))
    report.trimmed_bytes["SDK models of other services"] = _remove(_unused_sdk_models(output_dir))
    report.duplicate_library_bytes = _remove_duplicate_libraries(output_dir)
    check_links(output_dir)

    shutil.copytree(runtime_dir, output_dir / "runtime",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "requirements*.txt", "*.lock"))  # fmt: skip
    report.compiled_modules = _compile_bytecode(output_dir, bytecode=bytecode, log=log)
    report.bytecode = (
        f"{report.compiled_modules} modules compiled ({bytecode.mode}) by {bytecode.interpreter}"
        if bytecode.interpreter else "NO BYTECODE (require_bytecode=false, no interpreter): every cold start compiles every module"
    )

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


def _pip_install(output_dir: Path, *, target: Target, lock: Path, cache_dir: Path,
                 log: Callable[[str], None]) -> None:  # fmt: skip
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "install",
        "--requirement", str(lock),
        # The lock is the whole dependency tree: nothing else is resolved, every wheel is
        # checked against the sha256 it was locked with.
        "--no-deps", "--require-hashes",
        "--target", str(output_dir),
        *target.pip_platform_args(),
        "--no-compile",  # bytecode is compiled below, by an interpreter of the target version
        "--cache-dir", str(cache_dir),
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
    ]  # fmt: skip
    log(f"pip install -r {lock.name} for {target} (wheels cached in {cache_dir})")
    # PIP_TARGET/PIP_PREFIX from the environment would fight --target; the rest of the
    # environment (index URL, proxies) is the user's to set.
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_TARGET", "PIP_PREFIX", "PIP_USER")}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise BundlingError(f"pip could not install {lock} for {target}:\n{result.stderr.strip()}")


def _unused_sdk_models(root: Path) -> list[Path]:
    """botocore's model folders of services the function never calls."""
    data = root / "botocore" / "data"
    if not data.is_dir():
        return []
    return sorted(p for p in data.iterdir() if p.is_dir() and p.name not in SDK_SERVICES)


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


def _compile_bytecode(root: Path, *, bytecode: Bytecode, log: Callable[[str], None]) -> int:
    """Compile every module under `root`; returns how many .py files have a .pyc.

    Lambda's /var/task is read-only, so without bytecode in the asset every cold start
    compiles each imported module in memory (pandas and pyarrow: seconds).
    """
    if bytecode.interpreter is None:
        log("bytecode NOT compiled (require_bytecode=false, no interpreter): Lambda will compile modules at every cold start")
        return 0
    result = subprocess.run(
        [bytecode.interpreter.path, "-m", "compileall", "-q", "-j", "0",
         "--invalidation-mode", bytecode.mode,
         "-s", str(root), "-p", LAMBDA_TASK_ROOT, str(root)],
        capture_output=True, text=True, check=False,
        # Constant sets are marshalled in hash order: a fixed seed gives the same bytes.
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip
    sources = sorted(root.rglob("*.py"))
    missing = [p for p in sources if not Path(_cache_path(p, bytecode.interpreter.version)).is_file()]
    if result.returncode != 0 or missing:
        raise BundlingError(
            f"{bytecode.interpreter.path} could not compile {len(missing)} of {len(sources)} modules "
            f"(e.g. {[str(p.relative_to(root)) for p in missing[:3]]}):\n"
            f"{result.stdout.strip()[-2000:]}\n{result.stderr.strip()[-2000:]}"
        )
    log(f"compiled {len(sources)} modules ({bytecode.mode}) with {bytecode.interpreter}")
    return len(sources)


def _cache_path(source: Path, version: str) -> Path:
    """Where CPython `version` looks for the bytecode of `source` (importlib's layout)."""
    tag = "cpython-" + "".join(version.split(".")[:2])
    return source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"


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

    def __init__(self, *, target: Target, bytecode: Bytecode, runtime_dir: Path, cache_dir: Path) -> None:
        self._target = target
        self._bytecode = bytecode
        self._runtime_dir = runtime_dir
        self._cache_dir = cache_dir

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_options: object) -> bool:
        build_bundle(Path(output_dir), target=self._target, bytecode=self._bytecode,
                     runtime_dir=self._runtime_dir, cache_dir=self._cache_dir,
                     log=lambda line: print(line, file=sys.stderr))  # fmt: skip
        return True  # never fall back to Docker: a failure above raises instead


def asset_hash(*, target: Target, bytecode: Bytecode, runtime_dir: Path = RUNTIME_DIR) -> str:
    """Everything that changes the asset's bytes, hashed before building it.

    runtime/ (its sources, requirements.txt and the lock files), the target platform,
    the compiler's version and mode (or no bytecode), and the bundler's own source. CDK
    reuses a staged asset whose hash matches, so anything missing here would ship a stale
    asset (say, one without bytecode after Python 3.12 was installed).
    """
    digest = hashlib.sha256()
    for part in (str(target), bytecode.fingerprint):
        digest.update(part.encode() + b"\0")
    for module in sorted(Path(__file__).parent.glob("*.py")):
        if module.name in {"bundling.py", "interpreter.py", "lambda_platform.py", "lock.py"}:
            digest.update(module.name.encode() + b"\0" + module.read_bytes() + b"\0")
    digest.update(tree_digest(runtime_dir, bytecode=False).encode())
    return digest.hexdigest()


def tree_digest(root: Path, *, bytecode: bool = True) -> str:
    """sha256 over every file's relative path, mode bits and bytes (`bytecode` False skips .pyc)."""
    digest = hashlib.sha256()
    root = Path(root)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if not bytecode and (path.suffix == ".pyc" or "__pycache__" in path.parts):
            continue
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(oct(path.stat().st_mode & 0o777).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def bundled_code(
    *,
    runtime: lambda_.Runtime,
    architecture: lambda_.Architecture,
    bytecode: Bytecode,
    runtime_dir: Path = RUNTIME_DIR,
    cache_dir: Path = PIP_CACHE_DIR,
) -> lambda_.Code:
    """The function's code: runtime/ and its locked dependencies, bundled for the function's platform."""
    target = Target.for_lambda(runtime, architecture)
    return lambda_.Code.from_asset(
        str(runtime_dir),
        asset_hash=asset_hash(target=target, bytecode=bytecode, runtime_dir=runtime_dir),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        bundling=cdk.BundlingOptions(
            # Required by the API; local bundling always succeeds or raises, so it is
            # never pulled or run.
            image=cdk.DockerImage.from_registry("local-bundling-only"),
            local=LocalPipBundling(target=target, bytecode=bytecode, runtime_dir=runtime_dir,
                                   cache_dir=cache_dir),  # fmt: skip
        ),
    )


def unbundled_code(*, runtime_dir: Path = RUNTIME_DIR) -> lambda_.Code:
    """runtime/ as it is, without dependencies: for template tests, never for deployment."""
    return lambda_.Code.from_asset(str(runtime_dir), exclude=["__pycache__", "*.pyc"])
