"""Checks that keep the docs true: links, code references, Mermaid diagrams and make targets.

Each check takes a document's text (and the repository root) and returns problems as strings
(`"docs/x.md:12: ..."`); an empty list means the document passes. tests/docs/test_docs.py runs
them over README.md and docs/, and tests/docs/test_doc_check.py proves each one fails on a broken
sample, so none of them can pass vacuously.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["Document", "documents", "links", "code_references", "mermaid", "make_targets", "all_problems",
           "makefile_targets", "slug"]

ROOT = Path(__file__).resolve().parents[2]

# Top-level folders whose paths, written in `code`, must exist.
CODE_ROOTS = ("chalicelib", "devstack", "infra", "tests", "bench", "docs", ".chalice")
# ...except what a run creates: Chalice's packaging cache.
GENERATED = (".chalice/deployments",)


@dataclass(frozen=True)
class Document:
    path: str  # relative to the repository root, e.g. "docs/patterns/api-backend.md"
    text: str

    def lines(self) -> list[str]:
        return self.text.splitlines()


def documents(root: Path = ROOT) -> list[Document]:
    """README.md and every Markdown page under docs/."""
    paths = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [Document(str(p.relative_to(root)), p.read_text(encoding="utf-8")) for p in paths if p.exists()]


_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")


def _blocks(doc: Document) -> tuple[list[tuple[int, str]], list[tuple[str, int, list[str]]]]:
    """The prose lines (number, text) and the fenced blocks (language, first line number, lines)."""
    prose: list[tuple[int, str]] = []
    blocks: list[tuple[str, int, list[str]]] = []
    fence: str | None = None
    language, start, body = "", 0, []
    for number, line in enumerate(doc.lines(), 1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence, language, start, body = match.group(2), match.group(3).lower(), number + 1, []
        elif fence is not None and line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
            blocks.append((language, start, body))
            fence = None
        elif fence is not None:
            body.append(line)
        else:
            prose.append((number, line))
    if fence is not None:
        blocks.append((language, start, body))
        prose.append((start - 1, "```unclosed"))
    return prose, blocks


_INLINE_CODE = re.compile(r"`([^`]+)`")


def _without_inline_code(line: str) -> str:
    return _INLINE_CODE.sub("", line)


# ---------------------------------------------------------------------------------------- links

_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(text: str) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    prose, _ = _blocks(Document("", text))
    for _, line in prose:
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            found.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
    return found


def links(doc: Document, root: Path = ROOT) -> list[str]:
    """Every relative link (and #anchor) resolves to a file of the repository (and a heading in it)."""
    problems = []
    prose, _ = _blocks(doc)
    here = (root / doc.path).parent
    for number, line in prose:
        text = _without_inline_code(line)
        targets = [m.group(1) for m in _LINK.finditer(text)]
        definition = _REFERENCE_DEF.match(text)
        if definition:
            targets.append(definition.group(1))
        for target in targets:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
                continue
            path_part, _, anchor = target.partition("#")
            resolved = (here / path_part).resolve() if path_part else (root / doc.path).resolve()
            where = f"{doc.path}:{number}"
            try:
                relative = resolved.relative_to(root.resolve())
            except ValueError:
                problems.append(f"{where}: link {target!r} leaves the repository")
                continue
            if not resolved.exists():
                problems.append(f"{where}: link {target!r}: no such file {relative}")
                continue
            if anchor and resolved.is_file() and resolved.suffix == ".md":
                if anchor not in _anchors(resolved.read_text(encoding="utf-8")):
                    problems.append(f"{where}: link {target!r}: no heading #{anchor} in {relative}")
    return problems


# ------------------------------------------------------------------------------ code references

_CODE_REF = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.py)(::?)([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
_CODE_PATH = re.compile(r"^(\.?[\w-]+)/[\w./-]*[\w-]$")


@lru_cache(maxsize=None)
def _definitions(path: Path) -> frozenset[str]:
    """Dotted names defined in a Python file: functions, classes, their methods (by parsing it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(prefix + node.name)
                if isinstance(node, ast.ClassDef):
                    walk(node.body, f"{prefix}{node.name}.")

    walk(tree.body, "")
    return frozenset(names)


def code_references(doc: Document, root: Path = ROOT) -> list[str]:
    """Every `path/file.py:function` (or `:Class.method`, or pytest's `::test`) names a definition
    that parsing the file finds; every path of the project written in `code` exists."""
    problems = []
    for number, line in enumerate(doc.lines(), 1):
        where = f"{doc.path}:{number}"
        for match in _CODE_REF.finditer(line):
            file, name = match.group(1), match.group(3)
            path = root / file
            if not path.is_file():
                problems.append(f"{where}: {file}:{name}: no such file {file}")
            elif name not in _definitions(path):
                problems.append(f"{where}: {file}:{name}: {file} defines no {name}")
        for span in _INLINE_CODE.findall(line):
            candidate = span.strip()
            head = _CODE_PATH.match(candidate)
            if (head and head.group(1) in CODE_ROOTS and not candidate.startswith(GENERATED)
                    and not (root / candidate).exists()):
                problems.append(f"{where}: `{candidate}`: no such path")
    return problems


# ---------------------------------------------------------------------------------------- Mermaid

_SEQ_ARROW = r"(?:-->>|->>|-->|->|--x|-x|--\)|-\)|<<-->>|<<->>)"
_SEQ_ACTOR = r"[A-Za-z_][\w]*"
_SEQUENCE_LINE = [
    re.compile(rf"^(participant|actor)\s+{_SEQ_ACTOR}(\s+as\s+.+)?$"),
    re.compile(rf"^{_SEQ_ACTOR}\s*{_SEQ_ARROW}\s*[+-]?{_SEQ_ACTOR}\s*:\s*.*$"),
    re.compile(rf"^[Nn]ote\s+(left of|right of|over)\s+{_SEQ_ACTOR}(\s*,\s*{_SEQ_ACTOR})?\s*:\s*.+$"),
    re.compile(rf"^(activate|deactivate)\s+{_SEQ_ACTOR}$"),
    re.compile(r"^autonumber(\s+\d+(\s+\d+)?)?$"),
]
_SEQUENCE_OPENERS = {"loop", "alt", "opt", "par", "critical", "break", "rect"}
_SEQUENCE_MIDDLES = {"else": "alt", "and": "par", "option": "critical"}

_FLOW_DIRECTIONS = {"TB", "TD", "BT", "RL", "LR"}
_FLOW_ID = re.compile(r"[A-Za-z_]\w*")
# Shape delimiters, longest opening first: ([stadium]), [[subroutine]], [(database)], ((circle)),
# {{hexagon}}, [rect], (round), {rhombus}, >asymmetric].
_FLOW_SHAPES = [("([", "])"), ("[[", "]]"), ("[(", ")]"), ("((", "))"), ("{{", "}}"), ("[/", "/]"),
                ("[\\", "\\]"), ("[", "]"), ("(", ")"), ("{", "}"), (">", "]")]
_FLOW_EDGE = re.compile(r"\s*(<?(?:-{2,}|-\.+-|={2,})[->ox]?|<?-\.+->|--\s[^-|]+?\s-->|==\s[^=|]+?\s==>)\s*")
_FLOW_LABEL = re.compile(r"\|[^|]*\|\s*")
_FLOW_SUBGRAPH = re.compile(r'^subgraph\s+(\w+(\s*\[[^\]]+\])?|"[^"]+")$')
_FLOW_STATEMENT = re.compile(r"^(classDef|class|style|linkStyle|click|direction)\s+\S.*$")


class _FlowLine:
    """A recursive-descent reading of one flowchart statement: node (edge [|label|] nodes)*."""

    def __init__(self, text: str) -> None:
        self.text, self.at = text, 0

    def fail(self, what: str) -> str:
        return f"{what} at column {self.at + 1}: {self.text[self.at:self.at + 20]!r}"

    def node(self) -> str | None:
        match = _FLOW_ID.match(self.text, self.at)
        if not match:
            return self.fail("expected a node id")
        self.at = match.end()
        for opening, closing in _FLOW_SHAPES:
            if self.text.startswith(opening, self.at):
                body_start = self.at + len(opening)
                if self.text.startswith('"', body_start):  # a quoted label may hold any delimiter
                    quote_end = self.text.find('"', body_start + 1)
                    if quote_end < 0:
                        return self.fail("unclosed quote")
                    end = self.text.find(closing, quote_end + 1)
                else:
                    end = self.text.find(closing, body_start)
                if end < 0:
                    return self.fail(f"unclosed {opening!r}")
                label = self.text[body_start:end]
                if not label.strip():
                    return self.fail("empty label")
                self.at = end + len(closing)
                break
        match = re.compile(r":::\w+").match(self.text, self.at)
        if match:
            self.at = match.end()
        return None

    def nodes(self) -> str | None:
        error = self.node()
        while error is None and re.compile(r"\s*&\s*").match(self.text, self.at):
            self.at = re.compile(r"\s*&\s*").match(self.text, self.at).end()  # type: ignore[union-attr]
            error = self.node()
        return error

    def statement(self) -> str | None:
        error = self.nodes()
        while error is None and self.at < len(self.text):
            edge = _FLOW_EDGE.match(self.text, self.at)
            if not edge:
                return self.fail("expected an edge (-->, ---, -.->, ==>)")
            self.at = edge.end()
            label = _FLOW_LABEL.match(self.text, self.at)
            if label:
                self.at = label.end()
            error = self.nodes()
        return error


def _sequence_problems(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    open_blocks: list[tuple[int, str]] = []
    for number, line in lines:
        keyword = line.split(maxsplit=1)[0]
        if keyword in _SEQUENCE_OPENERS:
            open_blocks.append((number, keyword))
        elif keyword in _SEQUENCE_MIDDLES:
            if not open_blocks or open_blocks[-1][1] != _SEQUENCE_MIDDLES[keyword]:
                problems.append((number, f"{keyword!r} outside an {_SEQUENCE_MIDDLES[keyword]!r} block"))
        elif line == "end":
            if not open_blocks:
                problems.append((number, "'end' closes no block"))
            else:
                open_blocks.pop()
        elif not any(p.match(line) for p in _SEQUENCE_LINE):
            problems.append((number, f"not a sequenceDiagram statement: {line!r}"))
    problems += [(number, f"{keyword!r} block is never closed with 'end'") for number, keyword in open_blocks]
    return problems


def _flowchart_problems(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    depth = 0
    for number, line in lines:
        if line.startswith("subgraph "):
            depth += 1
            if not _FLOW_SUBGRAPH.match(line):
                problems.append((number, f"not a subgraph header (subgraph id [title]): {line!r}"))
        elif line == "end":
            depth -= 1
            if depth < 0:
                problems.append((number, "'end' closes no subgraph"))
                depth = 0
        elif _FLOW_STATEMENT.match(line):
            continue
        else:
            error = _FlowLine(line.rstrip(";")).statement()
            if error:
                problems.append((number, error))
    if depth > 0:
        problems.append((lines[-1][0] if lines else 0, "a subgraph is never closed with 'end'"))
    return problems


def parse_mermaid(source: list[str], first_line: int = 1) -> list[tuple[int, str]]:
    """Problems of one Mermaid block as (line number, message); [] when it parses."""
    lines = [(first_line + i, line.strip()) for i, line in enumerate(source)]
    lines = [(n, text) for n, text in lines if text and not text.startswith("%%")]
    if not lines:
        return [(first_line, "empty Mermaid block")]
    (number, header), body = lines[0], lines[1:]
    words = header.split()
    if words[0] == "sequenceDiagram" and len(words) == 1:
        return _sequence_problems(body)
    if words[0] in ("flowchart", "graph") and (len(words) == 1 or (len(words) == 2 and words[1] in _FLOW_DIRECTIONS)):
        return _flowchart_problems(body)
    return [(number, f"unknown or unsupported diagram type {header!r} (sequenceDiagram, flowchart LR|TD|...)")]


def mermaid(doc: Document, root: Path = ROOT) -> list[str]:
    """Every ```mermaid block parses (sequenceDiagram and flowchart, the constructs these docs use)."""
    _, blocks = _blocks(doc)
    return [f"{doc.path}:{number}: Mermaid: {message}"
            for language, start, body in blocks if language == "mermaid"
            for number, message in parse_mermaid(body, start)]


# ------------------------------------------------------------------------------------ make targets

_MAKE = re.compile(r"(?:^|[\s;(&|$`])make\s+((?:-\S+\s+|[A-Z_]+=\S*\s+)*)([a-z][\w.-]*)")
_SHELL_LANGUAGES = {"", "sh", "bash", "shell", "console", "text", "sh-session"}


def makefile_targets(root: Path = ROOT) -> set[str]:
    targets: set[str] = set()
    for line in (root / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_./$()-][A-Za-z0-9_./$() -]*?)\s*:(?![=:])", line)
        if match and not line.startswith(("\t", ".PHONY")):
            targets.update(match.group(1).split())
    return targets


def make_targets(doc: Document, root: Path = ROOT) -> list[str]:
    """Every `make <target>` written as a command (in `code` or a shell block) is a Makefile target."""
    known = makefile_targets(root)
    prose, blocks = _blocks(doc)
    commands: list[tuple[int, str]] = []
    for number, line in prose:
        commands += [(number, span) for span in _INLINE_CODE.findall(line)]
    for language, start, body in blocks:
        if language in _SHELL_LANGUAGES:
            commands += [(start + i, line.split("#", 1)[0] if language != "text" else line) for i, line in enumerate(body)]
    problems = []
    for number, command in commands:
        for match in _MAKE.finditer(command):
            target = match.group(2)
            if target not in known:
                problems.append(f"{doc.path}:{number}: `make {target}`: no such Makefile target")
    return problems


def all_problems(docs: list[Document], root: Path = ROOT) -> list[str]:
    return [problem for doc in docs for check in (links, code_references, mermaid, make_targets)
            for problem in check(doc, root)]
