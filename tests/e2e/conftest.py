"""Browser tests: the React app (frontend/dist) in headless Chromium against a live Django
server on the test database.

Each test gets a `runserver` process on a free port, the checkout demo, the role groups, a
staff user and a publishable key for the server's origin (committed data, hence
`django_db(transaction=True)`), and a fresh Chromium page. `Steps.shot` saves a screenshot per
step under tests/e2e/artifacts/<test>/; with VERDICT_E2E_UPDATE_SCREENSHOTS=1 the README's
copies in docs/screenshots/ are written too (not by default, so `make test` leaves the working
tree unchanged).

Chromium is the distribution's package (/usr/bin/chromium, installed by `make test`);
Playwright never downloads a browser. Without Chromium or a build the tests skip, unless
VERDICT_E2E_REQUIRED=1 (set by `make test`), when they fail instead.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection, connections

from tests.support.processes import ROOT, ManagedProcess, free_port, process_env

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "e2e" / "artifacts"
README_SCREENSHOTS = ROOT / "docs" / "screenshots"
STAFF_USERNAME = "e2e-author"
STAFF_PASSWORD = "e2e-Password-41"
# Playwright's default wait for a locator assertion; the live server compiles rulesets and
# the machine is shared, so a little more than its 5 s.
TIMEOUT_MS = 15_000


def _missing(reason: str) -> None:
    if os.environ.get("VERDICT_E2E_REQUIRED") == "1":
        pytest.fail(f"{reason} (VERDICT_E2E_REQUIRED=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """The distribution's Chromium; skips (or fails under `make test`) when it is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    if not (Path(settings.FRONTEND_DIST) / "index.html").is_file():
        _missing("frontend/dist is missing: run `make frontend`")
    return CHROMIUM


@dataclass
class LiveApp:
    """The live server's address and what the test set up on it."""

    url: str
    publishable_key: str
    staff: Any
    server: ManagedProcess


@pytest.fixture
def live_app(transactional_db: Any, chromium_path: Path) -> Iterator[LiveApp]:
    """A Django server on a free port against the committed test database, with the demo,
    the roles, a staff publisher and a publishable key for its origin."""
    from django.contrib.auth import get_user_model

    from access import services as access_services

    # The groups as migration 0004 made them (an earlier transactional test flushed them).
    roles = importlib.import_module("rules_engine.migrations.0004_roles")
    roles.create_roles(django_apps, SimpleNamespace(connection=connection))
    call_command("rules_load_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    staff = get_user_model().objects.create_user(
        username=STAFF_USERNAME, password=STAFF_PASSWORD, is_staff=True
    )
    staff.groups.add(Group.objects.get(name="publisher"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    _, key = access_services.api_key_create(
        name="e2e-web",
        kind="publishable",
        scopes=["execute"],
        entry_points=["checkout"],
        allowed_origins=[url],
    )
    server = ManagedProcess(
        "web-e2e",
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        "Quit the server with",
        process_env(
            DJANGO_DEBUG="1",
            VERDICT_FRONTEND_PUBLISHABLE_KEY=key,
            VERDICT_FRONTEND_DIST=str(settings.FRONTEND_DIST),
        ),
    ).start()
    try:
        yield LiveApp(url=url, publishable_key=key, staff=staff, server=server)
    finally:
        server.stop()
        print(server.log_tail(40))  # shown when the test failed


@dataclass
class Steps:
    """Screenshots of one test's steps, numbered in order."""

    page: Any
    folder: Path
    taken: list[Path] = field(default_factory=list)

    def shot(self, name: str, readme: str | None = None) -> Path:
        """Save a screenshot of the page as `<NN>-<name>.png`; with `readme` (and
        VERDICT_E2E_UPDATE_SCREENSHOTS=1) also as docs/screenshots/<readme>.png."""
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        if readme and os.environ.get("VERDICT_E2E_UPDATE_SCREENSHOTS") == "1":
            README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, README_SCREENSHOTS / f"{readme}.png")
        return path


@pytest.fixture
def browser_page(
    live_app: LiveApp, chromium_path: Path, request: pytest.FixtureRequest, monkeypatch: Any
) -> Iterator[Any]:
    """A fresh headless Chromium page (1280x900), closed before the server stops."""
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM queries
    # (checking what the server stored) are still plain blocking calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield page
        finally:
            # The test's ORM calls, made while Playwright's loop was set, got connections of
            # their own (asgiref's Local is per context then): close them here, in that same
            # state, or they outlive the test and block dropping the test database.
            connections.close_all()
            context.close()
            browser.close()
        assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def steps(browser_page: Any, request: pytest.FixtureRequest) -> Steps:
    """Numbered screenshots for this test under tests/e2e/artifacts/<test name>/."""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Steps(page=browser_page, folder=folder)


def log_in(page: Any, live_app: LiveApp, next_path: str) -> None:
    """Log the staff user in through the admin's login form, landing on `next_path`."""
    page.goto(f"{live_app.url}/admin/login/?next={next_path}")
    page.locator("#id_username").fill(STAFF_USERNAME)
    page.locator("#id_password").fill(STAFF_PASSWORD)
    page.locator("input[type=submit]").click()
    target = f"{live_app.url}{next_path}"
    page.wait_for_url(lambda url: url == target)
