"""Re-encrypt every credential secret under the current CRYPTOGRAPHY_KEY.

Rotating the key, with every process kept able to read every secret throughout:

1. Generate a new key (e.g. `python -c "import secrets; print(secrets.token_urlsafe(50))"`).
2. Configure every web server and worker with CRYPTOGRAPHY_KEY=<new key> and
   CRYPTOGRAPHY_KEY_FALLBACKS=<old key>, and restart them. Secrets written from now on use
   the new key; old ones still decrypt with the fallback.
3. Run `manage.py rotate_credentials_key`. It re-encrypts every secret under the new key in
   one transaction, or changes nothing and names the secrets no configured key decrypts.
4. Remove the old key from CRYPTOGRAPHY_KEY_FALLBACKS and restart. Destroy the old key.

In the embedded default the key lives in var/cryptography_key: set CRYPTOGRAPHY_KEY in the
environment (or .env) instead to rotate it.
"""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from providers.models import Credential


class Command(BaseCommand):
    help = "Re-encrypt every credential secret under CRYPTOGRAPHY_KEY (old keys in CRYPTOGRAPHY_KEY_FALLBACKS)."

    def handle(self, **options):
        try:
            count = Credential.reencrypt_all()
        except ValueError as error:
            raise CommandError(f"{error} Nothing was changed.")
        fallbacks = len(getattr(settings, "CRYPTOGRAPHY_KEY_FALLBACKS", []))
        self.stdout.write(f"Re-encrypted {count} credential secret(s) under CRYPTOGRAPHY_KEY.")
        if fallbacks:
            self.stdout.write(
                f"Every secret now uses the current key: remove the {fallbacks} key(s) in "
                "CRYPTOGRAPHY_KEY_FALLBACKS and restart."
            )
