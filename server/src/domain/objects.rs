//! Fields of the domain's object types, each resolved for a whole level of parents.

use std::rc::Rc;

use graphql_exec::exec::{Args, FieldError, Leaf, Out, Resolved};

use super::query::stream_page;
use super::values::{after_arg, boolean, count_arg, cursor, int, string, time};
use super::{value, Obj, Page, Request};
use crate::store::{ChannelIx, Data, RoomEvent, UserIx};

/// A field name, matched once per batch rather than once per parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum F {
    Author,
    Bio,
    Body,
    Category,
    Channel,
    ChannelId,
    CreatedAt,
    Cursor,
    DisplayName,
    Edges,
    EndCursor,
    FollowerCount,
    Followers,
    Following,
    HasNextPage,
    Id,
    IsLive,
    Language,
    LiveStreamCount,
    Login,
    Moderators,
    Name,
    Node,
    Nodes,
    Owner,
    PageInfo,
    RecentMessages,
    Roles,
    SentAt,
    Seq,
    Slug,
    StartedAt,
    Stream,
    Streams,
    Tags,
    Title,
    TotalCount,
    ViewerCount,
    ViewerIsFollowing,
    MessageSeq,
    UserId,
    Until,
    Unknown,
}

impl F {
    fn of(name: &str) -> F {
        match name {
            "author" => F::Author,
            "bio" => F::Bio,
            "body" => F::Body,
            "category" => F::Category,
            "channel" => F::Channel,
            "channelId" => F::ChannelId,
            "createdAt" => F::CreatedAt,
            "cursor" => F::Cursor,
            "displayName" => F::DisplayName,
            "edges" => F::Edges,
            "endCursor" => F::EndCursor,
            "followerCount" => F::FollowerCount,
            "followers" => F::Followers,
            "following" => F::Following,
            "hasNextPage" => F::HasNextPage,
            "id" => F::Id,
            "isLive" => F::IsLive,
            "language" => F::Language,
            "liveStreamCount" => F::LiveStreamCount,
            "login" => F::Login,
            "moderators" => F::Moderators,
            "name" => F::Name,
            "node" => F::Node,
            "nodes" => F::Nodes,
            "owner" => F::Owner,
            "pageInfo" => F::PageInfo,
            "recentMessages" => F::RecentMessages,
            "roles" => F::Roles,
            "sentAt" => F::SentAt,
            "seq" => F::Seq,
            "slug" => F::Slug,
            "startedAt" => F::StartedAt,
            "stream" => F::Stream,
            "streams" => F::Streams,
            "tags" => F::Tags,
            "title" => F::Title,
            "totalCount" => F::TotalCount,
            "viewerCount" => F::ViewerCount,
            "viewerIsFollowing" => F::ViewerIsFollowing,
            "messageSeq" => F::MessageSeq,
            "userId" => F::UserId,
            "until" => F::Until,
            _ => F::Unknown,
        }
    }
}

/// Resolves `field` for every parent.
pub(super) fn resolve(
    cx: &Request<'_>,
    d: &Data,
    field: &str,
    args: &Args<'_>,
    parents: &[Obj],
    out: &mut Out<'_, Obj>,
) {
    let name = field;
    let f = F::of(name);
    for p in parents {
        let r = match p {
            Obj::User(u) => user(cx, d, out, *u, f, name, args),
            Obj::Channel(c) => channel(cx, d, out, *c, f, name, args),
            Obj::Stream(s) => {
                let st = d.stream(*s);
                let live = d.channel(st.channel).stream == Some(*s);
                Ok(match f {
                    F::Id => string(out, &st.id),
                    F::Channel => Resolved::Object(Obj::Channel(st.channel)),
                    F::Title => string(out, &st.title),
                    F::Category => opt_category(st.category),
                    F::Language => string(out, &st.language),
                    F::StartedAt => time(out, st.started_at),
                    F::ViewerCount => int(if live {
                        d.channel(st.channel).viewers
                    } else {
                        0
                    }),
                    _ => unknown("Stream", name),
                })
            }
            Obj::Category(k) => {
                let cat = d.category(*k);
                match f {
                    F::Id => Ok(string(out, &cat.id)),
                    F::Slug => Ok(string(out, &cat.slug)),
                    F::Name => Ok(string(out, &cat.name)),
                    F::ViewerCount => Ok(int(d.category_viewers(*k) as i64)),
                    F::LiveStreamCount => Ok(int(d
                        .live
                        .iter()
                        .filter(|&&c| d.channel(c).category == Some(*k))
                        .count() as i64)),
                    F::Streams => stream_page(d, &d.live_sorted(Some(*k), None), args),
                    _ => Ok(unknown("Category", name)),
                }
            }
            Obj::Message(c, seq) => Ok(message(d, out, *c, *seq, f, name)),
            Obj::Deleted(c, seq) => Ok(match (f, d.channel(*c).log.get(*seq)) {
                (F::ChannelId, _) => string(out, &d.channel(*c).id),
                (F::Seq, _) => int(*seq),
                (F::MessageSeq, Some(RoomEvent::Deleted { message_seq })) => int(*message_seq),
                (_, _) => unknown("ChatMessageDeleted", name),
            }),
            Obj::Banned(c, seq) => Ok(match (f, d.channel(*c).log.get(*seq)) {
                (F::ChannelId, _) => string(out, &d.channel(*c).id),
                (F::Seq, _) => int(*seq),
                (F::UserId, Some(RoomEvent::Banned { user, .. })) => string(out, &d.user(*user).id),
                (F::Until, Some(RoomEvent::Banned { until, .. })) => {
                    until.map_or(Resolved::Null, |t| time(out, t))
                }
                (_, _) => unknown("UserBanned", name),
            }),
            Obj::StreamUpdate(c) => {
                let ch = d.channel(*c);
                Ok(match f {
                    F::Channel => Resolved::Object(Obj::Channel(*c)),
                    F::IsLive => boolean(ch.stream.is_some()),
                    F::Title => string(out, &ch.title),
                    F::Category => opt_category(ch.category),
                    F::ViewerCount => int(ch.viewers),
                    _ => unknown("StreamUpdate", name),
                })
            }
            Obj::Connection(page) => Ok(match f {
                F::Edges => Resolved::List(
                    (0..page.items.len() as u32)
                        .map(|i| Resolved::Object(Obj::Edge(Rc::clone(page), i)))
                        .collect(),
                ),
                F::Nodes => {
                    Resolved::List(page.items.iter().cloned().map(Resolved::Object).collect())
                }
                F::PageInfo => Resolved::Object(Obj::PageInfo(Rc::clone(page))),
                F::TotalCount => int(page.total as i64),
                _ => unknown("Connection", name),
            }),
            Obj::Edge(page, i) => Ok(match f {
                F::Cursor => cursor(out, page.start + *i as usize),
                F::Node => Resolved::Object(page.items[*i as usize].clone()),
                _ => unknown("Edge", name),
            }),
            Obj::PageInfo(page) => Ok(match f {
                F::HasNextPage => boolean(page.has_next),
                F::EndCursor => match page.items.len() {
                    0 => Resolved::Null,
                    n => cursor(out, page.start + n - 1),
                },
                _ => unknown("PageInfo", name),
            }),
            Obj::Root | Obj::RoomEvent(..) | Obj::ChannelRoot(_) => Ok(unknown("root", name)),
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
    out: &mut Out<'_, Obj>,
    u: UserIx,
    f: F,
    name: &str,
    args: &Args<'_>,
) -> Result<Resolved<Obj>, FieldError> {
    let user = d.user(u);
    Ok(match f {
        F::Id => string(out, &user.id),
        F::Login => string(out, &user.login),
        F::DisplayName => string(out, &user.display_name),
        F::Bio => user
            .bio
            .as_deref()
            .map_or(Resolved::Null, |b| string(out, b)),
        F::Roles => {
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
        F::CreatedAt => time(out, user.created_at),
        F::Channel => Resolved::Object(Obj::Channel(user.channel)),
        F::Following => {
            let first = count_arg(args, "first", 20)?;
            let start = after_arg(args)?;
            let list = &user.following;
            // Newest follow first.
            let page = Page::of(list.len(), start, first, |i| {
                Obj::Channel(list[list.len() - 1 - i])
            });
            Resolved::Object(Obj::Connection(Rc::new(page)))
        }
        _ => unknown("User", name),
    })
}

fn channel(
    cx: &Request<'_>,
    d: &Data,
    out: &mut Out<'_, Obj>,
    c: ChannelIx,
    f: F,
    name: &str,
    args: &Args<'_>,
) -> Result<Resolved<Obj>, FieldError> {
    let ch = d.channel(c);
    Ok(match f {
        F::Id => string(out, &ch.id),
        F::Login => string(out, d.channel_login(c)),
        F::Owner => Resolved::Object(Obj::User(ch.owner)),
        F::Title => string(out, &ch.title),
        F::Language => string(out, &ch.language),
        F::Tags => Resolved::List(ch.tags.iter().map(|t| string(out, t)).collect()),
        F::Category => opt_category(ch.category),
        F::IsLive => boolean(ch.stream.is_some()),
        F::Stream => ch
            .stream
            .map_or(Resolved::Null, |s| Resolved::Object(Obj::Stream(s))),
        F::FollowerCount => int(ch.followers.len() as i64),
        F::Followers => {
            let first = count_arg(args, "first", 20)?;
            let start = after_arg(args)?;
            let list = &ch.followers;
            // Newest follower first.
            let page = Page::of(list.len(), start, first, |i| {
                Obj::User(list[list.len() - 1 - i])
            });
            Resolved::Object(Obj::Connection(Rc::new(page)))
        }
        F::Moderators => Resolved::List(
            ch.moderators
                .iter()
                .map(|&m| Resolved::Object(Obj::User(m)))
                .collect(),
        ),
        F::ViewerIsFollowing => {
            boolean(cx.viewer.is_some_and(|v| d.user(v).following.contains(&c)))
        }
        F::RecentMessages => {
            let last = count_arg(args, "last", 20)?;
            Resolved::List(
                d.messages(c, last, None)
                    .into_iter()
                    .map(|seq| Resolved::Object(Obj::Message(c, seq)))
                    .collect(),
            )
        }
        F::ViewerCount => int(ch.viewers),
        _ => unknown("Channel", name),
    })
}

fn message(
    d: &Data,
    out: &mut Out<'_, Obj>,
    c: ChannelIx,
    seq: u32,
    f: F,
    name: &str,
) -> Resolved<Obj> {
    let Some(RoomEvent::Message {
        author,
        body,
        sent_at,
        ..
    }) = d.channel(c).log.get(seq)
    else {
        return Resolved::Error("the message is gone".into());
    };
    match f {
        F::Id => out.text_concat(&[
            "msg_",
            &d.channel(c).id,
            "_",
            itoa::Buffer::new().format(seq),
        ]),
        F::Channel => Resolved::Object(Obj::Channel(c)),
        F::Seq => int(seq),
        F::Author => Resolved::Object(Obj::User(*author)),
        F::Body => string(out, body),
        F::SentAt => time(out, *sent_at),
        _ => unknown("ChatMessage", name),
    }
}
