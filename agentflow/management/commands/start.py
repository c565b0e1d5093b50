"""`python manage.py start`: set up what is missing, then serve the product.

Migrates, makes sure a demo organization and an admin user exist (printing how to log
in), loads the example catalog, and runs the daphne web server and the Huey worker together
until interrupted. Running it again skips what is already done and just starts.
"""
import os
import secrets
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.models import Membership, Organization, Role, User

DEMO_ORG = "demo"
ADMIN_EMAIL = "admin@example.com"


def ensure_admin():
    """The demo admin and its password (made once, kept in VAR_DIR)."""
    path = settings.VAR_DIR / "admin_password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    password = path.read_text().strip()
    user = User.objects.filter(email=ADMIN_EMAIL).first()
    if user is None:
        user = User.objects.create_superuser(ADMIN_EMAIL, password)
    org = Organization.objects.filter(slug=DEMO_ORG).first()
    if org is None:
        org = Organization.create_with_owner("Demo", user, slug=DEMO_ORG)
    elif not Membership.objects.filter(organization=org, user=user).exists():
        Membership.objects.create(organization=org, user=user, role=Role.OWNER)
    return user, password


class Command(BaseCommand):
    help = "Migrate, create the demo organization and admin, load the catalog, run web server and worker."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--workers", type=int, default=settings.HUEY_WORKERS)
        parser.add_argument("--no-serve", action="store_true", help="set up only, then exit")

    def handle(self, host, port, workers, no_serve=False, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        user, password = ensure_admin()
        call_command("load_catalog", org=DEMO_ORG, verbosity=0, stdout=open(os.devnull, "w"))
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
        self.stdout.write(f"Log in at {url}accounts/login/ as {user.email} with password {password}")
        self.stdout.write(f"Admin: {url}admin/  API docs: {url}api/v1/docs/")
        if no_serve:
            return
        self._serve(host, port, workers, url)

    def _serve(self, host, port, workers, url):
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        children = [
            subprocess.Popen([python, "-m", "daphne", "-b", host, "-p", str(port), "agentflow.asgi:application"],
                             cwd=settings.BASE_DIR),
            subprocess.Popen([python, manage, "run_worker", "--workers", str(workers)],
                             cwd=settings.BASE_DIR),
        ]
        self.stdout.write(f"AgentFlow is running at {url} (Ctrl-C to stop)")

        def stop(*_):
            for child in children:
                if child.poll() is None:
                    child.terminate()

        signal.signal(signal.SIGTERM, stop)
        try:
            # If either process dies the product is broken: stop the other and exit.
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            stop()
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
        codes = [child.returncode for child in children]
        if any(code not in (0, -signal.SIGTERM, -signal.SIGINT, None) for code in codes):
            sys.exit(1)
