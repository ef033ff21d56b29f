# Every signed-in page reads its user with their permissions and groups (t0admin.auth). As
# a plain statement, PostgreSQL plans that query anew each time: 0.3 ms of its 0.6 ms. In a
# PL/pgSQL function the plan is kept by the server connection, so it is made once per
# connection. Unlike a prepared statement, that works behind a transaction-pooling
# PgBouncer too (bench/RESULTS.md, 2026-12-03 night).

from django.db import migrations

# The function's body, which 0008 keeps as it is.
BODY = """$$
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

CREATE = (
    "CREATE FUNCTION user_with_permissions(of_user bigint) "
    "RETURNS TABLE (permission_names text[], group_names text[]) "
    "LANGUAGE plpgsql STABLE AS " + BODY
)


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0006_sessions_to_t0admin_backend"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunSQL(CREATE, "DROP FUNCTION user_with_permissions(bigint)"),
    ]
