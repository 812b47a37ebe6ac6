"""Routes of ingress: /new-event and /status/<id> (the seed's paths) and /api/events/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from ingress import views

router = SimpleRouter()
router.register("events", views.EventViewSet, basename="event")

root_urlpatterns = [
    path("new-event", views.NewEventView.as_view(), name="new-event"),
    path("status/<str:event_id>", views.StatusView.as_view(), name="event-status"),
]
