"""Forms for the keys page: parse and validate, in words a person understands."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.core.validators import RegexValidator
from django.utils import timezone

from keys import service, text
from keys.service import DESCRIPTION_MAX, LATEST_EXPIRATION

EXPIRATION_PRESETS: dict[str, timedelta | None] = {
    "never": None,
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "1y": timedelta(days=365),
}
EXPIRATION_CHOICES = [
    ("never", "No expiration"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("90d", "90 days"),
    ("1y", "1 year"),
    ("custom", "Custom"),
]


def _service_rules(value: str) -> None:
    """The service's own rules for descriptions, shown next to the field."""
    try:
        service.clean_description(value)
    except service.ServiceError as error:
        raise forms.ValidationError(str(error)) from None


class DescriptionField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            max_length=DESCRIPTION_MAX,
            required=False,
            strip=True,
            widget=forms.TextInput(
                attrs={"data-counter": "", "autocomplete": "off", "placeholder": "Optional"}
            ),
            validators=[_service_rules],
            error_messages={
                "max_length": f"The description can be at most {DESCRIPTION_MAX} characters "
                "(it has %(show_value)d).",
            },
            **kwargs,
        )

    def bound_data(self, data: Any, initial: Any) -> Any:
        # What a refused form shows again: never the secret it was refused for (the
        # answer would then hold it), and no invisible characters the person cannot see
        # to remove. Validation still reads what was sent.
        value = super().bound_data(data, initial)
        return text.editable(value) if isinstance(value, str) else value


INCOMPLETE = "This form is incomplete; reload the page and try again."


class FormTokenMixin(forms.Form):
    # One per rendered form: a second POST of the same form creates nothing.
    form_token = forms.UUIDField(
        widget=forms.HiddenInput,
        initial=uuid.uuid4,
        error_messages={
            "required": INCOMPLETE,
            "invalid": INCOMPLETE,
        },
    )


class CreateKeyForm(FormTokenMixin):
    description = DescriptionField(
        help_text="What the key is for, e.g. the service or team using it."
    )
    expiration = forms.ChoiceField(choices=EXPIRATION_CHOICES, initial="never")
    expires_at = forms.DateTimeField(
        label="Expires at",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={"invalid": "Enter a date and time, e.g. 2027-01-31 17:00."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Say which zone a custom date is read in: the browser's, once its script has run.
        zone = timezone.get_current_timezone_name()
        self.fields["expires_at"].help_text = f"Only for Custom. Read in {zone} time."

    def clean(self) -> dict[str, Any]:
        data = self.cleaned_data
        choice = data.get("expiration")
        if choice is None:
            return data
        now = timezone.now()
        if choice == "custom":
            expires_at: datetime | None = data.get("expires_at")
            if expires_at is None:
                if "expires_at" not in self.errors:
                    self.add_error("expires_at", "Choose when the key should expire.")
                return data
            if expires_at <= now:
                self.add_error("expires_at", "Expiration must be in the future.")
            elif expires_at > now + LATEST_EXPIRATION:
                self.add_error("expires_at", "Expiration must be within 100 years.")
        else:
            delta = EXPIRATION_PRESETS[choice]
            data["expires_at"] = now + delta if delta else None
            self.errors.pop("expires_at", None)  # ignored unless Custom
        return data


GRACE_PERIODS: dict[str, timedelta | None] = {
    "now": None,
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


class RotateForm(FormTokenMixin):
    grace = forms.ChoiceField(
        label="The old key stops working",
        choices=[
            ("now", "Now (disable it)"),
            ("1h", "In 1 hour"),
            ("24h", "In 24 hours"),
            ("7d", "In 7 days"),
        ],
        initial="now",
        help_text="A grace period lets clients move to the new key; the old one then expires.",
    )

    # Set by the Leaked keys page's Rotate: the rotation is recorded under that incident.
    incident = forms.CharField(
        required=False,
        max_length=64,
        widget=forms.HiddenInput,
        validators=[
            RegexValidator(
                f"^{service.INCIDENT.pattern}$",
                "This is not an incident reference from the Leaked keys page.",
            )
        ],
    )

    def grace_period(self) -> timedelta | None:
        return GRACE_PERIODS[self.cleaned_data["grace"]]


class DescriptionForm(forms.Form):
    description = DescriptionField()

    def clean(self) -> dict[str, Any]:
        # An empty box sends description=""; no field at all is a form that lost its text
        # (a script, a misspelt name), not a request to erase the description.
        if "description" not in self.data:
            self.add_error("description", INCOMPLETE)
        return self.cleaned_data


class LeakForm(forms.Form):
    """The leak page's options. The pasted text itself is read apart from this form, so
    that no re-rendered field can ever echo it back."""

    probe = forms.BooleanField(label="Ask the gateway too", required=False)
    since = forms.DateTimeField(
        label="Exposed since (if known)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="When the keys may first have been seen by others; links to each key's "
        "usage from then. Empty: the time of this check.",
        error_messages={"invalid": "Enter a date and time, e.g. 2027-01-31 17:00."},
    )
