"""The dashboards: staff only, SVG charts with a table fallback, linked from the admin."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from analytics import charts
from tests.analytics.conftest import DAY2_09, Sample, roll_up

pytestmark = pytest.mark.django_db

WINDOW = {"from": "2025-03-10T00:00:00Z", "to": "2025-03-12T00:00:00Z"}


def chart_svgs(html: str) -> list[str]:
    """The dashboard's charts (the admin's own icon sprites are left out)."""
    return re.findall(r'<svg [^>]*class="verdict-chart".*?</svg>', html, flags=re.S)


def pages(sample: Sample) -> list[str]:
    return [
        "/analytics/",
        "/analytics/entry-points/shop/",
        f"/analytics/rules/{sample.a.pk}/",
    ]


def test_the_entry_point_dashboard_shows_its_charts_and_tables(
    sample: Sample, admin_client: Client
) -> None:
    # given the sample rolled up
    roll_up(DAY2_09 + timedelta(hours=3))
    # when a staff user opens the entry point's dashboard for the two days, by hour
    response = admin_client.get("/analytics/entry-points/shop/", WINDOW)
    # then it shows four inline SVG charts and the numbers as tables
    assert response.status_code == 200
    html = response.content.decode()
    assert len(chart_svgs(html)) == 4
    for title in ("Hit rate (matched decisions, %)", "Decision latency (ms)", "Errors"):
        assert f"<title>{title}</title>" in html
    assert "<title>Top rules by matches</title>" in html
    assert not any("<script" in svg for svg in chart_svgs(html))
    assert "<td>2025-03-10 10:00</td>" in html  # the bucket table
    assert f'href="/analytics/rules/{sample.a.pk}/"' in html  # top rules link to their page


def test_the_rule_dashboard_shows_a_line_per_variant(sample: Sample, admin_client: Client) -> None:
    roll_up(DAY2_09 + timedelta(hours=3))
    response = admin_client.get(f"/analytics/rules/{sample.a.pk}/", {**WINDOW, "bucket": "day"})
    assert response.status_code == 200
    html = response.content.decode()
    assert len(chart_svgs(html)) == 3
    # one hit-rate line for all, then one per variant (legend entries)
    for name in ("all", "(none)", "exp:control", "exp:treatment"):
        assert f">{name}</text>" in html
    assert "<td>0.3333</td>" not in html  # numbers sit in right-aligned cells
    assert '<td class="num">0.3750</td>' in html  # the totals' match rate, 3 of 8


def test_a_bad_window_is_a_400_page_with_the_error(sample: Sample, admin_client: Client) -> None:
    response = admin_client.get("/analytics/entry-points/shop/", {"bucket": "week"})
    assert response.status_code == 400
    assert "bucket:" in response.content.decode()


def test_anonymous_users_are_sent_to_the_login(sample: Sample, client: Client) -> None:
    for page in pages(sample):
        response = client.get(page)
        assert response.status_code == 302, page
        assert response["Location"].startswith("/admin/login/")


def test_non_staff_users_are_sent_to_the_login(sample: Sample, client: Client) -> None:
    client.force_login(User.objects.create_user("bob", password="pw"))
    for page in pages(sample):
        assert client.get(page).status_code == 302, page


def test_staff_without_the_view_permission_are_refused(sample: Sample, client: Client) -> None:
    user = User.objects.create_user("ann", password="pw", is_staff=True)
    client.force_login(user)
    for page in pages(sample):
        assert client.get(page).status_code == 403, page
    # with view permissions on entry points and rules they pass
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_rule", "view_entrypoint"])
    )
    for page in pages(sample):
        assert client.get(page).status_code == 200, page


def test_unknown_entry_point_or_rule_is_404(db: Any, admin_client: Client) -> None:
    assert admin_client.get("/analytics/entry-points/nope/").status_code == 404
    assert (
        admin_client.get("/analytics/rules/00000000-0000-0000-0000-000000000000/").status_code
        == 404
    )


def test_the_admin_change_pages_link_to_the_dashboards(
    sample: Sample, admin_client: Client
) -> None:
    rule_page = admin_client.get(f"/admin/rules_engine/rule/{sample.a.pk}/change/")
    assert f'href="/analytics/rules/{sample.a.pk}/"' in rule_page.content.decode()
    ep_page = admin_client.get(f"/admin/rules_engine/entrypoint/{sample.entry_point.pk}/change/")
    assert 'href="/analytics/entry-points/shop/"' in ep_page.content.decode()


def test_chart_text_is_escaped() -> None:
    svg = charts.bar_chart(title="<b>", items=[("<script>x</script>", 3.0)])
    assert "<script>" not in svg
    assert "&lt;script&gt;x&lt;/script&gt;" in svg
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
