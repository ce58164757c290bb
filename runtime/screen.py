"""The line screen: what the JSON parser must never see (docs/design.md#line-screen).

It exists because the parser cannot be trusted with every line. pyarrow 26's
`read_json` with an explicit schema crashes the process on a line that is JSON `null`
(apache/arrow#47409), and reads `null` or several values on one line as rows of their
own; and a deeply nested line must never reach a recursive decoder. So, vectorized over
a block, every line is sorted here into blank, rejected with its reason (never parsed)
or a candidate: a line that starts with `{` and ends with `}`, nested at most MAX_DEPTH
deep, holding one strict JSON value, within MAX_LINE_BYTES. runtime.reading parses only
the candidates.

Line ends (docs/design.md#line-screen): a line ends at LF, and a CR right before the LF
belongs to the line end; any other CR is JSON whitespace (RFC 8259), or, inside a string,
a control character that is not JSON. pyarrow cuts its blocks at a CR as at a LF, so a
candidate's whitespace CRs are named (`Screened.whitespace`) for the parser to read as
spaces; the line's own text is never changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
import numpy as np

from runtime.blocks import Block
from runtime.validation import MAX_DEPTH

# A line longer than this is not a totesys row (they are under 1 KB): it is a rejected
# row, never parsed, and only its first QUARANTINE_RAW_BYTES are kept. 1 MiB bounds
# what one line can cost (pyarrow parses in blocks of this size, and an over-long line
# is skipped, not held) while leaving three orders of magnitude of room.
MAX_LINE_BYTES = 1024 * 1024

_OPEN, _CLOSE, _QUOTE, _BACKSLASH = 0x7B, 0x7D, 0x22, 0x5C
_NOT_AN_OBJECT = {
    ord("n"): "null", ord("["): "an array", ord('"'): "a string", ord("t"): "a boolean",
    ord("f"): "a boolean", ord("N"): "NaN (not JSON)", ord("I"): "Infinity (not JSON)",
    **{c: "a number" for c in b"-0123456789"},
}


_NO_OFFSETS = np.empty(0, np.int64)


@dataclass(frozen=True)
class Screened:
    candidates: np.ndarray  # block line indices that go to the parser, in order
    blank: int
    rejected: list[tuple[int, str]]  # (block line index, reason)
    whole: bool  # the parser may read block.data as it is (nothing rejected)
    # Offsets in block.data of the CRs in candidate lines that are whitespace (not
    # before their LF, outside strings): the parser must read them as spaces.
    whitespace: np.ndarray = field(default_factory=lambda: _NO_OFFSETS)


def screen(block: Block) -> Screened:
    """Sort a block's lines into blank, rejected (never parsed) and candidates.

    Vectorized over the block; per-line Python runs only for lines that do not start
    with `{` and end with `}` (whitespace around them, blank or hostile lines), and the
    structural scan only for blocks with nesting or several `{` on a line.
    """
    if block.overlong is not None:
        reason = f"longer than the {MAX_LINE_BYTES:,}-byte line limit ({block.overlong:,} bytes)"
        return Screened(np.empty(0, np.int64), 0, [(0, reason)], False)
    buf = np.frombuffer(block.data, dtype=np.uint8)
    starts, ends = block.bounds
    rejected: list[tuple[int, str]] = []
    ok = np.ones(len(ends), dtype=bool)

    lone = _NO_OFFSETS  # CRs that are not a line end
    if block.holds(b"\r"):
        cr = np.flatnonzero(buf == 0x0D)
        lone = cr[buf[cr + 1] != 0x0A]  # the block ends with a LF: cr + 1 is in it
        content_end = ends - ((buf[np.maximum(ends - 1, 0)] == 0x0D) & (ends > starts))
    else:
        content_end = ends
    content_length = content_end - starts  # the line without its end
    over = np.flatnonzero(content_length > MAX_LINE_BYTES)
    for i in over.tolist():
        rejected.append((i, f"longer than the {MAX_LINE_BYTES:,}-byte line limit ({int(content_length[i]):,} bytes)"))
    ok[over] = False
    nonempty = content_length > 0
    first = np.where(nonempty, buf[np.minimum(starts, len(buf) - 1)], 0)
    last = np.where(nonempty, buf[np.maximum(content_end - 1, 0)], 0)
    simple = nonempty & (first == _OPEN) & (last == _CLOSE)

    blank = 0
    for i in np.flatnonzero(ok & ~simple).tolist():
        text = bytes(buf[starts[i] : content_end[i]]).strip(b" \t\r")
        if not text:
            blank += 1
            ok[i] = False
        elif not (text[:1] == b"{" and text[-1:] == b"}"):
            rejected.append((i, f"not a JSON object: {_NOT_AN_OBJECT.get(text[0], 'not JSON')}"))
            ok[i] = False
    candidates = np.flatnonzero(ok)

    # One `{` per candidate line and no `[` anywhere: no nesting and one value a line.
    opens = block.opens if block.opens is not None else block.count(b"{")
    if opens != len(candidates) or block.holds(b"["):
        for i, reason in _structure(buf, ends, candidates):
            rejected.append((i, reason))
            ok[i] = False
        candidates = np.flatnonzero(ok)
    # NaN and Infinity are not JSON, even where pyarrow lets them by (an ignored field).
    # The first letter is looked for as the block is read: sales orders hold no N or I.
    if (block.holds(b"N") and block.find(b"NaN")) or (block.holds(b"I") and block.find(b"Infinity")):
        for i in _not_strict(block, ends, candidates):
            rejected.append((i, "not strict JSON: NaN or Infinity"))
            ok[i] = False
        candidates = np.flatnonzero(ok)
    whitespace = _NO_OFFSETS
    if len(lone):
        lone = lone[ok[np.searchsorted(ends, lone)]]
        for i in _cr_in_strings(buf, ends, lone):
            rejected.append((i, "not valid JSON: a carriage return inside a string"))
            ok[i] = False
        candidates = np.flatnonzero(ok)
        whitespace = lone[ok[np.searchsorted(ends, lone)]]
    return Screened(candidates, blank, sorted(rejected), not rejected and not len(whitespace), whitespace)


def _cr_in_strings(buf: np.ndarray, ends: np.ndarray, crs: np.ndarray) -> list[int]:
    """The lines whose CRs at `crs` stand inside a string (an odd number of quotes
    before them on their line): a raw control character, not JSON."""
    if not len(crs):
        return []
    qpos, qline = _quotes(buf, ends)
    line = np.searchsorted(ends, crs)
    before = np.searchsorted(qpos, crs) - np.searchsorted(qline, line)
    return np.unique(line[before % 2 == 1]).tolist()


def _quotes(buf: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The offsets of the quotes that open or close strings, and their lines.

    A quote is escaped when an odd run of backslashes stands right before it; lines are
    independent (JSON text cannot hold a raw line feed)."""
    pos = np.flatnonzero((buf == _QUOTE) | (buf == _BACKSLASH))
    ch = buf[pos]
    idx = np.arange(len(pos))
    backslash = ch == _BACKSLASH
    adjacent = np.zeros(len(pos), dtype=bool)
    adjacent[1:] = backslash[:-1] & (pos[:-1] == pos[1:] - 1)
    run_start = np.maximum.accumulate(np.where(backslash & ~adjacent, idx, -1))
    run = np.zeros(len(pos), dtype=np.int64)
    run[1:] = np.where(adjacent[1:], idx[1:] - run_start[:-1], 0)
    qpos = pos[(ch == _QUOTE) & (run % 2 == 0)]
    return qpos, np.searchsorted(ends, qpos)


_CONSTANT = re.compile(rb"NaN|Infinity")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def _not_strict(block: Block, ends: np.ndarray, candidates: np.ndarray) -> list[int]:
    """Candidate lines with NaN or Infinity outside a string (per line only for the
    lines that hold those letters at all)."""
    source = block.backing if block.backing is not None else block.data.to_pybytes()
    found = [m.start() for m in _CONSTANT.finditer(memoryview(source)[: block.data.size])]
    suspects = np.intersect1d(np.unique(np.searchsorted(ends, found)), candidates)
    return [i for i in suspects.tolist() if _CONSTANT.search(_STRING.sub(b'""', bytes(block.line(block.first_line + i))))]


def _structure(buf: np.ndarray, ends: np.ndarray, candidates: np.ndarray) -> list[tuple[int, str]]:
    """The candidate lines nested too deep, holding several values, an unterminated
    string or unbalanced brackets.

    Vectorized over the positions of quotes, backslashes and brackets only; lines are
    independent (JSON text cannot hold a raw line feed), so each line's depth starts at 0.
    """
    qpos, qline = _quotes(buf, ends)
    odd_quotes = np.bincount(qline, minlength=len(ends)) % 2 == 1
    # A bracket is structural when an even number of quotes precede it on its line.
    bpos = np.flatnonzero((buf == _OPEN) | (buf == _CLOSE) | (buf == 0x5B) | (buf == 0x5D))
    bline = np.searchsorted(ends, bpos)
    before = np.searchsorted(qpos, bpos) - np.searchsorted(qline, bline)
    structural = before % 2 == 0
    spos, sline = bpos[structural], bline[structural]
    delta = np.where((buf[spos] == _OPEN) | (buf[spos] == 0x5B), 1, -1)
    reasons: dict[int, str] = {}
    if len(spos):
        total = np.cumsum(delta)
        first = np.searchsorted(sline, sline)
        depth = total - (total[first] - delta[first])  # the depth after each bracket
        lines_with, group = np.unique(sline, return_index=True)
        group_end = np.append(group[1:], len(sline)) - 1
        deepest = np.maximum.reduceat(depth, group)
        lowest = np.minimum.reduceat(depth, group)
        values = np.bincount(sline[(delta < 0) & (depth == 0)], minlength=len(ends))[lines_with]
        unbalanced = (lowest < 0) | (depth[group_end] != 0)
        for i in lines_with[unbalanced].tolist():
            reasons[i] = "not valid JSON: unbalanced brackets"
        for i in lines_with[values > 1].tolist():
            reasons[i] = "several JSON values on one line"
        for i in lines_with[deepest > MAX_DEPTH].tolist():
            reasons[i] = f"nested deeper than {MAX_DEPTH} levels"
    for i in np.flatnonzero(odd_quotes).tolist():
        reasons[i] = "not valid JSON: an unterminated string"
    wanted = set(candidates.tolist())
    return sorted((i, r) for i, r in reasons.items() if i in wanted)
