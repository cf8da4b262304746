"""Generated HTTP and GraphQL inputs for the fuzz run (tests/reliability/test_fuzz.py).

``FuzzInputs(seed)`` yields :class:`FuzzInput` requests: GraphQL documents taken from a corpus of valid
operations on the test schema and then mutated (tokens inserted, spans cut or repeated, deep nesting, huge
literals), with random variables and operation names, sent in every transport graphene-django accepts (JSON,
``application/graphql``, form, multipart, query string) and some it does not (other methods, broken JSON,
invalid UTF-8, deep JSON); plus the login form and the ``/emit/`` view with hostile fields, query strings and
headers. The same seed gives the same inputs.

Bodies graphene-django's own ``GraphQLView`` cannot read (an ``application/graphql`` body that is not UTF-8,
JSON nested past Python's recursion limit) go to ``/graphql/audited/`` only: graphene-django answers them with
a 500 (an exception its ``parse_body`` does not catch), rail-django's ``AuditGraphQLView`` with a 400.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

FRONTEND_MUTATION = (
    "mutation LogFrontendAudit($input: FrontendAuditEventInput!) { logFrontendAudit(input: $input) { ok error } }"
)
CORPUS = [
    "{ ping }",
    "query Q { ping catalog(size: 2) { id name sku price inStock parts { id name broken } } }",
    "query Groups { groups { id name brokenNote } }",
    "{ requiredAnswer }",
    "mutation M($name: String!) { createGroup(name: $name) { ok error group { id name } } }",
    'mutation { updateGroup(id: "1", name: "renamed") { ok error } }',
    'mutation Del($id: ID!) { deleteGroup(id: $id) { ok } }',
    'mutation { archiveGroup(id: "999999") { ok } }',
    "mutation Bulk($names: [String!]!) { bulkCreateGroups(names: $names) { ok } }",
    "mutation { explodeGroup(id: 1) { ok } }",
    'mutation { validateGroups(name: "admin") { errors } }',
    'mutation { first: createGroup(name: "a") { ok } second: explodeGroup(id: 2) { ok } }',
    FRONTEND_MUTATION,
    "query { __schema { types { name fields { name } } } }",
    'query { __type(name: "Query") { fields { name args { name } } } }',
    "fragment F on Product { id name } query WithFragment { catalog { ...F ...F } }",
    "query Skip($skip: Boolean!) { ping @skip(if: $skip) catalog @include(if: true) { id } }",
    "subscription { ticks }",
    "query Events($first: Int, $after: String, $type: String) { auditEvents(first: $first, after: $after, "
    "eventType: $type) { totalCount items { id eventType username clientIp context } pageInfo { endCursor } } }",
    'query { auditEvents(page: 2, pageSize: 5, since: "2020-01-01T00:00:00Z") { items { id action resource { id } } } }',
    'query One($id: ID!) { auditEvent(id: $id) { id eventType errorMessage } }',
    "query A { ping } query B { groups { id } }",
    "mutation Pw($p: String!) { setPassword(password: $p, apiToken: \"tok_live_123456\") { ok } }",
]
TOKENS = [
    "{", "}", "(", ")", "[", "]", "$", "!", ":", "...", "@", "#", '"', '"""', "\\", "=", "|", "&", ",",
    "query", "mutation", "subscription", "fragment", "on", "__typename", "__schema", "null", "true", "1e999",
    "-0", "9" * 40, "$input", "ping", "catalog", "createGroup", "logFrontendAudit", "auditEvents", "\x00",
    "\u2028", "\ud83d", "\U0001f600", "é", "\r\n", "\t", " ", "password=hunter2", "Bearer abc.def123",
]
NAMES = ["input", "name", "id", "names", "first", "after", "type", "p", "skip", "size", "x"]
HEADER_NAMES = [
    "HTTP_USER_AGENT", "HTTP_X_FORWARDED_FOR", "HTTP_X_CORRELATION_ID", "HTTP_X_REQUEST_ID", "HTTP_ACCEPT",
    "HTTP_COOKIE", "HTTP_AUTHORIZATION", "HTTP_REFERER", "HTTP_ACCEPT_LANGUAGE", "HTTP_ORIGIN",
]
CONTENT_TYPES = [
    "application/json", "application/json; charset=utf-8", "application/json; charset=bogus",
    "application/graphql", "application/x-www-form-urlencoded", MULTIPART_CONTENT, "multipart/form-data",
    "text/plain", "", "application/json; boundary=x", "*/*",
]


@dataclass
class FuzzInput:
    """One request: method, path (with query string), body, content type, headers, and whether logged in."""

    method: str
    path: str
    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    logged_in: bool = False
    kind: str = ""

    def describe(self) -> str:
        return (
            f"{self.kind}: {self.method} {self.path[:300]!r} content_type={self.content_type!r} "
            f"body={self.body[:300]!r} headers={ {k: v[:80] for k, v in self.headers.items()} } "
            f"logged_in={self.logged_in}"
        )


def _utf8(text: str) -> str:
    """``text`` without lone surrogates (the multipart encoder refuses them)."""
    return text.encode("utf-8", "replace").decode()


def graphene_view_reads(item: FuzzInput) -> bool:
    """False for a body graphene-django's ``GraphQLView.parse_body`` fails on with an uncaught exception."""
    content_type = item.content_type.split(";", 1)[0].lower()
    if item.method != "POST" or content_type not in ("application/graphql", "application/json"):
        return True
    try:
        text = item.body.decode("utf-8")
    except UnicodeDecodeError:
        return content_type != "application/graphql"  # the JSON branch catches this one
    if content_type == "application/json":
        try:
            json.loads(text)
        except RecursionError:
            return False
        except ValueError:
            pass
    return True


class FuzzInputs:
    """A deterministic stream of generated requests."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def __iter__(self) -> Iterator[FuzzInput]:
        makers = [(self.graphql, 6), (self.login, 2), (self.emit, 2)]
        population = [maker for maker, weight in makers for _ in range(weight)]
        while True:
            item = self.rng.choice(population)()
            item.headers.update(self.headers())
            item.logged_in = self.rng.random() < 0.5
            yield item

    # --- values ----------------------------------------------------------------------------------------------

    def text(self, max_length: int = 40) -> str:
        rng = self.rng
        choice = rng.random()
        if choice < 0.4:
            return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, max_length)))
        if choice < 0.7:
            return "".join(rng.choice(TOKENS) for _ in range(rng.randint(0, 8)))
        if choice < 0.9:
            return "".join(chr(rng.choice([rng.randint(0, 0x2FF), rng.randint(0, 0x10FFFF)])) for _ in range(rng.randint(0, 20)))
        return rng.choice(["A", "é", "eyJ", "\x00", "{", "[", "k=v "]) * rng.randint(1000, 20000)

    def header_value(self) -> str:
        # WSGI gives header values as latin-1 text.
        return "".join(chr(self.rng.randint(0, 255)) for _ in range(self.rng.randint(0, 60)))

    def json_value(self, depth: int = 0):
        rng = self.rng
        kind = rng.randint(0, 9 if depth < 4 else 5)
        if kind == 0:
            return None
        if kind == 1:
            return rng.choice([True, False])
        if kind == 2:
            return rng.choice([0, -1, 2**31, 2**63, -(2**64), 10**30, rng.randint(-1000, 1000)])
        if kind == 3:
            return rng.choice([0.5, -1e308, 1e-308, 3.14])
        if kind in (4, 5):
            return self.text()
        if kind in (6, 7):
            return [self.json_value(depth + 1) for _ in range(rng.randint(0, 5))]
        return {self.text(12): self.json_value(depth + 1) for _ in range(rng.randint(0, 5))}

    def frontend_input(self):
        fields = ["appName", "modelName", "operation", "component", "description", "severity", "metadata",
                  "success", "sourceRoute", "roles", "unknownField"]
        base = {"appName": "admin", "modelName": "Order", "operation": "approve", "component": "Dialog"}
        for name in self.rng.sample(fields, self.rng.randint(0, 5)):
            base[name] = self.json_value()
        if self.rng.random() < 0.2:
            base.pop(self.rng.choice(list(base)), None)
        return base

    def variables(self):
        rng = self.rng
        roll = rng.random()
        if roll < 0.1:
            return self.json_value()  # not an object
        if roll < 0.15:
            return "{not json" if rng.random() < 0.5 else json.dumps({"name": self.text()})
        values = {name: self.json_value() for name in rng.sample(NAMES, rng.randint(0, 4))}
        if rng.random() < 0.4:
            values["input"] = self.frontend_input()
        if rng.random() < 0.3:
            values["name"] = self.text(200)
        return values

    # --- GraphQL documents -----------------------------------------------------------------------------------

    def document(self) -> str:
        rng = self.rng
        doc = rng.choice(CORPUS)
        roll = rng.random()
        if roll < 0.05:
            depth = rng.randint(100, 6000)
            return "{" + "catalog {" * depth + "id" + "}" * depth + "}"
        if roll < 0.08:
            return "{ " + " ".join(f"a{i}: ping" for i in range(rng.randint(100, 3000))) + " }"
        if roll < 0.1:
            return '{ __type(name: "' + "x" * rng.randint(1000, 100_000) + '") { name } }'
        if roll < 0.15:
            return self.text(200)
        for _ in range(rng.randint(0, 4)):
            doc = self.mutate(doc)
        return doc

    def mutate(self, doc: str) -> str:
        rng = self.rng
        at = rng.randint(0, len(doc))
        op = rng.randint(0, 5)
        if op == 0:
            return doc[:at] + rng.choice(TOKENS) + doc[at:]
        if op == 1:
            return doc[:at] + doc[at + rng.randint(1, 10):]
        if op == 2:
            return doc[:at] + doc[at:at + rng.randint(1, 20)] * rng.randint(2, 50) + doc[at:]
        if op == 3:
            return doc[:at]
        if op == 4:
            return doc[:at] + chr(rng.randint(0, 0x10FFFF)) + doc[at + 1:]
        return doc.replace("ping", rng.choice(["pong", "ping(x: 1)", "ping { id }", "__typename"]))

    def graphql(self) -> FuzzInput:
        rng = self.rng
        path = rng.choice(["/graphql/", "/graphql/audited/"])
        payload = {"query": self.document()}
        if rng.random() < 0.8:
            payload["variables"] = self.variables()
        if rng.random() < 0.3:
            payload["operationName"] = rng.choice([None, "Q", "M", "A", "B", "null", self.text(30), 5, ["x"]])
        if rng.random() < 0.05:
            payload["query"] = self.json_value()  # not a string
        transport = rng.choice(["json"] * 5 + ["graphql", "form", "multipart", "get", "get", "method", "raw"])
        item = getattr(self, f"_graphql_{transport}")(path, payload)
        if not graphene_view_reads(item):
            item.path = "/graphql/audited/"
        return item

    def _encode(self, text: str) -> bytes:
        return text.encode("utf-8", "surrogatepass")  # lone surrogates go out as (invalid) UTF-8 bytes

    def _graphql_json(self, path: str, payload: dict) -> FuzzInput:
        rng = self.rng
        body = self._encode(json.dumps(payload, ensure_ascii=rng.random() < 0.5))
        roll = rng.random()
        if roll < 0.05:
            body = body[: rng.randint(0, len(body))]  # cut short
        elif roll < 0.08:
            body = b"[" * rng.randint(1000, 200_000) + b"]"  # nesting deeper than the parser recurses
        elif roll < 0.1:
            body = json.dumps([payload]).encode()  # a batch to a non-batch view
        elif roll < 0.12:
            body = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 200)))
        content_type = rng.choice(["application/json"] * 6 + CONTENT_TYPES)
        return FuzzInput("POST", path, body, content_type, kind="graphql-json")

    def _graphql_graphql(self, path: str, payload: dict) -> FuzzInput:
        query = payload["query"] if isinstance(payload["query"], str) else json.dumps(payload["query"])
        body = self._encode(query)
        if self.rng.random() < 0.2:
            body += bytes([self.rng.randint(0x80, 0xFF)])  # invalid UTF-8
        return FuzzInput("POST", path, body, "application/graphql", kind="graphql-raw")

    def _form_fields(self, payload: dict) -> dict[str, str]:
        fields = {}
        for key, value in payload.items():
            fields[key] = value if isinstance(value, str) else json.dumps(value)
        return fields

    def _graphql_form(self, path: str, payload: dict) -> FuzzInput:
        body = urlencode(self._form_fields(payload), errors="surrogatepass").encode()
        return FuzzInput("POST", path, body, "application/x-www-form-urlencoded", kind="graphql-form")

    def _graphql_multipart(self, path: str, payload: dict) -> FuzzInput:
        fields = {_utf8(k): _utf8(v) for k, v in self._form_fields(payload).items()}
        body = encode_multipart(BOUNDARY, fields)
        if self.rng.random() < 0.2:
            body = body[: self.rng.randint(0, len(body))]  # a torn multipart body
        return FuzzInput("POST", path, body, MULTIPART_CONTENT, kind="graphql-multipart")

    def _graphql_get(self, path: str, payload: dict) -> FuzzInput:
        query = urlencode(self._form_fields(payload), errors="surrogatepass")
        if self.rng.random() < 0.1:
            query += "&raw&pretty=1"
        return FuzzInput("GET", f"{path}?{query}", kind="graphql-get")

    def _graphql_method(self, path: str, payload: dict) -> FuzzInput:
        method = self.rng.choice(["PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PROPFIND"])
        return FuzzInput(method, path, json.dumps(payload).encode(), "application/json", kind="graphql-method")

    def _graphql_raw(self, path: str, payload: dict) -> FuzzInput:
        body = bytes(self.rng.randint(0, 255) for _ in range(self.rng.randint(0, 300)))
        return FuzzInput("POST", path, body, self.rng.choice(CONTENT_TYPES), kind="graphql-bytes")

    # --- login form and plain views --------------------------------------------------------------------------

    def login(self) -> FuzzInput:
        rng = self.rng
        fields = {}
        for name in ("username", "password", "next", "csrfmiddlewaretoken", self.text(10)):
            if rng.random() < 0.85:
                fields[name] = self.text(rng.choice([20, 200]))
        if rng.random() < 0.2:
            fields["username"] = rng.choice(["alice", "ALICE", "alice\x00", "fuzz-admin", " alice "])
        query = "" if rng.random() < 0.7 else "?next=" + quote(rng.choice(["//evil.example", "javascript:x", self.text()]), safe="", errors="surrogatepass")
        if rng.random() < 0.2:
            return FuzzInput("GET", "/login/" + query, kind="login-get")
        if rng.random() < 0.8:
            body = urlencode(fields, errors="surrogatepass").encode()
            return FuzzInput("POST", "/login/" + query, body, "application/x-www-form-urlencoded", kind="login-form")
        body = encode_multipart(BOUNDARY, {_utf8(k): _utf8(v) for k, v in fields.items()})
        return FuzzInput("POST", "/login/" + query, body, MULTIPART_CONTENT, kind="login-multipart")

    def emit(self) -> FuzzInput:
        rng = self.rng
        path = rng.choice(["/emit/", "/emit/", "/alert/", "/plain/", "/async-emit/"])
        query = urlencode({self.text(10): self.text(50) for _ in range(rng.randint(0, 3))}, errors="surrogatepass")
        method = rng.choice(["GET", "GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE"])
        body = self._encode(self.text(100)) if method in ("POST", "PUT") else b""
        return FuzzInput(method, f"{path}?{query}" if query else path, body, rng.choice(CONTENT_TYPES), kind="view")

    def headers(self) -> dict[str, str]:
        rng = self.rng
        headers = {}
        for name in rng.sample(HEADER_NAMES, rng.randint(0, 5)):
            headers[name] = self.header_value()
        if rng.random() < 0.2:
            headers["HTTP_ACCEPT"] = "text/html"  # graphene-django answers GraphiQL
        if rng.random() < 0.1:
            headers["HTTP_X_CORRELATION_ID"] = "ok-id\r\nSet-Cookie: forged=1"
        if rng.random() < 0.1:
            headers["HTTP_USER_AGENT"] = "token=a " * rng.randint(50, 800)
        if rng.random() < 0.03:
            headers["HTTP_HOST"] = self.header_value()  # mostly refused by Django (400)
        return headers
