"""Demo flows shaped like public Lamatic AgentKit flows, with deterministic handlers.

The trigger schemas, response types and sample payloads come from `agentkit_flows.json`, a
summary of real flow exports shipped with the package. The handlers use no model: each builds a
result of the exported shape from its payload, so different payloads give different results.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from langchain_lamatic.testing._engine import FlowExecutionFailed
from langchain_lamatic.testing._streaming import StreamOptions

if TYPE_CHECKING:
    from langchain_lamatic.testing._server import LamaticTestServer

__all__ = ["DEMO_AGENT_IDS", "DEMO_FLOW_IDS", "add_demo_flows", "load_flow_contracts"]

DEMO_FLOW_IDS = (
    "article-summariser",
    "agentic-generate-content",
    "automation-hiring",
    "plan-trip",
    "docsense-intake",
    "repo-analyzer",
    "sentinel-triage",
    "legal-rag-chatbot",
    "sre-incident-postmortem-agent",
)
DEMO_AGENT_IDS = ("research-agent",)

_RESEARCH_AGENT_SCHEMA = '{\n  "question": "string",\n  "max_sources": "int?"\n}'
_RESEARCH_AGENT_SAMPLE = {"question": "How do bounded queues keep latency predictable?"}


def load_flow_contracts() -> dict[str, dict[str, Any]]:
    """Load the shipped flow contracts, keyed by flow name."""
    text = (
        resources.files("langchain_lamatic.testing")
        .joinpath("agentkit_flows.json")
        .read_text(encoding="utf-8")
    )
    document = json.loads(text)
    return {flow["name"]: flow for flow in document["flows"]}


def _required_text(payload: Mapping[str, Any], name: str, node: str) -> str:
    """Return a non-empty string input, or fail the way a node with a missing input does."""
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise FlowExecutionFailed(f"{node} failed: input '{name}' is missing or empty")
    return value.strip()


def _digest_number(*parts: str) -> int:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return int(digest[:8], 16)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "place"


def _words(text: str) -> list[str]:
    return [word.rstrip(".-") for word in re.findall(r"[A-Za-z][A-Za-z+#.-]*", text)]


def article_summariser(payload: dict[str, Any]) -> dict[str, Any]:
    """Summarise the article behind `url` from its address alone."""
    url = _required_text(payload, "url", "Scraper node")
    parts = urlsplit(url)
    if not parts.netloc:
        raise FlowExecutionFailed(f"Scraper node failed: '{url}' is not an absolute URL")
    segments = [segment for segment in parts.path.split("/") if segment]
    slug = segments[-1].rsplit(".", 1)[0] if segments else parts.netloc
    title = re.sub(r"[-_]+", " ", slug).strip().capitalize() or parts.netloc
    word_count = len(title.split())
    summary = (
        f'The post "{title}" on {parts.netloc} makes {word_count} key point'
        f"{'s' if word_count != 1 else ''} and closes with practical advice for engineers."
    )
    return {"summary": summary}


def agentic_generate_content(payload: dict[str, Any]) -> dict[str, Any]:
    """Generate text, a JSON outline or an image reference, depending on `mode`."""
    mode = payload["mode"].strip().lower()
    instructions = payload["instructions"].strip()
    if mode == "text":
        words = _words(instructions)
        topic = " ".join(words[-3:]) if words else "the topic"
        return {
            "answer": f"{instructions.rstrip('.')}: here is a short draft about {topic}, "
            "written in a plain and friendly tone."
        }
    if mode == "json":
        return {"answer": {"instructions": instructions, "outline": _words(instructions)[:5]}}
    if mode == "image":
        image_id = f"{_digest_number(instructions):08x}"
        return {
            "answer": {"imageUrl": f"https://images.example/{image_id}.png", "prompt": instructions}
        }
    raise FlowExecutionFailed(
        f"Code node failed: unsupported mode '{mode}'; use text, image or json"
    )


def automation_hiring(payload: dict[str, Any]) -> dict[str, Any]:
    """Score a candidate against a job description."""
    name = _required_text(payload, "name", "Structured output node")
    job_description = _required_text(payload, "job_description", "Structured output node")
    resume_url = _required_text(payload, "resume_url", "Structured output node")
    score = 40 + _digest_number(name, job_description, resume_url) % 56
    skills = [word for word in _words(job_description) if len(word) > 3] or ["the role"]
    if score >= 75:
        recommendation = "Invite to technical interview"
    elif score >= 55:
        recommendation = "Schedule a screening call"
    else:
        recommendation = "Do not proceed"
    return {
        "output": {
            "score": score,
            "strength": f"{name} shows experience with {skills[0]}",
            "weakness": f"Little evidence of {skills[-1]} in the resume",
            "recommendation": recommendation,
        }
    }


def plan_trip(payload: dict[str, Any]) -> dict[str, Any]:
    """Plan a trip of `days` days in `city` within `budget`."""
    city = payload["city"].strip()
    days = int(payload["days"])
    budget = int(payload["budget"])
    if not 1 <= days <= 30:
        raise FlowExecutionFailed(f"Planner node failed: days must be from 1 to 30, got {days}")
    if budget <= 0:
        raise FlowExecutionFailed(f"Planner node failed: budget must be positive, got {budget}")
    preferences = [item.strip() for item in payload["preferences"].split(",") if item.strip()]
    preferences = preferences or ["sightseeing"]
    spent = budget - budget // 10
    return {
        "summary": f"{days} day{'s' if days != 1 else ''} in {city} from {payload['travelDate']}, "
        f"focused on {', '.join(preferences)}.",
        "days": [
            {
                "day": day,
                "plan": f"{preferences[(day - 1) % len(preferences)].capitalize()} in {city}",
            }
            for day in range(1, days + 1)
        ],
        "map": f"https://maps.example/{_slug(city)}",
        "budget": {"total": spent, "currency": "EUR", "perDay": spent // days},
        "reasons": preferences,
    }


_DOC_TYPES = ("invoice", "receipt", "contract", "purchase order", "letter")


def docsense_intake(payload: dict[str, Any]) -> dict[str, Any]:
    """Extract fields from a document; the result is JSON inside a Markdown code fence."""
    document = payload["document"]
    lowered = document.lower()
    doc_type = next((kind for kind in _DOC_TYPES if kind in lowered), "other")
    vendor_match = re.search(r"\bfrom ([A-Z][\w&.-]*(?: [A-Z][\w&.-]*)*)", document)
    due_match = re.search(r"\d{4}-\d{2}-\d{2}", document)
    total_match = re.search(r"total\s+([\d,]+(?:\.\d+)?)\s*([A-Z]{3})?", document, re.IGNORECASE)
    extracted: dict[str, Any] = {
        "doc_type": doc_type,
        "vendor": vendor_match.group(1) if vendor_match else None,
        "due": due_match.group(0) if due_match else None,
        "total": float(total_match.group(1).replace(",", "")) if total_match else None,
    }
    if total_match and total_match.group(2):
        extracted["currency"] = total_match.group(2)
    return {"result": f"```json\n{json.dumps(extracted)}\n```"}


_ROLE_STACKS = {
    "backend": ["Python", "PostgreSQL"],
    "frontend": ["TypeScript", "React"],
    "data": ["Python", "SQL"],
    "devops": ["Terraform", "Docker"],
}


def repo_analyzer(payload: dict[str, Any]) -> dict[str, Any]:
    """Describe a repository for a new developer; `github_token` is never echoed."""
    repo_url = payload["repo_url"].strip()
    role = payload["developer_role"].strip().lower()
    parts = urlsplit(repo_url)
    segments = [segment for segment in parts.path.split("/") if segment]
    name = segments[-1].removesuffix(".git") if segments else (parts.netloc or "repository")
    package = re.sub(r"[^a-z0-9_]+", "_", name.lower())
    return {
        "projectOverview": f"{name}: the repository at {repo_url}, summarised for a {role} "
        "developer.",
        "techStack": _ROLE_STACKS.get(role, ["Python"]),
        "folderStructure": [
            {"path": f"{package}/", "description": "domain code"},
            {"path": "tests/", "description": "test suite"},
        ],
        "keyFiles": [
            {"file": "README.md", "whyImportant": "setup and usage"},
            {"file": f"{package}/__init__.py", "whyImportant": "public entry points"},
        ],
        "setupSteps": [f"git clone {repo_url}", "make dev"],
        "architectureNotes": f"{name} keeps its {role} code in {package}/ and tests apart.",
        "quiz": [{"question": f"Where are the tests of {name}?", "answer": "tests/"}],
    }


_TECHNIQUES = (
    (("ransom", "encrypt"), "critical", "T1486", "Data Encrypted for Impact", "Impact"),
    (("exfiltrat", "upload"), "critical", "T1041", "Exfiltration Over C2 Channel", "Exfiltration"),
    (("ssh", "login", "password", "brute"), "high", "T1110", "Brute Force", "Credential Access"),
    (("phish", "email", "link"), "medium", "T1566", "Phishing", "Initial Access"),
)

_DEFAULT_TECHNIQUE = ("low", "T1059", "Command and Scripting Interpreter", "Execution")


def sentinel_triage(payload: dict[str, Any]) -> dict[str, Any]:
    """Classify a security alert and list indicators found in it."""
    alert = payload["alert_text"].strip()
    if not alert:
        raise FlowExecutionFailed("Triage node failed: alert_text is empty")
    lowered = alert.lower()
    severity, technique_id, technique, tactic = _DEFAULT_TECHNIQUE
    for keywords, *found in _TECHNIQUES:
        if any(keyword in lowered for keyword in keywords):
            severity, technique_id, technique, tactic = found
            break
    iocs = sorted(set(re.findall(r"\b(?:\d{1,3}\.){3}\d{1,3}\b", alert)))
    first_sentence = alert.split(".")[0].strip()
    return {
        "severity": severity,
        "confidence": round(min(0.95, 0.6 + 0.1 * len(iocs) + 0.05 * (severity != "low")), 2),
        "attack_technique_id": technique_id,
        "attack_technique_name": technique,
        "attack_tactic": tactic,
        "summary": f"{technique} suspected: {first_sentence}.",
        "iocs": iocs,
        "remediation_steps": [f"Contain activity related to {technique.lower()}"]
        + [f"Block the address {ioc}" for ioc in iocs],
    }


def legal_rag_chatbot(payload: dict[str, Any]) -> dict[str, Any]:
    """Answer a legal question with a hedged, question-specific reply."""
    question = _required_text(payload, "chatMessage", "RAG node")
    topic_words = [word.lower() for word in _words(question) if len(word) > 4][:3]
    topic = ", ".join(topic_words) if topic_words else "your question"
    return {
        "answer": f"On {topic}: the indexed documents suggest it depends on the terms you agreed "
        "to and on local law. This is general information, not legal advice."
    }


def _severity_from_impact(impact: str) -> str:
    percentages = [float(value) for value in re.findall(r"(\d+(?:\.\d+)?)\s*%", impact)]
    if any(value >= 5 for value in percentages):
        return "SEV1"
    if percentages:
        return "SEV2"
    return "SEV3"


def sre_incident_postmortem(payload: dict[str, Any]) -> dict[str, Any]:
    """Draft a postmortem; the result is a JSON document inside a string, as the LLM returns it."""
    postmortem = {
        "severity": _severity_from_impact(payload["impact_description"]),
        "executive_summary": f"{payload['incident_title']} on {payload['service_name']}: "
        f"{payload['impact_description']}. Current status: {payload['current_status']}.",
        "timeline": [item.strip() for item in payload["timeline_notes"].split(",") if item.strip()],
        "root_cause_hypothesis": payload["logs_or_symptoms"],
        "detection": payload["alert_details"],
        "action_items": [f"Add an alert before {payload['alert_details']} recurs"],
    }
    return {"postmortem": json.dumps(postmortem)}


def research_agent(payload: dict[str, Any]) -> dict[str, Any]:
    """Answer a research question with the steps and sources an agent would report."""
    question = payload["question"].strip()
    max_sources = payload.get("max_sources") or 2
    keywords = [word.lower() for word in _words(question) if len(word) > 3][:3] or ["topic"]
    sources = [f"https://docs.example/{_slug(keyword)}" for keyword in keywords][: int(max_sources)]
    return {
        "answer": f"Research on '{question}' points to {', '.join(keywords)} as the key factors.",
        "steps": [f"search: {keyword}" for keyword in keywords] + ["summarise findings"],
        "sources": sources,
    }


_HANDLERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "article-summariser": article_summariser,
    "agentic-generate-content": agentic_generate_content,
    "automation-hiring": automation_hiring,
    "plan-trip": plan_trip,
    "docsense-intake": docsense_intake,
    "repo-analyzer": repo_analyzer,
    "sentinel-triage": sentinel_triage,
    "legal-rag-chatbot": legal_rag_chatbot,
    "sre-incident-postmortem-agent": sre_incident_postmortem,
}

# Flows whose result is LLM text stream tokens; the others only send node frames.
_TEXT_FLOWS = frozenset(
    {
        "article-summariser",
        "agentic-generate-content",
        "docsense-intake",
        "legal-rag-chatbot",
        "sre-incident-postmortem-agent",
    }
)

_DESCRIPTIONS = {
    "article-summariser": "Summarise the article at a URL.",
    "agentic-generate-content": "Generate text, JSON or an image from instructions.",
    "automation-hiring": "Score a candidate's resume against a job description.",
    "plan-trip": "Plan a trip to a city for a number of days within a budget.",
    "docsense-intake": "Extract the type, vendor, due date and total of a document.",
    "repo-analyzer": "Explain a code repository to a new developer (async).",
    "sentinel-triage": "Triage a security alert and map it to MITRE ATT&CK (async).",
    "legal-rag-chatbot": "Answer legal questions from indexed documents.",
    "sre-incident-postmortem-agent": "Draft an incident postmortem from incident notes.",
}

_COMPLETED_SHAPES = {"repo-analyzer": "documented", "sentinel-triage": "data_output"}


def add_demo_flows(
    server: LamaticTestServer, *, async_run_time: float = 0.2
) -> dict[str, dict[str, Any]]:
    """Register the demo flows and the `research-agent` agent on `server`.

    Flows: `article-summariser`, `agentic-generate-content`, `automation-hiring`, `plan-trip`,
    `docsense-intake`, `repo-analyzer` (async, documented completed shape), `sentinel-triage`
    (async, `data_output` completed shape), `legal-rag-chatbot` and
    `sre-incident-postmortem-agent`. Flows that return LLM text stream token frames.

    Args:
        server: The server to register them on; existing flows with these ids are replaced.
        async_run_time: Seconds each async demo flow stays in progress.

    Returns:
        A sample payload for every registered id, valid against its trigger schema.
    """
    contracts = load_flow_contracts()
    samples: dict[str, dict[str, Any]] = {}
    for flow_id in DEMO_FLOW_IDS:
        contract = contracts[flow_id]
        is_async = contract["response_type"] == "async"
        server.add_flow(
            flow_id,
            _HANDLERS[flow_id],
            schema=contract["advance_schema"],
            response_type="async" if is_async else "realtime",
            run_time=async_run_time if is_async else 0.0,
            completed_shape="data_output"
            if _COMPLETED_SHAPES.get(flow_id) == "data_output"
            else "documented",
            stream=StreamOptions(tokens=flow_id in _TEXT_FLOWS),
            name=contract["name"],
            description=_DESCRIPTIONS[flow_id],
        )
        samples[flow_id] = dict(contract["sample_payload"])

    server.add_agent("research-agent", research_agent, schema=_RESEARCH_AGENT_SCHEMA)
    samples["research-agent"] = dict(_RESEARCH_AGENT_SAMPLE)
    return samples
