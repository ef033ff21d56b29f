"""The gateway's table, read and written but never migrated by Django."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.utils import timezone


class ApiKey(models.Model):
    id = models.BigAutoField(primary_key=True)
    organization = models.TextField()
    workspace = models.TextField()
    description = models.TextField(null=True, blank=True)  # noqa: DJ001  the gateway's NULL
    public_id = models.CharField(max_length=12, unique=True)
    hash = models.CharField(max_length=255)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        managed = False  # the gateway owns this table and its migrations
        db_table = "tensorzero_auth_api_key"
        ordering = ["-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return self.public_id

    def status(self, now: datetime | None = None) -> str:
        """Active, Disabled or Expired, by the gateway's own rules."""
        if self.disabled_at is not None:
            return "Disabled"
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):
            return "Expired"
        return "Active"
