"""Small HTML pages for people who open connect links and land on the OAuth callback."""

from __future__ import annotations

from html import escape

from aiohttp import web

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · cliqbot</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;
color:#1d2433}}
h1{{font-size:1.4rem}} .code{{font:700 2.2rem/1.2 ui-monospace,monospace;letter-spacing:.3rem;
background:#eef3ff;padding:.6rem 1rem;border-radius:.5rem;display:inline-block}}
</style></head>
<body><main><h1>{title}</h1><p>{body}</p>{extra}</main></body></html>
"""


def page(title: str, body: str, *, status: int = 200, code: str | None = None) -> web.Response:
    extra = (
        f'<p class="code" aria-label="linking code" id="linking-code">{escape(code)}</p>'
        if code
        else ""
    )
    html = _PAGE.format(title=escape(title), body=escape(body), extra=extra)
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
