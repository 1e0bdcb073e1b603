"""The output region as a markdown-it block rule: one token, found in the document's one parse."""

from __future__ import annotations

from hypothesis import given

from mdrun.document.parse import line_ending, parse_document
from mdrun.document.regions import REGION_TOKEN, Region
from mdrun.document.render import RegionBody, render_region, splice
from tests.document.test_render import documents_and_bodies
from tests.strategies import DocumentSpec

REGION = "<!-- mdrun:output id=b1 -->\n``` python\nnot = a block\n```\n<!-- mdrun:end -->\n"


def test_a_region_is_one_token_with_its_line_map_and_its_contents_are_not_parsed() -> None:
    document = parse_document("```python\nx\n```\n" + REGION + "after\n")
    regions = [token for token in document.tokens if token.type == REGION_TOKEN]
    assert [(token.map, token.meta) for token in regions] == [([3, 8], {"block_id": "b1"})]
    assert [token.type for token in document.tokens].count("fence") == 1
    assert document.blocks[0].region == Region(3, 8, "b1")


def test_a_region_in_a_list_item_is_found_with_the_item_s_indent() -> None:
    indented = "".join(f"   {line}\n" for line in REGION.splitlines())
    document = parse_document("1. ```python\n   x\n   ```\n" + indented + "2. next\n")
    (block,) = document.blocks
    assert (block.prefix, block.region) == ("   ", Region(3, 8, "b1"))


def test_markers_must_follow_the_container_prefix_exactly() -> None:
    shifted = "".join(f" {line}\n" for line in REGION.splitlines())
    document = parse_document("```python\nx\n```\n" + shifted)
    assert document.blocks[0].region is None
    assert document.warnings == ()


def test_a_region_ends_within_its_block_s_container() -> None:
    # A blank line ends the block quote: the end marker after it is in another quote.
    text = "> ```python\n> x\n> ```\n> <!-- mdrun:output id=b1 -->\n\n> <!-- mdrun:end -->\n"
    document = parse_document(text, "doc.md")
    assert document.blocks[0].region is None
    assert document.warnings == (
        "doc.md:4: output marker without a matching `<!-- mdrun:end -->`; left as ordinary text",
    )


def test_only_the_first_region_after_a_block_is_its_region() -> None:
    text = "```python\nx\n```\n" + REGION + REGION.replace("b1", "b2")
    document = parse_document(text)
    assert document.blocks[0].region == Region(3, 8, "b1")
    assert len(document.blocks) == 2  # the second region follows no block: its fence is text


@given(documents_and_bodies())
def test_region_contents_never_change_what_the_rest_of_the_document_parses_to(
    case: tuple[DocumentSpec, dict[int, RegionBody]],
) -> None:
    """Parsing once equals parsing with every region blanked out (what regions must not touch)."""
    spec, found = case
    regions = {index: render_region(f"b{index + 1}", body) for index, body in found.items()}
    document = parse_document(splice(parse_document(spec.text()), regions))
    inside = {
        number
        for block in document.blocks
        if block.region is not None
        for number in range(block.region.start_line, block.region.end_line)
    }
    blanked = "".join(
        ("\n" if line_ending(line) else "") if number in inside else line
        for number, line in enumerate(document.lines)
    )
    expected = parse_document(blanked)
    assert [(b.info, b.code, b.start_line, b.end_line, b.prefix) for b in document.blocks] == [
        (b.info, b.code, b.start_line, b.end_line, b.prefix) for b in expected.blocks
    ]
    assert all(block.region is None for block in expected.blocks)
