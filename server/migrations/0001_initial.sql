-- StreamHub schema, version 1: everything the memory store keeps (server/src/store/rows.rs,
-- server/src/store/memory/data.rs), as PostgreSQL's source of truth.
--
-- Applied once by `streamhub migrate`, in one transaction, and recorded in
-- `streamhub_schema` (server/src/store/pg/migrate.rs). A migration is never edited once
-- released: a change is a new file.
--
-- Conventions: ids are the text ids the API hands out (`u1`, `ch_u1`, `st7`,
-- `cat_just-chatting`); times are bigint milliseconds since the Unix epoch, as in the rows
-- (`Millis`). Plain SQL for PostgreSQL 15 and later, no extension.
--
-- Each index below names the query that needs it. Primary keys and unique constraints
-- serve the lookups by id; foreign keys that no query walks from the referenced side
-- (rows here are never deleted) have no index of their own.

-- Users. Every user has exactly one channel (`channel_id`, checked at commit: a user and
-- their channel are created in one transaction, each referring to the other).
CREATE TABLE users (
    id           text PRIMARY KEY,
    login        text NOT NULL,
    display_name text NOT NULL,
    bio          text,
    admin        boolean NOT NULL DEFAULT false,
    created_at   bigint NOT NULL,
    channel_id   text NOT NULL UNIQUE
);

-- `Store::user_by_login` and the free-login search of `EnsureUser`:
--   SELECT ... FROM users WHERE lower(login COLLATE "C") = lower($1 COLLATE "C")
-- Logins are unique ignoring case. Under the "C" collation lower() folds ASCII letters
-- only, exactly like the memory store's `to_ascii_lowercase`, and the same whatever the
-- database's default collation is.
CREATE UNIQUE INDEX users_login_lower ON users (lower(login COLLATE "C"));

-- Categories of streams.
CREATE TABLE categories (
    id   text PRIMARY KEY,
    slug text NOT NULL UNIQUE,
    name text NOT NULL
);

-- Channels: one per user (`owner_id` is unique), with the owner's login kept beside it
-- (logins never change) so that a channel row is read without a join.
-- `follower_count` is kept by the store in the transaction that adds or removes a follow.
CREATE TABLE channels (
    id             text PRIMARY KEY,
    owner_id       text NOT NULL UNIQUE REFERENCES users (id),
    login          text NOT NULL,
    title          text NOT NULL,
    language       text NOT NULL,
    tags           text[] NOT NULL DEFAULT '{}',
    category_id    text REFERENCES categories (id),
    -- The live stream, while live (its foreign key is added once `streams` exists).
    stream_id      text,
    follower_count integer NOT NULL DEFAULT 0 CHECK (follower_count >= 0)
);

ALTER TABLE users
    ADD CONSTRAINT users_channel_id_fkey FOREIGN KEY (channel_id) REFERENCES channels (id)
    DEFERRABLE INITIALLY DEFERRED;

-- `Store::live` (every live channel, a few dozen among all of them):
--   SELECT ... FROM channels WHERE stream_id IS NOT NULL
CREATE INDEX channels_live ON channels (id) WHERE stream_id IS NOT NULL;

-- Streams: one live session of a channel each; `ended_at` is set when it ends.
CREATE TABLE streams (
    id          text PRIMARY KEY,
    channel_id  text NOT NULL REFERENCES channels (id),
    title       text NOT NULL,
    category_id text REFERENCES categories (id),
    language    text NOT NULL,
    started_at  bigint NOT NULL,
    ended_at    bigint,
    CHECK (ended_at IS NULL OR ended_at >= started_at),
    -- The target of `channels_stream_fkey` below.
    UNIQUE (id, channel_id)
);

-- A channel's streams, newest first (its past broadcasts), and the foreign key from
-- channels:
--   SELECT ... FROM streams WHERE channel_id = $1 ORDER BY started_at DESC
CREATE INDEX streams_channel ON streams (channel_id, started_at DESC);

-- At most one stream of a channel is live: `StartStream` on a live channel is a
-- conflict, which this index makes a unique violation even between two nodes.
CREATE UNIQUE INDEX streams_one_live ON streams (channel_id) WHERE ended_at IS NULL;

-- A channel's live stream is one of its own streams.
ALTER TABLE channels
    ADD CONSTRAINT channels_stream_fkey FOREIGN KEY (stream_id, id)
    REFERENCES streams (id, channel_id) DEFERRABLE INITIALLY DEFERRED;

-- Follows. `key` orders a user's follows and a channel's followers (newest first) and
-- is what the follow lists' cursors carry: it only grows, from one sequence for all.
CREATE SEQUENCE follow_keys AS bigint;

CREATE TABLE follows (
    user_id    text NOT NULL REFERENCES users (id),
    channel_id text NOT NULL REFERENCES channels (id),
    key        bigint NOT NULL DEFAULT nextval('follow_keys'),
    PRIMARY KEY (user_id, channel_id)
);

ALTER SEQUENCE follow_keys OWNED BY follows.key;

-- `Store::following` (the channels a user follows, newest first, after a cursor) and its
-- total:
--   SELECT channel_id, key FROM follows WHERE user_id = $1 AND key < $2
--   ORDER BY key DESC LIMIT $3
-- (`Store::follows`, whether a user follows each of a batch of channels, uses the
-- primary key.)
CREATE INDEX follows_user_key ON follows (user_id, key DESC);

-- `Store::followers` (a channel's followers, newest first, after a cursor):
--   SELECT user_id, key FROM follows WHERE channel_id = $1 AND key < $2
--   ORDER BY key DESC LIMIT $3
CREATE INDEX follows_channel_key ON follows (channel_id, key DESC);

-- Moderators of a channel. The primary key serves a channel row's moderator list
-- (WHERE channel_id = ANY($1)) and `Store::membership` (WHERE channel_id = $1 AND
-- user_id = $2).
CREATE TABLE moderators (
    channel_id text NOT NULL REFERENCES channels (id),
    user_id    text NOT NULL REFERENCES users (id),
    PRIMARY KEY (channel_id, user_id)
);

-- Bans from a channel's chat, until a time or (NULL) until unbanned. The primary key
-- serves `Store::membership`; a ban that has expired is ignored by reading `until`.
CREATE TABLE bans (
    channel_id text NOT NULL REFERENCES channels (id),
    user_id    text NOT NULL REFERENCES users (id),
    until      bigint,
    PRIMARY KEY (channel_id, user_id)
);

-- Each channel's room events in their order (`seq` 1, 2, 3, ... with no gaps, given by
-- the room's orderer): chat messages, deletions and bans, as `streamhub_pubsub::Chat`
-- holds them. A message carries its author as they were when it was sent.
-- `recorded_at` is when the orderer ordered the event (`Store::record`'s `at`): a room
-- history's age counts from it. `sent_at` is a message's own time, shown to clients
-- (the demo data's history has messages sent before it was recorded).
-- `deleted` marks a message that a later `deleted` event removed, set in the
-- transaction that records the deletion.
CREATE TABLE chat_events (
    channel_id          text NOT NULL REFERENCES channels (id),
    seq                 bigint NOT NULL CHECK (seq > 0),
    kind                text NOT NULL CHECK (kind IN ('message', 'deleted', 'banned')),
    recorded_at         bigint NOT NULL,
    -- kind = 'message'
    author_id           text,
    author_login        text,
    author_display_name text,
    body                text,
    sent_at             bigint,
    deleted             boolean NOT NULL DEFAULT false,
    -- kind = 'deleted': the deleted message's seq
    target_seq          bigint,
    -- kind = 'banned': who, and until when (NULL: until unbanned)
    target_user_id      text,
    until               bigint,
    PRIMARY KEY (channel_id, seq),
    CONSTRAINT chat_events_shape CHECK (
        CASE kind
            WHEN 'message' THEN author_id IS NOT NULL AND author_login IS NOT NULL
                AND author_display_name IS NOT NULL AND body IS NOT NULL
                AND sent_at IS NOT NULL
            WHEN 'deleted' THEN target_seq IS NOT NULL AND target_seq < seq AND NOT deleted
            WHEN 'banned' THEN target_user_id IS NOT NULL AND NOT deleted
        END
    )
);

-- `Store::messages` (the last messages before a seq, deleted ones left out) and
-- `Store::message`:
--   SELECT ... FROM chat_events
--   WHERE channel_id = $1 AND seq < $2 AND kind = 'message' AND NOT deleted
--   ORDER BY seq DESC LIMIT $3
-- (`Store::tail`, a room's newest events of every kind and its last seq, reads the
-- primary key backwards.)
CREATE INDEX chat_events_messages ON chat_events (channel_id, seq DESC)
    WHERE kind = 'message' AND NOT deleted;
