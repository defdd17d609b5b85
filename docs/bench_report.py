#!/usr/bin/env python3
"""Puts a benchmark's report into docs/performance.md, between its markers.

    python3 docs/bench_report.py NAME REPORT.md

replaces everything between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->` with a line
saying when and where it was measured, then REPORT.md's own text (its first heading dropped).
`make bench-outside`, `make bench-recommendations` and `make bench-replicas` call it, so the page
always shows the last run of each; earlier figures live in git history. Standard library only.
"""

import datetime
import os
import pathlib
import platform
import re
import sys

PAGE = pathlib.Path(__file__).resolve().parent / "performance.md"


def machine() -> str:
    model = ""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count() or 0
    return f"{cores} cores{', ' + model if model else ''}, {platform.system()} {platform.release()}"


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    name, report = sys.argv[1], pathlib.Path(sys.argv[2])
    text = report.read_text()
    # The report's own title is the page's section; its body follows.
    body = re.sub(r"\A#[^\n]*\n+", "", text).strip()
    # Headings inside the report sit below the page's "Latest figures" section.
    body = re.sub(r"^(#+) ", lambda m: "#" * min(len(m.group(1)) + 2, 6) + " ", body, flags=re.M)
    when = datetime.datetime.fromtimestamp(report.stat().st_mtime, datetime.timezone.utc)
    block = (
        f"<!-- bench:{name}:begin -->\n"
        f"Written by `make bench-{name}` on {when:%Y-%m-%d %H:%M} UTC, on {machine()}.\n\n"
        f"{body}\n"
        f"<!-- bench:{name}:end -->"
    )
    page = PAGE.read_text()
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)}:begin -->.*?<!-- bench:{re.escape(name)}:end -->", re.S
    )
    if not pattern.search(page):
        print(f"{PAGE}: no bench:{name} markers", file=sys.stderr)
        return 1
    PAGE.write_text(pattern.sub(lambda _: block, page, count=1))
    print(f"{PAGE}: bench:{name} written from {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
