"""Each format end to end through the command line, on documents written here: Quarto, R
Markdown, a MyST notebook, a README with shell blocks, and a doctest page."""

from __future__ import annotations

import pytest

from tests.document.conftest import Mdrun, no_kernel_starts

QUARTO = """\
---
title: Quarto page
execute:
  freeze: auto
---

```{python}
#| label: setup
#| echo: false
secret = 21
print("from a hidden cell")
```

```{python double, fig.cap="a, b"}
#| warning: false
import sys
print(secret * 2)
print("a warning", file=sys.stderr)
```

```{r}
summary(cars)
```

```python
print("display code in Quarto")
```
"""


@pytest.mark.kernel
def test_quarto_runs_braced_cells_with_their_options(mdrun: Mdrun) -> None:
    mdrun.write("page.qmd", QUARTO)
    completed, report = mdrun.run_reported("run", "page.qmd", "-o", "page.md")
    assert completed.code == 0, completed.err
    assert report.statuses == {"setup": "executed", "double": "executed"}
    assert "page.qmd:1: execute: option `freeze` is ignored" in completed.err
    assert mdrun.read("page.qmd") == QUARTO, "-o leaves the source alone"
    rendered = mdrun.read("page.md")
    assert rendered == QUARTO.replace(
        'print("from a hidden cell")\n```\n',
        'print("from a hidden cell")\n```\n<!-- mdrun:output id=setup -->\n``` text\n'
        "from a hidden cell\n```\n<!-- mdrun:end -->\n",
    ).replace(
        "file=sys.stderr)\n```\n",
        "file=sys.stderr)\n```\n<!-- mdrun:output id=double -->\n``` text\n42\n```\n"
        "<!-- mdrun:end -->\n",
    )  # `warning: false` hides stderr; `{r}` and the plain fence are not run
    with no_kernel_starts():
        exported = mdrun("export", "page.qmd", "--to", "html", "-o", "page.html")
    assert exported.code == 0, exported.err
    html = mdrun.read("page.html")
    assert "secret = 21" not in html, "echo: false hides the code"
    assert "from a hidden cell" in html, "but not its output"
    assert "#|" not in html, "cell option lines are not shown as code"
    # The project's `_quarto.yml` is part of what the document means: editing it is seen.
    mdrun.write("_quarto.yml", "execute:\n  output: false\n")
    with no_kernel_starts():
        assert mdrun("run", "page.qmd", "-o", "page.md").code == 0
    assert mdrun.read("page.md") == QUARTO


RMARKDOWN = """\
An R Markdown page.

```{python setup, include=FALSE}
hidden = "ran"
```

```{python show, echo=FALSE, error=TRUE}
print(hidden)
raise ValueError("expected")
```

```{python, eval=FALSE}
raise SystemExit("never")
```

```{r plot, fig.width=5}
plot(cars)
```
"""


@pytest.mark.kernel
def test_r_markdown_reads_knitr_chunk_options(mdrun: Mdrun) -> None:
    mdrun.write("page.Rmd", RMARKDOWN)
    completed, report = mdrun.run_reported("run", "page.Rmd")
    assert completed.code == 0, completed.err
    assert report.statuses == {"setup": "executed", "show": "executed"}
    rendered = mdrun.read("page.Rmd")
    assert "<!-- mdrun:output id=setup -->" not in rendered, "include=FALSE shows nothing"
    assert "<!-- mdrun:output id=show -->\n``` text\nran\n```\n" in rendered
    assert "ValueError: expected" in rendered, "error=TRUE: shown, and the run succeeds"
    assert rendered.count("<!-- mdrun:output") == 1


NOTEBOOK = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A MyST notebook

```{note}
Directives other than code cells are text.
```

```{code-cell} ipython3
:tags: [remove-input]
value = 6 * 7
print(value)
```

```{code-cell} ipython3
---
tags: [raises-exception, hide-output]
---
raise RuntimeError(value)
```

```{code-cell} ipython3
:tags: [skip-execution]
while True:
    pass
```

```{include} ../README.md
```
"""


@pytest.mark.kernel
def test_a_myst_notebook_runs_its_code_cells_with_their_tags(mdrun: Mdrun) -> None:
    mdrun.write("nb.md", NOTEBOOK)
    completed, report = mdrun.run_reported("run", "nb.md")
    assert completed.code == 0, completed.err
    assert report.statuses == {"b1": "executed", "b2": "executed"}
    rendered = mdrun.read("nb.md")
    assert "<!-- mdrun:output id=b1 -->\n``` text\n42\n```\n" in rendered
    assert "RuntimeError: 42" in rendered, "raises-exception: the error is the output"
    with no_kernel_starts():
        exported = mdrun("export", "nb.md", "--to", "html", "-o", "nb.html")
    assert exported.code == 0
    assert "value = 6 * 7" not in mdrun.read("nb.html"), "remove-input hides the code"


README = """\
# A project

Install it:

```bash
echo "installing" | tee installed.txt
```

```python
print("python runs")
```
"""


@pytest.mark.kernel
def test_shell_blocks_of_a_readme_run_only_when_asked(mdrun: Mdrun) -> None:
    mdrun.write("README.md", README)
    completed, report = mdrun.run_reported("run", "README.md")
    assert completed.code == 0, completed.err
    assert report.statuses == {"b1": "executed"}
    assert not mdrun.path("installed.txt").exists(), "the bash block did not run"
    completed, report = mdrun.run_reported("run", "README.md", "--languages", "bash")
    assert completed.code == 0, completed.err
    assert mdrun.path("installed.txt").exists()
    rendered = mdrun.read("README.md")
    # gc keeps what the document uses when read the same way: the bash result stays.
    assert mdrun("gc", "README.md", "--languages", "bash").code == 0
    with no_kernel_starts():
        completed, report = mdrun.run_reported("check", "README.md", "--languages", "bash")
    assert completed.code == 0
    assert report.statuses == {"b1": "cached", "b2": "cached"}
    # Without the flag the bash block is text again: its region stays as the run left it.
    assert mdrun("run", "README.md").code == 0
    bash_region = "```\n<!-- mdrun:output id=b1 -->\n``` text\ninstalling\n```\n<!-- mdrun:end -->"
    assert bash_region in rendered
    assert bash_region in mdrun.read("README.md")


DOCTEST = """\
# Docs as tests

```pycon
>>> words = "the cat the dog".split()
>>> len(words)
4
>>> sorted(set(words))
['cat', 'dog', 'the']
>>> object()  # doctest: +ELLIPSIS
<object object at 0x...>
```

Prose between sessions.

```python
>>> words.count("the")
2
```
"""


@pytest.mark.kernel
def test_doctest_mode_checks_documented_outputs(mdrun: Mdrun) -> None:
    mdrun.write("docs.md", DOCTEST)
    with no_kernel_starts():
        assert mdrun("check", "docs.md").code == 0, "without doctest mode sessions are text"
    completed = mdrun("check", "docs.md", "--doctest")
    assert completed.code == 0, completed.out + completed.err
    assert mdrun.read("docs.md") == DOCTEST
    drifted = DOCTEST.replace(">>> len(words)\n4\n", ">>> len(words)\n5\n")
    mdrun.write("docs.md", drifted)
    completed = mdrun("check", "docs.md", "--doctest")
    assert completed.code == 1
    assert "-5\n+4\n" in completed.out, "the diff shows the drifted output"
    assert mdrun.read("docs.md") == drifted, "check writes nothing"
    assert mdrun("run", "docs.md", "--doctest").code == 0
    assert mdrun.read("docs.md") == DOCTEST, "run writes what the code prints, in place"
    front = "---\nmdrun.doctest: true\n---\n" + DOCTEST
    mdrun.write("front.md", front.replace("\n2\n```", "\n3\n```"))
    assert mdrun("run", "front.md").code == 0
    assert mdrun.read("front.md") == front
