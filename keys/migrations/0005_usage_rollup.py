# Usage rollup (issue 8), after issue 7's 0004.

from django.db import migrations, models

import keys.models


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0004_audit_reason_incident"),
    ]

    operations = [
        migrations.CreateModel(
            name="KeyLastUsed",
            fields=[
                (
                    "public_id",
                    keys.models.PublicIdField(max_length=12, primary_key=True, serialize=False),
                ),
                ("last_used", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="UsageState",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("complete_until", models.DateTimeField()),
                ("known_since", models.DateTimeField()),
                ("fed_at", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="ModelUsageHour",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("public_id", keys.models.PublicIdField(max_length=12)),
                ("hour", models.DateTimeField()),
                ("model_name", models.TextField()),
                ("calls", models.BigIntegerField()),
                ("input_tokens", models.BigIntegerField()),
                ("output_tokens", models.BigIntegerField()),
                ("cost", models.DecimalField(decimal_places=9, max_digits=30, null=True)),
            ],
            options={
                "indexes": [models.Index(fields=["hour"], name="model_usage_hour_hour")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("public_id", "hour", "model_name"), name="model_usage_hour_unique"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="UsageHour",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("public_id", keys.models.PublicIdField(max_length=12)),
                ("hour", models.DateTimeField()),
                ("function_name", models.TextField()),
                ("inferences", models.BigIntegerField()),
                ("input_tokens", models.BigIntegerField()),
                ("output_tokens", models.BigIntegerField()),
                ("cost", models.DecimalField(decimal_places=9, max_digits=30, null=True)),
                ("last_at", models.DateTimeField()),
            ],
            options={
                "indexes": [models.Index(fields=["hour"], name="usage_hour_hour")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("public_id", "hour", "function_name"), name="usage_hour_unique"
                    )
                ],
            },
        ),
    ]
