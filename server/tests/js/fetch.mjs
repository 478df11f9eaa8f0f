// Posts a GraphQL query with Node.js's own fetch (undici), which asks for br and gzip
// and decodes the answer itself, and prints one JSON line: the Content-Encoding and
// Content-Length it got on the wire, and the decoded body.
// Usage: node fetch.mjs http://127.0.0.1:PORT/graphql '<query text>'
const [url, query] = process.argv.slice(2);
const res = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ query, variables: { login: 'alice' } }),
});
const body = await res.json();
process.stdout.write(
  JSON.stringify({
    status: res.status,
    encoding: res.headers.get('content-encoding'),
    wireBytes: Number(res.headers.get('content-length')),
    body,
  }) + '\n',
);
