from django.urls import path, register_converter

from keys import views

app_name = "keys"


class PublicIdConverter:
    """Exactly 12 ASCII letters or digits: never new, audit, find or any other word."""

    regex = "[A-Za-z0-9]{12}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(PublicIdConverter, "public_id")

# The list lives at /api-keys (no trailing slash), as in the TensorZero UI.
urlpatterns = [
    path("api-keys", views.key_list, name="list"),
    path("api-keys/new", views.new_key, name="new"),
    path("api-keys/audit", views.audit_trail, name="audit"),
    path("api-keys/audit/export", views.audit_export, name="audit_export"),
    path("api-keys/find", views.find_key, name="find"),
    path("api-keys/disable-selected", views.disable_selected, name="disable_selected"),
    path("api-keys/leaked", views.leaked_keys, name="leaked"),
    path("api-keys/leaked/disable", views.disable_leaked, name="disable_leaked"),
    path("api-keys/counts", views.key_counts, name="counts"),
    path("api-keys/<public_id:public_id>", views.key_detail, name="detail"),
    path("api-keys/<str:public_id>/disable", views.disable_key, name="disable"),
    path("api-keys/<str:public_id>/rotate", views.rotate_key, name="rotate"),
    path("api-keys/<str:public_id>/description", views.edit_description, name="description"),
]
