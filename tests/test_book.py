"""The built book, in a real browser: every TOC page renders, its images load, math typesets, no internal link
is broken. Headless Chromium (Debian's `chromium` + `chromium-driver`) through Selenium; nothing is downloaded.

Needs `make book` first. Without a built book (or a browser) the tests skip, except under CI=true, where they fail.
Screenshots of every page go to build/screenshots/.
"""
import functools
import http.server
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK_SRC = ROOT / "build" / "book-src"
HTML = BOOK_SRC / "_build" / "html"
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason):
    """Skip, or fail under CI=true, where the book must have been built (.ci/run runs `make book`)."""
    if IN_CI:
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def toc_pages():
    """The pages of the staged (built) TOC, as source paths without suffix: book/intro, notebooks/01_concept, ..."""
    toc_file = BOOK_SRC / "_toc.yml"
    if not toc_file.exists():
        return []
    toc = yaml.safe_load(toc_file.read_text())

    def files(node):
        if isinstance(node, dict):
            return ([node["file"]] if "file" in node else []) + [f for v in node.values() for f in files(v)]
        return [f for v in node for f in files(v)] if isinstance(node, list) else []

    return [toc["root"], *files(toc.get("parts", toc.get("chapters", [])))]


PAGES = toc_pages()


def test_book_is_built():
    if not (HTML / "index.html").exists():
        unavailable(f"the book is not built ({HTML / 'index.html'} missing): run `make book`")
    assert PAGES, "no pages in the staged _toc.yml"
    for page in PAGES:
        assert (HTML / f"{page}.html").exists(), f"{page}: no HTML page was built"


def test_buttons_open_the_release():
    """The repository and Colab buttons point at pyproject.toml's repository, at the release tag."""
    if not (HTML / "index.html").exists():
        unavailable("the book is not built: run `make book`")
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    from chapter_cells import release

    url, tag = release()
    page = (HTML / "notebooks" / "02_mnist.html").read_text()
    assert f'href="{url}"' in page
    colab = f"https://colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/{tag}/"
    assert colab + "notebooks/02_mnist.ipynb" in page


def test_every_notebook_is_a_chapter():
    if not PAGES:
        unavailable("the book is not built: run `make book`")
    chapters = {p for p in PAGES if p.startswith("notebooks/")}
    notebooks = {f"notebooks/{p.stem}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert notebooks <= chapters, f"notebooks not in the built book: {sorted(notebooks - chapters)} (rerun make book)"


def test_results_page_is_generated():
    """The results page was built from the executed notebooks: every chapter listed, published numbers beside ours."""
    page = HTML / "book" / "results.html"
    if not page.exists():
        unavailable("the book is not built: run `make book`")
    html = page.read_text()
    for chapter in (p for p in PAGES if p.startswith("notebooks/")):
        assert chapter.split("/")[1] in html, f"{chapter} missing from the results page"
    import sys

    from qtbook.published import PUBLISHED

    sys.path.insert(0, str(ROOT / "tools"))
    import stage_book

    recorded = {p.stem for p in (ROOT / "results" / "notebooks").glob("*.ipynb") if stage_book.complete(p)}
    if "02_mnist" in recorded:  # published numbers stand beside recorded runs only
        assert f"{100 * PUBLISHED['mnist']['classical_acc']:.2f} %" in html, "published numbers missing from the page"
    if set(PAGES) - {f"notebooks/{name}" for name in recorded} - {"book/intro", "book/results", "book/references"}:
        assert "CI-scale check, not a result" in html, "CI executions must be marked on the results page"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    """Base URL of the built HTML, served on 127.0.0.1 (a free port) for the duration of the module."""
    if not (HTML / "index.html").exists():
        unavailable("the book is not built: run `make book`")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(HTML)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        unavailable(f"headless Chromium not installed ({CHROMIUM}, {CHROMEDRIVER}): "
                    "apt-get install chromium chromium-driver")
    try:
        from selenium import webdriver
    except ImportError:
        unavailable("selenium is not installed: make setup")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@functools.cache
def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def wait_for(driver, script, timeout=30.0):
    """Poll a JavaScript expression until it is truthy; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(f"return {script};")
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.mark.parametrize("page", PAGES)
def test_page(site, browser, page):
    url = site + f"{page}.html"
    assert http_status(url) == 200, f"{url}: HTTP {http_status(url)}"
    browser.get(url)
    wait_for(browser, "document.readyState === 'complete'")

    # Renders: a title, a heading, no error page.
    title = browser.title
    heading = browser.execute_script("const h = document.querySelector('main h1'); return h ? h.innerText : '';")
    assert title, f"{page}: no title or no <h1> (title {title!r})"
    assert heading, f"{page}: no title or no <h1> (title {title!r})"
    assert "404" not in title, f"{page}: error page ({title!r})"
    assert "Not Found" not in title, f"{page}: error page ({title!r})"

    # Images: every <img> loaded; notebook pages whose outputs hold figures show at least one.
    assert wait_for(browser, "[...document.images].every(i => i.complete)"), f"{page}: images still loading"
    images = browser.execute_script(
        "return [...document.images].map(i => [i.getAttribute('src'), i.naturalWidth, !!i.closest('main')]);")
    broken = [src for src, width, _ in images if not width]
    assert not broken, f"{page}: images that did not load: {broken}"
    source = BOOK_SRC / f"{page}.ipynb"
    if source.exists() and '"image/png"' in source.read_text():
        assert any(in_main for *_, in_main in images), f"{page}: the notebook has figures but the page shows none"

    # Math: wherever Sphinx emitted math, the local MathJax 3 typesets it (no CDN is reachable here).
    if browser.execute_script("return document.querySelectorAll('main .math').length") > 0:
        assert wait_for(browser, "document.querySelectorAll('mjx-container').length > 0"), \
            f"{page}: math present but MathJax rendered nothing"
        version = browser.execute_script("return window.MathJax && MathJax.version")
        assert str(version).startswith("3"), f"{page}: MathJax 3 not loaded ({version!r})"
        src = browser.execute_script("const s = [...document.scripts].find(s => /mathjax/i.test(s.src)); "
                                     "return s ? s.src : '';")
        assert src.startswith(site), f"{page}: MathJax loaded from {src!r}, not from the book itself"

    # No resource of the book itself failed to load (JS, CSS, fonts, images).
    errors = [e["message"] for e in browser.get_log("browser")
              if e["level"] == "SEVERE" and site.rstrip("/") in e["message"]]
    assert not errors, f"{page}: console errors: {errors}"

    # Offline: the page needs nothing from outside the book (MathJax, fonts, scripts are all served locally).
    external = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
    external = [u for u in external if not u.startswith(site) and not u.startswith("data:")]
    assert not external, f"{page}: resources requested from outside the book: {external}"

    # Internal links: every same-site <a href> answers 200.
    links = browser.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href);")
    internal = sorted({urldefrag(link)[0] for link in links if link.startswith(site)})
    bad = [(link, http_status(link)) for link in internal if http_status(link) != 200]
    assert not bad, f"{page}: broken internal links: {bad}"

    # The whole page (up to 8,000 px tall), for a person to look at.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(height, 1000), 8000))
    browser.save_screenshot(str(SCREENSHOTS / f"{page.replace('/', '__')}.png"))
    browser.set_window_size(1280, 1000)


def test_some_page_has_math(site, browser):
    """At least one page (the introduction) has math, so the MathJax check above is exercised."""
    with_math = [p for p in PAGES if 'class="math' in (HTML / f"{p}.html").read_text()]
    assert with_math, "no page of the book contains math"
    browser.get(site + f"{with_math[0]}.html")
    assert wait_for(browser, "document.querySelectorAll('mjx-container').length > 0")


SCREEN = 800  # px: one screen of a 1280 × 800 laptop


def page_height(browser, site, page):
    browser.set_window_size(1280, SCREEN)
    browser.get(site + f"{page}.html")
    wait_for(browser, "document.readyState === 'complete'")
    wait_for(browser, "[...document.images].every(i => i.complete)")
    return browser.execute_script("return document.documentElement.scrollHeight")


def test_science_chapter_reads_in_ten_screens(site, browser):
    """Chapter 7 holds the tables a reader needs; the rest is in its appendix page."""
    if "notebooks/07_science" not in PAGES:
        unavailable("chapter 7 is not in the built book")
    height = page_height(browser, site, "notebooks/07_science")
    browser.set_window_size(1280, 1000)
    assert height <= 10 * SCREEN, f"chapter 7 is {height / SCREEN:.1f} screens of {SCREEN} px at 1280 px wide"
    assert "book/science_appendix" in PAGES


def test_results_page_opens_with_the_verdict(site, browser):
    browser.get(site + "book/results.html")
    wait_for(browser, "document.readyState === 'complete'")
    first = browser.execute_script(
        "const m = document.querySelector('main article') || document.querySelector('main');"
        "const f = m.querySelector('figure img'), p = [...m.querySelectorAll('p')].find(p => /verdict/i.test("
        "p.innerText));"
        "return [f ? f.getBoundingClientRect().top : -1, p ? p.getBoundingClientRect().top : -1, "
        "m.querySelector('table') ? m.querySelector('table').getBoundingClientRect().top : 1e9];")
    figure, paragraph, table = first
    assert 0 <= figure < paragraph < table, f"the verdict's figure and paragraph do not open the page: {first}"


@pytest.mark.parametrize("page", [p for p in PAGES if p.startswith("notebooks/")])
def test_outputs_are_never_cut(site, browser, page):
    """A run's summary line wraps in the column instead of hiding its number behind a scroll bar."""
    browser.set_window_size(1280, 1000)
    browser.get(site + f"{page}.html")
    wait_for(browser, "document.readyState === 'complete'")
    cut = browser.execute_script(
        "return [...document.querySelectorAll('div.cell_output pre')]"
        ".filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.innerText.slice(0, 80));")
    assert not cut, f"{page}: outputs wider than the column: {cut}"


@pytest.mark.parametrize("page", [p for p in PAGES if p.startswith("notebooks/")])
def test_code_is_never_cut(site, browser, page):
    """Shown code fits the column at 1280 px (its lines have at most 88 characters: tests/test_chapters.py), except
    the closing environment cell tools/chapter_cells.py writes in every chapter."""
    browser.set_window_size(1280, 1000)
    browser.get(site + f"{page}.html")
    wait_for(browser, "document.readyState === 'complete'")
    cut = browser.execute_script(
        "return [...document.querySelectorAll('div.cell_input pre')].filter(p => p.innerText.trim() && "
        "!p.innerText.startsWith('# Generated by tools/chapter_cells.py') && p.scrollWidth > p.clientWidth + 1)"
        ".map(p => p.innerText.slice(0, 60));")
    assert not cut, f"{page}: code wider than the column: {cut}"
