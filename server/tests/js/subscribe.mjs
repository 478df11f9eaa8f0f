// Subscribes to chatEvents with the graphql-ws client while another client sends by a
// GraphQL mutation and by the room protocol; prints one JSON line with what arrived.
// Usage: node subscribe.mjs HOST:PORT VIEWER_TOKEN SENDER_TOKEN CHANNEL_ID
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [addr, viewerToken, senderToken, channel] = process.argv.slice(2);
const client = createClient({
  url: `ws://${addr}/graphql`,
  webSocketImpl: WebSocket,
  connectionParams: { token: viewerToken },
  retryAttempts: 0,
});
const timeout = (ms) => new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), ms));

// A query over the socket.
const query = await new Promise((resolve, reject) => {
  let result;
  client.subscribe({ query: '{ viewer { login } category(slug: "art") { name } }' }, {
    next: (r) => { result = r; }, error: reject, complete: () => resolve(result),
  });
});

const events = [];
const want = 4;
let done;
const finished = new Promise((r) => { done = r; });
client.subscribe({
  query: `subscription($c: ID!) { chatEvents(channelId: $c) {
    __typename ... on ChatMessage { seq body author { login } } } }`,
  variables: { c: channel },
}, {
  next: (r) => { events.push(r); if (events.length >= want) done(); },
  error: (e) => { events.push({ error: Array.isArray(e) ? e : String(e) }); done(); },
  complete: () => done(),
});
await new Promise((r) => setTimeout(r, 300));

// Two by GraphQL over HTTP, two by the room protocol.
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

// A subscription replaying from a seq: the events after it, in order.
const first = events[0]?.data?.chatEvents?.seq;
const replayed = [];
await Promise.race([new Promise((resolve) => {
  client.subscribe({
    query: `subscription($c: ID!, $s: Int) { chatEvents(channelId: $c, sinceSeq: $s) { ... on ChatMessage { seq } } }`,
    variables: { c: channel, s: first - 1 },
  }, {
    next: (r) => { replayed.push(r.data.chatEvents.seq); if (replayed.length >= want) resolve(); },
    error: (e) => { replayed.push({ error: Array.isArray(e) ? e : String(e) }); resolve(); },
    complete: resolve,
  });
}), timeout(10000)]).catch((e) => replayed.push({ error: String(e) }));

await client.dispose();
process.stdout.write(JSON.stringify({ query, events, replayed }) + '\n');
process.exit(0);
