"""Helpers shared by the emulator tests (a module of its own: conftest is not importable)."""

from __future__ import annotations

import httpx

from orqsync.emulator import Emulator, EmulatorTransport

API_KEY = "sk-orq-test-key"
TRACE = "cb2289e8eae4e587f8bba591734cc831"
SPAN = "274c568b4fffdfc5"
ANNOTATION_PATH = f"/v2/traces/{TRACE}/spans/{SPAN}/annotation"

DEFINITIONS_YAML = """\
version: 1
definitions:
  rating:           {type: single_select, options: [good, bad]}
  defects:          {type: multi_select, options: [grammatical, spelling, hallucination, ambiguity]}
  confidence_score: {type: range, min: 0, max: 1}
  correction:       {type: text}
  approved:         {type: boolean}
  answered:         {type: single_select, options: [yes, no, on, off]}
"""

# Evaluator results that corrections may name: one per output type on the standard span, and a
# boolean one on another span of the same trace.
BOOLEAN_EVAL = "01JCEVAL0000000000000000B1"
NUMBER_EVAL = "01JCEVAL0000000000000000N1"
CATEGORY_EVAL = "01JCEVAL0000000000000000C1"  # options: billing, technical
ANY_CATEGORY_EVAL = "01JCEVAL0000000000000000C2"  # categorical without options
STRING_EVAL = "01JCEVAL0000000000000000S1"
ELSEWHERE_EVAL = "01JCEVAL0000000000000000X1"
OTHER_SPAN = "b7ad6b7169203331"

EVALUATIONS_YAML = f"""\
evaluator_results:
  - {{id: {BOOLEAN_EVAL}, trace_id: {TRACE}, span_id: {SPAN}, output: boolean}}
  - {{id: {NUMBER_EVAL}, trace_id: {TRACE}, span_id: {SPAN}, output: number}}
  - id: {CATEGORY_EVAL}
    trace_id: {TRACE}
    span_id: {SPAN}
    output: categorical
    options: [billing, technical]
    evaluator: topic_judge
  - {{id: {ANY_CATEGORY_EVAL}, trace_id: {TRACE}, span_id: {SPAN}, output: categorical}}
  - {{id: {STRING_EVAL}, trace_id: {TRACE}, span_id: {SPAN}, output: string, evaluator: tone}}
  - {{id: {ELSEWHERE_EVAL}, trace_id: {TRACE}, span_id: {OTHER_SPAN}, output: boolean}}
"""


def client_for(emulator: Emulator, api_key: str | None = API_KEY) -> httpx.Client:
    """An httpx client talking to `emulator` in process, authenticated unless api_key is None."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key is not None else {}
    return httpx.Client(
        transport=EmulatorTransport(emulator), base_url="http://emulator", headers=headers
    )


def annotate(http: httpx.Client, *items: dict[str, object], **body: object) -> httpx.Response:
    """POST the given annotation items to the standard span."""
    return http.post(ANNOTATION_PATH, json={"annotations": list(items), **body})


def remove(http: httpx.Client, body: object = None, content: bytes | None = None) -> httpx.Response:
    """DELETE on the standard span with a JSON body (or raw content)."""
    if content is not None:
        return http.request("DELETE", ANNOTATION_PATH, content=content)
    return http.request("DELETE", ANNOTATION_PATH, json=body)
