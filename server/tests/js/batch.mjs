// Apollo Client's BatchHttpLink: three queries issued together go out as one POST of a
// JSON array (batchMax 3, a batch interval long enough to gather them); prints one JSON
// line with each query's result and how many HTTP requests the link made.
// Usage: node batch.mjs HOST:PORT
import { ApolloClient, InMemoryCache, gql } from '@apollo/client';
import { BatchHttpLink } from '@apollo/client/link/batch-http';

const [addr] = process.argv.slice(2);
let posts = 0;
const counting = (input, init) => {
  posts += 1;
  return fetch(input, init);
};
const client = new ApolloClient({
  link: new BatchHttpLink({ uri: `http://${addr}/graphql`, batchMax: 3, batchInterval: 50, fetch: counting }),
  cache: new InMemoryCache(),
});
const slugs = ['chess', 'art', 'music'];
const results = await Promise.all(
  slugs.map((slug) =>
    client
      .query({ query: gql`query Cat($s: String!) { category(slug: $s) { slug name } }`, variables: { s: slug } })
      .then((r) => ({ data: r.data }), (e) => ({ error: String(e) })),
  ),
);
process.stdout.write(JSON.stringify({ posts, results }) + '\n');
process.exit(0);
