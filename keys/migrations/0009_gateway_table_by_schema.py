# The gateway's table named with its schema, now that `public` is off t0admin's search path
# (t0admin/settings.py). State only: Django never migrates this table (managed = False).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0008_user_with_permissions_pinned"),
    ]

    operations = [
        migrations.AlterModelTable(
            name="apikey",
            table='public"."tensorzero_auth_api_key',
        ),
    ]
