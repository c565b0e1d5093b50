"""`manage.py fake_llm_server` serves in the foreground and answers the real SDKs."""
import subprocess
import sys
from pathlib import Path

from providers.base import ChatRequest, provider_class

ROOT = Path(__file__).resolve().parents[2]


def test_it_starts_on_a_free_port_and_answers(tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text('[{"match": "ping", "reply": "pong"}]')
    process = subprocess.Popen(
        [sys.executable, "manage.py", "fake_llm_server", "--port", "0", "--key", "sk-cmd-test-key-0000",
         "--script", str(rules)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.poll() is not None else url
        banner = process.stdout.readline()
        assert "Fake LLM server at" in banner

        openai = provider_class("openai")(model="gpt-4o-mini", secret="sk-cmd-test-key-0000", base_url=f"{url}/v1")
        anthropic = provider_class("anthropic")(model="claude-haiku-4-5", secret="sk-cmd-test-key-0000", base_url=url)

        assert openai.complete(ChatRequest(model="gpt-4o-mini", prompt="ping")).text == "pong"
        assert anthropic.complete(ChatRequest(model="claude-haiku-4-5", prompt="ping", stream=True)).text == "pong"
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert process.returncode is not None


def test_it_refuses_a_rules_file_it_cannot_read(tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text('[{"fault": "explode"}]')

    result = subprocess.run([sys.executable, "manage.py", "fake_llm_server", "--port", "0", "--script", str(rules)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    assert "Cannot use" in result.stderr and "fault" in result.stderr
