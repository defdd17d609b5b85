#!/usr/bin/env python3
"""Check that every relative link and #anchor in README.md and docs/**/*.md resolves.

A link resolves when its file (or folder) exists, relative to the Markdown file that holds it,
and, when it names an #anchor in a Markdown file, that file has a heading whose GitHub anchor is
that name (lowercase, spaces to '-', punctuation other than '-' and '_' removed, repeats numbered
-1, -2, ...). External links (http, https, mailto, ...) are not checked. Links inside code
(fenced blocks and `inline code`) are not links and are skipped.

Usage: python3 docs/check_links.py [repository root]   (exit 1 listing the broken links)
Standard library only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# [text](target "title") and ![alt](target), with one level of nested brackets in the text.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^)]*)?\s*\)")
# [label]: target
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
FENCE = re.compile(r"^\s{0,3}(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def without_code(text: str, keep_inline: bool = False) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1, with inline code blanked out
    (kept as written with `keep_inline`, for headings)."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if match:
            if fence is None:
                fence = match.group(1)
            elif match.group(1) == fence:
                fence = None
            continue
        if fence is None:
            lines.append((number, line if keep_inline else re.sub(r"`[^`]*`", "``", line)))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # punctuation and symbols, but '-' and '_'
    return text.replace(" ", "-")


def anchors(path: Path, cache: dict[Path, set[str]]) -> set[str]:
    """Every anchor GitHub makes for the headings of a Markdown file."""
    if path not in cache:
        seen: dict[str, int] = {}
        names: set[str] = set()
        text = path.read_text(encoding="utf-8")
        for _, line in without_code(text, keep_inline=True):
            match = HEADING.match(line)
            if not match:
                continue
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            names.add(base if count == 0 else f"{base}-{count}")
        # Explicit anchors: <a id="..."> or <a name="...">.
        names.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))
        cache[path] = names
    return cache[path]


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every inline link, image and reference definition outside code."""
    found = []
    for number, line in without_code(path.read_text(encoding="utf-8")):
        for match in INLINE_LINK.finditer(line):
            found.append((number, match.group(1)))
        for match in REFERENCE_DEF.finditer(line):
            found.append((number, match.group(1)))
    return [(n, t[1:-1] if t.startswith("<") and t.endswith(">") else t) for n, t in found]


def check(root: Path) -> list[str]:
    files = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    cache: dict[Path, set[str]] = {}
    problems = []
    for source in files:
        if not source.is_file():
            problems.append(f"{source.relative_to(root)}: missing")
            continue
        for number, target in links(source):
            if SCHEME.match(target) or target.startswith("//"):
                continue  # external: not checked
            where = f"{source.relative_to(root)}:{number}: ({target})"
            file_part, _, anchor = target.partition("#")
            file_part = file_part.split("?", 1)[0]
            resolved = (source.parent / file_part).resolve() if file_part else source
            if not resolved.exists():
                problems.append(f"{where}: no such file {file_part}")
                continue
            if anchor and resolved.is_file() and resolved.suffix.lower() == ".md":
                if anchor not in anchors(resolved, cache):
                    problems.append(f"{where}: no heading with anchor #{anchor} in {file_part or source.name}")
    return problems


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    problems = check(root.resolve())
    if problems:
        print(f"check_links: {len(problems)} broken link(s) in README.md and docs/:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    count = sum(1 for _ in [root / "README.md", *(root / "docs").rglob("*.md")])
    print(f"check_links: every relative link and anchor resolves ({count} Markdown files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
