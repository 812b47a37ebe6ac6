"""`manage.py demo_admin`: make sure a local admin login exists and print it (for `make run`)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    """Create the `admin` superuser with a random password kept in var/, then print the login."""

    help = "Create (once) and print the local admin login used by `make run`."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        password_file = Path(settings.BASE_DIR) / "var" / f"{username}-password.txt"
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is not None and password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(12)
            if user is None:
                user = user_model.objects.create_superuser(username=username, password=password)
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        self.stdout.write(
            self.style.SUCCESS(
                f"admin login: http://127.0.0.1:8000/admin/ user {username!r} password {password!r}"
            )
        )
