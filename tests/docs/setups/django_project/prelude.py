# A configured Django project with cachedeps, migrated, for snippets that run inside one.
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_cachedeps"],
    DATABASES={"default": {"ENGINE": "django_cachedeps.db.backends.sqlite3", "NAME": "app.sqlite3"}},
    CACHES={"default": {"BACKEND": "django_cachedeps.backend.CachedepsCache", "LOCATION": "embedded://"}},
    SECRET_KEY="snippet",
)
django.setup()
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)
from django.core.cache import cache  # noqa: E402

html = "<p>a page</p>"
