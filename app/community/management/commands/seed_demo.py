"""manage.py seed_demo: create the demo data if it is missing, then print the demo logins."""

import time

import eventtrail
from django.core.management.base import BaseCommand

from community.seed import DEMO_LOGINS, OTHER_USERS_PASSWORD, seed


class Command(BaseCommand):
    help = "Create deterministic demo users, communities and articles. Safe to run again."

    def handle(self, *args, **options):
        started = time.monotonic()
        # The seed is the site's starting state, not user activity; generate_activity makes
        # the history (including these articles' creation and transitions).
        with eventtrail.suppressed():
            result = seed(log=lambda line: self.stdout.write(line))
        elapsed = time.monotonic() - started
        if result.communities or result.users:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo data: {result.users} users, {result.communities} communities, "
                    f"{result.memberships} memberships, {result.articles} articles, "
                    f"{result.revisions} revisions, {result.transitions} transitions "
                    f"({elapsed:.1f}s)."
                )
            )
        else:
            self.stdout.write("Demo data already present; nothing changed.")
        self.stdout.write("\nDemo logins (username / password):")
        for login in DEMO_LOGINS:
            self.stdout.write(f"  {login.username:<6} / {login.password:<16} {login.note}")
        self.stdout.write(f"  any other seeded user / {OTHER_USERS_PASSWORD}")
