"""Injection: the `accept` predicates for instruction phrasing and the invisible characters
looked for on the original bytes."""

from __future__ import annotations

import re

from skillmeat_pipeline.lib.trust.model import Hit

# Invisible characters are found on the original bytes of non-ASCII files (UTF-8 sequences).
ZERO_WIDTH = re.compile(rb"\xe2(?:\x80[\x8b-\x8f]|\x81[\xa0-\xa4])")
BIDI_CONTROL = re.compile(rb"\xe2(?:\x80[\xaa-\xae]|\x81[\xa6-\xa9])")
TAG_CHARACTERS = re.compile(rb"\xf3\xa0[\x80\x81][\x80-\xbf]")
ZWJ = b"\xe2\x80\x8d"
INVISIBLE = re.compile(rb"\xe2(?:\x80[\x8b-\x8f\xaa-\xae]|\x81[\xa0-\xa4\xa6-\xa9])")


_DESCRIBING_INJECTION = re.compile(
    rb"inject|jailbreak|attack|adversar|malicious|red[- ]team|detect|defen[cs]|payload|exploit"
    rb"|security|pentest|guardrail|sanitiz|suspicious|threat|harmful|example of|such as|e\.g\."
)


def _describes_injection(hit: Hit) -> bool:
    """The text quotes or discusses injection phrasing rather than using it."""
    return bool(
        _DESCRIBING_INJECTION.search(hit.line) or _DESCRIBING_INJECTION.search(hit.preceding())
    )


_QUOTE_BEFORE = re.compile(rb"(?:[\"'`]|\xe2\x80[\x9c\x98])[\s(]*$")  # also \u201c and \u2018


def _quoted(hit: Hit) -> bool:
    """The phrase is quoted ("… 'ignore previous instructions' …"): it is mentioned, not meant."""
    return bool(_QUOTE_BEFORE.search(hit.raw[max(0, hit.start - 8) : hit.start]))


def accept_override_instructions(hit: Hit) -> bool:
    return not _quoted(hit) and not _describes_injection(hit)


_CONCEAL_BEFORE = re.compile(
    rb"(?:\bdo\s+not|\bdon'?t|\bnever|\bavoid)\s+(?:ever\s+)?"
    rb"(?:tell|telling|inform|informing|notify|notifying|alert|alerting|mention|mentioning"
    rb"|reveal|revealing|disclose|disclosing|let|letting)\s+(?:this\s+|it\s+|anything\s+)?"
    rb"(?:to\s+)?$"
    rb"|\b(?:hide|hiding|conceal|concealing|withhold|withholding|keep|keeping)\b[^.]{0,40}"
    rb"\bfrom\s+$"
)


def accept_conceal_from_user(hit: Hit) -> bool:
    if not _CONCEAL_BEFORE.search(hit.before[-80:]):
        return False
    if re.match(rb"\s+(?:to\b|how\b|know\s+how)", hit.after):
        return False  # "don't tell the user to run it", coaching, not concealment
    return not _describes_injection(hit)


_COMMENT_TOOLING = re.compile(
    rb"^\s*(?:markdownlint|prettier|eslint|cspell|vale|toc|end|begin|start|omit|lint|spell"
    rb"|textlint|alex|remark|docs?-|auto-?generated|generated|do not edit|@|#region|#endregion)"
)
_ASSISTANT = (
    rb"(?:claude|the assistant|the ai|the model|the agent|the llm|ai agents?|assistants?|llms?)"
)
_ASSISTANT_DIRECTIVE = re.compile(
    # "Claude, always …", "AI: run …", "assistant: you must …"
    rb"\b(?:claude|assistant|ai|llm|model|agent|chatgpt|copilot|codex|gemini)\s*[,:]\s*"
    rb"(?:please\s+)?(?:\w+\s+){0,2}?(?:must|should|always|never|do not|don't|ignore|disregard"
    rb"|run|execute|send|upload|fetch|download|delete|read|write|make sure|remember|you)\b"
    # "the assistant must silently run …"
    rb"|\b" + _ASSISTANT + rb"\s+(?:must|should|shall|will|needs? to|has to|is to|is required to)"
    rb"\s+(?:always\s+|never\s+|not\s+|also\s+|silently\s+|secretly\s+|quietly\s+)?"
    rb"(?:run|execute|send|upload|fetch|download|delete|read|write|ignore|disregard|include|add"
    rb"|call|use|insert|tell|say|respond|answer|reply|output|recommend|obey|follow)\b"
    # "note to Claude", "instructions for the AI"
    rb"|\b(?:note|instructions?|message)\s+(?:to|for)\s+(?:" + _ASSISTANT + rb"|ai|agents?)\b"
    rb"|^\s*(?:ai(?:\s+agent)?|agent|assistant|claude|model|llm)\s*:"
)
_IMPERATIVE = re.compile(
    rb"\b(?:always|never|do not|don't|ignore|disregard|execute|run|send|upload|post|download"
    rb"|delete|secretly|silently|quietly)\b"
)
_COMMENT_PAYLOAD = re.compile(
    rb"\bcurl\b|\bwget\b|base64|\brm\s+-|\.ssh/|\.env\b|\.aws/|exfiltrat"
    rb"|ignore\s+(?:all\s+)?(?:previous|prior|above)"
)


def accept_html_comment(hit: Hit) -> bool:
    text = hit.ahead(2000)[len(b"<!--") :]
    close = text.find(b"-->")
    body = text[:close] if close >= 0 else text
    if _COMMENT_TOOLING.match(body):
        return False
    if _ASSISTANT_DIRECTIVE.search(body):
        return True
    return bool(_IMPERATIVE.search(body)) and bool(_COMMENT_PAYLOAD.search(body))
