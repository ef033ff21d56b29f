# 0007's function, made safe from the `public` schema. t0admin's search path was then
# "t0admin, public", and the gateway's role may create objects in `public`: a
# public.user_with_permissions(integer) matched auth_user.id (an integer) better than
# 0007's (bigint) and would have decided every user's permissions. Now the function takes
# an integer, t0admin.auth calls it by its schema-qualified name, and the names in its body
# resolve in pg_catalog and t0admin only.

import importlib

from django.db import migrations

_0007 = importlib.import_module("keys.migrations.0007_user_with_permissions")

CREATE = (
    "CREATE FUNCTION t0admin.user_with_permissions(of_user integer) "
    "RETURNS TABLE (permission_names text[], group_names text[]) "
    "LANGUAGE plpgsql STABLE SET search_path = pg_catalog, t0admin AS " + _0007.BODY
)


class Migration(migrations.Migration):
    dependencies = [("keys", "0007_user_with_permissions")]

    operations = [
        migrations.RunSQL(CREATE, "DROP FUNCTION t0admin.user_with_permissions(integer)"),
        # After the new one: a page served meanwhile still finds a function by that name.
        # Undone: 0007's function comes back.
        migrations.RunSQL("DROP FUNCTION t0admin.user_with_permissions(bigint)", _0007.CREATE),
    ]
