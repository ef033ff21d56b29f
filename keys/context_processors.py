from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone


def t0admin(request: HttpRequest) -> dict[str, object]:
    return {
        "read_only": settings.READ_ONLY,
        "TIME_ZONE_NAME": timezone.get_current_timezone_name(),
    }
