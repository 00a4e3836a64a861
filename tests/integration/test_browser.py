"""The disclosure and the credit report in a real browser (issue 15, 6): headless Chromium (Debian's
chromium and chromium-driver packages, driven by selenium) loads the disclosure, a blacklist and a
company's report served by ``creditstream api`` over the real pipeline, sees the company listed and
its penalty under publicity; after the credit office's repair decision it no longer sees the penalty
(终止公示: not published again) on reload, and the report shows it withdrawn. Screenshots go to docs/screenshots/ (linked from docs/disclosure.md).

Selected with ``-m browser``; ``make test`` runs it (and installs Chromium with apt-get when it can).
Without Chromium it is skipped, unless REQUIRE_BROWSER is set (CI): then it fails."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import eventually
from tests.integration.test_api import free_port, wait_http
from tests.integration.test_report_disclosure import (
    COMPANY,
    COMPANY_NAME,
    PENALTY_DOC,
    produce_disclosure_inputs,
    produce_repair,
    wait_listed,
    wait_repaired,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WIDTH = 1000


def browser():
    """A headless Chromium driven by selenium, or skip (fail with REQUIRE_BROWSER) saying why."""
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromium-driver", DRIVER)) if path is None]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        why = f"no {', '.join(missing)}: apt-get install chromium chromium-driver (make test does it as root)"
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(f"REQUIRE_BROWSER is set but the browser test cannot run: {why}")
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},1300", "--lang=zh-CN", "--hide-scrollbars"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def shot(driver, name: str) -> None:
    """A screenshot of the whole page, ``WIDTH`` pixels wide (the window grown to the page's height)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(max(int(height) + 20, 600), 2400))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.get_screenshot_as_file(str(SCREENSHOTS / name))


def text_of(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return "\n".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))


async def test_disclosure_and_report_in_chromium(settings, pipeline, department):
    driver = await asyncio.to_thread(browser)
    from creditstream.api import serve

    await produce_disclosure_inputs(department)
    await wait_listed(settings)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stop = asyncio.Event()
    # loopback without tokens: every request is anonymous at the public role (the report needs no header)
    server = asyncio.create_task(serve(settings, "127.0.0.1", port, stop=stop))
    try:
        await wait_http(base + "/health")

        def before_repair() -> None:
            from selenium.webdriver.common.by import By

            driver.get(base + "/disclosure")
            assert "信用信息公示" in driver.title
            driver.find_element(By.LINK_TEXT, "blacklist:environment").click()
            members = text_of(driver, "table")
            assert COMPANY_NAME in members and COMPANY in members
            shot(driver, "disclosure-blacklist.png")
            # search by the company's code: its page, the penalty under publicity
            driver.get(base + "/disclosure")
            box = driver.find_element(By.NAME, "q")
            box.send_keys(COMPANY)
            box.submit()
            assert driver.current_url.startswith(f"{base}/disclosure/subjects/{COMPANY}")
            published = driver.find_elements(By.CSS_SELECTOR, "table")
            assert PENALTY_DOC in published[1].text and "公示中" in published[1].text  # lists, published, withdrawn
            shot(driver, "disclosure-subject.png")
            driver.get(f"{base}/subjects/{COMPANY}/report")
            body = driver.find_element(By.TAG_NAME, "main").text
            assert COMPANY_NAME in body and PENALTY_DOC in body and "blacklist:environment" in body
            assert driver.find_element(By.ID, "content-hash").text.startswith("sha256:")
            shot(driver, "report-listed.png")

        await asyncio.to_thread(before_repair)

        await produce_repair(department)
        await wait_repaired(settings)

        def withdrawn() -> bool:
            driver.get(f"{base}/disclosure/subjects/{COMPANY}")
            tables = text_of(driver, "h2 + p, h2 + div")
            return PENALTY_DOC not in driver.page_source and "不在严重失信主体名单上" in tables

        await eventually(lambda: asyncio.to_thread(withdrawn), timeout=30, interval=0.5)

        def after_repair() -> None:
            from selenium.webdriver.common.by import By

            # RULES.md 3: an approved repair ends publication: the open page no longer shows the penalty
            main = driver.find_element(By.TAG_NAME, "main").text
            assert PENALTY_DOC not in main and "不再公示" in main
            shot(driver, "disclosure-withdrawn.png")
            driver.get(f"{base}/subjects/{COMPANY}/report")
            body = driver.find_element(By.TAG_NAME, "main").text
            assert "终止公示" in body and "不在任何名单上" in body
            shot(driver, "report-withdrawn.png")
            driver.get(base + "/disclosure/penalties")
            assert PENALTY_DOC not in driver.find_element(By.TAG_NAME, "main").text

        await asyncio.to_thread(after_repair)
    finally:
        await asyncio.to_thread(driver.quit)
        stop.set()
        await asyncio.wait_for(server, timeout=30)
