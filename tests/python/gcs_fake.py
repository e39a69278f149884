"""A Google Cloud Storage stand-in for `gs://` tests: no GCS server installs from the
registries this project can reach (fake-gcs-server is a Go binary; PyPI's
gcp-storage-emulator has no HEAD, no Last-Modified/ETag and no XML listing), so, as for
the LLM, a small server in the test speaks the part of the XML API object_store's GCS
client uses: HEAD and (ranged) GET of an object, PUT, and `list-type=2` listings."""

import hashlib
import http.server
import threading
import time
from email.utils import formatdate
from urllib.parse import parse_qs, unquote, urlparse
from xml.sax.saxutils import escape


class FakeGcs:
    def __init__(self):
        self.objects = {}  # (bucket, key) -> (body, etag, generation, mtime)
        self.lock = threading.Lock()
        self.requests = []  # (method, path) seen, for the test to check
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def put(self, bucket, key, body):
        with self.lock:
            self.objects[(bucket, key)] = (
                body, hashlib.md5(body).hexdigest(), time.time_ns(), time.time())

    def get(self, bucket, key):
        with self.lock:
            return self.objects[(bucket, key)][0]

    def stop(self):
        self.httpd.shutdown()

    def _handler(self):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _split(self):
                url = urlparse(self.path)
                bucket, _, key = url.path.lstrip("/").partition("/")
                return unquote(bucket), unquote(key), parse_qs(url.query)

            def _send(self, status, headers, body=b""):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                bucket, key, query = self._split()
                fake.requests.append((self.command, self.path))
                if not key and query.get("list-type") == ["2"]:
                    return self._list(bucket, query)
                with fake.lock:
                    found = fake.objects.get((bucket, key))
                if found is None:
                    return self._send(404, {}, b"<Error><Code>NoSuchKey</Code></Error>")
                body, etag, generation, mtime = found
                headers = {"ETag": f'"{etag}"', "Last-Modified": formatdate(mtime, usegmt=True),
                           "x-goog-generation": str(generation)}
                ranged = self.headers.get("Range", "")
                if ranged.startswith("bytes="):
                    first, _, last = ranged[6:].partition("-")
                    first = int(first)
                    last = min(int(last), len(body) - 1) if last else len(body) - 1
                    headers["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
                    return self._send(206, headers, body[first:last + 1])
                self._send(200, headers, body)

            def _list(self, bucket, query):
                prefix = query.get("prefix", [""])[0]
                delimiter = query.get("delimiter", [""])[0]
                with fake.lock:
                    keys = sorted((k, v) for (b, k), v in fake.objects.items()
                                  if b == bucket and k.startswith(prefix))
                contents, prefixes = [], set()
                for key, (body, etag, _, mtime) in keys:
                    rest = key[len(prefix):]
                    if delimiter and delimiter in rest:
                        prefixes.add(prefix + rest.split(delimiter)[0] + delimiter)
                        continue
                    modified = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(mtime))
                    contents.append(f"<Contents><Key>{escape(key)}</Key><Size>{len(body)}</Size>"
                                    f"<LastModified>{modified}</LastModified>"
                                    f"<ETag>\"{etag}\"</ETag></Contents>")
                common = "".join(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>"
                                 for p in sorted(prefixes))
                xml = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
                       f"<Name>{escape(bucket)}</Name>{''.join(contents)}{common}</ListBucketResult>")
                self._send(200, {"Content-Type": "application/xml"}, xml.encode())

            def do_PUT(self):
                bucket, key, _ = self._split()
                fake.requests.append((self.command, self.path))
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.put(bucket, key, body)
                _, etag, generation, _ = fake.objects[(bucket, key)]
                self._send(200, {"ETag": f'"{etag}"', "x-goog-generation": str(generation)})

        return Handler

