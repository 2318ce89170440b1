"""build_curriculum: the offline planner, LLM replies (fake provider) and the providers' HTTP requests."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

import pytest
import yaml

from gwm_model.curriculum import (
    STANDARD_CURRICULUM,
    AnthropicProvider,
    CurriculumError,
    DatasetProfile,
    LLMProviderError,
    OpenAIProvider,
    build_curriculum,
    load_curriculum,
    load_curriculum_text,
)
from gwm_model.curriculum.llm import choose_provider

DATASETS = (
    DatasetProfile("prices", "daily market prices", fields=("financial.equities", "financial.fx.eurusd",
                                                              "resources.energy"), source="yahoo"),
    DatasetProfile("macro", "US macro releases", fields=("country_us.macro.inflation.headline_cpi",
                                                         "country_us.macro.labor", "financial.yield_curves"),
                   source="fred", frequency="monthly", n_rows=400, columns=("CPIAUCSL", "UNRATE")),
    DatasetProfile("china", fields=("country_cn.macro",), source="pmi"),
    DatasetProfile("headlines", "news embeddings", fields=("narratives.media",)),
)


@pytest.fixture(autouse=True)
def no_keys(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def covered(path: str, include: tuple[str, ...]) -> bool:
    return any(i == "*" or path == i or path.startswith(i + ".") for i in include)


def test_offline_plan_is_deterministic_acyclic_and_covers_every_dataset(world):
    design = build_curriculum("Forecast US inflation", DATASETS, schema=world)
    assert design.planner == "offline" and "Forecast US inflation" in design.yaml
    again = build_curriculum("Forecast US inflation", DATASETS, schema=world, provider="offline")
    assert again.yaml == design.yaml
    c = design.curriculum
    tier0 = [n for n in c.nodes.values() if n.tier == 0]
    assert [n.name for n in tier0] == ["resources", "financial", "narratives", "country_us", "country_cn"]
    assert c["financial"].include == ("financial.yield_curves", "financial.fx", "financial.equities")
    assert c["financial"].data_sources == ("yahoo", "fred") and c["narratives"].data_sources == ("headlines",)
    for d in DATASETS:
        for path in d.fields:
            assert any(covered(path, n.include) and d.source_name in n.data_sources for n in tier0), path
    order = c.order()
    for name, node in c.nodes.items():
        assert all(order.index(p) < order.index(name) and c[p].tier < node.tier for p in node.parents)
    roots = [n for n in c.nodes if not any(n in m.parents for m in c.nodes.values())]
    assert len(roots) == 1
    root = c[roots[0]]
    assert all(covered(p, root.include) for d in DATASETS for p in d.fields)
    assert set(root.data_sources) == {"yahoo", "fred", "pmi", "headlines"}
    # the two nodes sharing most (country_us and country_cn share 'macro') join first
    assert c["country_us__country_cn"].parents == ("country_us", "country_cn")
    assert len(c.nodes) == 2 * len(tier0) - 1 and "country_us + country_cn" in design.reasoning
    assert load_curriculum_text(design.yaml, schema=world).to_dict() == c.to_dict()


def test_designs_carry_the_standard_profiles(world):
    c = build_curriculum("g", DATASETS[:2], schema=world).curriculum
    assert c.profile_names == ("cpu", "quality", "h100") and c.default_profile == "cpu"
    top = max(c.nodes.values(), key=lambda n: n.tier)
    assert c.hyperparameters(top.name, "h100").model.d_model == 128
    seed = load_curriculum(STANDARD_CURRICULUM.with_name("seed_example.yaml"))
    assert build_curriculum("g", DATASETS[:1], schema=world, profiles_from=seed).curriculum.default_profile == "seed"


def test_a_single_domain_is_a_single_node(world):
    c = build_curriculum("g", [DatasetProfile("x", fields=("financial.credit",))], schema=world).curriculum
    assert list(c.nodes) == ["financial"] and c["financial"].include == ("financial.credit",)


def test_bad_datasets_are_named(world):
    with pytest.raises(CurriculumError, match="dataset 'x'.*unknown field path 'financial.yeild_curves'"):
        build_curriculum("g", [DatasetProfile("x", fields=("financial.yeild_curves",))], schema=world)
    with pytest.raises(CurriculumError, match="dataset 'x' names no fields"):
        build_curriculum("g", [DatasetProfile("x")], schema=world)


class FakeProvider:
    name = "fake"

    def __init__(self, reply: dict | str):
        self.reply = reply if isinstance(reply, str) else "Here you go:\n```json\n" + json.dumps(reply) + "\n```"
        self.prompts: list[str] = []

    def complete(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.reply


GOOD = {"nodes": [
    {"name": "markets", "tier": 0, "description": "markets", "include": ["financial"], "parents": [],
     "data_sources": ["yahoo"]},
    {"name": "us_macro", "tier": 0, "description": "macro", "include": ["country_us.macro"], "parents": [],
     "data_sources": ["fred"]},
    {"name": "joint", "tier": 7, "description": "both", "include": ["financial", "country_us.macro"],
     "parents": ["markets", "us_macro"], "data_sources": ["yahoo", "fred"]}],
    "reasoning": "markets and macro first"}


def test_a_provider_reply_becomes_the_same_yaml_shape(world):
    fake = FakeProvider(GOOD)
    design = build_curriculum("Forecast US inflation", DATASETS[:2], schema=world, provider=fake)
    assert design.planner == "fake" and design.reasoning == "markets and macro first"
    prompt = fake.prompts[0]
    assert "Forecast US inflation" in prompt and "country_us.macro.labor" in prompt and "source=fred" in prompt
    assert "- financial" in prompt and "JSON" in prompt
    c = design.curriculum
    assert c["joint"].tier == 1 and c["joint"].parents == ("markets", "us_macro")  # tiers follow parents
    offline = yaml.safe_load(build_curriculum("g", DATASETS[:2], schema=world).yaml)
    assert set(yaml.safe_load(design.yaml)) == set(offline)
    assert yaml.safe_load(design.yaml)["profiles"] == offline["profiles"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r["nodes"][0].update(include=["foo"]), "LLM reply from fake: node 'markets' includes 'foo' which "
                                                      "matches no field"),
    (lambda r: r["nodes"][2].update(parents=["ghost"]), "node 'joint' names parent 'ghost' which is not one of"),
    (lambda r: r["nodes"][0].update(data_sources=["bloomberg"]), "names data source 'bloomberg', which no dataset"),
    (lambda r: r["nodes"][0].update(name="bad name"), "letters, digits and underscores"),
    (lambda r: r["nodes"][0].update(parents=["joint"]), "the parents form a cycle"),
    (lambda r: r["nodes"][0].update(include=[]), "node 'markets' includes nothing"),
    (lambda r: r.update(nodes=[]), "no non-empty 'nodes' list"),
])
def test_invalid_replies_say_what_was_wrong(world, change, message):
    reply = json.loads(json.dumps(GOOD))
    change(reply)
    with pytest.raises(CurriculumError, match=message.replace("(", r"\(")):
        build_curriculum("g", DATASETS[:2], schema=world, provider=FakeProvider(reply))


def test_a_reply_that_is_not_json_is_quoted(world):
    with pytest.raises(CurriculumError, match="LLM reply from fake is not JSON.*I cannot help"):
        build_curriculum("g", DATASETS[:2], schema=world, provider=FakeProvider("Sorry, I cannot help"))


def test_a_reply_that_fails_validation_names_the_provider(world):
    reply = json.loads(json.dumps(GOOD))
    reply["nodes"][0]["include"] = ["firm_NVDA"]  # not in the default world
    with pytest.raises(CurriculumError, match="includes 'firm_NVDA' which matches no field"):
        build_curriculum("g", DATASETS[:2], schema=world, provider=FakeProvider(reply))


class Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_anthropic_request_shape(monkeypatch, world):
    seen = {}

    def urlopen(request, timeout):
        seen.update(url=request.full_url, headers=dict(request.header_items()), timeout=timeout,
                    body=json.loads(request.data), method=request.get_method())
        return Response(json.dumps({"content": [{"type": "text", "text": json.dumps(GOOD)}]}).encode())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-other")
    design = build_curriculum("Forecast", DATASETS[:2], schema=world)  # Anthropic wins when both keys are set
    assert design.planner == "anthropic" and list(design.curriculum.nodes) == ["markets", "us_macro", "joint"]
    assert seen["url"] == "https://api.anthropic.com/v1/messages" and seen["method"] == "POST"
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["x-api-key"] == "sk-test" and headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json" and seen["timeout"] > 0
    body = seen["body"]
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] > 0
    assert body["messages"][0]["role"] == "user" and "Forecast" in body["messages"][0]["content"]


def test_openai_request_shape_and_errors(monkeypatch):
    seen = {}

    def urlopen(request, timeout):
        seen.update(url=request.full_url, headers={k.lower(): v for k, v in request.header_items()},
                    body=json.loads(request.data))
        return Response(json.dumps({"choices": [{"message": {"content": "hi"}}]}).encode())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    assert OpenAIProvider("sk-o").complete("prompt") == "hi"
    assert seen["url"] == "https://api.openai.com/v1/chat/completions"
    assert seen["headers"]["authorization"] == "Bearer sk-o" and seen["body"]["model"] == "gpt-4o-mini"

    def refuse(request, timeout):
        raise urllib.error.HTTPError(request.full_url, 401, "Unauthorized", {}, io.BytesIO(b'{"error": "bad key"}'))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(LLMProviderError, match="anthropic: HTTP 401 .*bad key"):
        AnthropicProvider("sk").complete("p")

    def offline(request, timeout):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(LLMProviderError, match="openai: cannot reach .*no route to host"):
        OpenAIProvider("sk").complete("p")


def test_provider_choice(monkeypatch):
    assert choose_provider(None) is None and choose_provider("offline") is None
    with pytest.raises(LLMProviderError, match="ANTHROPIC_API_KEY is not set"):
        choose_provider("anthropic")
    with pytest.raises(LLMProviderError, match="unknown provider 'gemini'"):
        choose_provider("gemini")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-o")
    assert isinstance(choose_provider(None), OpenAIProvider)
    assert choose_provider("OFFLINE") is None
    fake = FakeProvider(GOOD)
    assert choose_provider(fake) is fake
