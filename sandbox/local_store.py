"""The ingestion source and processed store ports over a local directory, so the
benchmark can time the real processing path without an S3 emulator in the way."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from runtime.errors import OutputConflictError, PacketIdNotFoundError
from runtime.packet_ids import check_next


class LocalDirectory:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.exists():
            return []
        keys = (str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix))

    def list_after(self, prefix: str, start_after: str, max_keys: int) -> list[str]:
        after = start_after.encode()
        return sorted((k for k in self.list_keys(prefix) if k.encode() > after), key=str.encode)[:max_keys]

    def open(self, key: str) -> BinaryIO:
        return open(self.root / key, "rb")

    def last_modified(self, key: str) -> datetime:
        return datetime.fromtimestamp((self.root / key).stat().st_mtime, timezone.utc)

    def read(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.exists() else None

    def put_if_absent(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        path = self.root / key
        if path.exists():
            existing, new = hashlib.sha256(path.read_bytes()).hexdigest(), hashlib.sha256(body).hexdigest()
            if existing != new:
                raise OutputConflictError(key, existing, new)
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        return True

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)


class MemoryPacketIds:
    """Packet ids in a dict, with the same rules as the SSM adapter."""

    def __init__(self, names) -> None:
        self.values = {name: 0 for name in names}

    def read_packet_id(self, name: str) -> int:
        if name not in self.values:
            raise PacketIdNotFoundError(f"SSM parameter {name} does not exist")
        return self.values[name]

    def write_packet_id(self, name: str, packet_id: int) -> bool:
        """Returns whether anything changed."""
        changed = check_next(name, self.read_packet_id(name), packet_id)
        if changed:
            self.values[name] = packet_id
        return changed
