"""Serve the React frontend's build (frontend/dist) at /app/, with the page's config injected.

Every path under /app/ gets `index.html` (the app routes on `location.pathname`) with a
`<script id="verdict-config" type="application/json">` element before `</head>`: the API base,
the demo's publishable key, the CSRF token and the logged-in user. Vite's hashed files are
served from /app/assets/ with long cache headers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils._os import safe_join
from django.utils.html import json_script
from django.views.decorators.http import require_safe
from django.views.static import serve

# The injected config is an `application/json` script: data, not code, so the policy allows
# it without 'unsafe-inline'. Inline styles stay allowed for the components' style props.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
CONFIG_ELEMENT_ID = "verdict-config"
# Vite puts a content hash in every asset name: a changed file gets a new URL.
ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable"
HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)
NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Verdict: frontend not built</title></head>
<body><h1>The frontend is not built</h1>
<p>Run <code>make frontend</code> (or <code>make run</code>, which builds it when missing),
then reload this page.</p></body></html>
"""


def _dist() -> Path:
    return Path(settings.FRONTEND_DIST)


def publishable_key() -> str | None:
    """The publishable key the demo checkout uses: the setting, else the demo key file, else
    None (the checkout then shows that it has no key)."""
    configured: str = settings.VERDICT.get("FRONTEND_PUBLISHABLE_KEY", "")
    if configured:
        return configured
    key_file = Path(settings.FRONTEND_PUBLISHABLE_KEY_FILE)
    if key_file.is_file():
        return key_file.read_text().strip() or None
    return None


def page_config(request: HttpRequest) -> dict[str, Any]:
    """The config the app reads from `#verdict-config`. Sets the CSRF cookie (get_token)."""
    user = request.user
    return {
        "apiBase": "",
        "publishableKey": publishable_key(),
        "csrfToken": get_token(request),
        "user": (
            {"username": user.get_username(), "isStaff": bool(user.is_staff)}
            if user.is_authenticated
            else None
        ),
        # The page itself (query string included) is where the login sends the user back.
        "loginUrl": f"{reverse('admin:login')}?next={quote(request.get_full_path(), safe='/')}",
    }


def inject_config(html: str, config: dict[str, Any]) -> str:
    """`html` with the config script before `</head>` (at the start if there is none).

    json_script escapes <, > and & so no value can close the script element.
    """
    script = json_script(config, CONFIG_ELEMENT_ID)
    match = HEAD_END.search(html)
    if match is None:
        return script + html
    return f"{html[: match.start()]}{script}\n{html[match.start() :]}"


@require_safe
def app(request: HttpRequest, path: str = "") -> HttpResponseBase:
    """`index.html` with the page config for /app/ and every path below it; a file the build
    put at the root of dist (favicon, robots.txt) is served as it is; 503 when not built."""
    dist = _dist()
    index = dist / "index.html"
    if not index.is_file():
        response: HttpResponseBase = HttpResponse(
            NOT_BUILT, status=503, content_type="text/html; charset=utf-8"
        )
    elif path and path != "index.html" and _is_file_in(dist, path):
        return serve(request, path, document_root=str(dist))
    else:
        html = inject_config(index.read_text(encoding="utf-8"), page_config(request))
        response = HttpResponse(html, content_type="text/html; charset=utf-8")
    # The page carries the user's CSRF token and name: never cached.
    response["Cache-Control"] = "no-store"
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@require_safe
def asset(request: HttpRequest, path: str) -> HttpResponseBase:
    """A built asset from dist/assets (404 outside it or when missing), cached for a year."""
    try:
        response = serve(request, path, document_root=str(_dist() / "assets"))
    except SuspiciousFileOperation as exc:
        raise Http404("no such asset") from exc
    response["Cache-Control"] = ASSET_CACHE_CONTROL
    return response


def _is_file_in(root: Path, path: str) -> bool:
    try:
        return Path(safe_join(str(root), path)).is_file()
    except SuspiciousFileOperation:
        # A path leaving dist (`..`, an absolute path): not a file of the build.
        return False
