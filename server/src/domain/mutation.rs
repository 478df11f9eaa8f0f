//! The `Mutation` root's fields: input rules, the authorization module, the change under
//! the store's write lock, then the event for subscribers.

use async_graphql_value::ConstValue;
use graphql_exec::exec::{Args, FieldError, Resolved};

use super::events::Event;
use super::input;
use super::values::{int_arg, str_arg, BAD_USER_INPUT, NOT_FOUND};
use super::{value, Obj, Request, Roles};
use crate::auth::policy::{can, Action, Denied};
use crate::store::{ChannelIx, Data, RoomEvent, UserIx};

fn denied(e: Denied) -> FieldError {
    let code = match e {
        Denied::Unauthenticated => "UNAUTHENTICATED",
        Denied::Forbidden(_) => "FORBIDDEN",
    };
    FieldError::new(code, e.to_string())
}

/// Resolves a root mutation field.
pub(super) fn resolve(cx: &Request<'_>, field: &str, args: &Args<'_>) -> Resolved<Obj> {
    let mut events = Vec::new();
    let result = {
        let mut d = cx.domain.store.write();
        run(cx, &mut d, field, args, &mut events)
    };
    for e in events {
        cx.domain.events.publish(e);
    }
    value(result)
}

fn run(
    cx: &Request<'_>,
    d: &mut Data,
    field: &str,
    args: &Args<'_>,
    events: &mut Vec<Event>,
) -> Result<Resolved<Obj>, FieldError> {
    let now = cx.now;
    let check = |d: &Data, action: Action<'_>, c: ChannelIx| {
        can(cx.token, action, &Roles { d, c, now }).map_err(denied)
    };
    // Every mutation needs a viewer; the policy says so first for the ones on a channel.
    let viewer = || cx.viewer.ok_or_else(|| denied(Denied::Unauthenticated));
    match field {
        "updateProfile" => {
            let v = viewer()?;
            check(d, Action::UpdateProfile, d.user(v).channel)?;
            let i = object(args, "input");
            let name = match field_str(i, "displayName") {
                Some(n) => Some(input::display_name(n)?.to_owned()),
                None => None,
            };
            let bio = match field_str(i, "bio") {
                Some(b) => Some(input::bio(b)?.to_owned()),
                None => None,
            };
            let user = &mut d.users[v.0 as usize];
            if let Some(n) = name {
                user.display_name = n.into();
            }
            if let Some(b) = bio {
                user.bio = (!b.is_empty()).then(|| b.into());
            }
            Ok(Resolved::Object(Obj::User(v)))
        }
        "updateChannel" => {
            let v = viewer()?;
            let c = d.user(v).channel;
            check(d, Action::ManageChannel, c)?;
            let i = object(args, "input");
            let title = field_str(i, "title").map(input::title).transpose()?;
            let language = field_str(i, "language").map(input::language).transpose()?;
            let tags = match i.and_then(|o| o.get("tags")) {
                Some(ConstValue::List(items)) => {
                    let tags: Vec<&str> = items
                        .iter()
                        .filter_map(|t| match t {
                            ConstValue::String(s) => Some(s.as_str()),
                            _ => None,
                        })
                        .collect();
                    input::tags(&tags)?;
                    Some(tags.into_iter().map(Box::from).collect::<Vec<_>>())
                }
                _ => None,
            };
            let category = match i.and_then(|o| o.get("categoryId")) {
                None => None,
                Some(ConstValue::Null) => Some(None),
                Some(ConstValue::String(id)) => Some(Some(category(d, id)?)),
                Some(_) => None,
            };
            let ch = &mut d.channels[c.0 as usize];
            let mut visible = false;
            if let Some(t) = title {
                visible |= *ch.title != *t;
                ch.title = t.into();
            }
            if let Some(l) = language {
                ch.language = l.into();
            }
            if let Some(t) = tags {
                ch.tags = t;
            }
            if let Some(k) = category {
                visible |= ch.category != k;
                ch.category = k;
            }
            if visible {
                events.push(Event::Stream {
                    channel_id: ch.id.clone(),
                });
            }
            Ok(Resolved::Object(Obj::Channel(c)))
        }
        "startStream" => {
            let v = viewer()?;
            let c = d.user(v).channel;
            check(d, Action::ManageChannel, c)?;
            let i = object(args, "input");
            let title = input::title(field_str(i, "title").unwrap_or_default())?;
            let category = match field_str(i, "categoryId") {
                Some(id) => Some(category(d, id)?),
                None => None,
            };
            if d.channel(c).stream.is_some() {
                return Err(FieldError::new(
                    BAD_USER_INPUT,
                    "the channel is already live",
                ));
            }
            let s = d.start_stream(c, title, category, now);
            events.push(Event::Stream {
                channel_id: d.channel(c).id.clone(),
            });
            Ok(Resolved::Object(Obj::Stream(s)))
        }
        "endStream" => {
            let v = viewer()?;
            let c = d.user(v).channel;
            check(d, Action::ManageChannel, c)?;
            if d.end_stream(c) {
                events.push(Event::Stream {
                    channel_id: d.channel(c).id.clone(),
                });
            }
            Ok(Resolved::Object(Obj::Channel(c)))
        }
        "follow" | "unfollow" => {
            let v = viewer()?;
            let c = channel_arg(d, args)?;
            check(d, Action::Follow, c)?;
            if field == "follow" {
                if d.channel(c).owner == v {
                    return Err(FieldError::new(
                        BAD_USER_INPUT,
                        "you cannot follow your own channel",
                    ));
                }
                d.follow(v, c);
            } else {
                d.unfollow(v, c);
            }
            Ok(Resolved::Object(Obj::Channel(c)))
        }
        "sendChatMessage" => {
            let channel_id = str_arg(args, "channelId").unwrap_or_default();
            let body = str_arg(args, "body").unwrap_or_default();
            let (c, seq) = send_chat(cx, d, channel_id, body, events)?;
            Ok(Resolved::Object(Obj::Message(c, seq)))
        }
        "deleteChatMessage" => {
            let c = channel_arg(d, args)?;
            let seq = int_arg(args, "messageSeq").unwrap_or(0);
            let Some(author) = u32::try_from(seq).ok().and_then(|s| d.message_author(c, s)) else {
                return Err(FieldError::new(
                    NOT_FOUND,
                    format!("no message has seq {seq} in this channel"),
                ));
            };
            let author_id = d.user(author).id.clone();
            check(
                d,
                Action::DeleteMessage {
                    author_id: &author_id,
                },
                c,
            )?;
            let at = d.delete_message(c, seq as u32);
            events.push(Event::Room {
                channel_id: d.channel(c).id.clone(),
                seq: at,
            });
            Ok(Resolved::Leaf(graphql_exec::exec::Leaf::Boolean(true)))
        }
        "banUser" => {
            let c = channel_arg(d, args)?;
            let target = user_arg(d, args)?;
            let target_id = d.user(target).id.clone();
            check(
                d,
                Action::Ban {
                    target_id: &target_id,
                },
                c,
            )?;
            let until = match int_arg(args, "durationSeconds") {
                Some(s) => Some(now + input::ban_seconds(s)? * 1000),
                None => None,
            };
            if let Some(reason) = str_arg(args, "reason") {
                input::text("reason", reason, 0, 300)?;
            }
            let bans = &mut d.channels[c.0 as usize].bans;
            bans.retain(|(u, _)| *u != target);
            bans.push((target, until));
            let seq = d.append(
                c,
                RoomEvent::Banned {
                    user: target,
                    until,
                },
            );
            events.push(Event::Room {
                channel_id: d.channel(c).id.clone(),
                seq,
            });
            Ok(Resolved::Leaf(graphql_exec::exec::Leaf::Boolean(true)))
        }
        "unbanUser" => {
            let c = channel_arg(d, args)?;
            let target = user_arg(d, args)?;
            check(d, Action::Unban, c)?;
            let bans = &mut d.channels[c.0 as usize].bans;
            let before = bans.len();
            bans.retain(|(u, _)| *u != target);
            Ok(Resolved::Leaf(graphql_exec::exec::Leaf::Boolean(
                bans.len() != before,
            )))
        }
        "addModerator" | "removeModerator" => {
            let c = channel_arg(d, args)?;
            let target = user_arg(d, args)?;
            check(d, Action::ManageModerators, c)?;
            let mods = &mut d.channels[c.0 as usize].moderators;
            if field == "addModerator" {
                if !mods.contains(&target) {
                    mods.push(target);
                }
            } else {
                mods.retain(|&m| m != target);
            }
            Ok(Resolved::Object(Obj::Channel(c)))
        }
        other => Err(format!("Mutation.{other} has no resolver").into()),
    }
}

/// `sendChatMessage`, and the room protocol's `send`: the checks, the append (which
/// orders it), the event.
pub(super) fn send_chat(
    cx: &Request<'_>,
    d: &mut Data,
    channel_id: &str,
    body: &str,
    events: &mut Vec<Event>,
) -> Result<(ChannelIx, u32), FieldError> {
    let c = d
        .channel_by_id(channel_id)
        .ok_or_else(|| FieldError::new(NOT_FOUND, format!("no channel has id `{channel_id}`")))?;
    let now = cx.now;
    can(cx.token, Action::SendChat, &Roles { d, c, now }).map_err(denied)?;
    let v = cx.viewer.ok_or_else(|| denied(Denied::Unauthenticated))?;
    let body = input::chat_body(body)?;
    let seq = d.append(
        c,
        RoomEvent::Message {
            author: v,
            body: body.into(),
            sent_at: now,
            deleted: false,
        },
    );
    events.push(Event::Room {
        channel_id: d.channel(c).id.clone(),
        seq,
    });
    Ok((c, seq))
}

/// The room protocol's `send`, as the viewer of `cx`: the message's seq.
pub(super) fn send_chat_now(
    cx: &Request<'_>,
    channel_id: &str,
    body: &str,
) -> Result<u32, FieldError> {
    let mut events = Vec::new();
    let result = {
        let mut d = cx.domain.store.write();
        send_chat(cx, &mut d, channel_id, body, &mut events)
    };
    for e in events {
        cx.domain.events.publish(e);
    }
    result.map(|(_, seq)| seq)
}

fn object<'a>(
    args: &'a Args<'_>,
    name: &str,
) -> Option<&'a async_graphql_value::indexmap::IndexMap<async_graphql_value::Name, ConstValue>> {
    match args.get(name) {
        Some(ConstValue::Object(o)) => Some(o),
        _ => None,
    }
}

fn field_str<'a>(
    o: Option<&'a async_graphql_value::indexmap::IndexMap<async_graphql_value::Name, ConstValue>>,
    name: &str,
) -> Option<&'a str> {
    match o?.get(name)? {
        ConstValue::String(s) => Some(s),
        _ => None,
    }
}

fn category(d: &Data, id: &str) -> Result<crate::store::CategoryIx, FieldError> {
    d.category_by_id(id)
        .ok_or_else(|| FieldError::new(BAD_USER_INPUT, format!("no category has id `{id}`")))
}

fn channel_arg(d: &Data, args: &Args<'_>) -> Result<ChannelIx, FieldError> {
    let id = str_arg(args, "channelId").unwrap_or_default();
    d.channel_by_id(id)
        .ok_or_else(|| FieldError::new(NOT_FOUND, format!("no channel has id `{id}`")))
}

fn user_arg(d: &Data, args: &Args<'_>) -> Result<UserIx, FieldError> {
    let id = str_arg(args, "userId").unwrap_or_default();
    d.user_by_id(id)
        .ok_or_else(|| FieldError::new(NOT_FOUND, format!("no user has id `{id}`")))
}
