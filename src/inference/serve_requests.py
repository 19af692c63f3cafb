"""`src.serve`'s reading of a `POST /predict` body, in the HTTP server processes, before the request joins
a batch: a bad request is answered here (4xx, `{"error": "<one sentence>"}`) and never reaches the model,
so it cannot fail the other requests of its batch.

Accepted bodies:
- an image model: one image as the raw body (`Content-Type: image/*` or `application/octet-stream`),
  one or more images as `multipart/form-data` files, or JSON `{"images": ["<base64>", ...]}`;
- a table model: JSON rows, `{"rows": [{column: value, ...}, ...]}`, a list of such objects, or one.
`top_k` comes from the query string (`/predict?top_k=3`), a form field or the JSON object.

Each image is decoded, converted to grey or RGB and resized by the rule `src.predict` uses
(`src/data/image_files.py`), scaled to the training pixel range; table rows are encoded with the
checkpoint's encoding. The model side receives JSON `{"inputs": <base64 float32>, "count": n, "top_k": k}`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
from typing import Any
from urllib.parse import parse_qs

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from src.data.image_files import BadImageError, read_image
from src.data.table_encoding import TableEncoder, describe_missing, missing_counts

log = logging.getLogger(__name__)

RAW_IMAGE_TYPES = ("image/", "application/octet-stream")
# Shared counters that GET /info shows: requests passed to the model side and refused here (HTTP processes),
# requests classified, their images or rows, batches, the largest batch (model processes).
COUNTERS = ("received", "refused", "requests", "items", "batches", "largest_batch")


class BadRequest(Exception):
    """A request the server refuses: HTTP status and one sentence."""

    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(sentence)
        self.status, self.sentence = status, sentence


class PredictRequests:
    """ASGI middleware: turns the bodies above into the model side's JSON, or answers a 4xx itself."""

    def __init__(self, app, *, path: str, input_shape: list[int], max_value: float, invert: bool,
                 table: dict[str, Any] | None, num_classes: int, top_k: int, max_image_bytes: int,
                 max_items: int, counters=None, answer_timeout: float = 30.0) -> None:
        self.app, self.path, self.counters, self.answer_timeout = app, path, counters, float(answer_timeout)
        self.input_shape, self.max_value, self.invert = [int(d) for d in input_shape], float(max_value), invert
        self.encoder = TableEncoder.from_state(table) if table else None
        self.num_classes, self.top_k = int(num_classes), int(top_k)
        self.max_image_bytes, self.max_items = int(max_image_bytes), int(max_items)
        # a body holds at most max_items images, base64 in JSON at most 4/3 as long, plus the JSON or form
        self.max_body_bytes = self.max_items * self.max_image_bytes * 4 // 3 + (1 << 20)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await self.model_input(scope, receive)
        except BadRequest as exc:
            log.info("refused a request (%d): %s", exc.status, exc.sentence)
            self.count("refused")
            await JSONResponse({"error": exc.sentence}, status_code=exc.status)(scope, receive, send)
            return
        self.count("received")
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # after the body: the client's disconnect
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        started = False

        async def sending(message):
            nonlocal started
            started = True
            await send(message)

        try:  # a model process that died (killed, out of memory) holding the request never answers it
            await asyncio.wait_for(self.app({**scope, "headers": headers}, replay, sending), self.answer_timeout)
        except asyncio.TimeoutError:
            if started:
                raise
            log.warning("no answer from the model within %.0f s: 504", self.answer_timeout)
            await JSONResponse({"error": f"the model did not answer within {self.answer_timeout:g} s (it may have "
                                         "been restarted); send the request again."}, status_code=504)(
                scope, receive, send)

    def count(self, what: str) -> None:
        if self.counters is not None:
            with self.counters.get_lock():
                self.counters[COUNTERS.index(what)] += 1

    # --- the body ------------------------------------------------------------------------------
    async def read_body(self, scope, receive) -> bytes:
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self.too_large(int(declared))
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest(400, "the client closed the connection before the body was complete.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self.too_large(size)
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    def too_large(self, size: int) -> BadRequest:
        return BadRequest(413, f"the request body has {size:,} bytes, more than this server accepts "
                               f"({self.max_body_bytes:,}: max_items={self.max_items} images of max_image_bytes="
                               f"{self.max_image_bytes:,}); send fewer or smaller images.")

    async def model_input(self, scope, receive) -> bytes:
        body = await self.read_body(scope, receive)
        if not body:
            raise BadRequest(400, "the request body is empty; send an image, or JSON rows for a table model.")
        content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1").split(";")[0].strip()
        content_type = content_type.lower()
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        top_k: Any = query["top_k"][-1] if "top_k" in query else None
        if content_type == "application/json":
            try:
                document = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise BadRequest(400, "the body is not valid JSON; send JSON rows or {\"images\": [base64, ...]}.") \
                    from None
            if isinstance(document, dict) and "top_k" in document:
                top_k = document.pop("top_k") if top_k is None else top_k
            x = await run_in_threadpool(self.rows, document) if self.encoder else await self.json_images(document)
        elif self.encoder is not None:
            raise BadRequest(415, f"a table model takes JSON rows (Content-Type: application/json), not "
                                  f"{content_type or 'a body without a Content-Type'}; send {{\"rows\": [{{...}}]}}.")
        elif content_type == "multipart/form-data":
            files, fields = await self.form_files(scope, body)
            top_k = fields.get("top_k", top_k)
            x = await run_in_threadpool(self.images, files)
        elif content_type.startswith(RAW_IMAGE_TYPES):
            x = await run_in_threadpool(self.images, [body])
        else:
            raise BadRequest(415, f"Content-Type {content_type or '(none)'} is not accepted; send an image as "
                                  "image/* or application/octet-stream, files as multipart/form-data, or JSON.")
        k = self.parse_top_k(top_k)
        return json.dumps({"inputs": base64.b64encode(x.tobytes()).decode("ascii"), "count": len(x),
                           "top_k": k}).encode()

    def parse_top_k(self, value: Any) -> int:
        if value is None:
            return min(self.top_k, self.num_classes)
        try:
            k = int(str(value))
        except ValueError:
            k = 0
        if k < 1:
            raise BadRequest(400, f"top_k must be a positive integer, got {str(value)[:40]!r}.")
        return min(k, self.num_classes)

    def count_items(self, n: int, what: str) -> None:
        if n == 0:
            raise BadRequest(400, f"the request holds no {what}; send at least one.")
        if n > self.max_items:
            raise BadRequest(413, f"the request holds {n} {what}, more than max_items={self.max_items}; split it.")

    # --- images --------------------------------------------------------------------------------
    async def form_files(self, scope, body: bytes) -> tuple[list[bytes], dict[str, str]]:
        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(scope, replay).form(max_files=self.max_items, max_fields=16)
        except Exception as exc:  # python-multipart's parse errors, Starlette's limits
            raise BadRequest(400, f"the multipart body cannot be read ({str(exc)[:120]}); send the images as "
                                  "files of a multipart/form-data body.") from None
        files, fields = [], {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                fields[key] = value
            else:
                files.append(await value.read())
        await form.close()
        return files, fields

    async def json_images(self, document: Any) -> np.ndarray:
        items = document.get("images") if isinstance(document, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise BadRequest(400, "an image model takes JSON {\"images\": [\"<base64 image file>\", ...]}; "
                                  "or send the image file itself as the body.")
        self.count_items(len(items), "images")
        try:
            files = [base64.b64decode(item, validate=True) for item in items]
        except (binascii.Error, ValueError):
            raise BadRequest(400, "an entry of \"images\" is not base64; encode each image file with base64.") \
                from None
        return await run_in_threadpool(self.images, files)

    def images(self, files: list[bytes]) -> np.ndarray:
        """(n, C, H, W) float32 in the training pixel range, read as src.predict's `load_image` reads files."""
        self.count_items(len(files), "images")
        channels, height, width = self.input_shape
        out = np.empty((len(files), channels, height, width), dtype=np.float32)
        for i, data in enumerate(files):
            which = "the file" if len(files) == 1 else f"file {i + 1}"
            if not data:
                raise BadRequest(400, f"{which} is empty; send an image file.")
            if len(data) > self.max_image_bytes:
                raise BadRequest(413, f"{which} has {len(data):,} bytes, more than max_image_bytes="
                                      f"{self.max_image_bytes:,}; send a smaller image.")
            try:
                pixels = read_image(io.BytesIO(data), channels, (height, width)).astype("float32")
            except BadImageError as exc:
                raise BadRequest(400, f"{which} is not a readable image ({exc.reason.split(':')[0]}); send PNG, "
                                      "JPEG or another image file.") from None
            if self.invert:
                pixels = 255.0 - pixels
            out[i] = pixels / 255.0 * self.max_value
        return out

    # --- table rows ----------------------------------------------------------------------------
    def rows(self, document: Any) -> np.ndarray:
        import pandas as pd

        rows = document.get("rows") if isinstance(document, dict) and "rows" in document else document
        rows = [rows] if isinstance(rows, dict) else rows
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise BadRequest(400, "a table model takes JSON rows: {\"rows\": [{\"column\": value, ...}, ...]}.")
        self.count_items(len(rows), "rows")
        frame = pd.DataFrame(rows)
        frame.columns = [str(c) for c in frame.columns]
        features = self.encoder.features
        absent = [c for c in features if c not in frame.columns]
        if absent:
            raise BadRequest(422, f"the rows lack the feature column(s) {', '.join(absent[:5])} the model was "
                                  "trained with; send every feature column.")
        counts = missing_counts(frame, features)
        if counts and self.encoder.missing != "mean":
            detail = describe_missing(counts, int(frame[features].isna().any(axis=1).sum()))
            raise BadRequest(422, f"the rows have missing values in {detail}; the model was trained with "
                                  f"data.missing={self.encoder.missing}, so send complete rows.")
        try:
            return self.encoder.encode(frame, what="request rows")
        except (ValueError, TypeError):
            numeric = [c for c in features if c in self.encoder.numeric]
            raise BadRequest(422, f"a value of a numeric column ({', '.join(numeric[:5])}) is not a number; send "
                                  "numbers there.") from None
