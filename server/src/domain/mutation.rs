//! The `Mutation` root's fields: input rules, the authorization module over rows read
//! from the store itself (not a cache), then the command, whose changes are announced
//! (every shard's cache, subscribers); room events are ordered, kept, then published.

use std::rc::Rc;
use std::sync::Arc;

use async_graphql_value::ConstValue;
use graphql_exec::exec::{Args, FieldError, Leaf, Resolved};
use streamhub_pubsub::{Author, Chat};

use super::input;
use super::load::field_error;
use super::values::{int_arg, str_arg, BAD_USER_INPUT, NOT_FOUND};
use super::{message_of, value, Obj, Request, Roles};
use crate::auth::policy::{can, Action, Denied};
use crate::store::{Channel, Command, Membership, Message, User};

fn denied(e: Denied) -> FieldError {
    let code = match e {
        Denied::Unauthenticated => "UNAUTHENTICATED",
        Denied::Forbidden(_) => "FORBIDDEN",
    };
    FieldError::new(code, e.to_string())
}

/// Resolves a root mutation field.
pub(super) async fn resolve(cx: &Request<'_>, field: &str, args: &Args<'_>) -> Resolved<Obj> {
    value(run(cx, field, args).await)
}

/// The viewer, or `UNAUTHENTICATED`.
fn viewer<'a>(cx: &'a Request<'_>) -> Result<&'a Rc<User>, FieldError> {
    cx.viewer
        .as_ref()
        .ok_or_else(|| denied(Denied::Unauthenticated))
}

/// A channel from the store itself, or `NOT_FOUND`.
async fn channel_arg(cx: &Request<'_>, id: &str) -> Result<Rc<Channel>, FieldError> {
    cx.fresh_channel(id)
        .await
        .map_err(field_error)?
        .ok_or_else(|| FieldError::new(NOT_FOUND, format!("no channel has id `{id}`")))
}

/// What the viewer is in a channel (exact: a change to it reaches every shard's cache
/// before the next request).
async fn membership(
    cx: &Request<'_>,
    channel: &Channel,
) -> Result<Option<Rc<Membership>>, FieldError> {
    match &cx.viewer {
        None => Ok(None),
        Some(v) => cx.membership(&channel.id, &v.id).await.map_err(field_error),
    }
}

/// Asks the authorization module whether the viewer may do `action` on `channel`.
async fn check(cx: &Request<'_>, action: Action<'_>, channel: &Channel) -> Result<(), FieldError> {
    let m = membership(cx, channel).await?;
    let viewer = cx.viewer.as_ref().map(|v| &*v.id).zip(m.as_deref());
    can(cx.token, action, &Roles { channel, viewer }).map_err(denied)
}

/// A user that must exist, or `NOT_FOUND`.
async fn user_arg(cx: &Request<'_>, args: &Args<'_>) -> Result<Rc<User>, FieldError> {
    let id = str_arg(args, "userId").unwrap_or_default();
    cx.user(id)
        .await
        .map_err(field_error)?
        .ok_or_else(|| FieldError::new(NOT_FOUND, format!("no user has id `{id}`")))
}

/// A category id that must exist, or `BAD_USER_INPUT`.
async fn category(cx: &Request<'_>, id: &str) -> Result<Box<str>, FieldError> {
    match cx.category(id).await.map_err(field_error)? {
        Some(k) => Ok(k.id.clone()),
        None => Err(FieldError::new(
            BAD_USER_INPUT,
            format!("no category has id `{id}`"),
        )),
    }
}

/// The channel, read again after a change, as the field's value.
async fn channel_value(cx: &Request<'_>, id: &str) -> Result<Resolved<Obj>, FieldError> {
    Ok(Resolved::Object(Obj::Channel(channel_arg(cx, id).await?)))
}

async fn apply(cx: &Request<'_>, command: Command) -> Result<crate::store::Applied, FieldError> {
    cx.apply(command).await.map_err(field_error)
}

async fn run(cx: &Request<'_>, field: &str, args: &Args<'_>) -> Result<Resolved<Obj>, FieldError> {
    let now = cx.now;
    match field {
        "updateProfile" => {
            let v = viewer(cx)?;
            let own = channel_arg(cx, &v.channel_id).await?;
            check(cx, Action::UpdateProfile, &own).await?;
            let i = object(args, "input");
            let display_name = match field_str(i, "displayName") {
                Some(n) => Some(input::display_name(n)?.into()),
                None => None,
            };
            let bio = match field_str(i, "bio") {
                Some(b) => Some(input::bio(b)?.into()),
                None => None,
            };
            apply(
                cx,
                Command::UpdateProfile {
                    user_id: Box::from(&*v.id),
                    display_name,
                    bio,
                },
            )
            .await?;
            let user = cx.user(&v.id).await.map_err(field_error)?;
            Ok(user.map_or(Resolved::Null, |u| Resolved::Object(Obj::User(u))))
        }
        "updateChannel" => {
            let v = viewer(cx)?;
            let own = channel_arg(cx, &v.channel_id).await?;
            check(cx, Action::ManageChannel, &own).await?;
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
            let category_id = match i.and_then(|o| o.get("categoryId")) {
                None => None,
                Some(ConstValue::Null) => Some(None),
                Some(ConstValue::String(id)) => Some(Some(category(cx, id).await?)),
                Some(_) => None,
            };
            apply(
                cx,
                Command::UpdateChannel {
                    channel_id: own.id.clone(),
                    title: title.map(Box::from),
                    language: language.map(Box::from),
                    tags,
                    category_id,
                },
            )
            .await?;
            channel_value(cx, &own.id).await
        }
        "startStream" => {
            let v = viewer(cx)?;
            let own = channel_arg(cx, &v.channel_id).await?;
            check(cx, Action::ManageChannel, &own).await?;
            let i = object(args, "input");
            let title = input::title(field_str(i, "title").unwrap_or_default())?;
            let category_id = match field_str(i, "categoryId") {
                Some(id) => Some(category(cx, id).await?),
                None => None,
            };
            let applied = apply(
                cx,
                Command::StartStream {
                    channel_id: own.id.clone(),
                    title: title.into(),
                    category_id,
                    now,
                },
            )
            .await?;
            let id = applied.created.unwrap_or_default();
            let stream = cx
                .streams(&[&id])
                .await
                .map_err(field_error)?
                .pop()
                .flatten();
            Ok(stream.map_or(Resolved::Null, |s| Resolved::Object(Obj::Stream(s))))
        }
        "endStream" => {
            let v = viewer(cx)?;
            let own = channel_arg(cx, &v.channel_id).await?;
            check(cx, Action::ManageChannel, &own).await?;
            apply(
                cx,
                Command::EndStream {
                    channel_id: own.id.clone(),
                },
            )
            .await?;
            channel_value(cx, &own.id).await
        }
        "follow" | "unfollow" => {
            let v = viewer(cx)?;
            let c = channel_arg(cx, str_arg(args, "channelId").unwrap_or_default()).await?;
            check(cx, Action::Follow, &c).await?;
            let (user_id, channel_id): (Box<str>, _) = ((*v.id).into(), c.id.clone());
            let command = if field == "follow" {
                if *c.owner_id == *v.id {
                    return Err(FieldError::new(
                        BAD_USER_INPUT,
                        "you cannot follow your own channel",
                    ));
                }
                Command::Follow {
                    user_id,
                    channel_id,
                }
            } else {
                Command::Unfollow {
                    user_id,
                    channel_id,
                }
            };
            apply(cx, command).await?;
            channel_value(cx, &c.id).await
        }
        "sendChatMessage" => {
            let channel_id = str_arg(args, "channelId").unwrap_or_default();
            let body = str_arg(args, "body").unwrap_or_default();
            let m = send_chat(cx, channel_id, body).await?;
            Ok(Resolved::Object(Obj::Message(Rc::new(m))))
        }
        "deleteChatMessage" => {
            let c = channel_arg(cx, str_arg(args, "channelId").unwrap_or_default()).await?;
            let seq = int_arg(args, "messageSeq").unwrap_or(0);
            let message = match u64::try_from(seq) {
                Ok(s) => cx
                    .writer_reads()
                    .message(&c.id, s)
                    .await
                    .map_err(field_error)?,
                Err(_) => None,
            };
            let Some(message) = message else {
                return Err(FieldError::new(
                    NOT_FOUND,
                    format!("no message has seq {seq} in this channel"),
                ));
            };
            check(
                cx,
                Action::DeleteMessage {
                    author_id: &message.author.id,
                },
                &c,
            )
            .await?;
            cx.publish_room(
                &c.id,
                Chat::Deleted {
                    message_seq: message.seq,
                },
            )
            .await
            .map_err(field_error)?;
            Ok(Resolved::Leaf(Leaf::Boolean(true)))
        }
        "banUser" => {
            let c = channel_arg(cx, str_arg(args, "channelId").unwrap_or_default()).await?;
            let target = user_arg(cx, args).await?;
            check(
                cx,
                Action::Ban {
                    target_id: &target.id,
                },
                &c,
            )
            .await?;
            let until = match int_arg(args, "durationSeconds") {
                Some(s) => Some(now + input::ban_seconds(s)? * 1000),
                None => None,
            };
            if let Some(reason) = str_arg(args, "reason") {
                input::text("reason", reason, 0, 300)?;
            }
            apply(
                cx,
                Command::Ban {
                    channel_id: c.id.clone(),
                    user_id: Box::from(&*target.id),
                    until,
                },
            )
            .await?;
            cx.publish_room(
                &c.id,
                Chat::Banned {
                    user_id: Box::from(&*target.id),
                    until,
                },
            )
            .await
            .map_err(field_error)?;
            Ok(Resolved::Leaf(Leaf::Boolean(true)))
        }
        "unbanUser" => {
            let c = channel_arg(cx, str_arg(args, "channelId").unwrap_or_default()).await?;
            let target = user_arg(cx, args).await?;
            check(cx, Action::Unban, &c).await?;
            let applied = apply(
                cx,
                Command::Unban {
                    channel_id: c.id.clone(),
                    user_id: Box::from(&*target.id),
                },
            )
            .await?;
            Ok(Resolved::Leaf(Leaf::Boolean(!applied.changes.is_empty())))
        }
        "addModerator" | "removeModerator" => {
            let c = channel_arg(cx, str_arg(args, "channelId").unwrap_or_default()).await?;
            let target = user_arg(cx, args).await?;
            check(cx, Action::ManageModerators, &c).await?;
            let (channel_id, user_id): (_, Box<str>) = (c.id.clone(), (*target.id).into());
            let command = if field == "addModerator" {
                Command::AddModerator {
                    channel_id,
                    user_id,
                }
            } else {
                Command::RemoveModerator {
                    channel_id,
                    user_id,
                }
            };
            apply(cx, command).await?;
            channel_value(cx, &c.id).await
        }
        other => Err(format!("Mutation.{other} has no resolver").into()),
    }
}

/// `sendChatMessage`, and the room protocol's `send`: the checks, then the message is
/// ordered, kept and published; the message as sent.
pub(super) async fn send_chat(
    cx: &Request<'_>,
    channel_id: &str,
    body: &str,
) -> Result<Message, FieldError> {
    let c = cx
        .channel(channel_id)
        .await
        .map_err(field_error)?
        .ok_or_else(|| FieldError::new(NOT_FOUND, format!("no channel has id `{channel_id}`")))?;
    check(cx, Action::SendChat, &c).await?;
    let v = viewer(cx)?;
    let body = input::chat_body(body)?;
    let chat = Chat::Message {
        author: Author {
            id: Arc::clone(&v.id),
            login: Arc::clone(&v.login),
            display_name: Arc::clone(&v.display_name),
        },
        body: body.into(),
        sent_at: cx.now,
    };
    let event = cx.publish_room(&c.id, chat).await.map_err(field_error)?;
    message_of(&event).ok_or_else(|| FieldError::from("the message was not a message"))
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
