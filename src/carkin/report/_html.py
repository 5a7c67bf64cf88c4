"""HTML building blocks of the report: escaping, tables, embedded images (base64 data URIs), the page.

The page is one self-contained file: inline CSS, no script, no external resource.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math

import numpy as np
import pandas as pd

__all__ = ["esc", "table", "image", "png_file", "section", "page", "pre", "kv_table"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1180px;
padding:0 18px 40px;color:#1d1d1f}
h1{font-size:1.6em;margin:18px 0 4px}h2{border-bottom:2px solid #ddd;padding-bottom:3px;margin-top:34px}
h3{margin-top:22px}
table{border-collapse:collapse;font-size:.82em;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%;border:1px solid #eee;margin:6px 0}
pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:.8em}
.banner{background:#ffcc00;color:#000;font-weight:700;padding:10px 14px;font-size:1.15em;border:2px solid #b38f00;
margin:12px 0}
.pass{background:#e5f6e5;border:2px solid #2e7d32;padding:10px 14px;font-weight:600}
.fail{background:#fde7e7;border:3px solid #c62828;padding:10px 14px;color:#8e0000;font-size:1.1em}
.fail b{font-size:1.2em}.muted{color:#666;font-size:.85em}nav a{margin-right:12px}
"""


def esc(value) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return "" if math.isnan(value) else esc(value)
        return f"{value:.4g}"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return esc(value)


def table(frame: pd.DataFrame, *, max_rows: int = 60, index: bool = False) -> str:
    """A DataFrame as an HTML table (numbers to 4 significant digits; text columns left-aligned)."""
    frame = frame.reset_index() if index else frame
    shown = frame.head(max_rows)
    left = {c for c in frame.columns if frame[c].dtype == object}
    head = "".join(f'<th class="{"l" if c in left else ""}">{esc(c)}</th>' for c in frame.columns)
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"l" if c in left else ""}">{_cell(v)}</td>' for c, v in zip(frame.columns, row, strict=True)
        )
        + "</tr>"
        for row in shown.itertuples(index=False)
    )
    note = f'<p class="muted">first {max_rows} of {len(frame)} rows</p>' if len(frame) > max_rows else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{note}"


def kv_table(items: dict) -> str:
    """A two-column table of key -> value (values JSON-encoded when not scalar)."""
    rows = "".join(
        f'<tr><td class="l">{esc(k)}</td>'
        f'<td class="l">{_cell(v) if not isinstance(v, (dict, list)) else esc(json.dumps(v))}</td></tr>'
        for k, v in items.items()
    )
    return f"<table><tbody>{rows}</tbody></table>"


def image(figure, *, alt: str, dpi: int = 90) -> str:
    """A matplotlib Figure as an embedded PNG (the figure is closed afterwards)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    return _img(buffer.getvalue(), alt)


def png_file(path, *, alt: str | None = None) -> str:
    """A PNG file as an embedded image."""
    from pathlib import Path

    path = Path(path)
    return _img(path.read_bytes(), alt or path.stem)


def _img(data: bytes, alt: str) -> str:
    if not data.startswith(b"\x89PNG"):
        raise ValueError(f"image {alt!r} is not a PNG")
    return (
        f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}"></figure>'
    )


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, sections: list[tuple[str, str, str]], *, banner: str | None = None, subtitle: str = "") -> str:
    """The whole document: title, optional banner, navigation, sections ``(anchor, title, body_html)``."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    top = f'<div class="banner">{esc(banner)}</div>' if banner else ""
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>'
        f'<body><h1>{esc(title)}</h1><p class="muted">{esc(subtitle)}</p>'
        f'{top}<nav>{nav}</nav>{body}{top}</body></html>\n'
    )
