"""The "Durable LLM calls" page's examples (docs/examples/llm_*.py) run as written, each in
its own process, twice on SQLite and once on PostgreSQL, with the providers' URLs and keys
in the environment pointing at the fake provider (tests/test_docs_examples.py runs only
examples that need nothing else)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from tests._paths import PYTHONPATH, ROOT
from tests.test_docs_examples import fresh_pg_url  # noqa: F401 - a fixture

from .conftest import KEYS
from .fake_provider import FakeProvider, Reply

EXAMPLES = ["llm_review.py", "llm_agent.py", "llm_gemini.py", "llm_stream.py"]
BLOCKS = [(ROOT / "docs" / "examples" / name).read_text() for name in EXAMPLES]
EXPECTED = {  # what each example prints, given the fake's answers
    "review_main": ["'sentiment': 'mixed'", "Usage(input_tokens=22, output_tokens=14, calls=2)",
                    "{'llm.calls': 2.0, 'llm.input_tokens': 22.0, 'llm.output_tokens': 14.0}"],
    "agent_main": ["Go to Paris: sunny, 21 C."],
    "gemini_main": ["['À demain !', 'À demain !']"],
    "stream_main": ["Once upon a time.\n", "recorded: Once upon a time."],
}
TOKENS = ["Once ", "upon ", "a ", "time."]


def script(provider: str, body: dict[str, Any]) -> Reply:
    text = json.dumps(body)
    if any(k in body for k in ("response_format", "output_config")) or (
            "responseJsonSchema" in text):
        return Reply(text='{"sentiment": "mixed", "score": 0.5}')
    if "weather" in text:
        if "sunny, 21 C" in text:
            return Reply(text="Go to Paris: sunny, 21 C.")
        return Reply(tool_calls=[("weather", {"city": "Paris"})])
    if "story" in text:
        return Reply(tokens=TOKENS)
    return Reply(text="À demain !")


def example_name(code: str) -> str:
    return re.findall(r"trio\.run\((\w+)\)", code)[-1]


def test_the_section_has_an_example_per_provider() -> None:
    assert sorted(example_name(b) for b in BLOCKS) == sorted(EXPECTED)
    assert not [b for b in BLOCKS if "trio.run(main)" in b], "test_docs_examples would run it"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("code", BLOCKS, ids=example_name)
async def test_readme_llm_example_runs(code: str, backend: str, tmp_path: Path,
                                       fake: FakeProvider,
                                       request: pytest.FixtureRequest) -> None:
    fake.script = script
    env = {"PYTHONPATH": PYTHONPATH, "PATH": os.environ.get("PATH", ""),
           "OPENAI_BASE_URL": f"{fake.url}/v1", "ANTHROPIC_BASE_URL": fake.url,
           "GEMINI_BASE_URL": fake.url, "LLM_MODEL": "readme-model",
           "OPENAI_API_KEY": KEYS["openai"], "ANTHROPIC_API_KEY": KEYS["anthropic"],
           "GEMINI_API_KEY": KEYS["gemini"]}
    if backend == "postgres":
        env["ROMANCY_TRIO_URL"] = request.getfixturevalue("fresh_pg_url")
    script_path = tmp_path / "example.py"
    script_path.write_text(code)
    runs = 2 if backend == "sqlite" else 1
    for _ in range(runs):
        with trio.fail_after(180):
            done = await trio.run_process([sys.executable, str(script_path)], cwd=tmp_path,
                                          env=env, capture_stdout=True, capture_stderr=True,
                                          check=False)
        out, err = done.stdout.decode(), done.stderr.decode()
        assert done.returncode == 0, err[-3000:]
        for expected in EXPECTED[example_name(code)]:
            assert expected in out, out
    assert fake.calls(), "the example did not reach the provider"
    assert all(any(k in str(s.headers) for k in KEYS.values()) for s in fake.calls())
    if backend == "sqlite":
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("romancy.db*"))
        assert stored and not [k for k in KEYS.values() if k.encode() in stored]
