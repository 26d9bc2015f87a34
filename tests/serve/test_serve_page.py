"""The web page at / in a real headless Chromium: pick a sample (and an adapter), summarize,
read the result.

Needs Debian's chromium (``apt-get install chromium``) and Playwright's Python client; .ci/run
installs both. Playwright's own browser download is not used.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dialogsum import Summarizer
from dialogsum.serve import ServeSettings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytest.importorskip("playwright")
if not Path(CHROMIUM).exists():
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )


def summarize_first_sample(page: Any, summarizer: Summarizer, max_new_tokens: int) -> str:
    """Pick the first sample, summarize it greedily on the page, check the summary shown
    against summarize() offline; returns the dialogue."""
    page.wait_for_function("document.querySelector('#sample').options.length > 1")
    page.select_option("#sample", index=1)
    dialogue = str(page.input_value("#dialogue"))
    page.select_option("#beams", "1")
    page.fill("#length", str(max_new_tokens))
    page.click("#go")
    page.wait_for_function("document.querySelector('#latency').textContent.endsWith('ms')")
    expected = summarizer.summarize([dialogue], num_beams=1, max_new_tokens=max_new_tokens)[0]
    assert page.inner_text("#summary").strip() == expected
    return dialogue


def test_the_page_summarizes_a_picked_sample(tiny_model_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from dialogsum.testing.serving import Server

    summarizer = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    with Server(summarizer, ServeSettings()) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.goto(url + "/")
            page.wait_for_selector("#facts table")
            assert "torch" in page.inner_text("#facts")
            dialogue = summarize_first_sample(page, summarizer, max_new_tokens=12)
            assert dialogue.startswith("#Person1#:")
            screenshot = tmp_path / "page.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000  # a rendered page, not a blank one
            page.fill("#dialogue", "")
            page.click("#go")
            page.wait_for_function("document.querySelector('#error').textContent.length > 0")
            assert "empty" in page.inner_text("#error")
        finally:
            browser.close()


def test_the_page_asks_for_the_key_of_a_keyed_server(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import sync_playwright

    from dialogsum.testing.serving import Server

    monkeypatch.setenv("TEST_DIALOGSUM_PAGE_KEY", "s3cret")
    summarizer = Summarizer.from_pretrained(tiny_model_dir, backend_options={"progress": False})
    settings = ServeSettings(api_key_env="TEST_DIALOGSUM_PAGE_KEY")
    with Server(summarizer, settings) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.wait_for_selector("#keyrow", state="visible")  # the card needed the key
            assert "API key" in page.inner_text("#facts")
            page.fill("#key", "wrong")
            page.click("#usekey")
            page.wait_for_selector("#keyrow", state="visible")
            page.fill("#key", "s3cret")
            page.click("#usekey")
            page.wait_for_selector("#facts table")
            summarize_first_sample(page, summarizer, max_new_tokens=8)
        finally:
            browser.close()


def test_the_page_s_adapter_picker_sends_the_chosen_adapter(
    tagging: Callable[..., Summarizer],
) -> None:
    from playwright.sync_api import sync_playwright

    from dialogsum.testing.serving import Server

    summarizer = tagging("support", "sales")
    dialogue = "#Person1#: Has the parcel come?\n#Person2#: It came this morning."
    with Server(summarizer, ServeSettings()) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.wait_for_function("document.querySelector('#adapter').options.length === 3")
            options = page.eval_on_selector_all("#adapter option", "os => os.map(o => o.text)")
            assert options == ["base model", "sales (lora)", "support (lora)"]
            assert page.input_value("#adapter") == ""  # the base model unless one is picked
            page.fill("#dialogue", dialogue)
            page.select_option("#beams", "1")
            page.fill("#length", "12")
            for adapter in ("support", ""):
                page.select_option("#adapter", adapter)
                page.evaluate("document.querySelector('#latency').textContent = ''")
                page.click("#go")
                page.wait_for_function(
                    "document.querySelector('#latency').textContent.endsWith('ms')"
                )
                expected = summarizer.summarize(
                    [dialogue], adapter=adapter or None, num_beams=1, max_new_tokens=12
                )[0]
                assert page.inner_text("#summary").strip() == expected
            assert expected and not expected.startswith("[S]")  # the base's, last
        finally:
            browser.close()
