//! Fields of the domain's object types, each resolved for a whole level of parents:
//! scalars from the rows the objects carry, relations loaded for every parent of the
//! level in one batch ([`super::load`]).

use std::rc::Rc;

use graphql_exec::exec::{Args, FieldError, Leaf, Out, Resolved};
use streamhub_pubsub::Chat;

use super::load::field_error;
use super::query::stream_page;
use super::values::{after_arg, boolean, count_arg, cursor, int, string, time, BAD_USER_INPUT};
use super::{value, Obj, Page, Request};
use crate::store::cursor::Cursor;
use crate::store::{Channel, StoreError, User};

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

/// Resolves `field` for every parent (all of one type).
pub(super) async fn resolve(
    cx: &Request<'_>,
    name: &str,
    args: &Args<'_>,
    parents: &[Obj],
    out: &mut Out<'_, Obj>,
) {
    let f = F::of(name);
    let Some(first) = parents.first() else {
        return;
    };
    // Relations: one batch for the whole level.
    let ids = || -> Vec<Option<&str>> { parents.iter().map(|p| relation_id(p, f)).collect() };
    let batched = match (first, f) {
        (Obj::Channel(_), F::Owner) | (Obj::Message(_), F::Author) => {
            let ids = ids();
            let rows = cx.users(&wanted(&ids)).await;
            Some(place(&ids, rows, Obj::User, || missing("user")))
        }
        (Obj::User(_) | Obj::Stream(_) | Obj::Message(_), F::Channel) => {
            let ids = ids();
            let rows = cx.channels(&wanted(&ids)).await;
            Some(place(&ids, rows, Obj::Channel, || missing("channel")))
        }
        // A live channel's stream that is gone reads as offline.
        (Obj::Channel(_), F::Stream) => {
            let ids = ids();
            let rows = cx.streams(&wanted(&ids)).await;
            Some(place(&ids, rows, Obj::Stream, || Resolved::Null))
        }
        (Obj::Channel(_) | Obj::Stream(_) | Obj::StreamUpdate(_), F::Category) => {
            Some(category_of(cx, parents).await)
        }
        (Obj::Channel(_), F::Moderators) => Some(moderators(cx, parents).await),
        (Obj::Channel(_), F::ViewerIsFollowing) => Some(viewer_follows(cx, parents).await),
        (Obj::Stream(_), F::ViewerCount) => Some(stream_viewers(cx, parents).await),
        _ => None,
    };
    if let Some(values) = batched {
        out.extend(values);
        return;
    }
    for p in parents {
        let r = match p {
            Obj::User(u) => user(cx, out, u, f, name, args).await,
            Obj::Channel(c) => channel(cx, out, c, f, name, args).await,
            Obj::Stream(st) => Ok(match f {
                F::Id => string(out, &st.id),
                F::Title => string(out, &st.title),
                F::Language => string(out, &st.language),
                F::StartedAt => time(out, st.started_at),
                _ => unknown("Stream", name),
            }),
            Obj::Category(k) => match f {
                F::Id => Ok(string(out, &k.id)),
                F::Slug => Ok(string(out, &k.slug)),
                F::Name => Ok(string(out, &k.name)),
                F::ViewerCount | F::LiveStreamCount => {
                    cx.live().await.map_err(field_error).map(|live| {
                        let of = live
                            .iter()
                            .filter(|l| l.category_id.as_deref() == Some(&*k.id));
                        if f == F::ViewerCount {
                            int(of
                                .map(|l| i64::from(cx.viewers(&l.channel_id)))
                                .sum::<i64>())
                        } else {
                            int(of.count() as i64)
                        }
                    })
                }
                F::Streams => stream_page(cx, Some(&k.id), None, args).await,
                _ => Ok(unknown("Category", name)),
            },
            Obj::Message(m) => Ok(match f {
                F::Id => out.text_concat(&[
                    "msg_",
                    &m.channel_id,
                    "_",
                    itoa::Buffer::new().format(m.seq),
                ]),
                F::Seq => int(m.seq as i64),
                F::Body => string(out, &m.body),
                F::SentAt => time(out, m.sent_at),
                _ => unknown("ChatMessage", name),
            }),
            Obj::Deleted(e) => Ok(match (f, &e.payload.chat) {
                (F::ChannelId, _) => string(out, &e.room),
                (F::Seq, _) => int(e.seq as i64),
                (F::MessageSeq, Chat::Deleted { message_seq }) => int(*message_seq as i64),
                (_, _) => unknown("ChatMessageDeleted", name),
            }),
            Obj::Banned(e) => Ok(match (f, &e.payload.chat) {
                (F::ChannelId, _) => string(out, &e.room),
                (F::Seq, _) => int(e.seq as i64),
                (F::UserId, Chat::Banned { user_id, .. }) => string(out, user_id),
                (F::Until, Chat::Banned { until, .. }) => {
                    until.map_or(Resolved::Null, |t| time(out, t))
                }
                (_, _) => unknown("UserBanned", name),
            }),
            Obj::StreamUpdate(ch) => Ok(match f {
                F::Channel => Resolved::Object(Obj::Channel(Rc::clone(ch))),
                F::IsLive => boolean(ch.stream_id.is_some()),
                F::Title => string(out, &ch.title),
                F::ViewerCount => int(cx.viewers(&ch.id)),
                _ => unknown("StreamUpdate", name),
            }),
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
                F::Cursor => cursor(out, &page.cursors[*i as usize]),
                F::Node => Resolved::Object(page.items[*i as usize].clone()),
                _ => unknown("Edge", name),
            }),
            Obj::PageInfo(page) => Ok(match f {
                F::HasNextPage => boolean(page.has_next),
                F::EndCursor => match page.cursors.last() {
                    None => Resolved::Null,
                    Some(c) => cursor(out, c),
                },
                _ => unknown("PageInfo", name),
            }),
            Obj::Root | Obj::RoomEvent(_) | Obj::ChannelRoot(_) => Ok(unknown("root", name)),
        };
        out.push(value(r));
    }
}

fn unknown(ty: &str, field: &str) -> Resolved<Obj> {
    Resolved::Error(format!("{ty}.{field} has no resolver").into())
}

/// The value of a to-one relation whose row is missing.
fn missing(what: &str) -> Resolved<Obj> {
    Resolved::Error(format!("the {what} is gone").into())
}

/// The id a to-one relation of `p` points at (None: the relation is null).
fn relation_id(p: &Obj, f: F) -> Option<&str> {
    match (p, f) {
        (Obj::Channel(c), F::Owner) => Some(&c.owner_id),
        (Obj::Channel(c), F::Stream) => c.stream_id.as_deref(),
        (Obj::User(u), F::Channel) => Some(&u.channel_id),
        (Obj::Stream(s), F::Channel) => Some(&s.channel_id),
        (Obj::Message(m), F::Channel) => Some(&m.channel_id),
        (Obj::Message(m), F::Author) => Some(&m.author.id),
        _ => None,
    }
}

/// The ids to load: those that are there, in order.
fn wanted<'a>(ids: &[Option<&'a str>]) -> Vec<&'a str> {
    ids.iter().flatten().copied().collect()
}

/// Every parent's value of a to-one relation from the rows loaded for [`wanted`]: null
/// where there is no id, `missing()` where the row is gone, the store's error for all
/// when the load failed.
fn place<T>(
    ids: &[Option<&str>],
    rows: Result<Vec<Option<Rc<T>>>, StoreError>,
    wrap: fn(Rc<T>) -> Obj,
    missing: impl Fn() -> Resolved<Obj>,
) -> Vec<Resolved<Obj>> {
    match rows {
        Err(e) => ids
            .iter()
            .map(|_| Resolved::Error(field_error(e.clone())))
            .collect(),
        Ok(rows) => {
            let mut rows = rows.into_iter();
            ids.iter()
                .map(|id| match id {
                    None => Resolved::Null,
                    Some(_) => rows
                        .next()
                        .flatten()
                        .map_or_else(&missing, |row| Resolved::Object(wrap(row))),
                })
                .collect()
        }
    }
}

/// `category` of channels, streams and stream updates, from the categories (cached).
async fn category_of(cx: &Request<'_>, parents: &[Obj]) -> Vec<Resolved<Obj>> {
    let all = match cx.categories().await {
        Ok(all) => all,
        Err(e) => {
            return parents
                .iter()
                .map(|_| Resolved::Error(field_error(e.clone())))
                .collect()
        }
    };
    parents
        .iter()
        .map(|p| {
            let id = match p {
                Obj::Channel(c) | Obj::StreamUpdate(c) => c.category_id.as_deref(),
                Obj::Stream(s) => s.category_id.as_deref(),
                _ => None,
            };
            id.and_then(|id| all.iter().find(|k| &*k.id == id))
                .map_or(Resolved::Null, |k| {
                    Resolved::Object(Obj::Category(Rc::clone(k)))
                })
        })
        .collect()
}

/// `Channel.moderators` for every parent, in one load.
async fn moderators(cx: &Request<'_>, parents: &[Obj]) -> Vec<Resolved<Obj>> {
    let channels: Vec<&Channel> = parents
        .iter()
        .filter_map(|p| match p {
            Obj::Channel(c) => Some(&**c),
            _ => None,
        })
        .collect();
    let wanted: Vec<&str> = channels
        .iter()
        .flat_map(|c| c.moderator_ids.iter().map(|m| &**m))
        .collect();
    let rows = match cx.users(&wanted).await {
        Ok(rows) => rows,
        Err(e) => {
            return parents
                .iter()
                .map(|_| Resolved::Error(field_error(e.clone())))
                .collect()
        }
    };
    let mut rows = rows.into_iter();
    channels
        .iter()
        .map(|c| {
            Resolved::List(
                c.moderator_ids
                    .iter()
                    .filter_map(|_| rows.next().flatten())
                    .map(|u| Resolved::Object(Obj::User(u)))
                    .collect(),
            )
        })
        .collect()
}

/// `Channel.viewerIsFollowing` for every parent, in one load.
async fn viewer_follows(cx: &Request<'_>, parents: &[Obj]) -> Vec<Resolved<Obj>> {
    let Some(v) = &cx.viewer else {
        return parents.iter().map(|_| boolean(false)).collect();
    };
    let ids: Vec<&str> = parents
        .iter()
        .map(|p| match p {
            Obj::Channel(c) => &*c.id,
            _ => "",
        })
        .collect();
    match cx.follows(&v.id, &ids).await {
        Ok(yes) => yes.into_iter().map(boolean).collect(),
        Err(e) => parents
            .iter()
            .map(|_| Resolved::Error(field_error(e.clone())))
            .collect(),
    }
}

/// `Stream.viewerCount`: its channel's viewers while it is the channel's live stream,
/// else 0; the channels in one load.
async fn stream_viewers(cx: &Request<'_>, parents: &[Obj]) -> Vec<Resolved<Obj>> {
    let streams: Vec<&crate::store::Stream> = parents
        .iter()
        .filter_map(|p| match p {
            Obj::Stream(s) => Some(&**s),
            _ => None,
        })
        .collect();
    let ids: Vec<&str> = streams.iter().map(|s| &*s.channel_id).collect();
    match cx.channels(&ids).await {
        Err(e) => parents
            .iter()
            .map(|_| Resolved::Error(field_error(e.clone())))
            .collect(),
        Ok(channels) => streams
            .iter()
            .zip(channels)
            .map(|(s, c)| {
                let live = c.is_some_and(|c| c.stream_id.as_deref() == Some(&*s.id));
                int(if live { cx.viewers(&s.channel_id) } else { 0 })
            })
            .collect(),
    }
}

/// The key a follow list's page starts after.
fn follow_after(args: &Args<'_>) -> Result<Option<u64>, FieldError> {
    match after_arg(args)? {
        None => Ok(None),
        Some(Cursor::Follow(key)) => Ok(Some(key)),
        Some(other) => Err(FieldError::new(
            BAD_USER_INPUT,
            format!("`{}` is not a cursor of this list", other.encode()),
        )),
    }
}

/// A page of users or channels from a follow list's keys and ids.
async fn follow_page(
    cx: &Request<'_>,
    page: crate::store::KeyPage,
    users: bool,
) -> Result<Resolved<Obj>, StoreError> {
    let ids: Vec<&str> = page.items.iter().map(|(_, id)| &**id).collect();
    let (mut items, mut cursors) = (Vec::with_capacity(ids.len()), Vec::with_capacity(ids.len()));
    let objs: Vec<Option<Obj>> = if users {
        cx.users(&ids)
            .await?
            .into_iter()
            .map(|u| u.map(Obj::User))
            .collect()
    } else {
        cx.channels(&ids)
            .await?
            .into_iter()
            .map(|c| c.map(Obj::Channel))
            .collect()
    };
    for ((key, _), obj) in page.items.iter().zip(objs) {
        if let Some(obj) = obj {
            items.push(obj);
            cursors.push(Cursor::Follow(*key));
        }
    }
    Ok(Resolved::Object(Obj::Connection(Rc::new(Page {
        items,
        cursors,
        has_next: page.has_next,
        total: page.total,
    }))))
}

async fn user(
    cx: &Request<'_>,
    out: &mut Out<'_, Obj>,
    user: &Rc<User>,
    f: F,
    name: &str,
    args: &Args<'_>,
) -> Result<Resolved<Obj>, FieldError> {
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
                Some(t) if *t.id == *user.id => t.admin,
                _ => user.admin,
            };
            let mut roles = vec![Resolved::Leaf(Leaf::Enum("VIEWER"))];
            if admin {
                roles.push(Resolved::Leaf(Leaf::Enum("ADMIN")));
            }
            Resolved::List(roles)
        }
        F::CreatedAt => time(out, user.created_at),
        F::Following => {
            let first = count_arg(args, "first", 20)?;
            let after = follow_after(args)?;
            let page = cx
                .domain
                .store
                .following(&user.id, after, first)
                .await
                .map_err(field_error)?;
            follow_page(cx, page, false).await.map_err(field_error)?
        }
        _ => unknown("User", name),
    })
}

async fn channel(
    cx: &Request<'_>,
    out: &mut Out<'_, Obj>,
    ch: &Rc<Channel>,
    f: F,
    name: &str,
    args: &Args<'_>,
) -> Result<Resolved<Obj>, FieldError> {
    Ok(match f {
        F::Id => string(out, &ch.id),
        F::Login => string(out, &ch.login),
        F::Title => string(out, &ch.title),
        F::Language => string(out, &ch.language),
        F::Tags => Resolved::List(ch.tags.iter().map(|t| string(out, t)).collect()),
        F::IsLive => boolean(ch.stream_id.is_some()),
        F::FollowerCount => int(ch.follower_count),
        F::Followers => {
            let first = count_arg(args, "first", 20)?;
            let after = follow_after(args)?;
            let page = cx
                .domain
                .store
                .followers(&ch.id, after, first)
                .await
                .map_err(field_error)?;
            follow_page(cx, page, true).await.map_err(field_error)?
        }
        F::RecentMessages => {
            let last = count_arg(args, "last", 20)?;
            let (all, skip) = cx
                .recent_messages(&ch.id, last)
                .await
                .map_err(field_error)?;
            Resolved::List(
                all[skip..]
                    .iter()
                    .map(|m| Resolved::Object(Obj::Message(Rc::clone(m))))
                    .collect(),
            )
        }
        F::ViewerCount => int(cx.viewers(&ch.id)),
        _ => unknown("Channel", name),
    })
}
