"""What the docs point at exists: every relative link of README.md, docs/*.md and infra/README.md
names a file of the repository (and, with a #fragment, a heading of that file, as GitHub renders
its anchors); every path of the repository they quote as code (`tests/api/test_races.py`, with
`::test_name`) is there; and the key schema table of docs/how-it-works.md is the one in
storage/schema.py. Pure: no servers, seconds."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from registry.storage.schema import TABLES

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "infra" / "README.md"]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...
# A code span that is a path from the repository's root, optionally naming a test in it.
TOP_FOLDERS = "tests|lambdas|local|infra|bench|registryctl|imagectl|docs"
QUOTED_PATH = re.compile(rf"(?P<path>(?:{TOP_FOLDERS})/[\w./-]*)(?:::(?P<name>\w+))?")


def prose(path: Path) -> str:
    """The file without code: a link-like text in a code block or span is no link."""
    return CODE_SPAN.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))


def links(path: Path) -> list[str]:
    text = prose(path)
    return INLINE_LINK.findall(text) + REFERENCE.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text lowercased, punctuation and symbols dropped,
    spaces made hyphens (github-slugger)."""
    text = INLINE_LINK.sub(lambda m: m.group(0)[1 : m.group(0).index("]")], heading)
    text = text.replace("`", "").replace("*", "").lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_relative_links_point_at_what_exists(path):
    broken = []
    for link in links(path):
        if EXTERNAL.match(link):
            continue
        target, _, fragment = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists() or not file.is_relative_to(ROOT):
            broken.append(f"{link}: no file {file}")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(f"{link}: no heading with the anchor #{fragment} in {file.relative_to(ROOT)}")
    assert broken == [], f"{path.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_quoted_paths_and_tests_exist(path):
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    missing = []
    for span in CODE_SPAN.finditer(text):
        match = QUOTED_PATH.fullmatch(span.group(0).strip("`"))
        if match is None:
            continue
        file = ROOT / match["path"]
        if not file.exists():
            missing.append(match["path"])
        elif match["name"] and not re.search(rf"^\s*(async )?def {match['name']}\(", file.read_text(), re.MULTILINE):
            missing.append(span.group(0))
    assert missing == [], f"{path.relative_to(ROOT)} quotes what is not there: {missing}"


def test_the_slugs_are_githubs():
    assert slug("Atomicity: the rules are the transaction's conditions") == (
        "atomicity-the-rules-are-the-transactions-conditions"
    )
    assert slug("Issuing keys: `registryctl`") == "issuing-keys-registryctl"
    assert slug("The local stack (`make run`)") == "the-local-stack-make-run"
    assert slug("Layers through a 6 MB Lambda payload") == "layers-through-a-6-mb-lambda-payload"


def test_the_key_schema_table_is_the_code_s():
    text = (ROOT / "docs" / "how-it-works.md").read_text(encoding="utf-8")
    section = text[text.index("## The key schema") :]
    section = section[: section.index("\n## ")]
    rows = [line.split("|")[1:4] for line in section.splitlines() if line.startswith("| ")]
    documented = {name.strip(): (pk.strip(), sk.strip() or None) for name, pk, sk in rows[1:]}
    assert documented == {name: (spec.partition_key, spec.sort_key) for name, spec in TABLES.items()}
