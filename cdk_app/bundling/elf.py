"""Shared libraries in the asset: what each links against, read from its ELF header.

What catches a trim rule that removed a library something still needs (e.g.
libarrow_substrait, which libarrow_python links against), and what tells identical
copies of one library apart from different libraries.
"""

from __future__ import annotations

import hashlib
import struct
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from cdk_app.bundling.errors import BundlingError

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


def shared_objects(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.so*") if p.is_file() and ".so" in p.name and not p.is_symlink())


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_links(root: Path) -> None:
    """Fail if a bundled shared library links against one that is neither bundled nor system.

    This is what catches a trim rule that removed a library something still needs
    (e.g. libarrow_substrait, which libarrow_python links against).
    """
    bundled = {path.name for path in shared_objects(root)}
    missing: dict[str, list[str]] = defaultdict(list)
    for path in shared_objects(root):
        info = read_elf_dynamic(path)
        if info is None:
            continue
        for needed in info.needed:
            if needed not in bundled and needed not in _SYSTEM_LIBRARIES:
                missing[needed].append(str(path.relative_to(root)))
    if missing:
        lines = [f"  {lib} (needed by {', '.join(sorted(users)[:3])})" for lib, users in sorted(missing.items())]
        raise BundlingError("bundled libraries link against libraries not in the bundle:\n" + "\n".join(lines))
