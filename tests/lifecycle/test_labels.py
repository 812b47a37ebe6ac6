"""Labels: CSV import with a per-row summary, upserts, and the admin upload page."""

from __future__ import annotations

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from ingress.models import Event
from ingress.services import event_accept
from lifecycle import services
from lifecycle.models import Label
from rules_engine.errors import InvalidInput
from rules_engine.models import EntryPoint, Execution
from tests.lifecycle.conftest import store_executions

pytestmark = pytest.mark.django_db


@pytest.fixture
def targets(payments: EntryPoint) -> tuple[list[Execution], Event]:
    """Three executions and one event (source api, key k1)."""
    event, _ = event_accept(type="payments", key="k1", payload={"total": 1})
    return store_executions(payments, 3), event


def test_a_labels_csv_is_imported_row_by_row_with_a_summary(
    targets: tuple[list[Execution], Event],
) -> None:
    # given a CSV with three good rows, eight bad ones and a blank line
    (e0, e1, e2), event = targets
    unknown = uuid.UUID(int=7)
    csv = "\n".join(
        [
            "execution_id,event_id,event_key,source,label",
            f"{e0.pk},,,,fraud",
            f"{e1.pk},,,,NORMAL",
            f",{event.pk},,,CHARGEBACK",
            ",,k1,api,FRAUD",
            "not-a-uuid,,,,FRAUD",
            f"{unknown},,,,FRAUD",
            f"{e2.pk},,,,",
            f"{e2.pk},{event.pk},,,FRAUD",
            ",,missing,api,FRAUD",
            f'{e2.pk},,,,"bad label!"',
            "",
            f"{e0.pk},,,,NORMAL",
        ]
    )

    # when it is imported
    summary = services.labels_import_csv(file=csv.encode(), source="csv:test")

    # then the good rows are stored and every bad one is reported with its row and reason
    assert summary == {
        "rows": 11,
        "accepted": 3,
        "created": 3,
        "updated": 0,
        "rejected": [
            {"row": 5, "reason": "row 4 labels the same"},
            {"row": 6, "reason": "execution_id 'not-a-uuid' is not a UUID"},
            {"row": 7, "reason": f"no execution {unknown}"},
            {"row": 8, "reason": "the label is empty"},
            {"row": 9, "reason": "give only one of execution_id, event_id"},
            {"row": 10, "reason": "no event with source 'api' and key 'missing'"},
            {
                "row": 11,
                "reason": "invalid label 'BAD LABEL!': up to 50 letters, digits, '_' or '-'",
            },
            {"row": 13, "reason": "row 2 labels the same"},
        ],
        "labels": {"CHARGEBACK": 1, "FRAUD": 1, "NORMAL": 1},
    }
    stored = {
        (str(row.execution_id or row.event_id), row.label, row.source)
        for row in Label.objects.all()
    }
    assert stored == {
        (str(e0.pk), "FRAUD", "csv:test"),
        (str(e1.pk), "NORMAL", "csv:test"),
        (str(event.pk), "CHARGEBACK", "csv:test"),
    }


def test_importing_again_replaces_a_label(targets: tuple[list[Execution], Event]) -> None:
    # given an execution labelled FRAUD
    (e0, _, _), event = targets
    services.labels_import_csv(file=f"execution_id,label\n{e0.pk},FRAUD\n")

    # when a second file says NORMAL for it and labels the event by its key
    summary = services.labels_import_csv(
        file=f"execution_id,event_key,label\n{e0.pk},,NORMAL\n,k1,fraud\n"
    )

    # then the label was updated in place, and the event got one
    assert (summary["accepted"], summary["created"], summary["updated"]) == (2, 1, 1)
    assert Label.objects.get(execution=e0).label == "NORMAL"
    assert Label.objects.get(event=event).label == "FRAUD"
    assert Label.objects.count() == 2


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("execution_id,outcome\nx,FRAUD\n", "no 'label' column"),
        ("id,label\nx,FRAUD\n", "no 'execution_id', 'event_id' or 'event_key' column"),
        ("", "the file is empty"),
    ],
)
def test_an_unusable_file_is_refused_as_a_whole(db: object, csv: str, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        services.labels_import_csv(file=csv)

    assert [d["message"] for d in refused.value.details] == [message]
    assert Label.objects.count() == 0


def test_the_admin_upload_page_shows_the_summary(
    admin_client: Client, targets: tuple[list[Execution], Event]
) -> None:
    # given a file with one good row and one bad one
    (e0, _, _), _ = targets
    upload = SimpleUploadedFile(
        "chargebacks.csv", f"execution_id,label\n{e0.pk},CHARGEBACK\nnope,FRAUD\n".encode()
    )

    # when it is uploaded in the admin
    response = admin_client.post(reverse("admin:lifecycle_label_upload"), {"file": upload})

    # then the page shows what was accepted and what was rejected, and the label is stored
    assert response.status_code == 200
    assert response.context["summary"]["accepted"] == 1
    page = response.content.decode()
    assert "<strong>1</strong> of 2 rows accepted" in page
    assert "<td>3</td><td>execution_id &#x27;nope&#x27; is not a UUID</td>" in page
    label = Label.objects.get()
    assert (label.label, label.source) == ("CHARGEBACK", "csv:chargebacks.csv")
    # and the label list links to the upload
    listing = admin_client.get(reverse("admin:lifecycle_label_changelist")).content.decode()
    assert reverse("admin:lifecycle_label_upload") in listing
