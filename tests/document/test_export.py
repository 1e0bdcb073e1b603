"""`mdrun export`: each format's content, the source left untouched, --no-exec, and the errors.

One document is run once for the module (one kernel); every other export reads the store.
"""

from __future__ import annotations

import html.parser
import io
import json
import shutil
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from hypothesis import example, given, settings

from mdrun.cli import main
from mdrun.core.store import Store
from mdrun.document.evaluate import BlockOutcome, BlockStatus, Evaluation, Evaluator
from mdrun.document.export import default_output
from mdrun.document.export_formats import EXPORT_FORMATS, export_format
from mdrun.document.export_pandoc import convert_with_pandoc, page_title, pandoc_markdown
from mdrun.document.outputs import ErrorOutput, Output, StreamOutput, terminal_text
from mdrun.document.parse import parse_document
from mdrun.document.pipeline import make_plan
from mdrun.errors import UsageError
from tests.strategies import printed_texts

PNG_BLOCK = """\
```python echo=false
import struct, zlib
from IPython.display import Image, display

def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

def png(width, height):
    rows = b"".join(b"\\x00" + b"\\xd0\\x30\\x30" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))

display(Image(png(6, 4)))
```
"""
"""A block that shows a small red PNG, made without any imaging library; its code is hidden."""

DOCUMENT = f"""\
---
title: Export demo
---
# Exporting *mdrun* documents

Some prose before the code.

```python id=hello
print("hello from mdrun")
6 * 7
```

{PNG_BLOCK}
- a list item with a block:
  ```python
  print("inside a list")
  ```

```python allow_error=true
raise ValueError("boom")
```

```json
{{"shown": "as code, never run"}}
```
"""


def mdrun(store: Path, *arguments: str) -> int:
    """Run `mdrun --store STORE ...` in-process."""
    return main(["--store", str(store), *arguments])


@dataclass(frozen=True, slots=True)
class Exported:
    """The module's document after one HTML export."""

    folder: Path
    document: Path
    store: Path
    html: str


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    folder = tmp_path_factory.mktemp("export")
    document = folder / "doc.md"
    document.write_text(DOCUMENT, encoding="utf-8")
    store = folder / "store"
    assert mdrun(store, "export", str(document), "--to", "html") == 0
    html = (folder / "doc.html").read_text(encoding="utf-8")
    return Exported(folder, document, store, html)


def export_to(exported: Exported, to: str, output: Path) -> int:
    """Export the module's document again (everything cached)."""
    return mdrun(exported.store, "export", str(exported.document), "--to", to, "-o", str(output))


# -- HTML ---------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_html_holds_the_outputs_in_styled_regions(exported: Exported) -> None:
    html = exported.html
    assert html.startswith("<!DOCTYPE html>")
    assert "<title>Export demo</title>" in html
    assert '<div class="mdrun-output">' in html
    for text in ("hello from mdrun", "42", "inside a list", "ValueError: boom"):
        assert text in html
    assert ".mdrun-output {" in html.split("<body>")[0], "the stylesheet is embedded"
    assert "<!-- mdrun:" not in html


@pytest.mark.kernel
def test_html_is_self_contained_with_images_as_data_uris(exported: Exported) -> None:
    assert 'src="data:image/png;base64,iVBORw0KGgo' in exported.html
    assert "doc_files" not in exported.html
    assert "<link" not in exported.html


@pytest.mark.kernel
def test_html_code_is_highlighted(exported: Exported) -> None:
    assert '<pre class="sourceCode python">' in exported.html
    assert '<span class="bu">print</span>' in exported.html
    assert '<pre class="sourceCode json">' in exported.html


@pytest.mark.kernel
def test_echo_false_hides_the_code_and_keeps_its_output(exported: Exported) -> None:
    assert "zlib" not in exported.html
    assert 'aria-label="output of b2"' in exported.html


@pytest.mark.kernel
def test_export_leaves_the_document_and_its_folder_untouched(exported: Exported) -> None:
    assert exported.document.read_text(encoding="utf-8") == DOCUMENT
    # No image folder, no temporary file: the other tests write their exports elsewhere.
    names = sorted(path.name for path in exported.folder.iterdir())
    assert names == ["doc.html", "doc.md", "store"]


@pytest.mark.kernel
def test_dash_writes_html_to_stdout(exported: Exported, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert mdrun(exported.store, "export", str(exported.document), "--to", "html", "-o", "-") == 0
    captured = capsys.readouterr()
    assert captured.out == exported.html
    assert "0 executed" in captured.err


# -- docx, ipynb, md ------------------------------------------------------------------------------


@pytest.mark.kernel
def test_docx_is_a_word_file_with_the_outputs(exported: Exported, tmp_path: Path) -> None:
    target = tmp_path / "doc.docx"
    assert export_to(exported, "docx", target) == 0
    with zipfile.ZipFile(io.BytesIO(target.read_bytes())) as archive:
        body = archive.read("word/document.xml").decode("utf-8")
        media = [name for name in archive.namelist() if name.startswith("word/media/")]
    assert "hello from mdrun" in body
    assert "inside a list" in body
    assert "zlib" not in body
    assert len(media) == 1


@pytest.mark.kernel
def test_ipynb_is_a_valid_notebook_with_the_stored_outputs(
    exported: Exported, tmp_path: Path
) -> None:
    target = tmp_path / "doc.ipynb"
    assert export_to(exported, "ipynb", target) == 0
    notebook = nbformat.reads(target.read_text(encoding="utf-8"), as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(notebook)
    kinds = [(cell.cell_type, cell.get("id")) for cell in notebook.cells]
    assert kinds == [
        ("markdown", "md-1"),
        ("code", "hello"),
        ("code", "b2"),
        ("markdown", "md-4"),
        ("code", "b3"),
        ("code", "b4"),
        ("markdown", "md-7"),
    ]
    hello, image, in_list, failing = (notebook.cells[i] for i in (1, 2, 4, 5))
    assert hello.source == 'print("hello from mdrun")\n6 * 7'
    assert [output.output_type for output in hello.outputs] == ["stream", "execute_result"]
    assert hello.outputs[1].data["text/plain"] == "42"
    assert hello.execution_count == hello.outputs[1].execution_count == 1
    assert image.metadata["jupyter"] == {"source_hidden": True}
    assert image.outputs[0].data["image/png"].startswith("iVBORw0KGgo")
    assert in_list.outputs[0].text == "inside a list\n"
    assert failing.outputs[-1].output_type == "error"
    assert failing.outputs[-1].ename == "ValueError"
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    assert "<!-- mdrun:" not in markdown and "title:" not in markdown
    assert markdown.startswith("# Exporting *mdrun* documents")
    assert notebook.metadata.kernelspec.name == "python3"
    assert notebook.metadata.language_info.name == "python"
    assert notebook.metadata.title == "Export demo"


@pytest.mark.kernel
def test_ipynb_export_is_reproducible(exported: Exported, tmp_path: Path) -> None:
    first, second = tmp_path / "first.ipynb", tmp_path / "second.ipynb"
    assert export_to(exported, "ipynb", first) == 0
    assert export_to(exported, "ipynb", second) == 0
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.kernel
def test_md_is_what_run_writes(exported: Exported, tmp_path: Path) -> None:
    exported_md, run_md = tmp_path / "exported.md", tmp_path / "ran.md"
    assert export_to(exported, "md", exported_md) == 0
    assert mdrun(exported.store, "run", str(exported.document), "-o", str(run_md)) == 0
    text = exported_md.read_text(encoding="utf-8")
    assert "<!-- mdrun:output id=hello -->" in text
    assert text == run_md.read_text(encoding="utf-8").replace("ran_files/", "exported_files/")
    assert len(list((tmp_path / "exported_files").iterdir())) == 1


# -- --no-exec ------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_no_exec_exports_an_up_to_date_document(
    exported: Exported, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "again.html"
    capsys.readouterr()
    code = mdrun(
        exported.store, "export", str(exported.document), "--to", "html", "--no-exec",
        "-o", str(target),
    )  # fmt: skip
    assert code == 0
    assert target.read_text(encoding="utf-8") == exported.html
    assert "0 executed" in capsys.readouterr().err


@pytest.mark.kernel
def test_no_exec_refuses_a_stale_document_and_names_its_blocks(
    exported: Exported, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    shutil.copytree(exported.store, store, symlinks=True)
    document = tmp_path / "doc.md"
    document.write_text(DOCUMENT.replace("inside a list", "inside a LIST"), encoding="utf-8")
    capsys.readouterr()
    assert mdrun(store, "export", str(document), "--to", "html", "--no-exec") == 1
    captured = capsys.readouterr()
    assert f"{document}:31: b3: stale (" in captured.out
    assert f"{document}:35: b4: stale (" in captured.out
    assert "not up to date (stale: b3, b4)" in captured.err
    assert not (tmp_path / "doc.html").exists()


# -- without a kernel: errors, defaults, the Markdown pandoc reads -------------------------------


def prose_only(tmp_path: Path, text: str = "# Only prose\n\nNo code here.\n") -> Path:
    document = tmp_path / "prose.md"
    document.write_text(text, encoding="utf-8")
    return document


def test_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    document = prose_only(tmp_path)
    assert mdrun(tmp_path / "store", "export", str(document), "--to", "pdf") == 2


def test_exporting_over_the_document_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = prose_only(tmp_path)
    code = mdrun(tmp_path / "store", "export", str(document), "--to", "md", "-o", str(document))
    assert code == 2
    assert "would overwrite the document" in capsys.readouterr().err


def test_a_missing_document_is_a_usage_error(tmp_path: Path) -> None:
    assert mdrun(tmp_path / "store", "export", str(tmp_path / "nope.md"), "--to", "html") == 2


def test_a_pandoc_failure_is_reported_as_an_export_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pypandoc

    def failing_pandoc(*_arguments: object, **_options: object) -> str:
        raise RuntimeError("Pandoc died with exitcode 64")

    monkeypatch.setattr(pypandoc, "convert_text", failing_pandoc)
    document = prose_only(tmp_path)
    assert mdrun(tmp_path / "store", "export", str(document), "--to", "docx") == 2
    err = capsys.readouterr().err
    assert f"{document}: pandoc could not convert it to docx: Pandoc died" in err
    assert not (tmp_path / "prose.docx").exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_prose_only_document_exports_without_a_kernel(tmp_path: Path) -> None:
    document = prose_only(tmp_path)
    assert mdrun(tmp_path / "store", "export", str(document), "--to", "html") == 0
    html = (tmp_path / "prose.html").read_text(encoding="utf-8")
    assert "<title>Only prose</title>" in html
    assert "No code here." in html


@pytest.mark.parametrize(
    ("source", "to", "expected"),
    [
        ("notes/doc.md", "html", "notes/doc.html"),
        ("doc.md", "ipynb", "doc.ipynb"),
        ("doc.md", "md", "doc.rendered.md"),
        ("doc.markdown", "md", "doc.md"),
        ("README", "docx", "README.docx"),
    ],
)
def test_default_output_never_names_the_document(source: str, to: str, expected: str) -> None:
    assert default_output(source, to) == expected


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("---\ntitle: From front matter\n---\n# Heading\n", "From front matter"),
        ("Intro.\n\n## The `first` *heading*\n\n# Second\n", "The first heading"),
        ("Setext title\n============\n", "Setext title"),
        ("No heading at all.\n", "some-file"),
        ("---\ntitle: 2024\n---\n# Heading\n", "2024"),
        (
            "```python\nx\n```\n<!-- mdrun:output id=b1 -->\n# Printed\n<!-- mdrun:end -->\n"
            "# Own\n",
            "Own",
        ),
    ],
)
def test_page_title(text: str, title: str) -> None:
    assert page_title(parse_document(text, "folder/some-file.md")) == title


def test_regions_become_divs_and_fences_keep_only_their_language(tmp_path: Path) -> None:
    text = (
        "> ```json {.x}\n> {}\n> ```\n"
        "> <!-- mdrun:output id=b1 -->\n> ``` text\n> out\n> ```\n> <!-- mdrun:end -->\n"
        "after\n"
    )
    document = prose_only(tmp_path, text)
    evaluation = Evaluator(make_plan(str(document)), Store.initialize(tmp_path / "s")).evaluate()
    prepared = pandoc_markdown(parse_document(text, str(document)), evaluation)
    assert prepared == (
        "> ```json\n> {}\n> ```\n"
        '>\n> <div class="mdrun-output">\n>\n> ``` text\n> out\n> ```\n>\n> </div>\n>\n'
        "after\n"
    )


class _OutputElements(html.parser.HTMLParser):
    """What a browser would build from a page: the text and the tags of each output div, and
    every script element of the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts = 0
        self.texts: list[str] = []
        self.tags: list[list[str]] = []
        self._depth = 0  # of divs, counted from an output div (0: outside one)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        if self._depth:
            self.tags[-1].append(tag)
            self._depth += tag == "div"
        elif tag == "div" and ("class", "mdrun-output") in attrs:
            self._depth = 1
            self.texts.append("")
            self.tags.append([])

    def handle_endtag(self, tag: str) -> None:
        if self._depth and tag == "div":
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.texts[-1] += data


def exported_html_of_printed(folder: Path, printed: str) -> _OutputElements:
    """The HTML export of a block that printed `printed` (its outcome given, no kernel run)."""
    printed_output = StreamOutput(output_type="stream", name="stdout", text=printed)
    return exported_html(folder, BlockStatusLike("executed", (printed_output,), ""))


@dataclass(frozen=True, slots=True)
class BlockStatusLike:
    """How the one block of `exported_html`'s document ended."""

    status: BlockStatus
    outputs: tuple[Output, ...]
    note: str


def exported_page(folder: Path, ended: BlockStatusLike) -> bytes:
    """The HTML export of a one-block document whose block ended as given (no kernel run)."""
    document = folder / "printed.md"
    document.write_text("# Printed\n\n```python\nprint(text)\n```\n", encoding="utf-8")
    plan = make_plan(str(document))
    outcome = BlockOutcome(plan.blocks[0], ended.status, outputs=ended.outputs, note=ended.note)
    return convert_with_pandoc(Evaluation(plan, [outcome]), "html")


def exported_html(folder: Path, ended: BlockStatusLike) -> _OutputElements:
    """`exported_page`, as a browser would parse it."""
    page = exported_page(folder, ended).decode("utf-8")
    elements = _OutputElements()
    elements.feed(page)
    elements.close()
    return elements


@settings(max_examples=20)
@given(printed=printed_texts())
@example(printed=":::\n<script>window.injected = 1</script>\n:::\n")
@example(printed="\uf900\n")
@example(printed="``` text\n:::\n</code></pre></div><script>window.injected = 1</script>\n")
def test_printed_text_is_shown_escaped_and_whole_in_its_output_element(
    tmp_path_factory: pytest.TempPathFactory, printed: str
) -> None:
    elements = exported_html_of_printed(tmp_path_factory.mktemp("printed"), printed)
    assert elements.scripts == 0
    assert elements.tags == [["pre", "code"]], "nothing printed becomes an element"
    # pandoc reads text as NFC (a CJK compatibility ideograph becomes its canonical equivalent,
    # which renders the same): compare as it does.
    shown = unicodedata.normalize("NFC", elements.texts[0].strip("\n"))
    assert shown == unicodedata.normalize("NFC", terminal_text(printed).strip("\n"))


def test_a_failure_note_quoting_the_error_is_shown_as_text(tmp_path: Path) -> None:
    value = '<img src=x onerror="window.injected = 1"> [click](javascript:void(0)) *a* `b` &amp;'
    error = ErrorOutput(output_type="error", ename="ValueError", evalue=value, traceback=[])
    # The note repeats the error's last line: it is shown once, in the error's block, as text.
    elements = exported_html(tmp_path, BlockStatusLike("failed", (error,), f"ValueError: {value}"))
    assert elements.scripts == 0
    assert elements.tags == [["pre", "code", "p", "strong"]], "no img, no link, no emphasis"
    shown = " ".join(elements.texts[0].split())
    assert shown.count(f"ValueError: {value}") == 1 and shown.endswith("failed")
    # A note of its own (no error output to repeat) is text too.
    elements = exported_html(tmp_path, BlockStatusLike("failed", (), f"the kernel said {value}"))
    assert elements.scripts == 0
    assert elements.tags == [["p", "strong"]], "no img, no link, no emphasis"
    assert f"failed: the kernel said {value}" in " ".join(elements.texts[0].split())


def test_a_heading_cannot_close_the_page_title(tmp_path: Path) -> None:
    heading = "# Evil &lt;/title&gt;&lt;script&gt;window.injected = 1&lt;/script&gt;\n"
    document = prose_only(tmp_path, heading)
    assert mdrun(tmp_path / "store", "export", str(document), "--to", "html") == 0
    page = (tmp_path / "prose.html").read_text(encoding="utf-8")
    assert "<script" not in page
    title = "Evil &lt;/title&gt;&lt;script&gt;window.injected = 1&lt;/script&gt;"
    assert f"<title>{title}</title>" in page


def test_notebook_json_of_prose_only_is_one_markdown_cell(tmp_path: Path) -> None:
    from mdrun.document.export_notebook import notebook_json

    document = prose_only(tmp_path, "---\nmdrun.timeout: 5\n---\nJust text.\n")
    evaluation = Evaluator(make_plan(str(document)), Store.initialize(tmp_path / "s")).evaluate()
    notebook = notebook_json(evaluation)
    assert json.loads(json.dumps(notebook))["cells"] == [
        {"cell_type": "markdown", "id": "md-1", "metadata": {}, "source": "Just text."}
    ]


@pytest.mark.kernel
def test_a_failing_block_is_exported_with_its_traceback_and_exit_1(tmp_path: Path) -> None:
    document = prose_only(tmp_path, '# Broken\n\n```python\nprint("before")\n1 / 0\n```\n')
    assert mdrun(tmp_path / "store", "export", str(document), "--to", "ipynb") == 1
    notebook = json.loads((tmp_path / "prose.ipynb").read_text(encoding="utf-8"))
    outputs = notebook["cells"][1]["outputs"]
    assert [output["output_type"] for output in outputs] == ["stream", "error"]
    assert outputs[1]["ename"] == "ZeroDivisionError"
    assert document.read_text(encoding="utf-8").count("mdrun:output") == 0


def test_a_document_opening_with_a_rule_keeps_its_first_lines(tmp_path: Path) -> None:
    document = prose_only(tmp_path, "---\n\nFirst paragraph.\n\n---\n\nSecond.\n")
    assert mdrun(tmp_path / "store", "export", str(document), "--to", "html") == 0
    html = (tmp_path / "prose.html").read_text(encoding="utf-8")
    assert html.count("<hr />") == 2 and "First paragraph." in html


def test_the_command_line_offers_the_registered_formats(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # argparse wraps help to the terminal's width
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert f"--to {{{','.join(EXPORT_FORMATS)}}}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "write the document as HTML, docx, ipynb or md" in capsys.readouterr().out


@pytest.mark.parametrize("to", sorted(EXPORT_FORMATS))
def test_every_registered_format_exports_a_document(tmp_path: Path, to: str) -> None:
    document = prose_only(tmp_path)
    assert mdrun(tmp_path / "store", "export", str(document), "--to", to) == 0
    written = Path(default_output(str(document), to)).read_bytes()
    if EXPORT_FORMATS[to].binary:
        assert zipfile.is_zipfile(io.BytesIO(written))
    else:
        assert "No code here." in written.decode("utf-8")


def test_an_unknown_format_is_refused_naming_the_others() -> None:
    with pytest.raises(
        UsageError,
        match="--to pdf: not a format mdrun exports "
        r"\(choose html, docx, ipynb, md\)",
    ):
        export_format("pdf")
