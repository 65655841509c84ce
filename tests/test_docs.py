"""The documentation's links resolve, and the README stays short enough to read first."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "bench" / "README.md", *(ROOT / "docs").glob("*.md")])
README_MAX_LINES = 200

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks: links and headings in code are only examples."""
    lines, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            lines.append(line)
    return lines


def links(path: Path) -> list[str]:
    """Every link target written in a Markdown file, in order (inline code left out)."""
    text = "\n".join(prose_lines(path.read_text(encoding="utf-8")))
    return LINK.findall(INLINE_CODE.sub("", text))


def github_anchor(heading: str) -> str:
    """GitHub's id for a heading: its text lower-cased, punctuation but '-' and '_' dropped,
    spaces turned into '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = text.replace("`", "").lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The ids of a file's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match:
            anchor = github_anchor(match.group(2))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            if count:
                seen[f"{anchor}-{count}"] = 1
    return set(seen)


def broken_links(path: Path) -> list[str]:
    """The relative links of a file whose file is missing, or whose #anchor names no heading
    of the Markdown file it points to."""
    broken = []
    for target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target} (no such heading)")
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(doc):
    """Each relative link of the README, bench/README.md and docs/ names a file that exists,
    and each #anchor a heading of that file."""
    assert broken_links(doc) == []


def test_the_readme_links_to_its_own_sections_and_every_doc():
    """The README's anchors are checked for real: it links to its own sections and to each
    page of docs/."""
    targets = links(ROOT / "README.md")
    assert {"#hardware", "#docker", "#more-than-one-gpu"} <= set(targets)
    linked_docs = {target.partition("#")[0] for target in targets if target.startswith("docs/")}
    pages = {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")}
    assert pages <= linked_docs


def test_anchor_rule_matches_githubs(tmp_path):
    """Headings with code, punctuation and repeats get the ids GitHub gives them."""
    page = tmp_path / "page.md"
    page.write_text("# Set up the Discord application\n## `PLACE_*` settings: a/b, c_d\n"
                    "## Licence (MIT)\n## Logs\n## Logs\n```\n# not a heading\n```\n",
                    encoding="utf-8")
    assert anchors(page) == {"set-up-the-discord-application", "place_-settings-ab-c_d",
                             "licence-mit", "logs", "logs-1"}


def test_a_missing_file_and_a_missing_heading_are_reported(tmp_path):
    """The checker reports a link to a missing file and an anchor that names no heading."""
    (tmp_path / "other.md").write_text("# Present heading\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("# Top\n[ok](other.md#present-heading) [self](#top) [web](https://x.y)\n"
                    "[gone](missing.md) [bad](other.md#absent) [bad self](#nowhere)\n"
                    "`[code](ignored.md)`\n```\n[example](also-ignored.md)\n```\n",
                    encoding="utf-8")
    assert broken_links(page) == ["missing.md (no such file)",
                                  "other.md#absent (no such heading)",
                                  "#nowhere (no such heading)"]


def test_readme_stays_within_200_lines():
    """Owners read the README first, before anything else in the repository: it has to fit on
    a screen or two, so details belong in docs/ and the README links to them."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move details to docs/"
