"""Admin forms of lifecycle: the label CSV upload, a list CSV upload and the backtest start."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from lifecycle.models import DEFAULT_POSITIVE_LABELS, Backtest
from rules_engine.forms import PrettyJSONField
from rules_engine.models import EntryPoint, Rule

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


class CsvUploadForm(forms.Form):
    """A CSV file (UTF-8, at most 20 MB)."""

    file = forms.FileField(label="CSV file")

    def clean_file(self) -> bytes:
        """The uploaded bytes. Raises ValidationError above the size limit."""
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"the file is larger than {MAX_UPLOAD_BYTES} bytes")
        return bytes(upload.read())


class LabelUploadForm(CsvUploadForm):
    """Labels CSV: `label` and one of execution_id, event_id or event_key (+ source)."""

    source = forms.CharField(
        max_length=200, required=False, help_text="Where these labels come from (default: csv)."
    )


class NamedListUploadForm(CsvUploadForm):
    """A one-column CSV of list items, replacing or appended to the list's items."""

    mode = forms.ChoiceField(
        choices=[("append", "Append to the current items"), ("replace", "Replace every item")],
        initial="append",
        widget=forms.RadioSelect,
    )
    has_header = forms.BooleanField(required=False, label="The first row is a header")
    change_note = forms.CharField(max_length=200, required=False)


class BacktestStartForm(forms.Form):
    """Start a backtest: a candidate rule (or rule set) over a window of stored history."""

    entry_point = forms.ModelChoiceField(queryset=EntryPoint.objects.filter(active=True))
    rule = forms.ModelChoiceField(
        queryset=Rule.objects.select_related("entry_point"),
        required=False,
        help_text="The live rule the candidate replaces (empty: the candidate is a new rule). "
        "Leave empty for a whole rule set.",
    )
    candidate = PrettyJSONField(
        help_text='One rule: {"condition": ..., "actions": [...], "priority": 10, "active": '
        'true, "stop_processing": false} (omitted fields keep the live rule\'s). A whole rule '
        'set: a list of such objects (with "id" to keep a live rule\'s identity, "name").'
    )
    source = forms.ChoiceField(choices=Backtest.Source.choices, initial=Backtest.Source.EXECUTIONS)
    window_from = forms.DateTimeField(label="From")
    window_to = forms.DateTimeField(label="To (excluded)")
    positive_labels = forms.CharField(initial=", ".join(DEFAULT_POSITIVE_LABELS))
    sample_size = forms.IntegerField(min_value=0, max_value=1000, initial=10)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        now = timezone.now().replace(microsecond=0)
        self.fields["window_from"].initial = now - timedelta(days=7)
        self.fields["window_to"].initial = now

    def clean_positive_labels(self) -> list[str]:
        """The comma-separated labels as a list."""
        return [x.strip() for x in self.cleaned_data["positive_labels"].split(",") if x.strip()]
