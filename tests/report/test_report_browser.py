"""The report in a real headless browser: no console errors, every image loads (skipped without Chromium
locally; a failure in CI, where `.ci/run` installs it)."""

from .browser import chromium_or_skip, open_in_browser


def test_report_opens_in_headless_chromium_without_errors_and_every_image_loads(report_html, tmp_path):
    browser = chromium_or_skip()
    result = open_in_browser(report_html, tmp_path, browser=browser)
    assert result["images"] >= 5, result
    assert result["ok"], result
    assert result["broken"] == 0 and result["problems"] == "" and result["console"] == [], result


def test_the_browser_check_catches_a_broken_image_and_a_console_error(tmp_path):
    browser = chromium_or_skip()
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        '<img alt="x" src="data:image/png;base64,AAAA"><script>console.error("boom")</script></body></html>'
    )
    result = open_in_browser(page, tmp_path, browser=browser)
    assert not result["ok"] and result["broken"] == 1 and "boom" in result["problems"]
