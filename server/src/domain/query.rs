//! The `Query` root's fields.

use std::rc::Rc;

use graphql_exec::exec::{Args, FieldError, Resolved};

use super::values::{after_arg, count_arg, int_arg, str_arg, BAD_USER_INPUT, NOT_FOUND};
use super::{value, Obj, Page, Request};
use crate::store::{CategoryIx, ChannelIx, Data, RoomEvent};

/// Resolves a root query field.
pub(super) fn resolve(cx: &Request<'_>, d: &Data, field: &str, args: &Args<'_>) -> Resolved<Obj> {
    value(match field {
        "viewer" => Ok(cx
            .viewer
            .map_or(Resolved::Null, |u| Resolved::Object(Obj::User(u)))),
        "node" => Ok(node(d, str_arg(args, "id").unwrap_or_default())),
        "user" => one_of(args, "id", "login").map(|by| {
            let u = match by {
                By::Id(id) => d.user_by_id(id),
                By::Other(login) => d.user_by_login(login),
            };
            u.map_or(Resolved::Null, |u| Resolved::Object(Obj::User(u)))
        }),
        "channel" => one_of(args, "id", "login").map(|by| {
            let c = match by {
                By::Id(id) => d.channel_by_id(id),
                By::Other(login) => d.user_by_login(login).map(|u| d.user(u).channel),
            };
            c.map_or(Resolved::Null, |c| Resolved::Object(Obj::Channel(c)))
        }),
        "category" => one_of(args, "id", "slug").map(|by| {
            let k = match by {
                By::Id(id) => d.category_by_id(id),
                By::Other(slug) => d.category_by_slug(slug),
            };
            k.map_or(Resolved::Null, |k| Resolved::Object(Obj::Category(k)))
        }),
        "streams" => streams(d, args),
        "categories" => categories(d, args),
        "chatHistory" => chat_history(d, args),
        "search" => search(d, args),
        other => Err(format!("Query.{other} has no resolver").into()),
    })
}

enum By<'a> {
    Id(&'a str),
    Other(&'a str),
}

/// Exactly one of two arguments.
fn one_of<'a>(args: &'a Args<'_>, id: &str, other: &str) -> Result<By<'a>, FieldError> {
    match (str_arg(args, id), str_arg(args, other)) {
        (Some(i), None) => Ok(By::Id(i)),
        (None, Some(o)) => Ok(By::Other(o)),
        _ => Err(FieldError::new(
            BAD_USER_INPUT,
            format!("give exactly one of `{id}` and `{other}`"),
        )),
    }
}

/// Any object by its id.
pub(super) fn node(d: &Data, id: &str) -> Resolved<Obj> {
    let found = if let Some(c) = d.channel_by_id(id) {
        Some(Obj::Channel(c))
    } else if let Some(k) = d.category_by_id(id) {
        Some(Obj::Category(k))
    } else if let Some(s) = d.stream_by_id(id) {
        Some(Obj::Stream(s))
    } else if let Some(m) = message_by_id(d, id) {
        Some(m)
    } else {
        d.user_by_id(id).map(Obj::User)
    };
    found.map_or(Resolved::Null, Resolved::Object)
}

/// `msg_<channel id>_<seq>`, if that message exists and is not deleted.
fn message_by_id(d: &Data, id: &str) -> Option<Obj> {
    let (channel, seq) = id.strip_prefix("msg_")?.rsplit_once('_')?;
    let c = d.channel_by_id(channel)?;
    let seq: u32 = seq.parse().ok()?;
    match d.channel(c).log.get(seq)? {
        RoomEvent::Message { deleted: false, .. } => Some(Obj::Message(c, seq)),
        _ => None,
    }
}

/// A page of live streams.
pub(super) fn stream_page(
    d: &Data,
    live: &[ChannelIx],
    args: &Args<'_>,
) -> Result<Resolved<Obj>, FieldError> {
    let first = count_arg(args, "first", 20)?;
    let start = after_arg(args)?;
    let page = Page::of(live.len(), start, first, |i| {
        Obj::Stream(
            d.channel(live[i])
                .stream
                .expect("live channels have a stream"),
        )
    });
    Ok(Resolved::Object(Obj::Connection(Rc::new(page))))
}

fn streams(d: &Data, args: &Args<'_>) -> Result<Resolved<Obj>, FieldError> {
    let category = match str_arg(args, "categoryId") {
        None => None,
        Some(id) => match d.category_by_id(id) {
            Some(k) => Some(k),
            // No such category: no streams in it.
            None => return stream_page(d, &[], args),
        },
    };
    let live = d.live_sorted(category, str_arg(args, "language"));
    stream_page(d, &live, args)
}

fn categories(d: &Data, args: &Args<'_>) -> Result<Resolved<Obj>, FieldError> {
    let first = count_arg(args, "first", 20)?;
    let start = after_arg(args)?;
    let all = d.categories_by_viewers();
    let page = Page::of(all.len(), start, first, |i| Obj::Category(all[i]));
    Ok(Resolved::Object(Obj::Connection(Rc::new(page))))
}

fn chat_history(d: &Data, args: &Args<'_>) -> Result<Resolved<Obj>, FieldError> {
    let id = str_arg(args, "channelId").unwrap_or_default();
    let c = d
        .channel_by_id(id)
        .ok_or_else(|| FieldError::new(NOT_FOUND, format!("no channel has id `{id}`")))?;
    let last = count_arg(args, "last", 50)?;
    let before = match int_arg(args, "beforeSeq") {
        None => None,
        Some(s) if s >= 1 => Some(u32::try_from(s).unwrap_or(u32::MAX)),
        Some(s) => {
            return Err(FieldError::new(
                BAD_USER_INPUT,
                format!("`beforeSeq` must be at least 1, not {s}"),
            ))
        }
    };
    Ok(Resolved::List(
        d.messages(c, last, before)
            .into_iter()
            .map(|seq| Resolved::Object(Obj::Message(c, seq)))
            .collect(),
    ))
}

fn search(d: &Data, args: &Args<'_>) -> Result<Resolved<Obj>, FieldError> {
    let q = str_arg(args, "query")
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    let first = count_arg(args, "first", 10)?;
    if q.is_empty() {
        return Err(FieldError::new(BAD_USER_INPUT, "`query` must not be empty"));
    }
    let hit = |s: &str| s.to_lowercase().contains(&q);
    let users = d
        .users
        .iter()
        .enumerate()
        .filter(|(_, u)| hit(&u.login))
        .map(|(i, _)| Obj::User(crate::store::UserIx(i as u32)));
    let channels = d
        .channels
        .iter()
        .enumerate()
        .filter(|(_, c)| hit(&c.title))
        .map(|(i, _)| Obj::Channel(ChannelIx(i as u32)));
    let categories = d
        .categories
        .iter()
        .enumerate()
        .filter(|(_, k)| hit(&k.name))
        .map(|(i, _)| Obj::Category(CategoryIx(i as u32)));
    Ok(Resolved::List(
        users
            .chain(channels)
            .chain(categories)
            .take(first)
            .map(Resolved::Object)
            .collect(),
    ))
}
