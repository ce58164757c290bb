"""docs/design.md is the contract the code cites: every citation names a section it has,
and nothing cites a design document the repository does not hold."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTION_SIGN = "\u00a7"  # written as an escape, so this file does not hold one itself
CITATION = re.compile(r"docs/design\.md#([a-z0-9-]+)((?:,? #[a-z0-9-]+)*)")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    paths = [ROOT / p for p in listed.splitlines()]
    return [p for p in paths if p.suffix in {".py", ".md", ".sql", ".json", ".txt", ""} and p.is_file()
            and p.stat().st_size < 2_000_000 and "golden" not in p.parts]


def anchors() -> set[str]:
    """GitHub's anchors of the document's headings."""
    found = set()
    for line in (ROOT / "docs" / "design.md").read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 -]", "", title).replace(" ", "-"))
    return found


def test_every_citation_names_a_section_of_the_design():
    known, cited = anchors(), {}
    for path in tracked_text_files():
        for match in CITATION.finditer(path.read_text(errors="replace")):
            for anchor in [match.group(1), *re.findall(r"#([a-z0-9-]+)", match.group(2))]:
                cited.setdefault(anchor, path.relative_to(ROOT).as_posix())
    assert len(cited) >= 10
    missing = {a: where for a, where in cited.items() if a not in known}
    assert missing == {}, f"cited sections docs/design.md does not have: {missing}"


def test_nothing_cites_a_design_document_by_section_number():
    stale = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in tracked_text_files()
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if SECTION_SIGN in line
    ]
    assert stale == [], stale
