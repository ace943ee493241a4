"""README.md and docs/ stay true: links resolve, code references name real code, diagrams parse,
named make targets exist (tests/docs/doc_check.py holds the checks)."""

from __future__ import annotations

import pytest

from tests.docs.doc_check import ROOT, code_references, documents, links, make_targets, mermaid

DOCS = documents()
IDS = [d.path for d in DOCS]


def test_the_docs_are_found() -> None:
    assert "README.md" in IDS
    assert any(path.startswith("docs/patterns/") for path in IDS)


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_relative_link_resolves(doc) -> None:
    assert links(doc, ROOT) == []


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_code_reference_names_real_code(doc) -> None:
    assert code_references(doc, ROOT) == []


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_mermaid_block_parses(doc) -> None:
    assert mermaid(doc, ROOT) == []


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_make_target_named_exists(doc) -> None:
    assert make_targets(doc, ROOT) == []
