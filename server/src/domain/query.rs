//! The `Query` root's fields.

use std::rc::Rc;

use graphql_exec::exec::{Args, FieldError, Resolved};

use super::load::field_error;
use super::values::{after_arg, count_arg, int_arg, str_arg, BAD_USER_INPUT, NOT_FOUND};
use super::{value, Obj, Page, Request};
use crate::store::cache::Key;
use crate::store::cursor::Cursor;
use crate::store::{Found, Live, StoreError};

/// Resolves a root query field.
pub(super) async fn resolve(cx: &Request<'_>, field: &str, args: &Args<'_>) -> Resolved<Obj> {
    value(match field {
        "viewer" => Ok(cx.viewer.as_ref().map_or(Resolved::Null, |u| {
            Resolved::Object(Obj::User(Rc::clone(u)))
        })),
        "node" => node(cx, str_arg(args, "id").unwrap_or_default())
            .await
            .map_err(field_error),
        "user" => match one_of(args, "id", "login") {
            Err(e) => Err(e),
            Ok(by) => {
                let u = match by {
                    By::Id(id) => cx.user(id).await,
                    By::Other(login) => cx.user_by_login(login).await,
                };
                u.map(|u| u.map_or(Resolved::Null, |u| Resolved::Object(Obj::User(u))))
                    .map_err(field_error)
            }
        },
        "channel" => match one_of(args, "id", "login") {
            Err(e) => Err(e),
            Ok(by) => channel_by(cx, by).await.map_err(field_error),
        },
        "category" => match one_of(args, "id", "slug") {
            Err(e) => Err(e),
            Ok(by) => cx.categories().await.map_err(field_error).map(|all| {
                all.iter()
                    .find(|k| match by {
                        By::Id(id) => &*k.id == id,
                        By::Other(slug) => &*k.slug == slug,
                    })
                    .map_or(Resolved::Null, |k| {
                        Resolved::Object(Obj::Category(Rc::clone(k)))
                    })
            }),
        },
        "streams" => streams(cx, args).await,
        "categories" => categories(cx, args).await,
        "chatHistory" => chat_history(cx, args).await,
        "search" => search(cx, args).await,
        other => Err(format!("Query.{other} has no resolver").into()),
    })
}

#[derive(Clone, Copy)]
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

async fn channel_by(cx: &Request<'_>, by: By<'_>) -> Result<Resolved<Obj>, StoreError> {
    let channel = match by {
        By::Id(id) => cx.channel(id).await?,
        By::Other(login) => cx.channel_by_login(login).await?,
    };
    Ok(channel.map_or(Resolved::Null, |c| Resolved::Object(Obj::Channel(c))))
}

/// Any object by its id: a channel (`ch_`), a category (`cat_`), a stream (`st`), a
/// chat message (`msg_`), else a user.
pub(super) async fn node(cx: &Request<'_>, id: &str) -> Result<Resolved<Obj>, StoreError> {
    if id.starts_with("ch_") {
        if let Some(c) = cx.channel(id).await? {
            return Ok(Resolved::Object(Obj::Channel(c)));
        }
    }
    if id.starts_with("cat_") {
        if let Some(k) = cx.category(id).await? {
            return Ok(Resolved::Object(Obj::Category(k)));
        }
    }
    if id.starts_with("st") {
        if let Some(s) = cx.streams(&[id]).await?.pop().flatten() {
            return Ok(Resolved::Object(Obj::Stream(s)));
        }
    }
    if let Some((channel, seq)) = id.strip_prefix("msg_").and_then(|m| m.rsplit_once('_')) {
        if let Ok(seq) = seq.parse::<u64>() {
            let store = cx.reader(Key::Messages(channel));
            if let Some(m) = store.message(channel, seq).await? {
                return Ok(Resolved::Object(Obj::Message(Rc::new(m))));
            }
        }
    }
    Ok(cx
        .user(id)
        .await?
        .map_or(Resolved::Null, |u| Resolved::Object(Obj::User(u))))
}

/// The (viewers, login) a live list's page starts after.
fn viewers_after(args: &Args<'_>) -> Result<Option<(u64, String)>, FieldError> {
    match after_arg(args)? {
        None => Ok(None),
        Some(Cursor::Viewers(count, tie)) => Ok(Some((count, tie))),
        Some(other) => Err(FieldError::new(
            BAD_USER_INPUT,
            format!("`{}` is not a cursor of this list", other.encode()),
        )),
    }
}

/// Whether an item at (`count`, `tie`) of a list by viewers (most first, ties by
/// `tie`) comes after the cursor's place.
fn after_place(count: u64, tie: &str, cursor: &Option<(u64, String)>) -> bool {
    cursor
        .as_ref()
        .is_none_or(|(c, t)| count < *c || (count == *c && tie > t.as_str()))
}

/// A page of live streams (of one category or language), most viewers first, ties by
/// login, keyset-paged by (viewers, login).
pub(super) async fn stream_page(
    cx: &Request<'_>,
    category: Option<&str>,
    language: Option<&str>,
    args: &Args<'_>,
) -> Result<Resolved<Obj>, FieldError> {
    let first = count_arg(args, "first", 20)?;
    let after = viewers_after(args)?;
    let live = cx.live().await.map_err(field_error)?;
    let mut list: Vec<(u64, &Live)> = live
        .iter()
        .filter(|l| {
            category.is_none_or(|k| l.category_id.as_deref() == Some(k))
                && language.is_none_or(|lang| &*l.language == lang)
        })
        .map(|l| (u64::from(cx.viewers(&l.channel_id)), l))
        .collect();
    list.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.login.cmp(&b.1.login)));
    let total = list.len();
    let rest: Vec<&(u64, &Live)> = list
        .iter()
        .filter(|(v, l)| after_place(*v, &l.login, &after))
        .collect();
    let has_next = rest.len() > first;
    let chosen: Vec<&(u64, &Live)> = rest.into_iter().take(first).collect();
    let ids: Vec<&str> = chosen.iter().map(|(_, l)| &*l.stream_id).collect();
    let streams = cx.streams(&ids).await.map_err(field_error)?;
    let (mut items, mut cursors) = (Vec::new(), Vec::new());
    for ((v, l), s) in chosen.iter().zip(streams) {
        if let Some(s) = s {
            items.push(Obj::Stream(s));
            cursors.push(Cursor::Viewers(*v, l.login.to_string()));
        }
    }
    Ok(Resolved::Object(Obj::Connection(Rc::new(Page {
        items,
        cursors,
        has_next,
        total,
    }))))
}

async fn streams(cx: &Request<'_>, args: &Args<'_>) -> Result<Resolved<Obj>, FieldError> {
    // No such category: no streams in it.
    let category = str_arg(args, "categoryId");
    stream_page(cx, category, str_arg(args, "language"), args).await
}

/// Every category, most viewers first, ties by name, keyset-paged by (viewers, name).
async fn categories(cx: &Request<'_>, args: &Args<'_>) -> Result<Resolved<Obj>, FieldError> {
    let first = count_arg(args, "first", 20)?;
    let after = viewers_after(args)?;
    let all = cx.categories().await.map_err(field_error)?;
    let live = cx.live().await.map_err(field_error)?;
    let mut list: Vec<(u64, _)> = all
        .iter()
        .map(|k| {
            let viewers = live
                .iter()
                .filter(|l| l.category_id.as_deref() == Some(&*k.id))
                .map(|l| u64::from(cx.viewers(&l.channel_id)))
                .sum::<u64>();
            (viewers, k)
        })
        .collect();
    list.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    let total = list.len();
    let rest: Vec<_> = list
        .iter()
        .filter(|(v, k)| after_place(*v, &k.name, &after))
        .collect();
    let has_next = rest.len() > first;
    let (items, cursors) = rest
        .into_iter()
        .take(first)
        .map(|(v, k)| {
            (
                Obj::Category(Rc::clone(k)),
                Cursor::Viewers(*v, k.name.to_string()),
            )
        })
        .unzip();
    Ok(Resolved::Object(Obj::Connection(Rc::new(Page {
        items,
        cursors,
        has_next,
        total,
    }))))
}

async fn chat_history(cx: &Request<'_>, args: &Args<'_>) -> Result<Resolved<Obj>, FieldError> {
    let id = str_arg(args, "channelId").unwrap_or_default();
    let last = count_arg(args, "last", 50)?;
    let before = match int_arg(args, "beforeSeq") {
        None => None,
        Some(s) if s >= 1 => Some(s as u64),
        Some(s) => {
            return Err(FieldError::new(
                BAD_USER_INPUT,
                format!("`beforeSeq` must be at least 1, not {s}"),
            ))
        }
    };
    if cx.channel(id).await.map_err(field_error)?.is_none() {
        return Err(FieldError::new(
            NOT_FOUND,
            format!("no channel has id `{id}`"),
        ));
    }
    let messages = cx
        .reader(Key::Messages(id))
        .messages(id, last, before)
        .await
        .map_err(field_error)?;
    Ok(Resolved::List(
        messages
            .into_iter()
            .map(|m| Resolved::Object(Obj::Message(Rc::new(m))))
            .collect(),
    ))
}

async fn search(cx: &Request<'_>, args: &Args<'_>) -> Result<Resolved<Obj>, FieldError> {
    let q = str_arg(args, "query")
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    let first = count_arg(args, "first", 10)?;
    if q.is_empty() {
        return Err(FieldError::new(BAD_USER_INPUT, "`query` must not be empty"));
    }
    let found = cx
        .reader(Key::Other)
        .search(&q, first)
        .await
        .map_err(field_error)?;
    // Users and channels each in one load.
    let user_ids: Vec<&str> = found
        .iter()
        .filter_map(|f| match f {
            Found::User(id) => Some(&**id),
            _ => None,
        })
        .collect();
    let channel_ids: Vec<&str> = found
        .iter()
        .filter_map(|f| match f {
            Found::Channel(id) => Some(&**id),
            _ => None,
        })
        .collect();
    let mut users = cx.users(&user_ids).await.map_err(field_error)?.into_iter();
    let mut channels = cx
        .channels(&channel_ids)
        .await
        .map_err(field_error)?
        .into_iter();
    let mut out = Vec::with_capacity(found.len());
    for f in &found {
        let obj = match f {
            Found::User(_) => users.next().flatten().map(Obj::User),
            Found::Channel(_) => channels.next().flatten().map(Obj::Channel),
            Found::Category(id) => cx
                .category(id)
                .await
                .map_err(field_error)?
                .map(Obj::Category),
        };
        out.extend(obj.map(Resolved::Object));
    }
    Ok(Resolved::List(out))
}
