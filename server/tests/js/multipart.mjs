// Apollo Client's HttpLink subscribing over Apollo's multipart HTTP protocol: a
// chatEvents subscription held across heartbeats (the first messages are sent after
// more than one heartbeat interval), then another client sends by a GraphQL mutation;
// prints one JSON line with what arrived.
// Usage: node multipart.mjs HOST:PORT VIEWER_TOKEN SENDER_TOKEN CHANNEL_ID
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';

const [addr, viewerToken, senderToken, channel] = process.argv.slice(2);
const client = new ApolloClient({
  link: new HttpLink({ uri: `http://${addr}/graphql`, headers: { authorization: `Bearer ${viewerToken}` } }),
  cache: new InMemoryCache(),
});
const timeout = (ms) => new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), ms));

const events = [];
const want = 3;
let done;
const finished = new Promise((r) => { done = r; });
const sub = client.subscribe({
  query: gql`subscription($c: ID!) { chatEvents(channelId: $c) {
    __typename ... on ChatMessage { seq body } } }`,
  variables: { c: channel },
}).subscribe({
  next: (r) => {
    events.push(r.error ? { error: String(r.error) } : { data: r.data });
    if (events.length >= want || r.error) done();
  },
  error: (e) => { events.push({ error: String(e) }); done(); },
  complete: () => { events.push({ complete: true }); done(); },
});
// The server sends a heartbeat every 5 s: wait past one before anything is sent.
await new Promise((r) => setTimeout(r, 6000));

for (let i = 1; i <= want; i++) {
  await fetch(`http://${addr}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${senderToken}` },
    body: JSON.stringify({ query: 'mutation($c: ID!, $b: String!) { sendChatMessage(channelId: $c, body: $b) { seq } }', variables: { c: channel, b: `by mutation ${i}` } }),
  });
}
await Promise.race([finished, timeout(10000)]).catch((e) => events.push({ error: String(e) }));
sub.unsubscribe();
process.stdout.write(JSON.stringify({ events }) + '\n');
process.exit(0);
