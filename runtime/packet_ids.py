"""The rule every packet-id write follows, shared by the SSM adapter and test fakes."""

from __future__ import annotations

from runtime.errors import PacketIdOrderError


def check_next(name: str, current: int, new: int) -> bool:
    """True when `new` must be written, False when it is already stored (a retry).

    Ids only ever move one step forward: skipping one would hide a packet from the
    loader, going back would process one twice.
    """
    if type(new) is not int or new < 0:
        raise PacketIdOrderError(f"{name}: packet id must be a non-negative int, got {new!r}")
    if new == current:
        return False
    if new == current + 1:
        return True
    raise PacketIdOrderError(
        f"{name}: cannot move from {current} to {new}; packet ids advance one at a time"
    )
