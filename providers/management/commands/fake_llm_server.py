import json

from django.core.management.base import BaseCommand, CommandError
from pydantic import ValidationError

from providers.fake_server import FakeLLMServer


class Command(BaseCommand):
    help = ("Serve the fake OpenAI / Anthropic API on a loopback port until interrupted, for "
            "rehearsing workflows offline. The first line printed is its URL.")
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one")
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
        parser.add_argument("--key", action="append", default=[], dest="keys",
                            help="an API key to accept (repeatable); without any, every request is accepted")
        parser.add_argument("--script", help="a JSON file of rules (a list, or {\"rules\": [...]}) to start with")

    def handle(self, port, host, keys, script=None, **options):
        server = FakeLLMServer(port, host=host, keys=keys)
        if script:
            try:
                with open(script) as f:
                    rules = json.load(f)
                server.script(*(rules.get("rules", []) if isinstance(rules, dict) else rules))
            except (OSError, ValueError, ValidationError, AttributeError) as exc:
                raise CommandError(f"Cannot use {script}: {exc}") from None
        try:
            server.start()
        except OSError as exc:
            raise CommandError(f"Cannot listen on {host}:{port}: {exc}") from None
        url = server.url
        # The URL alone on the first line, so scripts (and tests) can read it.
        self.stdout.write(url)
        accepted = f"{len(keys)} key(s) given with --key" if keys else "any key (or none)"
        self.stdout.write(
            f"Fake LLM server at {url}, accepting {accepted}.\n"
            f"  OpenAI or OpenAI-compatible source: base_url {server.openai_base_url} "
            f"(provider openai, openai_compatible, ollama, ...)\n"
            f"  Anthropic source: base_url {server.anthropic_base_url} (provider anthropic)\n"
            f"  Give the source a credential holding an accepted key; answers are derived from the prompt.\n"
            f"  Script replies and faults: POST {url}/_fake/script "
            f"{{\"match\": \"regex\", \"reply\": \"text\"}} or {{\"fault\": \"rate_limit\", \"times\": 2}}\n"
            f"  Requests seen: GET {url}/_fake/requests; forget rules and requests: POST {url}/_fake/reset\n"
            f"Stop with Ctrl+C."
        )
        self.stdout.flush()
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
