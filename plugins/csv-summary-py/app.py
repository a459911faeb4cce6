"""csv-summary: a Parade actor in Python, built with componentize-py.

Summarises a CSV table: the row count, and for each column its mean, minimum and maximum
when every value is a number, else its count of distinct values. The body is JSON: either
`{"csv": "a,b\\n1,2\\n"}`, or `{"url": "http://..."}` to fetch the table over HTTP (the host
must be in the plugin's `allowed_hosts`). A fetch that may succeed later leaves the task
pending, to try again in 10 seconds.
"""

import csv
import io
import json
import statistics
import urllib.parse

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, outgoing_handler, streams
from wit_world.imports import parade_actor_types as actor_types
from wit_world.imports import wasi_http_types as http


# How long a fetch that failed for now waits before its next try.
RETRY_AFTER_MS = 10_000


class FetchError(Exception):
    """A fetch that failed; `retry` says whether another try later might succeed."""

    def __init__(self, message, retry=True):
        super().__init__(message)
        self.retry = retry


class WitWorld(wit_world.WitWorld):
    def actions(self):
        return ["csv-summary"]

    def handle(self, action, body, signalled_failures):
        try:
            request = json.loads(body or "{}")
            if "url" in request:
                text = fetch(request["url"])
            elif "csv" in request:
                text = request["csv"]
            else:
                return result('the body needs "csv" (the table) or "url" (where to get it)', "aborted")
        except FetchError as e:
            if e.retry:
                return result(f"{e}; next try in {RETRY_AFTER_MS // 1000}s", "pending", RETRY_AFTER_MS)
            return result(str(e), "aborted")
        except (ValueError, TypeError) as e:
            return result(f"bad body: {e}", "aborted")
        rows = list(csv.DictReader(io.StringIO(text)))
        host.log(host.Level.INFO, f"summarising {len(rows)} rows")
        return result(json.dumps({"rows": len(rows), "columns": summarise(rows)}), "completed")


def result(status, code, retry_after_ms=None):
    """An ActorResult; `retry_after_ms` is how long a pending one waits before its next try."""
    codes = {
        "completed": actor_types.StatusCode.COMPLETED,
        "aborted": actor_types.StatusCode.ABORTED,
        "pending": actor_types.StatusCode.PENDING,
    }
    return actor_types.ActorResult(status, codes[code], retry_after_ms)


def summarise(rows):
    columns = {}
    for column in rows[0].keys() if rows else []:
        values = [row[column] for row in rows]
        try:
            numbers = [float(v) for v in values]
            columns[column] = {
                "mean": round(statistics.fmean(numbers), 6),
                "min": min(numbers),
                "max": max(numbers),
            }
        except ValueError:
            columns[column] = {"distinct": len(set(values))}
    return columns


def fetch(url):
    """GET `url` through wasi:http; the response body as text."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http or https URL")
    request = http.OutgoingRequest(http.Fields())
    request.set_method(http.Method_Get())
    request.set_scheme(http.Scheme_Https() if parts.scheme == "https" else http.Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        raise fetch_error(url, e.value)
    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    if outcome is None or isinstance(outcome, Err):
        raise FetchError(f"cannot fetch {url}: no response")
    if isinstance(outcome.value, Err):
        raise fetch_error(url, outcome.value.value)
    with outcome.value.value as response:
        status = response.status()
        with response.consume() as incoming:
            with incoming.stream() as stream:
                data = read_all(stream)
    if status != 200:
        # A client error will not go away by itself; a server error might.
        raise FetchError(f"cannot fetch {url}: HTTP {status}", retry=status >= 500)
    return data.decode("utf-8")


def read_all(stream):
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(64 * 1024))
        except Err as e:
            if isinstance(e.value, streams.StreamError_Closed):
                return b"".join(chunks)
            raise FetchError(f"reading the response failed: {e.value}")


def fetch_error(url, code):
    """A FetchError for a wasi:http error code such as `ErrorCode_HttpRequestDenied()`."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    if name == "HttpRequestDenied":
        return FetchError(
            f"cannot fetch {url}: HttpRequestDenied (the node refused the host: it is not in "
            "this plugin's allowed_hosts)",
            retry=False,
        )
    return FetchError(f"cannot fetch {url}: {name}")
