"""The HTML report of `ravenctl models report` opened in a real headless Chromium (Debian's chromium and
chromium-driver, installed by scripts/setup.sh; driven by selenium without any download): it renders its
tables, every embedded PNG decodes (naturalWidth > 0) and the browser logs no error (a CSP violation or a
broken image would be one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.integration.trained_model.conftest import Env
from tests.integration.trained_model.test_model_report import ravenctl, register_with_analysis
from tests.integration.training_run.test_discovery_cli import logs_to_stderr  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.usefixtures("logs_to_stderr")


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "headless Chromium is missing: scripts/setup.sh installs the Debian packages chromium and "
        "chromium-driver (apt-get install -y chromium chromium-driver)"
    )
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must never fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1024"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


IMAGES = "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])"
TABLES = "return Array.from(document.querySelectorAll('table')).map(t => [t.rows.length, t.offsetWidth])"


async def test_the_report_renders_in_headless_chromium(
    env: Env, js: Any, tmp_path: Path, browser: webdriver.Chrome
) -> None:
    name, document, pngs, drawn = await register_with_analysis(env, js)
    out = tmp_path / "report.html"
    result = await ravenctl(env, "models", "report", name, "--out", str(out))
    assert result.exit_code == 0, result.output

    browser.get(out.resolve().as_uri())
    assert browser.title.startswith("Evaluation report:")
    tables = browser.execute_script(TABLES)
    # context, COCO metrics, per class, 2 size tables, confusion matrix
    assert len(tables) == 6 and all(rows >= 2 and width > 0 for rows, width in tables[1:])
    assert tables[2][0] == 1 + len(document["classes"])  # header and one row per class
    images = browser.execute_script(IMAGES)
    assert len(images) == len(pngs) + len(drawn) == 2 + 6
    for complete, width, height, alt in images:
        assert complete and width > 0 and height > 0, alt
    text = browser.find_element("tag name", "body").text
    assert "Worst images" in text and "Best images" in text and "<script>" in text  # hostile name as text
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert browser.get_screenshot_as_png().startswith(b"\x89PNG")
