"""The Markdown a site reads for a rendered page (no kernel: the page is already rendered)."""

from __future__ import annotations

from pathlib import Path

from mdrun.document.evaluate import Evaluation
from mdrun.document.parse import parse_document
from mdrun.document.plan import plan_document
from mdrun.integrations.site_page import site_markdown

RENDERED = """\
# Page

```python id=shout
print("out")
```
<!-- mdrun:output id=shout -->
``` text
out
```
``` stderr
careful
```
<!-- mdrun:end -->

```python echo=false
print("hidden code")
```
<!-- mdrun:output id=b2 -->
``` text
hidden code
```
<!-- mdrun:end -->

> ```python id=quoted
> 1
> ```
> <!-- mdrun:output id=quoted -->
> ``` text
> 1
> ```
> <!-- mdrun:end -->

```yaml
key: value
```
"""


def site(text: str) -> str:
    document = parse_document(text, "page.md")
    return site_markdown(document, Evaluation(plan_document(document, Path.cwd())))


def test_regions_become_output_divs_and_fences_keep_only_their_language() -> None:
    assert site(RENDERED) == """\
# Page

```python
print("out")
```

<div class="mdrun-output" data-mdrun-block="shout" markdown="1">

``` text
out
```

<div class="mdrun-stderr" markdown="1">

``` stderr
careful
```

</div>


</div>



<div class="mdrun-output" data-mdrun-block="b2" markdown="1">

``` text
hidden code
```

</div>


> ```python
> 1
> ```
> <!-- mdrun:output id=quoted -->
> ``` text
> 1
> ```
> <!-- mdrun:end -->

```yaml
key: value
```
"""


def test_a_page_without_regions_is_left_as_it_is() -> None:
    text = "# Plain\n\n```yaml\na: 1\n```\n\nText.\n"
    assert site(text) == text
