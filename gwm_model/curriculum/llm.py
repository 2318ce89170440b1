"""LLM providers for curriculum design: a minimal ``complete(prompt) -> text`` over plain ``urllib``.

:func:`choose_provider` picks one: an explicit provider object, ``"anthropic"``/``"openai"`` (keys from
``ANTHROPIC_API_KEY``/``OPENAI_API_KEY``), ``"offline"``, or - given nothing - Anthropic when its key is
set, else OpenAI when its key is set, else offline (``None``). :func:`design_prompt` writes the request
and :func:`parse_reply` reads the JSON answer (code fences allowed).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gwm_model.curriculum.dataset_profile import DatasetProfile
from gwm_model.curriculum.profiles import CurriculumError
from gwm_model.schema import GroupNode, WorldSchema

ANTHROPIC_URL = "https://api.anthropic.com/v1/messages"
OPENAI_URL = "https://api.openai.com/v1/chat/completions"
OFFLINE = "offline"


class LLMProviderError(CurriculumError):
    """A provider call that failed: the message names the provider, the HTTP status or network error."""


@runtime_checkable
class CurriculumProvider(Protocol):
    """Anything that answers a prompt with text; ``name`` is recorded as the design's planner."""

    name: str

    def complete(self, prompt: str) -> str: ...


def _post(provider: str, url: str, headers: dict[str, str], body: dict, timeout: float) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as exc:
        try:
            detail = exc.read().decode("utf-8", "replace")[:400]
        except Exception:  # noqa: BLE001 - the status alone is still worth reporting
            detail = ""
        raise LLMProviderError(f"{provider}: HTTP {exc.code} from {url}: {detail or exc.reason}. Fix: check the "
                               "API key, the model name and the account's quota, or use provider='offline'") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LLMProviderError(f"{provider}: cannot reach {url} ({reason}). Fix: check the network, or use "
                               "provider='offline'") from exc
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LLMProviderError(f"{provider}: the response from {url} is not JSON ({exc})") from exc


@dataclass
class AnthropicProvider:
    """Claude through the Messages API."""

    api_key: str
    model: str = "claude-sonnet-4-5"
    max_tokens: int = 4096
    timeout: float = 120.0
    url: str = ANTHROPIC_URL
    name: str = "anthropic"

    def complete(self, prompt: str) -> str:
        reply = _post(self.name, self.url, {"x-api-key": self.api_key, "anthropic-version": "2023-06-01"},
                      {"model": self.model, "max_tokens": self.max_tokens,
                       "messages": [{"role": "user", "content": prompt}]}, self.timeout)
        blocks = reply.get("content") if isinstance(reply, dict) else None
        text = "".join(b.get("text", "") for b in blocks or [] if isinstance(b, dict) and b.get("type") == "text")
        if not text:
            raise LLMProviderError(f"{self.name}: the reply holds no text: {str(reply)[:300]}")
        return text


@dataclass
class OpenAIProvider:
    """An OpenAI chat model through the Chat Completions API."""

    api_key: str
    model: str = "gpt-4o-mini"
    timeout: float = 120.0
    url: str = OPENAI_URL
    name: str = "openai"

    def complete(self, prompt: str) -> str:
        reply = _post(self.name, self.url, {"authorization": f"Bearer {self.api_key}"},
                      {"model": self.model, "temperature": 0,
                       "messages": [{"role": "user", "content": prompt}]}, self.timeout)
        try:
            text = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            text = None
        if not text:
            raise LLMProviderError(f"{self.name}: the reply holds no message: {str(reply)[:300]}")
        return str(text)


def choose_provider(provider: CurriculumProvider | str | None) -> CurriculumProvider | None:
    """The provider to ask, or ``None`` for the offline planner (see the module docstring)."""
    if provider is None:
        if os.environ.get("ANTHROPIC_API_KEY"):
            return AnthropicProvider(os.environ["ANTHROPIC_API_KEY"])
        if os.environ.get("OPENAI_API_KEY"):
            return OpenAIProvider(os.environ["OPENAI_API_KEY"])
        return None
    if not isinstance(provider, str):
        return provider
    wanted = provider.strip().lower()
    if wanted == OFFLINE:
        return None
    for label, env, cls in (("anthropic", "ANTHROPIC_API_KEY", AnthropicProvider),
                            ("openai", "OPENAI_API_KEY", OpenAIProvider)):
        if wanted == label:
            if not os.environ.get(env):
                raise LLMProviderError(f"{label}: {env} is not set. Fix: export it, or use provider='offline'")
            return cls(os.environ[env])
    raise LLMProviderError(f"unknown provider '{provider}'. Fix: use 'anthropic', 'openai', 'offline' or an object "
                           "with name and complete(prompt)")


def _subtrees(schema: WorldSchema) -> list[str]:
    lines = []
    for child in schema.root.children:
        if isinstance(child, GroupNode):
            subs = [c.path.rsplit(".", 1)[-1] for c in child.children if isinstance(c, GroupNode)]
            about = f" - {child.about}" if child.about else ""
            lines.append(f"- {child.path}{about}" + (f" (subtrees: {', '.join(subs)})" if subs else ""))
        else:
            lines.append(f"- {child.path} - {child.description}")
    return lines


def design_prompt(goal: str, datasets: Sequence[DatasetProfile], schema: WorldSchema) -> str:
    """The request: the goal, the datasets with the world fields they fill, the world's top-level subtrees."""
    parts = [f"Design a training curriculum for a world model. Goal: {goal.strip()}", "",
             "The model's world is a tree of fields. Its top-level subtrees:", *_subtrees(schema), "",
             "Datasets (data_sources names the dataset's source; fields are the world paths it fills):"]
    for d in datasets:
        meta = [f"source={d.source or d.name}"]
        meta += [f"frequency={d.frequency}"] if d.frequency else []
        meta += [f"rows={d.n_rows}"] if d.n_rows is not None else []
        meta += [f"columns={', '.join(d.columns[:20])}"] if d.columns else []
        parts.append(f"- {d.name}: {d.description or '(no description)'} [{'; '.join(meta)}]")
        parts.append(f"  fields: {', '.join(d.fields) or '(none)'}")
    parts += ["", "The curriculum is a DAG. Tier-0 nodes train specialists on one part of the world each; a child",
              "node starts from the average of its parents' weights and trains on the union of what they saw.",
              "Rules: every include is a path of the tree above (a prefix brings its whole subtree; '*' is",
              "everything); names use letters, digits and underscores; parents name other nodes of your plan;",
              "tier-0 nodes have no parents; data_sources are source names from the list above; end with one node",
              "whose includes cover everything the datasets fill.",
              "Answer with JSON only, in this shape:",
              '{"nodes": [{"name": "...", "tier": 0, "description": "...", "include": ["..."], "parents": [],',
              '"data_sources": ["..."]}], "reasoning": "why this order"}']
    return "\n".join(parts)


def parse_reply(text: str, provider: str) -> tuple[list, str]:
    """``(nodes, reasoning)`` from a reply (JSON, possibly inside a code fence)."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, flags=re.DOTALL)
    body = fenced.group(1) if fenced else text
    if not fenced and "{" in body and "}" in body:
        body = body[body.index("{"): body.rindex("}") + 1]
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise CurriculumError(f"LLM reply from {provider} is not JSON ({exc}): {text[:300]!r}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or not doc["nodes"]:
        raise CurriculumError(f"LLM reply from {provider} has no non-empty 'nodes' list: {text[:300]!r}")
    return doc["nodes"], str(doc.get("reasoning") or "")
