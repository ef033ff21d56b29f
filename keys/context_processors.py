from django.conf import settings
from django.http import HttpRequest


def t0admin(request: HttpRequest) -> dict[str, object]:
    return {"read_only": settings.READ_ONLY}
