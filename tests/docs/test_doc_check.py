"""The doc checker itself: each check passes a good sample and fails a deliberately broken one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.doc_check import (Document, code_references, links, make_targets, makefile_targets, mermaid,
                                  parse_mermaid, slug)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A tiny repository: a Makefile, a Python module, a docs page with headings."""
    (tmp_path / "Makefile").write_text("run: .venv\n\tpython -m devstack run\n\ntraces-ui:\n\techo\n"
                                       "X := 1\n.PHONY: run ghost\n")
    (tmp_path / "chalicelib" / "services").mkdir(parents=True)
    (tmp_path / "chalicelib" / "services" / "orders.py").write_text(
        "class OrderService:\n    def place(self):\n        pass\n\n"
        "@decorated\ndef consume_orders(event):\n    def inner():\n        pass\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "operating.md").write_text("# Operating it\n\n## When a DLQ fills\n\n## `make traces`, read\n")
    return tmp_path


def doc(text: str, path: str = "README.md") -> Document:
    return Document(path, text)


# ------------------------------------------------------------------------------------------ links

def test_a_link_to_an_existing_page_and_heading_passes(repo: Path) -> None:
    text = "See [operating](docs/operating.md#when-a-dlq-fills) and [the site](https://example.com)."
    assert links(doc(text), repo) == []


def test_a_link_to_a_missing_file_fails(repo: Path) -> None:
    assert links(doc("See [deploying](docs/deploying.md)."), repo) == [
        "README.md:1: link 'docs/deploying.md': no such file docs/deploying.md"]


def test_a_link_to_a_missing_heading_fails(repo: Path) -> None:
    problems = links(doc("[x](docs/operating.md#when-the-queue-fills)"), repo)
    assert problems == ["README.md:1: link 'docs/operating.md#when-the-queue-fills': no heading "
                        "#when-the-queue-fills in docs/operating.md"]


def test_a_link_leaving_the_repository_fails(repo: Path) -> None:
    assert "leaves the repository" in links(doc("[style](../shared/STYLE.md)"), repo)[0]


def test_links_resolve_from_the_pages_own_folder(repo: Path) -> None:
    assert links(doc("[up](../README.md) [same](operating.md)", "docs/x.md"), repo) == [
        "docs/x.md:1: link '../README.md': no such file README.md"]


def test_a_link_inside_code_is_not_a_link(repo: Path) -> None:
    assert links(doc("`[a](nowhere.md)`\n```\n[b](nowhere.md)\n```\n"), repo) == []


def test_anchors_follow_githubs_slugs() -> None:
    assert slug("When a DLQ fills") == "when-a-dlq-fills"
    assert slug("`make traces`, read") == "make-traces-read"
    assert slug("Fan-out / fan-in (imports)") == "fan-out--fan-in-imports"


# -------------------------------------------------------------------------------- code references

def test_functions_classes_and_methods_that_exist_pass(repo: Path) -> None:
    text = ("`chalicelib/services/orders.py:OrderService.place` and "
            "[consume](chalicelib/services/orders.py) `chalicelib/services/orders.py:consume_orders`, "
            "`chalicelib/services/orders.py::OrderService`, `chalicelib/services/orders.py`")
    assert code_references(doc(text), repo) == []


def test_an_unknown_function_fails(repo: Path) -> None:
    assert code_references(doc("`chalicelib/services/orders.py:place_order`"), repo) == [
        "README.md:1: chalicelib/services/orders.py:place_order: chalicelib/services/orders.py defines no place_order"]


def test_an_unknown_method_and_a_nested_function_fail(repo: Path) -> None:
    problems = code_references(doc("`chalicelib/services/orders.py:OrderService.cancel` "
                                   "`chalicelib/services/orders.py:inner`"), repo)
    assert len(problems) == 2


def test_a_reference_into_a_missing_file_fails(repo: Path) -> None:
    assert code_references(doc("`chalicelib/services/payments.py:PaymentService`"), repo) == [
        "README.md:1: chalicelib/services/payments.py:PaymentService: no such file chalicelib/services/payments.py"]


def test_a_project_path_in_code_must_exist_but_placeholders_and_other_paths_may_not(repo: Path) -> None:
    assert code_references(doc("`chalicelib/adapters/gone.py` `build/<stage>/template.json` `/tmp/x.json`"),
                           repo) == ["README.md:1: `chalicelib/adapters/gone.py`: no such path"]


# ---------------------------------------------------------------------------------------- Mermaid

GOOD_SEQUENCE = """sequenceDiagram
    autonumber
    participant C as Client
    participant Q as OrdersQueue
    C->>+Q: SendMessage
    Q-->>-C: 200
    Note over C,Q: one message per order
    loop every batch
        alt enough stock
            Q->>C: confirmed
        else out of stock
            Q-)C: rejected
        end
    end
"""

GOOD_FLOWCHART = """flowchart LR
  client([client]) -->|HTTPS| apigw[API Gateway] --> api[api_handler<br/>products]
  api --> products[(ProductsTable)] & orders[(OrdersTable)]
  topic{{ImportChunksTopic}} -.-> q[[ImportChunksQueue]]
  subgraph aws [AWS]
    x --- y
  end
  classDef hot fill:#f96
"""


def test_good_diagrams_parse() -> None:
    assert parse_mermaid(GOOD_SEQUENCE.splitlines()) == []
    assert parse_mermaid(GOOD_FLOWCHART.splitlines()) == []


@pytest.mark.parametrize("broken, message", [
    ("sequenceDiagram\n  A -> > B: hi", "not a sequenceDiagram statement"),
    ("sequenceDiagram\n  A->>B hi", "not a sequenceDiagram statement"),
    ("sequenceDiagram\n  loop forever\n  A->>B: hi", "never closed"),
    ("sequenceDiagram\n  A->>B: hi\n  end", "closes no block"),
    ("sequenceDiagram\n  opt x\n  else y\n  end", "outside an 'alt' block"),
    ("flowchart LR\n  a[unclosed --> b", "unclosed '['"),
    ("flowchart LR\n  a --> ", "expected a node id"),
    ("flowchart LR\n  a ~~> b", "expected an edge"),
    ("flowchart LR\n  subgraph s\n  a --> b", "never closed"),
    ("flowchart sideways\n  a --> b", "unknown or unsupported diagram type"),
    ("pie\n  \"a\": 1", "unknown or unsupported diagram type"),
    ("", "empty Mermaid block"),
])
def test_a_broken_diagram_fails(broken: str, message: str) -> None:
    problems = parse_mermaid(broken.splitlines())
    assert problems and message in problems[0][1], problems


def test_mermaid_problems_name_the_page_and_line() -> None:
    text = "# Page\n\n```mermaid\nsequenceDiagram\n  A => B: hi\n```\n"
    assert mermaid(doc(text)) == ["README.md:5: Mermaid: not a sequenceDiagram statement: 'A => B: hi'"]


# ----------------------------------------------------------------------------------- make targets

def test_the_makefiles_targets_are_read_without_variables_or_phony(repo: Path) -> None:
    assert makefile_targets(repo) == {"run", "traces-ui"}


def test_named_targets_that_exist_pass(repo: Path) -> None:
    text = "Run `make run`.\n\n```sh\nTOKEN=$(make -s run USER=alice)  # make sure\nmake STAGE=dev traces-ui\n```\n"
    assert make_targets(doc(text), repo) == []


def test_a_target_that_does_not_exist_fails_in_code_and_in_shell_blocks(repo: Path) -> None:
    text = "Run `make test-unit`.\n\n```sh\nmake -s token USER=alice\n```\n"
    assert make_targets(doc(text), repo) == [
        "README.md:1: `make test-unit`: no such Makefile target",
        "README.md:4: `make token`: no such Makefile target",
    ]


def test_prose_about_making_things_is_not_a_command(repo: Path) -> None:
    assert make_targets(doc("We make sure the make targets exist."), repo) == []
