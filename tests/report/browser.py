"""Open an HTML file in headless Chromium and report image loading and errors (Chrome's --dump-dom).

A checking script is injected at the top of ``<head>`` of a copy of the file: it records every error event
(script errors and failed resource loads, captured) and every ``console.error``/``console.warn`` call, then on
``load`` marks ``<body data-ok="yes">`` only if there were images, all have ``naturalWidth > 0`` and no error
was recorded. Chromium's own log of page console messages (``--enable-logging=stderr``: ``CONSOLE`` lines) is
checked too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

_CHECK = """<script>
window.__problems = [];
window.addEventListener('error', function (e) {
  window.__problems.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || 'resource'));
}, true);
['error', 'warn'].forEach(function (level) {
  var original = console[level];
  console[level] = function () {
    window.__problems.push(level + ': ' + Array.prototype.join.call(arguments, ' '));
    original.apply(console, arguments);
  };
});
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var b = document.body;
  b.dataset.images = images.length;
  b.dataset.broken = broken.length;
  b.dataset.problems = window.__problems.join(' | ');
  b.dataset.ok = (images.length > 0 && broken.length === 0 && window.__problems.length === 0) ? 'yes' : 'no';
});
</script>"""


def chromium_or_skip() -> str:
    """Path of a Chromium binary; skip (locally) or FAIL (in CI: env CI=true) when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    message = ("no headless Chromium found (install it: apt-get install -y chromium); the report's browser test "
               "needs a real browser")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("CI=true but " + message)
    pytest.skip(message)


def open_in_browser(html_path: Path, workdir: Path, *, browser: str) -> dict:
    """Load a copy of ``html_path`` with the checking script; return ok, images, broken, problems, console."""
    text = html_path.read_text(encoding="utf-8")
    checked = workdir / ("checked-" + html_path.name)
    checked.write_text(text.replace("<head>", "<head>" + _CHECK, 1), encoding="utf-8")
    profile = workdir / "chromium-profile"
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
               "--virtual-time-budget=15000", "--dump-dom", checked.resolve().as_uri()]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    body = re.search(r"<body([^>]*)>", run.stdout)
    attrs = dict(re.findall(r'data-([a-z]+)="([^"]*)"', body.group(1))) if body else {}
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line]
    return {
        "ok": attrs.get("ok") == "yes",
        "images": int(attrs.get("images", -1)),
        "broken": int(attrs.get("broken", -1)),
        "problems": attrs.get("problems", ""),
        "console": console,
        "returncode": run.returncode,
        "stderr_tail": run.stderr[-2000:],
    }
