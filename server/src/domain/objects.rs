//! Fields of the domain's object types, each resolved for a whole level of parents:
//! scalars from the rows the objects carry, relations loaded for every parent of the
//! level in one batch ([`super::load`]).

use std::rc::Rc;

use graphql_exec::exec::{Args, FieldError, Leaf, Out, Resolved};
use graphql_exec::plan::PlannedField;
use graphql_exec::schema::Schema;
use streamhub_pubsub::Chat;

use super::load::field_error;
use super::query::stream_page;
use super::values::{after_arg, boolean, count_arg, cursor, int, string, time, BAD_USER_INPUT};
use super::{value, Obj, Page, Request};
use crate::store::cache::FollowList;
use crate::store::cursor::Cursor;
use crate::store::{Channel, KeyPage, StoreError, User};

/// A field, as the resolvers tell fields apart (by name, matched once per schema
/// field when the domain starts: see [`Fields`]).
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

/// What each field of the schema is ([`F`]), by its type and position: decided from
/// the names once, so a batch finds its field without comparing strings.
#[derive(Debug)]
pub(super) struct Fields(Vec<Box<[F]>>);

impl Fields {
    /// Every field of `schema`'s types.
    pub(super) fn new(schema: &Schema) -> Fields {
        Fields(
            schema
                .types()
                .iter()
                .map(|t| t.fields().iter().map(|f| F::of(&f.name)).collect())
                .collect(),
        )
    }

    /// A planned field's.
    fn of(&self, field: &PlannedField) -> F {
        self.0
            .get(field.parent.0 as usize)
            .and_then(|fields| fields.get(field.position as usize))
            .copied()
            .unwrap_or(F::Unknown)
    }
}

/// Resolves `field` for every parent (all of one type).
///
/// Most fields are scalars read from the rows the parents carry, resolved without an
/// await; relations load the whole level in one batch; recent messages come from the
/// shard's cache; pages (follow lists, a category's streams) are awaited per parent
/// behind a box, so that the future every batch creates stays small.
pub(super) async fn resolve(
    cx: &Request<'_>,
    field: &PlannedField,
    args: &Args<'_>,
    parents: &[Obj],
    out: &mut Out<'_, Obj>,
) {
    let (f, name) = (cx.domain.fields.of(field), &*field.name);
    let Some(first) = parents.first() else {
        return;
    };
    match load(first, f) {
        Load::Users => {
            let ids = wanted(parents, f);
            let rows = cx.users(&ids).await;
            place(parents, f, rows, Obj::User, || missing("user"), out);
        }
        Load::Channels => {
            let ids = wanted(parents, f);
            let rows = cx.channels(&ids).await;
            place(parents, f, rows, Obj::Channel, || missing("channel"), out);
        }
        // A live channel's stream that is gone reads as offline.
        Load::Streams => {
            let ids = wanted(parents, f);
            let rows = cx.streams(&ids).await;
            place(parents, f, rows, Obj::Stream, || Resolved::Null, out);
        }
        Load::Category => category_of(cx, parents, out).await,
        Load::CategoryCounts => category_counts(cx, parents, f, out).await,
        Load::Moderators => moderators(cx, parents, out).await,
        Load::ViewerFollows => viewer_follows(cx, parents, out).await,
        Load::StreamViewers => stream_viewers(cx, parents, out).await,
        Load::Paged => {
            for p in parents {
                let r = Box::pin(paged(cx, p, f, args)).await;
                out.push(value(r));
            }
        }
        Load::RecentMessages => {
            for p in parents {
                let r = recent_messages(cx, p, args).await;
                out.push(value(r));
            }
        }
        Load::None => scalars(cx, f, name, parents, out),
    }
}

/// Resolves `field` for every parent if it is read from the parents' rows (no await):
/// true when done (see [`graphql_exec::exec::Resolver::resolve_now`]).
pub(super) fn resolve_now(
    cx: &Request<'_>,
    field: &PlannedField,
    parents: &[Obj],
    out: &mut Out<'_, Obj>,
) -> bool {
    let (f, name) = (cx.domain.fields.of(field), &*field.name);
    match parents.first() {
        Some(first) if load(first, f) != Load::None => false,
        _ => {
            scalars(cx, f, name, parents, out);
            true
        }
    }
}

/// What a field needs loaded (and awaited) for a level of parents like `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// A to-one relation to users, in one batch.
    Users,
    /// A to-one relation to channels, in one batch.
    Channels,
    /// A channel's live stream, in one batch.
    Streams,
    /// The category of channels, streams and stream updates.
    Category,
    /// A category's viewers or live streams, from the live list.
    CategoryCounts,
    /// A channel's moderators.
    Moderators,
    /// Whether the viewer follows each channel.
    ViewerFollows,
    /// A stream's viewers (its channel's, while live).
    StreamViewers,
    /// A page per parent: follow lists, a category's streams.
    Paged,
    /// A channel's recent messages.
    RecentMessages,
    /// Nothing: read from the parents' rows.
    None,
}

fn load(first: &Obj, f: F) -> Load {
    match (first, f) {
        (Obj::Channel(_), F::Owner) | (Obj::Message(_), F::Author) => Load::Users,
        (Obj::User(_) | Obj::Stream(_) | Obj::Message(_), F::Channel) => Load::Channels,
        (Obj::Channel(_), F::Stream) => Load::Streams,
        (Obj::Channel(_) | Obj::Stream(_) | Obj::StreamUpdate(_), F::Category) => Load::Category,
        (Obj::Category(_), F::ViewerCount | F::LiveStreamCount) => Load::CategoryCounts,
        (Obj::Channel(_), F::Moderators) => Load::Moderators,
        (Obj::Channel(_), F::ViewerIsFollowing) => Load::ViewerFollows,
        (Obj::Stream(_), F::ViewerCount) => Load::StreamViewers,
        (Obj::User(_), F::Following)
        | (Obj::Channel(_), F::Followers)
        | (Obj::Category(_), F::Streams) => Load::Paged,
        (Obj::Channel(_), F::RecentMessages) => Load::RecentMessages,
        _ => Load::None,
    }
}

/// Every parent's scalar field `f` (called `name`).
fn scalars(cx: &Request<'_>, f: F, name: &str, parents: &[Obj], out: &mut Out<'_, Obj>) {
    for p in parents {
        let r = scalar(cx, out, p, f, name);
        out.push(r);
    }
}

/// A field read from the row `p` carries (or from the shard's presence), no await.
fn scalar(cx: &Request<'_>, out: &mut Out<'_, Obj>, p: &Obj, f: F, name: &str) -> Resolved<Obj> {
    match p {
        Obj::User(u) => user(cx, out, u, f, name),
        Obj::Channel(c) => channel(cx, out, c, f, name),
        Obj::Stream(st) => match f {
            F::Id => string(out, &st.id),
            F::Title => string(out, &st.title),
            F::Language => string(out, &st.language),
            F::StartedAt => time(out, st.started_at),
            _ => unknown("Stream", name),
        },
        Obj::Category(k) => match f {
            F::Id => string(out, &k.id),
            F::Slug => string(out, &k.slug),
            F::Name => string(out, &k.name),
            _ => unknown("Category", name),
        },
        Obj::Message(m) => match f {
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
        },
        Obj::Deleted(e) => match (f, &e.payload.chat) {
            (F::ChannelId, _) => string(out, &e.room),
            (F::Seq, _) => int(e.seq as i64),
            (F::MessageSeq, Chat::Deleted { message_seq }) => int(*message_seq as i64),
            (_, _) => unknown("ChatMessageDeleted", name),
        },
        Obj::Banned(e) => match (f, &e.payload.chat) {
            (F::ChannelId, _) => string(out, &e.room),
            (F::Seq, _) => int(e.seq as i64),
            (F::UserId, Chat::Banned { user_id, .. }) => string(out, user_id),
            (F::Until, Chat::Banned { until, .. }) => {
                until.map_or(Resolved::Null, |t| time(out, t))
            }
            (_, _) => unknown("UserBanned", name),
        },
        Obj::StreamUpdate(ch) => match f {
            F::Channel => Resolved::Object(Obj::Channel(Rc::clone(ch))),
            F::IsLive => boolean(ch.stream_id.is_some()),
            F::Title => string(out, &ch.title),
            F::ViewerCount => int(cx.viewers(&ch.id)),
            _ => unknown("StreamUpdate", name),
        },
        Obj::Connection(page) => match f {
            F::Edges => Resolved::List(
                (0..page.items.len() as u32)
                    .map(|i| Resolved::Object(Obj::Edge(Rc::clone(page), i)))
                    .collect(),
            ),
            F::Nodes => Resolved::List(page.items.iter().cloned().map(Resolved::Object).collect()),
            F::PageInfo => Resolved::Object(Obj::PageInfo(Rc::clone(page))),
            F::TotalCount => int(page.total as i64),
            _ => unknown("Connection", name),
        },
        Obj::Edge(page, i) => match f {
            F::Cursor => cursor(out, &page.cursors[*i as usize]),
            F::Node => Resolved::Object(page.items[*i as usize].clone()),
            _ => unknown("Edge", name),
        },
        Obj::PageInfo(page) => match f {
            F::HasNextPage => boolean(page.has_next),
            F::EndCursor => match page.cursors.last() {
                None => Resolved::Null,
                Some(c) => cursor(out, c),
            },
            _ => unknown("PageInfo", name),
        },
        Obj::Root | Obj::RoomEvent(_) | Obj::ChannelRoot(_) => unknown("root", name),
    }
}

/// `Channel.recentMessages` of one parent (from the shard's cache, mostly).
async fn recent_messages(
    cx: &Request<'_>,
    p: &Obj,
    args: &Args<'_>,
) -> Result<Resolved<Obj>, FieldError> {
    let Obj::Channel(ch) = p else {
        return Ok(Resolved::Null);
    };
    let last = count_arg(args, "last", 20)?;
    let (all, skip) = cx
        .recent_messages(&ch.id, last)
        .await
        .map_err(field_error)?;
    Ok(Resolved::List(
        all[skip..]
            .iter()
            .map(|m| Resolved::Object(Obj::Message(Rc::clone(m))))
            .collect(),
    ))
}

/// A paged field of one parent: a follow list, a category's streams.
async fn paged(
    cx: &Request<'_>,
    p: &Obj,
    f: F,
    args: &Args<'_>,
) -> Result<Resolved<Obj>, FieldError> {
    match (p, f) {
        (Obj::User(u), F::Following) => follows(cx, FollowList::Following, &u.id, args).await,
        (Obj::Channel(c), F::Followers) => follows(cx, FollowList::Followers, &c.id, args).await,
        (Obj::Category(k), F::Streams) => stream_page(cx, Some(&k.id), None, args).await,
        _ => Ok(Resolved::Null),
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

/// The ids a to-one relation of `parents` loads: those that are there, in order.
fn wanted(parents: &[Obj], f: F) -> Vec<&str> {
    let mut ids = Vec::with_capacity(parents.len());
    ids.extend(parents.iter().filter_map(|p| relation_id(p, f)));
    ids
}

/// Every parent's value of a to-one relation from the rows loaded for [`wanted`]: null
/// where there is no id, `missing()` where the row is gone, the store's error for all
/// when the load failed.
fn place<T>(
    parents: &[Obj],
    f: F,
    rows: Result<Vec<Option<Rc<T>>>, StoreError>,
    wrap: fn(Rc<T>) -> Obj,
    missing: impl Fn() -> Resolved<Obj>,
    out: &mut Out<'_, Obj>,
) {
    let mut rows = match rows {
        Ok(rows) => rows.into_iter(),
        Err(e) => return fail(parents, e, out),
    };
    for p in parents {
        out.push(match relation_id(p, f) {
            None => Resolved::Null,
            Some(_) => rows
                .next()
                .flatten()
                .map_or_else(&missing, |row| Resolved::Object(wrap(row))),
        });
    }
}

/// The store's error for every parent.
fn fail(parents: &[Obj], e: StoreError, out: &mut Out<'_, Obj>) {
    let e = field_error(e);
    for _ in parents {
        out.push(Resolved::Error(e.clone()));
    }
}

/// `category` of channels, streams and stream updates, from the categories (cached).
async fn category_of(cx: &Request<'_>, parents: &[Obj], out: &mut Out<'_, Obj>) {
    let all = match cx.categories().await {
        Ok(all) => all,
        Err(e) => return fail(parents, e, out),
    };
    for p in parents {
        let id = match p {
            Obj::Channel(c) | Obj::StreamUpdate(c) => c.category_id.as_deref(),
            Obj::Stream(s) => s.category_id.as_deref(),
            _ => None,
        };
        out.push(
            id.and_then(|id| all.iter().find(|k| &*k.id == id))
                .map_or(Resolved::Null, |k| {
                    Resolved::Object(Obj::Category(Rc::clone(k)))
                }),
        );
    }
}

/// `Category.viewerCount` (`f` is `ViewerCount`) or `liveStreamCount` of every parent,
/// from the live channels (cached) and the shard's presence.
async fn category_counts(cx: &Request<'_>, parents: &[Obj], f: F, out: &mut Out<'_, Obj>) {
    let live = match cx.live().await {
        Ok(live) => live,
        Err(e) => return fail(parents, e, out),
    };
    for p in parents {
        let Obj::Category(k) = p else {
            out.push(Resolved::Null);
            continue;
        };
        let of = live
            .iter()
            .filter(|l| l.category_id.as_deref() == Some(&*k.id));
        out.push(if f == F::ViewerCount {
            let total = cx.domain.presence.total(of.map(|l| &*l.channel_id));
            int(i64::try_from(total).unwrap_or(i64::MAX))
        } else {
            int(of.count() as i64)
        });
    }
}

/// `Channel.moderators` for every parent, in one load.
async fn moderators(cx: &Request<'_>, parents: &[Obj], out: &mut Out<'_, Obj>) {
    let channels = parents.iter().filter_map(|p| match p {
        Obj::Channel(c) => Some(&**c),
        _ => None,
    });
    let wanted: Vec<&str> = channels
        .clone()
        .flat_map(|c| c.moderator_ids.iter().map(|m| &**m))
        .collect();
    let mut rows = match cx.users(&wanted).await {
        Ok(rows) => rows.into_iter(),
        Err(e) => return fail(parents, e, out),
    };
    for c in channels {
        out.push(Resolved::List(
            c.moderator_ids
                .iter()
                .filter_map(|_| rows.next().flatten())
                .map(|u| Resolved::Object(Obj::User(u)))
                .collect(),
        ));
    }
}

/// `Channel.viewerIsFollowing` for every parent, in one load.
async fn viewer_follows(cx: &Request<'_>, parents: &[Obj], out: &mut Out<'_, Obj>) {
    let Some(v) = &cx.viewer else {
        for _ in parents {
            out.push(boolean(false));
        }
        return;
    };
    let ids: Vec<&str> = parents
        .iter()
        .map(|p| match p {
            Obj::Channel(c) => &*c.id,
            _ => "",
        })
        .collect();
    match cx.follows(&v.id, &ids).await {
        Ok(yes) => {
            for y in yes {
                out.push(boolean(y));
            }
        }
        Err(e) => fail(parents, e, out),
    }
}

/// `Stream.viewerCount`: its channel's viewers while it is the channel's live stream,
/// else 0; the channels in one load.
async fn stream_viewers(cx: &Request<'_>, parents: &[Obj], out: &mut Out<'_, Obj>) {
    let streams = parents.iter().filter_map(|p| match p {
        Obj::Stream(s) => Some(&**s),
        _ => None,
    });
    let ids: Vec<&str> = streams.clone().map(|s| &*s.channel_id).collect();
    match cx.channels(&ids).await {
        Err(e) => fail(parents, e, out),
        Ok(channels) => {
            for (s, c) in streams.zip(channels) {
                let live = c.is_some_and(|c| c.stream_id.as_deref() == Some(&*s.id));
                out.push(int(if live { cx.viewers(&s.channel_id) } else { 0 }));
            }
        }
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

/// `User.following` or `Channel.followers` of the user or channel `id`.
async fn follows(
    cx: &Request<'_>,
    list: FollowList,
    id: &str,
    args: &Args<'_>,
) -> Result<Resolved<Obj>, FieldError> {
    let first = count_arg(args, "first", 20)?;
    let after = follow_after(args)?;
    let page = cx
        .follow_list(list, id, after, first)
        .await
        .map_err(field_error)?;
    follow_page(cx, list, page).await.map_err(field_error)
}

/// A page of users or channels: the first `take` items of a follow list's page.
async fn follow_page(
    cx: &Request<'_>,
    list: FollowList,
    (page, take): (Rc<KeyPage>, usize),
) -> Result<Resolved<Obj>, StoreError> {
    let shown = &page.items[..take];
    let ids: Vec<&str> = shown.iter().map(|(_, id)| &**id).collect();
    let (mut items, mut cursors) = (Vec::with_capacity(take), Vec::with_capacity(take));
    match list {
        FollowList::Followers => {
            for ((key, _), u) in shown.iter().zip(cx.users(&ids).await?) {
                if let Some(u) = u {
                    items.push(Obj::User(u));
                    cursors.push(Cursor::Follow(*key));
                }
            }
        }
        FollowList::Following => {
            for ((key, _), c) in shown.iter().zip(cx.channels(&ids).await?) {
                if let Some(c) = c {
                    items.push(Obj::Channel(c));
                    cursors.push(Cursor::Follow(*key));
                }
            }
        }
    }
    Ok(Resolved::Object(Obj::Connection(Rc::new(Page {
        items,
        cursors,
        has_next: page.items.len() > take || page.has_next,
        total: page.total,
    }))))
}

/// A scalar field of a user.
fn user(
    cx: &Request<'_>,
    out: &mut Out<'_, Obj>,
    user: &Rc<User>,
    f: F,
    name: &str,
) -> Resolved<Obj> {
    match f {
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
        _ => unknown("User", name),
    }
}

/// A scalar field of a channel.
fn channel(
    cx: &Request<'_>,
    out: &mut Out<'_, Obj>,
    ch: &Rc<Channel>,
    f: F,
    name: &str,
) -> Resolved<Obj> {
    match f {
        F::Id => string(out, &ch.id),
        F::Login => string(out, &ch.login),
        F::Title => string(out, &ch.title),
        F::Language => string(out, &ch.language),
        F::Tags => Resolved::List(ch.tags.iter().map(|t| string(out, t)).collect()),
        F::IsLive => boolean(ch.stream_id.is_some()),
        F::FollowerCount => int(ch.follower_count),
        F::ViewerCount => int(cx.viewers(&ch.id)),
        _ => unknown("Channel", name),
    }
}
