"""A local stand-in for an OpenAI-compatible chat-completions server, for tests.

It speaks the wire format the official `openai` SDK expects from
POST /v1/chat/completions, as OpenAI, Ollama, vLLM and llama.cpp's server do:
a JSON completion, or, when the request says "stream": true, server-sent events
(`data: {chunk}` with `choices[0].delta.content` ... `data: [DONE]`). A stream
carries the usage only when the request asks for it with
`"stream_options": {"include_usage": true}`, in a last chunk of its own whose
`choices` is empty (as OpenAI sends it). Errors have OpenAI's shape,
`{"error": {"message", "type", "code"}}`. It needs nothing beyond the standard
library and shares its machinery with fake_mistral.py beside it.

Run it:      python tests/fakes/fake_openai.py --port 8090   (base URL: .../v1)
Import it:   async with FakeOpenAI() as fake: ... fake.base_url ...

Behaviours (how a request is answered):
  normal        a completion (streamed or not, as requested)
  no-usage      no usage at all, streamed or not (as some local servers do)
  rate-limit    429 with Retry-After: 1
  server-error  500
  slow          waits --slow-seconds before answering at all
  stall         streams the first chunk, then goes silent for --slow-seconds
  mid-error     streams a chunk, then an error event (`data: {"error": ...}`)
  bad-json      structured output whose content is not valid JSON
  cut-off       structured output stopped at max_tokens: partial JSON,
                finish_reason "length"

A request gets the next behaviour queued through the control endpoint if there
is one, else the behaviour named by a magic word `fake-openai:<behaviour>`
anywhere in its last user message, else `normal`.

--api-key makes the server refuse (401) any other bearer key; without it any
key (or none) is accepted, as local servers do. --chunk-delay-ms, --tokens and
--json-items are fake_mistral.py's.

Control endpoints (JSON):
  POST /_fake/behaviours  {"behaviours": ["rate-limit", "normal"]}  queue behaviours
  POST /_fake/reset       clear the queue and the request log
  GET  /_fake/requests    the JSON bodies of the chat requests received so far
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any


def _load_fake_mistral():
    # tests/ is not a package: load the sibling module by path (once).
    name = "fake_mistral"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).resolve().parent / "fake_mistral.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_mistral = _load_fake_mistral()

BEHAVIOURS = (*_mistral.BEHAVIOURS, "mid-error")
MAGIC_WORD = re.compile(r"fake-openai:([a-z-]+)")
TITLE = _mistral.TITLE
REPLY = _mistral.REPLY


class FakeOpenAI(_mistral.FakeMistral):
    """The fake server. Start and stop it in the running event loop."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        model: str = "llama3.2",
        **options: Any,
    ) -> None:
        super().__init__(host, port, model=model, **options)
        # The only bearer key accepted; None: any, or none at all.
        self.api_key = api_key

    @property
    def base_url(self) -> str:
        """Base URL to hand to the SDK (OPENAI_BASE_URL)."""
        return f"{self.url}/v1"

    def queue(self, *behaviours: str) -> None:
        for behaviour in behaviours:
            if behaviour not in BEHAVIOURS:
                raise ValueError(f"unknown behaviour {behaviour!r}; known: {', '.join(BEHAVIOURS)}")
        self._queued.extend(behaviours)

    def _behaviour_for(self, body: dict[str, Any]) -> str:
        if self._queued:
            return self._queued.popleft()
        user_messages = [m for m in body.get("messages", []) if m.get("role") == "user"]
        if user_messages:
            match = MAGIC_WORD.search(str(user_messages[-1].get("content", "")))
            if match and match.group(1) in BEHAVIOURS:
                return match.group(1)
        return "normal"

    async def _dispatch(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        raw_body: bytes,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if (
            path == "/v1/chat/completions"
            and self.api_key is not None
            and headers.get("authorization", "") != f"Bearer {self.api_key}"
        ):
            return await self._error(writer, 401, "Incorrect API key provided", "invalid_api_key")
        # Local servers take any key or none; the parent insists on a bearer one.
        headers = {"authorization": "Bearer none", **headers}
        return await super()._dispatch(method, path, headers, raw_body, writer)

    async def _error(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        message: str,
        kind: str,
        extra_headers: dict[str, str] | None = None,
    ) -> bool:
        payload = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
        return await self._send_json(writer, status, payload, extra_headers)

    async def _answer_chat(self, body: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        behaviour = self._behaviour_for(body)
        if behaviour == "rate-limit":
            return await self._error(
                writer,
                429,
                "Rate limit reached for requests",
                "rate_limit_exceeded",
                extra_headers={"Retry-After": "1"},
            )
        if behaviour == "server-error":
            return await self._error(writer, 500, "The server had an error", "server_error")
        if behaviour == "slow":
            await asyncio.sleep(self.slow_seconds)

        messages = body.get("messages", [])
        wants_title = any("Title:" in str(m.get("content", "")) for m in messages)
        story = REPLY
        if self.tokens is not None:
            words = REPLY.split()
            story = " ".join(words[i % len(words)] for i in range(self.tokens))
        reply = f"Title: {TITLE}\n\n{story}" if wants_title else story
        finish_reason = "stop"
        structured = _mistral._structured_reply(body, self.json_items)
        if structured is not None:
            reply = structured
            if behaviour == "bad-json":
                reply = "Here are your ideas: " + structured[: len(structured) // 2]
            elif behaviour == "cut-off":
                reply, finish_reason = structured[: len(structured) // 2], "length"
        usage: dict[str, int] | None = None
        if behaviour != "no-usage":
            prompt_tokens = sum(_mistral._word_count(str(m.get("content", ""))) for m in messages)
            completion_tokens = _mistral._word_count(reply)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
        model = body.get("model") or self.model
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        if not body.get("stream"):
            completion: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion",
                "model": model,
                "created": created,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": finish_reason,
                        "logprobs": None,
                    }
                ],
            }
            if usage is not None:
                completion["usage"] = usage
            return await self._send_json(writer, 200, completion)

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "model": model,
                "created": created,
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        await self._start_event_stream(writer)
        pieces = re.findall(r"\s*\S+", reply)
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason if last else None}
            await self._send_chunk(writer, chunk([choice]))
            if behaviour == "mid-error":
                error = {"error": {"message": "model crashed", "type": "server_error"}}
                await self._send_chunk(writer, f"data: {json.dumps(error)}\n\n".encode())
                break
            if behaviour == "stall":
                await asyncio.sleep(self.slow_seconds)
            if self.chunk_delay_ms:
                await asyncio.sleep(self.chunk_delay_ms / 1000)
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        if usage is not None and include_usage:
            await self._send_chunk(writer, chunk([], usage=usage))
        await self._send_chunk(writer, b"data: [DONE]\n\n")
        await self._send_chunk(writer, b"")  # end of the chunked body
        return True


async def _serve_forever(args: argparse.Namespace) -> None:
    fake = FakeOpenAI(
        args.host,
        args.port,
        api_key=args.api_key,
        slow_seconds=args.slow_seconds,
        chunk_delay_ms=args.chunk_delay_ms,
        tokens=args.tokens,
        json_items=args.json_items,
    )
    await fake.start()
    print(f"fake OpenAI-compatible API listening on {fake.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--api-key", default=None, help="the only key accepted (default: any)")
    parser.add_argument(
        "--slow-seconds", type=float, default=30.0, help="how long `slow` and `stall` wait"
    )
    parser.add_argument(
        "--chunk-delay-ms", type=int, default=0, help="pause between streamed chunks"
    )
    parser.add_argument(
        "--tokens", type=int, default=None, help="words in each reply (default: the text once)"
    )
    parser.add_argument(
        "--json-items",
        type=int,
        default=3,
        help="items of a structured answer's arrays that set no minItems",
    )
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args))


if __name__ == "__main__":
    main()
