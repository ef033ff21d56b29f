# 0007's function, made safe from the `public` schema. t0admin's search path is
# "t0admin, public", and the gateway's role may create objects in `public`: a
# public.user_with_permissions(integer) matched auth_user.id (an integer) better than
# 0007's (bigint) and would have decided every user's permissions. Now the function takes
# an integer, t0admin.auth calls it by its schema-qualified name, and the names in its body
# resolve in pg_catalog and t0admin only.

import importlib

from django.db import migrations

# 0007's text, to put its function back when this migration is undone.
BEFORE = importlib.import_module("keys.migrations.0007_user_with_permissions").CREATE

CREATE = """
CREATE FUNCTION t0admin.user_with_permissions(of_user integer)
RETURNS TABLE (permission_names text[], group_names text[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, t0admin
AS $$
BEGIN
    -- Permission names spelled as ModelBackend spells them ("keys.view_apikey"): given to
    -- the user or to one of their groups.
    RETURN QUERY SELECT ARRAY(
        SELECT ct.app_label || '.' || p.codename
        FROM auth_permission p JOIN django_content_type ct ON ct.id = p.content_type_id
        WHERE p.id IN (
            SELECT up.permission_id FROM auth_user_user_permissions up
            WHERE up.user_id = of_user
            UNION
            SELECT gp.permission_id
            FROM auth_group_permissions gp JOIN auth_user_groups ug ON ug.group_id = gp.group_id
            WHERE ug.user_id = of_user
        )
    )::text[], ARRAY(
        SELECT g.name FROM auth_group g JOIN auth_user_groups ug ON ug.group_id = g.id
        WHERE ug.user_id = of_user
    )::text[];
END
$$
"""


class Migration(migrations.Migration):
    dependencies = [("keys", "0007_user_with_permissions")]

    operations = [
        migrations.RunSQL(CREATE, "DROP FUNCTION t0admin.user_with_permissions(integer)"),
        # After the new one: a page served meanwhile still finds a function by that name.
        migrations.RunSQL("DROP FUNCTION t0admin.user_with_permissions(bigint)", BEFORE),
    ]
