from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from keys.models import ApiKey


@require_GET
def key_list(request: HttpRequest) -> HttpResponse:
    keys = ApiKey.objects.order_by("-id")[:100]
    return render(request, "keys/list.html", {"keys": keys})
