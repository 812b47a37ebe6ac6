"""The React app at /app/: index.html with the page config injected, assets, CSP, the 503 when
the build is missing, and the admin's link to the builder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from config.frontend import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.django_db

INDEX = (
    '<!doctype html>\n<html lang="en">\n  <head>\n    <meta charset="UTF-8" />\n'
    '    <script type="module" crossorigin src="/app/assets/index-abc123.js"></script>\n'
    '  </head>\n  <body><div id="root"></div></body>\n</html>\n'
)
CONFIG_SCRIPT = re.compile(
    r'<script id="verdict-config" type="application/json">(.*?)</script>', re.DOTALL
)


@pytest.fixture
def dist(tmp_path: Path, settings: Any) -> Path:
    """A built frontend in a temporary folder, and no publishable key configured."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(INDEX)
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log('app');\n")
    (tmp_path / "favicon.svg").write_text("<svg/>")
    settings.FRONTEND_DIST = tmp_path
    settings.FRONTEND_PUBLISHABLE_KEY_FILE = tmp_path / "no-key-file.txt"
    settings.VERDICT = {**settings.VERDICT, "FRONTEND_PUBLISHABLE_KEY": ""}
    return tmp_path


def page_config(html: str) -> Any:
    scripts = CONFIG_SCRIPT.findall(html)
    assert len(scripts) == 1
    return json.loads(scripts[0])


def test_the_app_page_is_index_html_with_the_config_before_head_end(
    client: Client, dist: Path
) -> None:
    # when an anonymous visitor opens the checkout
    response = client.get("/app/")
    # then the built index.html comes back with the config injected just before </head>
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    html = response.content.decode()
    assert '<script id="verdict-config" type="application/json">' in html
    assert html.index("verdict-config") < html.index("</head>")
    assert html.replace(CONFIG_SCRIPT.search(html).group(0) + "\n", "") == INDEX  # type: ignore[union-attr]
    config = page_config(html)
    assert config == {
        "apiBase": "",
        "publishableKey": None,
        "csrfToken": config["csrfToken"],
        "user": None,
        "loginUrl": "/admin/login/?next=/app/",
    }
    # and the CSRF token is the one set in the cookie (masked differently, same secret)
    assert len(config["csrfToken"]) == 64
    assert "csrftoken" in response.cookies
    assert response["Cache-Control"] == "no-store"


def test_every_path_below_app_gets_the_page_and_a_login_url_back_to_it(
    client: Client, dist: Path
) -> None:
    for path, login in [
        ("/app/playground", "/admin/login/?next=/app/playground"),
        ("/app/builder?rule=5f0c", "/admin/login/?next=/app/builder%3Frule%3D5f0c"),
        ("/app/some/deep/route", "/admin/login/?next=/app/some/deep/route"),
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert page_config(response.content.decode())["loginUrl"] == login


def test_a_logged_in_user_is_in_the_config(client: Client, dist: Path, admin_user: Any) -> None:
    # given a logged-in staff user
    client.force_login(admin_user)
    # when they open the playground
    config = page_config(client.get("/app/playground").content.decode())
    # then the app knows who they are, and can send the CSRF token with its API calls
    assert config["user"] == {"username": "admin", "isStaff": True}
    assert client.cookies["csrftoken"].value
    response = client.patch(
        "/api/rules/00000000-0000-0000-0000-000000000000/",
        data="{}",
        content_type="application/json",
        HTTP_X_CSRFTOKEN=config["csrfToken"],
    )
    assert response.status_code == 404  # past the CSRF check (a bad token is a 403)


def test_a_non_staff_user_is_marked_as_such(
    client: Client, dist: Path, django_user_model: Any
) -> None:
    client.force_login(django_user_model.objects.create_user(username="shopper", password="x"))
    config = page_config(client.get("/app/").content.decode())
    assert config["user"] == {"username": "shopper", "isStaff": False}


def test_values_that_could_close_the_script_are_escaped(
    client: Client, dist: Path, django_user_model: Any, settings: Any
) -> None:
    # given a username and a key holding markup
    hostile = "</script><script>alert(1)</script>&"
    user = django_user_model.objects.create_user(username=hostile, password="x")
    settings.VERDICT = {**settings.VERDICT, "FRONTEND_PUBLISHABLE_KEY": "<!--vk_pk_x"}
    client.force_login(user)
    # when the page is served
    html = client.get("/app/").content.decode()
    # then the markup is escaped inside the JSON and decodes back to the same values
    assert "</script><script>" not in html
    assert "<!--" not in html
    assert "\\u003C/script\\u003E\\u003Cscript\\u003Ealert(1)\\u003C/script\\u003E\\u0026" in html
    config = page_config(html)
    assert config["user"]["username"] == hostile
    assert config["publishableKey"] == "<!--vk_pk_x"


def test_the_publishable_key_comes_from_the_setting_else_the_demo_file(
    client: Client, dist: Path, settings: Any
) -> None:
    # given the demo key file `make run` writes
    key_file = dist / "demo-publishable-key.txt"
    key_file.write_text("vk_pk_from_file\n")
    settings.FRONTEND_PUBLISHABLE_KEY_FILE = key_file
    # then the page uses it
    config = page_config(client.get("/app/").content.decode())
    assert config["publishableKey"] == "vk_pk_from_file"
    # and a configured key wins over the file
    settings.VERDICT = {**settings.VERDICT, "FRONTEND_PUBLISHABLE_KEY": "vk_pk_from_env"}
    config = page_config(client.get("/app/").content.decode())
    assert config["publishableKey"] == "vk_pk_from_env"


def test_app_pages_carry_the_content_security_policy(client: Client, dist: Path) -> None:
    response = client.get("/app/playground")
    assert response["Content-Security-Policy"] == (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
    )
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_without_a_build_the_app_answers_503_saying_how_to_build_it(
    client: Client, tmp_path: Path, settings: Any
) -> None:
    # given no frontend/dist
    settings.FRONTEND_DIST = tmp_path / "dist"
    # when the app is opened
    response = client.get("/app/builder")
    # then the page says what to run
    assert response.status_code == 503
    assert "make frontend" in response.content.decode()
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_assets_are_served_with_long_cache_headers(client: Client, dist: Path) -> None:
    response = client.get("/app/assets/index-abc123.js")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"console.log('app');\n"  # type: ignore[attr-defined]
    assert response["Content-Type"] == "text/javascript"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"


def test_missing_assets_and_paths_outside_the_assets_are_404(client: Client, dist: Path) -> None:
    assert client.get("/app/assets/missing.js").status_code == 404
    assert client.get("/app/assets/../index.html").status_code == 404
    assert client.get("/app/assets/%2e%2e/index.html").status_code == 404
    assert client.get("/app/assets/..%2findex.html").status_code == 404


def test_root_files_of_the_build_are_served_as_they_are(client: Client, dist: Path) -> None:
    response = client.get("/app/favicon.svg")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"<svg/>"  # type: ignore[attr-defined]
    # but a path leaving dist is just another app route
    response = client.get("/app/..%2f..%2fpyproject.toml")
    assert response.status_code == 200
    assert b"verdict-config" in response.content


def test_the_app_only_answers_get_and_head(client: Client, dist: Path) -> None:
    assert client.head("/app/").status_code == 200
    assert client.post("/app/").status_code == 405


def test_the_rule_admin_page_links_to_the_visual_builder(
    client: Client, admin_user: Any, demo: Any
) -> None:
    # given a rule of the demo
    rule = demo.rules.order_by("priority").first()
    client.force_login(admin_user)
    # when its admin change page is opened
    html = client.get(f"/admin/rules_engine/rule/{rule.pk}/change/").content.decode()
    # then it links to the builder for that rule
    assert f'<a href="/app/builder?rule={rule.pk}" class="verdict-builder">' in html
    assert "Edit condition visually</a>" in html
