"""Outputs in MIME types mdrun does not render are kept and named, never dropped silently."""

from __future__ import annotations

import json
import textwrap

import pytest

from mdrun.document.outputs import DataOutput
from mdrun.document.render import RegionBody, render_region
from tests.document.conftest import Mdrun

PLOTLY = "application/vnd.plotly.v1+json"


def test_an_output_without_a_renderable_type_gets_a_note_naming_it() -> None:
    output = DataOutput(
        output_type="display_data", data={PLOTLY: '{"data": []}'}, metadata={}
    )
    lines = render_region("b1", RegionBody(outputs=(output,)))
    assert lines[1:-1] == [f"*output not shown: mdrun cannot render {PLOTLY}*", ""]


def test_the_mime_types_named_are_text_never_markup() -> None:
    output = DataOutput(
        output_type="display_data", data={"<img src=x>": "", "a_b*": ""}, metadata={}
    )
    lines = render_region("b1", RegionBody(outputs=(output,)))
    assert lines[1] == r"*output not shown: mdrun cannot render \<img src=x\>, a\_b\**"


def test_html_that_needs_scripts_is_shown_only_where_scripts_run() -> None:
    html = '<div id="f"></div><script>draw("f")</script>'
    output = DataOutput(
        output_type="display_data", data={"text/html": html, "text/plain": "Figure()"}, metadata={}
    )
    markdown = render_region("b1", RegionBody(outputs=(output,)))
    assert "draw" not in "\n".join(markdown) and "Figure()" not in "\n".join(markdown)
    assert render_region("b1", RegionBody(outputs=(output,)), scripts=True)[1:-1] == [html, ""]
    plain = DataOutput(output_type="display_data", data={"text/html": "<b>x</b>"}, metadata={})
    assert render_region("b1", RegionBody(outputs=(plain,)))[1:-1] == ["<b>x</b>", ""]


@pytest.mark.kernel
def test_a_figure_sent_only_as_json_is_stored_and_named(mdrun: Mdrun) -> None:
    mdrun.write(
        "doc.md",
        textwrap.dedent(
            f"""\
            ```python
            from IPython.display import display
            figure = {{"data": [{{"type": "bar", "y": [1, 2]}}], "layout": {{}}}}
            display({{"{PLOTLY}": figure}}, raw=True)
            ```

            ```python
            display({{
                "{PLOTLY}": figure,
                "text/html": '<div id="figure"></div>\\n\\n<script>draw("figure");</script>',
                "text/plain": "Figure()",
            }}, raw=True)
            ```
            """
        ),
    )
    completed = mdrun("run", "doc.md")
    assert completed.code == 0, completed.err
    text = mdrun.read("doc.md")
    assert f"mdrun cannot render {PLOTLY}*" in text.split("id=b2")[0]
    # Its HTML needs JavaScript, which Markdown viewers remove: the HTML export shows it.
    region = text.split("id=b2")[1]
    assert "draw(" not in region
    assert f"output not shown: {PLOTLY}, text/html, text/plain; it needs JavaScript" in region
    stored = [
        json.loads(path.read_text())
        for path in mdrun.store.rglob("outputs.json")
    ]
    kinds = [set(output["data"]) for record in stored for output in record["outputs"]]
    assert {PLOTLY} in kinds and {PLOTLY, "text/html", "text/plain"} in kinds

    completed = mdrun("export", "doc.md", "--to", "html")
    assert completed.code == 0, completed.err
    html = mdrun.read("doc.html")
    assert '<div id="figure"></div>' in html and '<script>draw("figure");</script>' in html
    assert PLOTLY in html
