// Runs graphql-http's server audit against a running streamhub and prints one JSON
// line: every result with its status ("ok", "warn", "error") and reason.
// Usage: node audit.mjs http://127.0.0.1:PORT/graphql
import { auditServer } from 'graphql-http';

const url = process.argv[2];
const results = await auditServer({ url });
const out = results.map((r) => ({
  id: r.id,
  name: r.name,
  status: r.status,
  reason: r.status === 'ok' ? undefined : r.reason,
}));
process.stdout.write(JSON.stringify(out) + '\n');
