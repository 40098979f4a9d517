"""The page a browser gets at the base URL (``Accept: text/html``, no query): what this server
is and where to go next. FHIR clients asking for JSON or XML at the base still get the
system-level search (http://hl7.org/fhir/R4/http.html#search), so nothing changes for them."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse

from server import __version__
from server.http.negotiation import accepted
from server.http.security import page_csp

STYLE = """body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
code{background:#f3f3f3;padding:0 .25rem}"""
CSP = page_csp(styles=[STYLE])
"""Its one inline style, allowed by hash; nothing else loads (the security middleware keeps this CSP)."""


def wants_html(request: Request) -> bool:
    """A plain browser visit: no parameters, and ``text/html`` ranked first in ``Accept``."""
    if request.url.query:
        return False
    ranked = accepted(request.headers.get("accept", ""))
    return bool(ranked) and ranked[0] in ("text/html", "application/xhtml+xml")


def landing_page(base: str, store: str) -> HTMLResponse:
    links = [
        ("metadata", "CapabilityStatement (JSON)", f"{base}/metadata?_format=json"),
        ("metadata-xml", "CapabilityStatement (XML)", f"{base}/metadata?_format=xml"),
        ("patients", "First page of Patients", f"{base}/Patient?_count=20&_format=json"),
        ("healthz", "Health check", f"{base}/healthz"),
    ]
    items = "\n".join(
        f'    <li><a id="{key}" href="{escape(url)}">{escape(label)}</a> <code>{escape(url)}</code></li>'
        for key, label, url in links
    )
    page = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Yidang FHIR server</title>
<style>{STYLE}</style></head>
<body>
  <h1>Yidang (一档) FHIR R4 server</h1>
  <p>An HL7 FHIR R4 (4.0.1) server for regional health-information platforms, version {escape(__version__)},
  on the <b>{escape(store)}</b> store. This base URL speaks the FHIR REST API:
  <code>{escape(base)}</code> — send <code>Accept: application/fhir+json</code> (or <code>_format=json</code>).</p>
  <ul>
{items}
  </ul>
  <p>URLs must be percent-encoded (UTF-8): <code>{escape(base)}/Patient?family=%E7%8E%8B</code> searches for 王.</p>
</body>
</html>
"""
    return HTMLResponse(page, headers={"Content-Security-Policy": CSP})
