"""``GET /docs``: the OpenAPI document as a self-contained HTML page (rendered here; no script, no
CDN, so it works offline), the operations grouped by resource type, each GET without a path
parameter a link. Its CSP allows its one inline style by hash and nothing else."""

from __future__ import annotations

from html import escape
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from server.http.openapi import document
from server.http.security import page_csp

STYLE = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.4}"
         "code{background:#f3f3f3;padding:0 .25rem}table{border-collapse:collapse}"
         "td{padding:.1rem .6rem;vertical-align:top}summary{cursor:pointer;font-weight:600}"
         ".m{font-family:monospace;font-weight:700;text-transform:uppercase}")
CSP = page_csp(styles=[STYLE])
METHODS = ("get", "post", "put", "patch", "delete")


def render(doc: dict[str, Any], base: str) -> str:
    """The page for an OpenAPI document (pure)."""
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                tag = item[method].get("tags", ["Other"])[0]
                by_tag.setdefault(tag, []).append((method, path, item[method]))
    sections = []
    for tag in [t["name"] for t in doc.get("tags", ())] + sorted(set(by_tag) - {t["name"] for t in doc["tags"]}):
        rows = []
        for method, path, op in by_tag.get(tag, ()):
            shown = escape(path)
            if method == "get" and "{" not in path:
                shown = f'<a href="{escape(base + path)}">{shown}</a>'
            rows.append(f'<tr><td class="m">{method}</td><td><code>{shown}</code></td>'
                        f'<td>{escape(op.get("summary", ""))}</td></tr>')
        if rows:
            sections.append(f'<details id="{escape(tag)}"><summary>{escape(tag)} ({len(rows)})</summary>'
                            f'<table>{"".join(rows)}</table></details>')
    security = doc.get("components", {}).get("securitySchemes", {})
    flows = security.get("smart", {}).get("flows", {})
    auth = ("<p>Authorization: SMART on FHIR. Tokens from <code>"
            f"{escape(flows['clientCredentials']['tokenUrl'])}</code> (client credentials with private_key_jwt, "
            "or authorization code with PKCE); send <code>Authorization: Bearer …</code>.</p>"
            if "clientCredentials" in flows else "<p>Authorization is off on this server.</p>")
    info = doc["info"]
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{escape(info["title"])}</title><style>{STYLE}</style></head>
<body>
<h1>{escape(info["title"])} <small>{escape(info["version"])}</small></h1>
<p>{escape(info.get("description", ""))}</p>
<p>Machine-readable: <a id="openapi" href="{escape(base)}/openapi.json">OpenAPI 3 (JSON)</a>,
<a id="metadata" href="{escape(base)}/metadata?_format=json">CapabilityStatement</a>.</p>
{auth}
{"".join(sections)}
</body>
</html>
"""


async def docs_page(request: Request) -> HTMLResponse:
    """``GET /docs``."""
    doc, _ = await document(request)
    base = doc["servers"][0]["url"].rstrip("/")
    return HTMLResponse(render(doc, base), headers={"Content-Security-Policy": CSP})
