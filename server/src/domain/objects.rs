//! Fields of the domain's object types, each resolved for a whole level of parents.

use std::rc::Rc;

use graphql_exec::exec::{Args, FieldError, Leaf, Resolved};

use super::query::stream_page;
use super::values::{after_arg, boolean, count_arg, cursor, int, string, time};
use super::{value, Obj, Page, Request};
use crate::store::{ChannelIx, Data, RoomEvent, UserIx};

/// Resolves `field` for every parent.
pub(super) fn resolve(
    cx: &Request<'_>,
    d: &Data,
    field: &str,
    args: &Args<'_>,
    parents: &[Obj],
    out: &mut Vec<Resolved<Obj>>,
) {
    for p in parents {
        let r = match p {
            Obj::User(u) => user(cx, d, *u, field, args),
            Obj::Channel(c) => channel(cx, d, *c, field, args),
            Obj::Stream(s) => {
                let st = d.stream(*s);
                let live = d.channel(st.channel).stream == Some(*s);
                Ok(match field {
                    "id" => string(&st.id),
                    "channel" => Resolved::Object(Obj::Channel(st.channel)),
                    "title" => string(&st.title),
                    "category" => opt_category(st.category),
                    "language" => string(&st.language),
                    "startedAt" => time(st.started_at),
                    "viewerCount" => int(if live {
                        d.channel(st.channel).viewers
                    } else {
                        0
                    }),
                    other => unknown("Stream", other),
                })
            }
            Obj::Category(k) => {
                let cat = d.category(*k);
                match field {
                    "id" => Ok(string(&cat.id)),
                    "slug" => Ok(string(&cat.slug)),
                    "name" => Ok(string(&cat.name)),
                    "viewerCount" => Ok(int(d.category_viewers(*k) as i64)),
                    "liveStreamCount" => Ok(int(d
                        .live
                        .iter()
                        .filter(|&&c| d.channel(c).category == Some(*k))
                        .count() as i64)),
                    "streams" => stream_page(d, &d.live_sorted(Some(*k), None), args),
                    other => Ok(unknown("Category", other)),
                }
            }
            Obj::Message(c, seq) => Ok(message(d, *c, *seq, field)),
            Obj::Deleted(c, seq) => Ok(match (field, d.channel(*c).log.get(*seq as usize - 1)) {
                ("channelId", _) => string(&d.channel(*c).id),
                ("seq", _) => int(*seq),
                ("messageSeq", Some(RoomEvent::Deleted { message_seq })) => int(*message_seq),
                (other, _) => unknown("ChatMessageDeleted", other),
            }),
            Obj::Banned(c, seq) => Ok(match (field, d.channel(*c).log.get(*seq as usize - 1)) {
                ("channelId", _) => string(&d.channel(*c).id),
                ("seq", _) => int(*seq),
                ("userId", Some(RoomEvent::Banned { user, .. })) => string(&d.user(*user).id),
                ("until", Some(RoomEvent::Banned { until, .. })) => {
                    until.map_or(Resolved::Null, time)
                }
                (other, _) => unknown("UserBanned", other),
            }),
            Obj::StreamUpdate(c) => {
                let ch = d.channel(*c);
                Ok(match field {
                    "channel" => Resolved::Object(Obj::Channel(*c)),
                    "isLive" => boolean(ch.stream.is_some()),
                    "title" => string(&ch.title),
                    "category" => opt_category(ch.category),
                    "viewerCount" => int(ch.viewers),
                    other => unknown("StreamUpdate", other),
                })
            }
            Obj::Connection(page) => Ok(match field {
                "edges" => Resolved::List(
                    (0..page.items.len() as u32)
                        .map(|i| Resolved::Object(Obj::Edge(Rc::clone(page), i)))
                        .collect(),
                ),
                "nodes" => {
                    Resolved::List(page.items.iter().cloned().map(Resolved::Object).collect())
                }
                "pageInfo" => Resolved::Object(Obj::PageInfo(Rc::clone(page))),
                "totalCount" => int(page.total as i64),
                other => unknown("Connection", other),
            }),
            Obj::Edge(page, i) => Ok(match field {
                "cursor" => string(&cursor(page.start + *i as usize)),
                "node" => Resolved::Object(page.items[*i as usize].clone()),
                other => unknown("Edge", other),
            }),
            Obj::PageInfo(page) => Ok(match field {
                "hasNextPage" => boolean(page.has_next),
                "endCursor" => match page.items.len() {
                    0 => Resolved::Null,
                    n => string(&cursor(page.start + n - 1)),
                },
                other => unknown("PageInfo", other),
            }),
            Obj::Root => Ok(unknown("root", field)),
        };
        out.push(value(r));
    }
}

fn unknown(ty: &str, field: &str) -> Resolved<Obj> {
    Resolved::Error(format!("{ty}.{field} has no resolver").into())
}

fn opt_category(k: Option<crate::store::CategoryIx>) -> Resolved<Obj> {
    k.map_or(Resolved::Null, |k| Resolved::Object(Obj::Category(k)))
}

fn user(
    cx: &Request<'_>,
    d: &Data,
    u: UserIx,
    field: &str,
    args: &Args<'_>,
) -> Result<Resolved<Obj>, FieldError> {
    let user = d.user(u);
    Ok(match field {
        "id" => string(&user.id),
        "login" => string(&user.login),
        "displayName" => string(&user.display_name),
        "bio" => user.bio.as_deref().map_or(Resolved::Null, string),
        "roles" => {
            let admin = match cx.token {
                Some(t) if cx.viewer == Some(u) => t.admin,
                _ => user.admin,
            };
            let mut roles = vec![Resolved::Leaf(Leaf::Enum("VIEWER"))];
            if admin {
                roles.push(Resolved::Leaf(Leaf::Enum("ADMIN")));
            }
            Resolved::List(roles)
        }
        "createdAt" => time(user.created_at),
        "channel" => Resolved::Object(Obj::Channel(user.channel)),
        "following" => {
            let first = count_arg(args, "first", 20)?;
            let start = after_arg(args)?;
            let list = &user.following;
            // Newest follow first.
            let page = Page::of(list.len(), start, first, |i| {
                Obj::Channel(list[list.len() - 1 - i])
            });
            Resolved::Object(Obj::Connection(Rc::new(page)))
        }
        other => unknown("User", other),
    })
}

fn channel(
    cx: &Request<'_>,
    d: &Data,
    c: ChannelIx,
    field: &str,
    args: &Args<'_>,
) -> Result<Resolved<Obj>, FieldError> {
    let ch = d.channel(c);
    Ok(match field {
        "id" => string(&ch.id),
        "login" => string(d.channel_login(c)),
        "owner" => Resolved::Object(Obj::User(ch.owner)),
        "title" => string(&ch.title),
        "language" => string(&ch.language),
        "tags" => Resolved::List(ch.tags.iter().map(|t| string(t)).collect()),
        "category" => opt_category(ch.category),
        "isLive" => boolean(ch.stream.is_some()),
        "stream" => ch
            .stream
            .map_or(Resolved::Null, |s| Resolved::Object(Obj::Stream(s))),
        "followerCount" => int(ch.followers.len() as i64),
        "followers" => {
            let first = count_arg(args, "first", 20)?;
            let start = after_arg(args)?;
            let list = &ch.followers;
            // Newest follower first.
            let page = Page::of(list.len(), start, first, |i| {
                Obj::User(list[list.len() - 1 - i])
            });
            Resolved::Object(Obj::Connection(Rc::new(page)))
        }
        "moderators" => Resolved::List(
            ch.moderators
                .iter()
                .map(|&m| Resolved::Object(Obj::User(m)))
                .collect(),
        ),
        "viewerIsFollowing" => boolean(cx.viewer.is_some_and(|v| d.user(v).following.contains(&c))),
        "recentMessages" => {
            let last = count_arg(args, "last", 20)?;
            Resolved::List(
                d.messages(c, last, None)
                    .into_iter()
                    .map(|seq| Resolved::Object(Obj::Message(c, seq)))
                    .collect(),
            )
        }
        "viewerCount" => int(ch.viewers),
        other => unknown("Channel", other),
    })
}

fn message(d: &Data, c: ChannelIx, seq: u32, field: &str) -> Resolved<Obj> {
    let Some(RoomEvent::Message {
        author,
        body,
        sent_at,
        ..
    }) = d.channel(c).log.get(seq as usize - 1)
    else {
        return Resolved::Error("the message is gone".into());
    };
    match field {
        "id" => string(&format!("msg_{}_{seq}", d.channel(c).id)),
        "channel" => Resolved::Object(Obj::Channel(c)),
        "seq" => int(seq),
        "author" => Resolved::Object(Obj::User(*author)),
        "body" => string(body),
        "sentAt" => time(*sent_at),
        other => unknown("ChatMessage", other),
    }
}
