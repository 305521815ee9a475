"""The book as a reader's browser shows it.

A preview book is laid out from the committed notebooks (their default outputs) exactly as `make book`
lays out its executed pages (`amlib.book.stage_preview_book`, through `reader_view`), built with
jupyter-book under `-W -n` (any warning fails), served over HTTP and opened page by page in headless
Chromium (Debian's chromium and chromium-driver, installed by `make setup`). Per page: no console error,
no parameter cell visible before the reader asks for it, the run's settings shown, no glue placeholder
left, every image loaded and every download link served.

AMLIB_SCREENSHOTS=<folder> keeps a screenshot of each page there. AMLIB_BOOK_HTML=<folder> checks an
existing build instead (after `make book`: AMLIB_BOOK_HTML=book/_build/html), with the same assertions.
"""

import functools
import http.server
import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
import yaml

from amlib.book import stage_preview_book

REPO = Path(__file__).parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PARAMETER_CELLS = ".tag_parameters, .tag_injected-parameters"
GLUE_PLACEHOLDERS = ("{glue", "glue:text", ".ipynb::")  # a role or key that was not replaced by its value


def page_names() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [toc["root"]] + [chapter["file"] for chapter in toc["chapters"]]


@pytest.fixture(scope="module")
def book_html(tmp_path_factory) -> Path:
    built = os.environ.get("AMLIB_BOOK_HTML")  # an existing build, e.g. make book's book/_build/html
    if built:
        assert (Path(built) / "intro.html").is_file(), f"AMLIB_BOOK_HTML={built}: no intro.html there"
        return Path(built)
    dest = tmp_path_factory.mktemp("preview-book")
    source = stage_preview_book(REPO, dest)
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    build = subprocess.run([str(jupyter_book), "build", str(source), "--path-output", str(dest),
                            "-W", "-n", "--keep-going"], capture_output=True, text=True)
    assert build.returncode == 0, f"the preview book did not build cleanly:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    return dest / "_build" / "html"


@pytest.fixture(scope="module")
def server(book_html):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(book_html)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    # the project's set-up installs them (apt-packages.txt): missing is a failure, not a skip
    assert CHROMIUM.is_file() and CHROMEDRIVER.is_file(), \
        f"{CHROMIUM} or {CHROMEDRIVER} missing: `make setup` installs chromium and chromium-driver"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.mark.parametrize("page", page_names())
def test_page_opens_on_prose_and_results(page, server, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/{page}.html")
    browser.find_element(By.CSS_SELECTOR, "main h1")  # the page rendered
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, f"{page}: console errors: {errors}"

    parameter_cells = browser.find_elements(By.CSS_SELECTOR, PARAMETER_CELLS)
    if page.startswith("executed/"):
        assert parameter_cells, f"{page}: no parameters cell in the page (the check would be empty)"
        settings = browser.find_element(By.XPATH, "//table[.//th[normalize-space()='this run']]")
        assert settings.is_displayed(), f"{page}: the run's settings are not shown"
    for cell in parameter_cells:
        code = cell.find_elements(By.CSS_SELECTOR, ".cell_input pre")
        assert code and not any(c.is_displayed() for c in code), f"{page}: a parameters cell is visible"

    text = browser.find_element(By.TAG_NAME, "main").text
    left = [p for p in GLUE_PLACEHOLDERS if p in text]
    assert not left, f"{page}: unresolved glue placeholders {left}"
    pasted = browser.find_elements(By.CSS_SELECTOR, ".pasted-text")
    assert all(p.text.strip() for p in pasted), f"{page}: an empty glued value"

    broken = [img.get_attribute("src") for img in browser.find_elements(By.CSS_SELECTOR, "main img")
              if not browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)]
    assert not broken, f"{page}: images that did not load: {broken}"
    for link in browser.find_elements(By.CSS_SELECTOR, "a.reference.download"):
        with urllib.request.urlopen(link.get_attribute("href")) as response:
            assert response.status == 200 and response.read(1), f"{page}: empty download {link.get_attribute('href')}"

    shots = os.environ.get("AMLIB_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(shots) / f"{page.replace('/', '_')}.png"))


def test_landing_page_shows_the_builds_numbers_and_figures(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/intro.html")
    pasted = [p.text for p in browser.find_elements(By.CSS_SELECTOR, ".pasted-text") if p.is_displayed()]
    glued_in_source = (REPO / "book" / "intro.md").read_text().count("{glue:text}")
    assert len(pasted) == glued_in_source > 0, f"{len(pasted)} glued numbers shown of {glued_in_source}"
    figures = [img for img in browser.find_elements(By.CSS_SELECTOR, "main img") if img.is_displayed()]
    assert len(figures) >= 3, "the per-task, pruning and eviction figures"
    assert browser.find_element(By.XPATH, "//main//table[.//th[contains(., 'score [95 % interval]')]]").is_displayed()
