"""A local stand-in for Mistral's chat-completions API, for tests.

It speaks the wire format the official `mistralai` SDK expects from
POST /v1/chat/completions: a JSON completion, or, when the request says
"stream": true, server-sent events (`data: {chunk}` ... `data: [DONE]`) with
the usage in the final chunk. It needs nothing beyond the standard library.

Run it:      python tests/fakes/fake_mistral.py --port 8089
Import it:   async with FakeMistral() as fake: ... fake.url ...

Behaviours (how a request is answered):
  normal        a completion (streamed or not, as requested)
  no-usage      streamed, but the final chunk carries no usage
  rate-limit    429 with Retry-After: 1
  server-error  500
  slow          waits --slow-seconds before answering at all
  stall         streams the first chunk, then goes silent for --slow-seconds
  bad-json      structured output (below) whose content is not valid JSON
  cut-off       structured output stopped at max_tokens: partial JSON,
                finish_reason "length"

A request gets the next behaviour queued through the control endpoint if there
is one, else the behaviour named by a magic word `fake-mistral:<behaviour>`
anywhere in its last user message, else `normal`.

--chunk-delay-ms paces streamed chunks and --tokens sets how many words a
reply has (the text repeated), e.g. `--tokens 30 --chunk-delay-ms 1000` for a
slow 30-second stream.

When any message contains "Title:" (the caller asks for a title line), the
answer starts with "Title: The Lantern Keeper" and a blank line.

Structured output: a request with `response_format` {"type": "json_schema",
"json_schema": {"name", "schema", "strict"}} (or {"type": "json_object"}) is
answered, as Mistral does, with the JSON document as the message's content
string: a document following the schema (objects with every property, arrays
of `minItems` items or --json-items, strings from the story text; `$ref`s
into `$defs` followed).

Images (vision): a user message's content may be a list of chunks, text
({"type": "text", "text"}) and images ({"type": "image_url", "image_url":
"<url>" or {"url": "<url>"}}), as Mistral's vision models take them; an image
must be a data URL (data:image/<png|jpeg|webp|gif>;base64,...) or an http(s)
URL, else 400 as Mistral answers. Each image counts IMAGE_TOKENS prompt tokens.

Moderation: POST /v1/moderations {"model", "input": str | [str]} answers
{"id", "model", "results": [{"categories": {...: bool}, "category_scores":
{...: float}}]} (one result per input, Mistral's categories), flagging
`violence_and_threats` for a text containing any of `flag_words` (default
blood, kill, weapon; settable per test) or the magic word `fake-mistral:flag`.

Control endpoints (JSON):
  POST /_fake/behaviours  {"behaviours": ["rate-limit", "normal"]}  queue behaviours
  POST /_fake/reset       clear the queue and the request log
  GET  /_fake/requests    the JSON bodies of the chat requests received so far
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import time
import uuid
from collections import deque
from typing import Any

BEHAVIOURS = (
    "normal",
    "no-usage",
    "rate-limit",
    "server-error",
    "slow",
    "stall",
    "bad-json",
    "cut-off",
)
MAGIC_WORD = re.compile(r"fake-mistral:([a-z-]+)")
IMAGE_TOKENS = 1000
FLAG_WORD = "fake-mistral:flag"
MODERATION_CATEGORIES = (
    "sexual",
    "hate_and_discrimination",
    "violence_and_threats",
    "dangerous_and_criminal_content",
    "selfharm",
    "health",
    "financial",
    "law",
    "pii",
)
_DATA_URL = re.compile(r"data:image/(png|jpeg|webp|gif);base64,[A-Za-z0-9+/=]+")

TITLE = "The Lantern Keeper"
REPLY = (
    "Rain drummed on the harbour roofs as Mara lit the last lantern. "
    "Somewhere beyond the breakwater, a bell answered her, slow and patient, "
    "the way it had on the night her brother sailed. She held the flame "
    "steady and waited for the fog to give back what it had taken."
)

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def _word_count(text: str) -> int:
    return len(text.split())


class _SchemaFiller:
    """A document following a JSON schema, with varied plausible strings."""

    def __init__(self, root: dict[str, Any], array_items: int) -> None:
        self.root = root
        self.array_items = array_items
        self.strings = 0

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return node
        target: Any = self.root
        for part in ref[2:].split("/"):
            target = target[part]
        return self._resolve(target)

    def fill(self, node: dict[str, Any], name: str = "") -> Any:
        node = self._resolve(node)
        if "enum" in node:
            return node["enum"][0]
        if "anyOf" in node:
            return self.fill(node["anyOf"][0], name)
        kind = node.get("type", "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object":
            return {key: self.fill(value, key) for key, value in node.get("properties", {}).items()}
        if kind == "array":
            count = max(node.get("minItems", self.array_items), 0)
            count = min(count, node.get("maxItems", count))
            return [self.fill(node.get("items", {}), name) for _ in range(count)]
        if kind == "integer":
            return node.get("minimum", 1)
        if kind == "number":
            return node.get("minimum", 1.0)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(name)

    def _string(self, name: str) -> str:
        self.strings += 1
        sentences = [s.strip() for s in REPLY.split(".") if s.strip()]
        sentence = sentences[self.strings % len(sentences)] + "."
        if name == "title" or name.endswith("_name") or name == "name":
            return f"{TITLE} {self.strings}"
        if name == "genre":
            return "mystery"
        if name == "characters":
            return ("Mara, a lantern keeper", "Tom, her brother", "Ines, a harbour pilot")[
                self.strings % 3
            ]
        return sentence


def _content_text(content: Any) -> str:
    """A message's text: the string, or the text chunks of a chunk list."""
    if isinstance(content, list):
        return " ".join(str(c.get("text", "")) for c in content if c.get("type") == "text")
    return str(content or "")


def _image_urls(content: Any) -> list[str]:
    if not isinstance(content, list):
        return []
    urls = []
    for chunk in content:
        if chunk.get("type") == "image_url":
            image = chunk.get("image_url")
            urls.append(image.get("url", "") if isinstance(image, dict) else str(image or ""))
    return urls


def _valid_image_url(url: str) -> bool:
    return bool(_DATA_URL.fullmatch(url)) or url.startswith(("http://", "https://"))


def _structured_reply(body: dict[str, Any], array_items: int) -> str | None:
    """The JSON document a structured-output request is answered with; None
    for a request wanting text."""
    response_format = body.get("response_format") or {}
    kind = response_format.get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return json.dumps(_SchemaFiller(schema, array_items).fill(schema))
    if kind == "json_object":
        return json.dumps({"text": REPLY})
    return None


class FakeMistral:
    """The fake server. Start and stop it in the running event loop."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        slow_seconds: float = 30.0,
        chunk_delay_ms: int = 0,
        tokens: int | None = None,
        model: str = "mistral-small-latest",
        json_items: int = 3,
    ) -> None:
        self.host = host
        self.port = port
        self.slow_seconds = slow_seconds
        self.chunk_delay_ms = chunk_delay_ms
        # Words in a reply (the story text repeated as needed); None: the text once.
        self.tokens = tokens
        self.model = model
        # Items of a structured answer's arrays whose schema sets no minItems.
        self.json_items = json_items
        self.requests: list[dict[str, Any]] = []
        # The moderation requests received so far, and what flags a text.
        self.moderations: list[dict[str, Any]] = []
        self.flag_words: tuple[str, ...] = ("blood", "kill", "weapon")
        # Connections accepted so far: tells whether a client reuses its own.
        self.connections_opened = 0
        self._queued: deque[str] = deque()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    # -- lifecycle -----------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL to hand to the SDK as server_url."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        # A deep backlog: benchmarks open a thousand streams at once.
        self._server = await asyncio.start_server(
            self._serve_connection, self.host, self.port, backlog=4096
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # Slow and stalled answers would otherwise hold the loop for minutes.
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeMistral:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- scripting -----------------------------------------------------------

    def queue(self, *behaviours: str) -> None:
        for behaviour in behaviours:
            if behaviour not in BEHAVIOURS:
                raise ValueError(f"unknown behaviour {behaviour!r}; known: {', '.join(BEHAVIOURS)}")
        self._queued.extend(behaviours)

    def reset(self) -> None:
        self._queued.clear()
        self.requests.clear()
        self.moderations.clear()

    def _behaviour_for(self, body: dict[str, Any]) -> str:
        if self._queued:
            return self._queued.popleft()
        user_messages = [m for m in body.get("messages", []) if m.get("role") == "user"]
        if user_messages:
            match = MAGIC_WORD.search(_content_text(user_messages[-1].get("content")))
            if match and match.group(1) in BEHAVIOURS:
                return match.group(1)
        return "normal"

    # -- HTTP ----------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.connections_opened += 1
        try:
            while True:
                request_line = await reader.readline()
                if not request_line.strip():
                    break
                method, target, _version = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                keep_alive = await self._dispatch(
                    method, target.split("?", 1)[0], headers, body, writer
                )
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            # Only stop() cancels connections; ending quietly keeps asyncio's
            # stream callback from reporting the cancellation as an error.
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _dispatch(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        raw_body: bytes,
        writer: asyncio.StreamWriter,
    ) -> bool:
        try:
            body = json.loads(raw_body) if raw_body else {}
        except json.JSONDecodeError:
            return await self._send_json(writer, 400, {"message": "body is not JSON"})

        if path == "/_fake/behaviours" and method == "POST":
            try:
                self.queue(*body.get("behaviours", []))
            except ValueError as exc:
                return await self._send_json(writer, 400, {"message": str(exc)})
            return await self._send_json(writer, 200, {"queued": list(self._queued)})
        if path == "/_fake/reset" and method == "POST":
            self.reset()
            return await self._send_json(writer, 200, {"reset": True})
        if path == "/_fake/requests" and method == "GET":
            return await self._send_json(writer, 200, {"requests": self.requests})
        if path == "/v1/moderations" and method == "POST":
            if not headers.get("authorization", "").startswith("Bearer "):
                return await self._send_json(writer, 401, {"message": "Unauthorized"})
            self.moderations.append(body)
            return await self._send_json(writer, 200, self._moderate(body))
        if path != "/v1/chat/completions" or method != "POST":
            return await self._send_json(writer, 404, {"message": f"no route {method} {path}"})

        if not headers.get("authorization", "").startswith("Bearer "):
            return await self._send_json(
                writer, 401, {"message": "Unauthorized", "type": "invalid_request"}
            )
        self.requests.append(body)
        return await self._answer_chat(body, writer)

    def _moderate(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        results = []
        for text in texts:
            lowered = str(text).lower()
            flagged = FLAG_WORD in lowered or any(word in lowered for word in self.flag_words)
            categories = {name: False for name in MODERATION_CATEGORIES}
            scores = {name: 0.001 for name in MODERATION_CATEGORIES}
            if flagged:
                categories["violence_and_threats"] = True
                scores["violence_and_threats"] = 0.97
            results.append({"categories": categories, "category_scores": scores})
        return {
            "id": uuid.uuid4().hex,
            "model": body.get("model") or "mistral-moderation-latest",
            "results": results,
        }

    async def _answer_chat(self, body: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        for message in body.get("messages", []):
            for url in _image_urls(message.get("content")):
                if not _valid_image_url(url):
                    return await self._send_json(
                        writer,
                        400,
                        {"message": "Invalid image URL", "type": "invalid_request_image"},
                    )
        behaviour = self._behaviour_for(body)
        if behaviour == "rate-limit":
            return await self._send_json(
                writer,
                429,
                {"message": "Requests rate limit exceeded", "type": "rate_limited", "code": "1300"},
                extra_headers={"Retry-After": "1"},
            )
        if behaviour == "server-error":
            return await self._send_json(
                writer, 500, {"message": "Internal server error", "type": "internal_server_error"}
            )
        if behaviour == "slow":
            await asyncio.sleep(self.slow_seconds)

        messages = body.get("messages", [])
        wants_title = any("Title:" in _content_text(m.get("content")) for m in messages)
        story = REPLY
        if self.tokens is not None:
            words = REPLY.split()
            story = " ".join(words[i % len(words)] for i in range(self.tokens))
        reply = f"Title: {TITLE}\n\n{story}" if wants_title else story
        finish_reason = "stop"
        structured = _structured_reply(body, self.json_items)
        if structured is not None:
            reply = structured
            if behaviour == "bad-json":
                reply = "Here are your ideas: " + structured[: len(structured) // 2]
            elif behaviour == "cut-off":
                reply, finish_reason = structured[: len(structured) // 2], "length"
        usage = {
            "prompt_tokens": sum(
                _word_count(_content_text(m.get("content")))
                + IMAGE_TOKENS * len(_image_urls(m.get("content")))
                for m in messages
            ),
            "completion_tokens": _word_count(reply),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        model = body.get("model") or self.model
        completion_id = uuid.uuid4().hex
        created = int(time.time())

        if not body.get("stream"):
            return await self._send_json(
                writer,
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "model": model,
                    "created": created,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply, "tool_calls": None},
                            "finish_reason": finish_reason,
                        }
                    ],
                    "usage": usage,
                },
            )

        await self._start_event_stream(writer)
        pieces = re.findall(r"\s*\S+", reply)
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            chunk: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "model": model,
                "created": created,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": piece}
                        if index == 0
                        else {"content": piece},
                        "finish_reason": finish_reason if last else None,
                    }
                ],
            }
            if last and behaviour != "no-usage":
                chunk["usage"] = usage
            await self._send_chunk(writer, f"data: {json.dumps(chunk)}\n\n".encode())
            if behaviour == "stall":
                await asyncio.sleep(self.slow_seconds)
            if self.chunk_delay_ms:
                await asyncio.sleep(self.chunk_delay_ms / 1000)
        await self._send_chunk(writer, b"data: [DONE]\n\n")
        await self._send_chunk(writer, b"")  # end of the chunked body
        return True

    @staticmethod
    async def _send_json(
        writer: asyncio.StreamWriter,
        status: int,
        payload: dict[str, Any],
        extra_headers: dict[str, str] | None = None,
    ) -> bool:
        data = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(data)),
            **(extra_headers or {}),
        }
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1") + data)
        await writer.drain()
        return True

    @staticmethod
    async def _start_event_stream(writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        await writer.drain()

    @staticmethod
    async def _send_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        await writer.drain()


async def _serve_forever(args: argparse.Namespace) -> None:
    fake = FakeMistral(
        args.host,
        args.port,
        slow_seconds=args.slow_seconds,
        chunk_delay_ms=args.chunk_delay_ms,
        tokens=args.tokens,
        json_items=args.json_items,
    )
    await fake.start()
    print(f"fake Mistral API listening on {fake.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
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
