// The graphql-sse client (distinct connections mode) against /graphql: a query, then a
// chatEvents subscription while another client sends by a GraphQL mutation and by the
// room protocol; prints one JSON line with what arrived.
// Usage: node sse.mjs HOST:PORT VIEWER_TOKEN SENDER_TOKEN CHANNEL_ID
import { createClient } from 'graphql-sse';
import WebSocket from 'ws';

const [addr, viewerToken, senderToken, channel] = process.argv.slice(2);
let connected = () => {};
const client = createClient({
  url: `http://${addr}/graphql`,
  headers: { authorization: `Bearer ${viewerToken}` },
  retryAttempts: 0,
  // Called once a response head is in: the server holds the subscription from then on.
  on: { connected: () => connected() },
});
const timeout = (ms) => new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), ms));

// A query: one result, then the stream completes.
const query = [];
for await (const r of client.iterate({ query: '{ viewer { login } category(slug: "art") { name } }' })) {
  query.push(r);
}

const events = [];
const want = 4;
let done;
const finished = new Promise((r) => { done = r; });
const subscribed = new Promise((r) => { connected = r; });
const unsubscribe = client.subscribe({
  query: `subscription($c: ID!) { chatEvents(channelId: $c) {
    __typename ... on ChatMessage { seq body author { login } } } }`,
  variables: { c: channel },
}, {
  next: (r) => { events.push(r); if (events.length >= want) done(); },
  error: (e) => { events.push({ error: String(e) }); done(); },
  complete: () => done(),
});
await Promise.race([subscribed, timeout(10000)]);

const post = (body) => fetch(`http://${addr}/graphql`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${senderToken}` },
  body: JSON.stringify({ query: 'mutation($c: ID!, $b: String!) { sendChatMessage(channelId: $c, body: $b) { seq } }', variables: { c: channel, b: body } }),
}).then((r) => r.json());
await post('by mutation 1');
await post('by mutation 2');
const room = new WebSocket(`ws://${addr}/ws`);
await new Promise((r) => room.on('open', r));
room.send(JSON.stringify({ type: 'auth', token: senderToken }));
room.send(JSON.stringify({ type: 'send', room: channel, body: 'by room 1', nonce: 'a' }));
room.send(JSON.stringify({ type: 'send', room: channel, body: 'by room 2', nonce: 'b' }));

await Promise.race([finished, timeout(10000)]).catch((e) => events.push({ error: String(e) }));
room.close();
unsubscribe();
client.dispose();
process.stdout.write(JSON.stringify({ query, events }) + '\n');
process.exit(0);
