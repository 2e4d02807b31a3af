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
