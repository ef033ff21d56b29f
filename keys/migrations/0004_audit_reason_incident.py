from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0003_audit_rotate"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="reason",
            field=models.CharField(
                blank=True, choices=[("leaked", "Leaked")], default="", max_length=32
            ),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="incident",
            field=models.CharField(blank=True, db_index=True, default="", max_length=64),
        ),
    ]
