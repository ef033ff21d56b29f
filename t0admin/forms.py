from django.forms.renderers import TemplatesSetting


class FormRenderer(TemplatesSetting):
    """Renders every field through the project's one field template."""

    field_template_name = "forms/field.html"
