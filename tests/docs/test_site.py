"""The built documentation site: theme, copy buttons, reference order, layout.

The site is built once for the module with the same Sphinx options as
``hatch run docs`` (warnings are errors). The layout check opens the
tutorial in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``) 1280 px wide and measures every code block; it saves a
screenshot to ``docs/_build/screenshots/`` for a person to look at.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gear
from fixtures.browser import chromium

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCREENSHOTS = DOCS / "_build" / "screenshots"

#: gear.Client's hooks: documented in their own section, after the methods you call.
CLIENT_HOOKS = ("handlePacket", "handleDisconnect", "reportTimingStats")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return out


def test_theme_is_furo_with_copy_buttons(site: Path) -> None:
    page = (site / "tutorial.html").read_text()
    assert re.search(r'<link rel="stylesheet"[^>]*href="_static/styles/furo\.css', page)
    assert 'class="theme-toggle"' in page  # the light/dark switch
    assert re.search(r'<script src="_static/copybutton\.js', page)
    copybutton = (site / "_static" / "copybutton.js").read_text()
    # Prompts ("$ ", ">>> ") and console output are left out of what it copies.
    assert r"formatCopyText(text, '>>> |\\.\\.\\. |\\$ ', true" in copybutton
    assert "let exclude = '.linenos, .gp, .go'" in copybutton


def test_client_reference_lists_user_methods_before_hooks(site: Path) -> None:
    page = (site / "reference" / "client.html").read_text()
    documented = re.findall(r'<dt class="sig sig-object py" id="gear\.Client\.(\w+)">', page)
    first_user = ("addServer", "waitForServer", "submitJob", "getStatus", "setOption")
    assert documented[: len(first_user)] == list(first_user), documented
    hooks_at = page.index('<h2>Hooks<a class="headerlink"')
    for hook in CLIENT_HOOKS:
        assert page.index('id="gear.Client.%s"' % hook) > hooks_at, hook
    # Every public method of gear.Client is on the page: the ones you call
    # before the Hooks heading, the per-packet handle* hooks in its table.
    public = [
        name
        for name in dir(gear.Client)
        if not name.startswith("_") and callable(getattr(gear.Client, name))
    ]
    for name in public:
        if name.startswith("handle") or name in CLIENT_HOOKS:
            continue
        assert 0 <= page.find('id="gear.Client.%s"' % name) < hooks_at, name
    for hook in ("handleJobCreated", "handleWorkComplete", "handleStatusRes", "handleError"):
        assert (
            page.index(
                '<code class="docutils literal notranslate"><span class="pre">%s(packet)' % hook
            )
            > hooks_at
        )


#: Openings of the docstrings of int, str, bytes, float, dict and tuple: autodoc
#: shows the type's own docstring for a module constant that has none.
BUILTIN_DOCS = (
    "int([x]) -&gt; integer",
    "str(object=",
    "bytes(iterable_of_ints)",
    "Convert a string or number to a floating",
    "dict() -&gt; new empty dictionary",
    "Built-in immutable sequence",
)


def test_no_constant_is_documented_by_its_type(site: Path) -> None:
    shown = [
        (page.relative_to(site).as_posix(), text)
        for page in site.rglob("*.html")
        if "_modules" not in page.parts
        for text in BUILTIN_DOCS
        if text in page.read_text()
    ]
    assert not shown, shown


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through chromedriver, 1280 px wide, with a fresh profile."""
    with chromium(1280, 1000) as driver:
        yield driver


MEASURE = """
return Array.from(document.querySelectorAll("div.highlight pre")).map(pre => ({
    scroll: pre.scrollWidth,
    client: pre.clientWidth,
    first: pre.textContent.split("\\n")[0].slice(0, 80),
}));
"""


#: The pages a newcomer reads first, where a hidden end of a command hurts.
FIRST_PAGES = ["tutorial.html", "index.html", "reference/geard.html", "reference/client.html"]
FIRST_PAGES += ["reference/codec.html"]  # its doctests print long error lines
FIRST_PAGES += sorted("howto/%s" % p.with_suffix(".html").name for p in DOCS.glob("howto/*.rst"))


@pytest.mark.parametrize("page", FIRST_PAGES)
def test_code_blocks_fit_at_1280_px(site: Path, browser: Any, page: str) -> None:
    browser.get((site / page).as_uri())
    assert browser.execute_script("return window.innerWidth") == 1280
    blocks = browser.execute_script(MEASURE)
    if page == "tutorial.html":
        assert len(blocks) >= 10, blocks  # the tutorial's code is all there
    overflowing = [block for block in blocks if block["scroll"] > block["client"]]
    assert not overflowing, overflowing
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = page.replace("/", "-").replace(".html", "")
    assert browser.save_screenshot(str(SCREENSHOTS / ("%s-1280-top.png" % name)))
    shot = SCREENSHOTS / ("%s-1280.png" % name)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height), 8000))
    try:
        assert browser.save_screenshot(str(shot))
    finally:
        browser.set_window_size(1280, 1000)
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_readme_says_how_to_build_the_docs_alone() -> None:
    root = DOCS.parent
    assert "`.venv-tools/bin/hatch run docs`" in (root / "README.md").read_text()
    assert '\ndocs = "sphinx-build -W -n ' in (root / "pyproject.toml").read_text()
