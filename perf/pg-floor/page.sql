SELECT u.id, u.login, u.display_name, u.bio, u.admin, u.created_at, u.channel_id, c.id, c.owner_id, c.login, c.title, c.language, c.tags, c.category_id, c.stream_id, c.follower_count, ARRAY(SELECT m.user_id FROM moderators m WHERE m.channel_id = c.id ORDER BY m.user_id) FROM users u LEFT JOIN channels c ON c.id = u.channel_id WHERE lower(u.login COLLATE "C") = 'alice';
\startpipeline
SELECT id, slug, name FROM categories ORDER BY id;
SELECT id, channel_id, title, category_id, language, started_at FROM streams WHERE id = ANY('{st1}');
SELECT e.seq, e.author_id, e.author_login, e.author_display_name, e.body, e.sent_at FROM channels c LEFT JOIN LATERAL (SELECT seq, author_id, author_login, author_display_name, body, sent_at FROM chat_events WHERE channel_id = c.id AND seq < 9223372036854775807 AND kind = 'message' AND NOT deleted ORDER BY seq DESC LIMIT 100) e ON true WHERE c.id = 'ch_u1' ORDER BY e.seq;
SELECT c.follower_count::bigint, f.key, f.user_id, u.id, u.login, u.display_name, u.bio, u.admin, u.created_at, u.channel_id FROM channels c LEFT JOIN LATERAL (SELECT key, user_id, row_number() OVER (ORDER BY key DESC) AS n FROM follows WHERE channel_id = c.id AND key < 9223372036854775807 ORDER BY key DESC LIMIT 101) f ON true LEFT JOIN users u ON u.id = f.user_id AND f.n <= 10 WHERE c.id = 'ch_u1' ORDER BY f.key DESC NULLS LAST;
\endpipeline
\startpipeline
SELECT id, login, stream_id, category_id, language FROM channels WHERE stream_id IS NOT NULL;
SELECT id, login, display_name, bio, admin, created_at, channel_id FROM users WHERE id = ANY('{u100,u70,u96,u137,u146,u87,u138,u4,u199,u186,u178,u52,u173,u123,u142,u6,u48,u13}');
\endpipeline
