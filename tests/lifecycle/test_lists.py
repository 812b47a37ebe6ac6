"""Named lists from CSV: append or replace, one new version, bad rows refused by number."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from lifecycle import services
from rules_engine.errors import InvalidInput
from rules_engine.functions import services as list_services
from rules_engine.functions.models import NamedList

pytestmark = pytest.mark.django_db


@pytest.fixture
def blocked(db: object) -> NamedList:
    """A strings list `blocked` holding a@x.com (version 1)."""
    return list_services.named_list_create(
        data={"name": "blocked", "kind": "strings", "items": ["a@x.com"]}
    )


def test_appending_from_csv_adds_new_items_as_one_version(blocked: NamedList) -> None:
    summary = services.named_list_import_csv(
        named_list=blocked, file=b"b@x.com\n\na@x.com\nc@x.com\n", mode="append"
    )

    assert summary == {
        "rows": 3,
        "added": 2,
        "removed": 0,
        "unchanged": 1,
        "items": 3,
        "version": 2,
    }
    blocked.refresh_from_db()
    assert (blocked.items, blocked.version) == (["a@x.com", "b@x.com", "c@x.com"], 2)
    assert blocked.history.count() == 2


def test_replacing_from_csv_with_a_header(blocked: NamedList) -> None:
    summary = services.named_list_import_csv(
        named_list=blocked, file="email\nz@x.com\n", mode="replace", has_header=True
    )

    assert (summary["added"], summary["removed"], summary["items"]) == (1, 1, 1)
    blocked.refresh_from_db()
    assert (blocked.items, blocked.version) == (["z@x.com"], 2)


def test_bad_rows_are_refused_with_their_numbers_and_nothing_changes(db: object) -> None:
    # given a numbers list
    ids = list_services.named_list_create(data={"name": "ids", "kind": "numbers", "items": [1]})

    # when the CSV has a non-number and a row with two columns
    with pytest.raises(InvalidInput) as refused:
        services.named_list_import_csv(named_list=ids, file="2\nx\n3,4\n2.5\n")

    # then each is reported by row and the list keeps version 1
    assert refused.value.details == [{"path": "row 3", "message": "one column expected"}]
    with pytest.raises(InvalidInput) as refused:
        services.named_list_import_csv(named_list=ids, file="2\nx\n2.5\n")
    assert refused.value.details == [{"path": "row 2", "message": "must be a finite number"}]
    ids.refresh_from_db()
    assert (ids.items, ids.version) == ([1], 1)
    # and good numbers are stored as numbers
    services.named_list_import_csv(named_list=ids, file="2\n2.5\n")
    ids.refresh_from_db()
    assert ids.items == [1, 2, 2.5]


def test_the_admin_upload_page_appends_and_shows_the_summary(
    admin_client: Client, blocked: NamedList
) -> None:
    url = reverse("admin:functions_namedlist_upload", args=[blocked.pk])
    assert (
        url
        in admin_client.get(
            reverse("admin:functions_namedlist_change", args=[blocked.pk])
        ).content.decode()
    )

    response = admin_client.post(
        url,
        {
            "file": SimpleUploadedFile("more.csv", b"b@x.com\nc@x.com\n"),
            "mode": "append",
            "change_note": "Fraud team list",
        },
    )

    assert response.status_code == 200
    assert "2 rows read: 2 added, 0 removed, 1 unchanged" in response.content.decode()
    blocked.refresh_from_db()
    assert (blocked.version, len(blocked.items)) == (2, 3)
    assert blocked.history.first().history_change_reason == "Fraud team list"
