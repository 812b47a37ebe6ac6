"""WSGI entry point: Django's handler with the express lane for the busiest API calls
(config/express.py)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from config.express import ExpressWSGIHandler  # noqa: E402  (needs the app registry)

application = ExpressWSGIHandler()
