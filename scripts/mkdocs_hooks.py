"""mkdocs hooks (mkdocs.yml's `hooks`): the site's home page is the project's README.md.

Its links into `docs/` become links between pages; a link to another file of the repository (`LICENSE`,
`benchmarks/RESULTS.md`), which the site does not hold, becomes its path in code, as the pages write such paths.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def site_link(match: re.Match[str]) -> str:
    """A README link as the site's home page writes it."""
    text, target = match.groups()
    if re.match(r"^[a-z]+:|^#", target):
        return match.group(0)
    if target.startswith("docs/"):
        return f"[{text}]({target.removeprefix('docs/')})"
    return text if text.strip("`") == target else f"{text} (`{target}`)"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri != "index.md":
        return markdown
    return LINK.sub(site_link, README.read_text())
