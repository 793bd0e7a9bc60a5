"""``manage.py seed_bookmarks``: create the demo's users, tags and bookmarks (idempotent)."""

from __future__ import annotations

import datetime
import random

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from bookmarks.models import Bookmark, Tag
from bookmarks.views import DEMO_PASSWORD, DEMO_USERNAME

__all__ = ["Command"]

USERS = [DEMO_USERNAME, "alice", "bob", "carol", "dave"]
_WORDS = ("python django cache memcached sql postgres sqlite http rss css html async "
          "testing deploy linux docker git vim emacs rust go web api json yaml regex "
          "unicode security crypto math music photo travel food books film design "
          "history science space maps data charts search email privacy hardware "
          "networking cloud").split()


class Command(BaseCommand):
    """Seed sample data: 5 users, 50 tags, 1,000 bookmarks; running it again changes nothing."""

    help = ("Create the demo users (the staff account's password is shown on the home and login "
            "pages), tags and bookmarks.")

    def add_arguments(self, parser):  # noqa: D102 - Django's command API
        parser.add_argument("--bookmarks", type=int, default=1000, help="how many in all (default 1000)")

    def handle(self, *args, bookmarks: int = 1000, **options) -> None:  # noqa: D102
        User = get_user_model()
        rng = random.Random(42)
        with transaction.atomic():
            users = []
            for name in USERS:
                user, created = User.objects.get_or_create(username=name)
                if created:
                    user.set_password(DEMO_PASSWORD if name == DEMO_USERNAME else f"{name}-password")
                if name == DEMO_USERNAME and not user.is_superuser:
                    # The demo account is staff: /admin/ and the /cachedeps/ dashboard.
                    user.is_staff = user.is_superuser = True
                if created or name == DEMO_USERNAME:
                    user.save()
                users.append(user)
            existing = {t.slug for t in Tag.objects.all()}
            Tag.objects.bulk_create([Tag(name=w, slug=w) for w in _WORDS if w not in existing])
            tags = list(Tag.objects.order_by("id"))
            have = Bookmark.objects.count()
            if have >= bookmarks:
                self.stdout.write(f"already seeded: {have} bookmarks, {len(tags)} tags, {len(users)} users")
                return
            start = timezone.now() - datetime.timedelta(days=365)
            new = []
            for i in range(have, bookmarks):
                a, b = rng.sample(_WORDS, 2)
                new.append(Bookmark(
                    owner=users[i % len(users)],
                    url=f"https://example.org/{a}/{b}/{i}",
                    title=f"{a.title()} and {b} #{i}",
                    description=f"Notes on {a} with {b}.",
                    importance=rng.randint(1, 5),
                    created=start + datetime.timedelta(minutes=500 * i + rng.randint(0, 400)),
                ))
            created = Bookmark.objects.bulk_create(new)
            through = Bookmark.tags.through
            links = []
            for bm in created:
                for tag in rng.sample(tags, rng.randint(1, 3)):
                    links.append(through(bookmark_id=bm.pk, tag_id=tag.pk))
            through.objects.bulk_create(links)
        self.stdout.write(self.style.SUCCESS(
            f"seeded {len(created)} bookmarks ({bookmarks} in all), {len(tags)} tags, {len(users)} users; "
            f"log in as {DEMO_USERNAME!r} with password {DEMO_PASSWORD!r}"))
