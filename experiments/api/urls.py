"""Routes of the experiments API: /api/experiments/ (CRUD, start, stop, promote, results)."""

from rest_framework.routers import SimpleRouter

from experiments.api import views

router = SimpleRouter()
router.register("experiments", views.ExperimentViewSet, basename="experiment")

urlpatterns = router.urls
