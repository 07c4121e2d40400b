"""The dashboard at /bus/ beside an API view that reports what middleware gave it."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path


async def whoami(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"session": hasattr(request, "session"), "user": hasattr(request, "user")})


urlpatterns = [
    path("api/whoami", whoami),
    path("bus/whoami", whoami),  # under the dashboard's mount
    path("bus/", include("servicebus.dashboard.urls")),
]
