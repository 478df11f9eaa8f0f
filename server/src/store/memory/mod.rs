//! The memory store: the embedded default. Its records live in vectors behind one
//! `RwLock` ([`data`]), filled from the deterministic demo dataset ([`demo`]); every
//! [`Store`] call takes the lock once, does its work, and answers a ready future with
//! owned rows. Shards reach it only on a miss of their own caches, so the lock is off
//! the hot read path. Chat is kept like a room history (count and age bounded, ages on
//! the node's [`Clock`]).

mod data;
pub mod demo;

use std::future::ready;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use streamhub_pubsub::history::HistoryLimits;
use streamhub_pubsub::Event;

use self::data::{key_page, Data};
use self::demo::DemoSize;
use super::{
    Applied, Category, Change, Channel, Clock, Command, Found, KeyPage, Live, Membership, Message,
    Store, StoreError, StoreFuture, Stream, Tail, User,
};

/// The memory store.
#[derive(Debug)]
pub struct MemoryStore {
    data: RwLock<Data>,
    clock: Arc<dyn Clock>,
}

/// Answers a store call with `value`.
fn done<'a, T: Send + 'a>(value: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(ready(value))
}

fn no_channel(id: &str) -> StoreError {
    StoreError::NotFound(format!("no channel has id `{id}`"))
}

fn no_user(id: &str) -> StoreError {
    StoreError::NotFound(format!("no user has id `{id}`"))
}

impl MemoryStore {
    /// A store holding the demo data of `size`, each room keeping `limits` of its chat,
    /// with its times read from `clock`; and the viewer counts the demo gives its live
    /// channels.
    pub fn demo(
        size: DemoSize,
        limits: HistoryLimits,
        clock: Arc<dyn Clock>,
    ) -> (MemoryStore, Vec<(Box<str>, u32)>) {
        let demo = demo::generate(size, limits, clock.now());
        let store = MemoryStore {
            data: RwLock::new(demo.data),
            clock,
        };
        (store, demo.viewers)
    }

    /// (users, live channels) held, for the start's log line.
    pub fn counts(&self) -> (usize, usize) {
        let d = self.read();
        (d.users.len(), d.live.len())
    }

    /// A panic while holding the lock cannot leave half-written records that matter more
    /// than serving, so poisoning is ignored.
    fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self, command: Command) -> Result<Applied, StoreError> {
        let mut d = self.write();
        let mut applied = Applied::default();
        let changes = &mut applied.changes;
        match command {
            Command::EnsureUser {
                id,
                login,
                admin,
                now,
            } => match d.user_by_id(&id) {
                Some(u) => {
                    if d.users[u.0 as usize].admin != admin {
                        d.users[u.0 as usize].admin = admin;
                        changes.push(Change::User(id));
                    }
                }
                None => {
                    let free = d.free_login(&login);
                    let u = d.add_user(&id, &free, &login, admin, now);
                    tracing::info!(user = &*id, login = free, "user created from a token");
                    let channel = d.channel(d.user(u).channel).id.clone();
                    changes.push(Change::User(id.clone()));
                    changes.push(Change::Channel(channel));
                    applied.created = Some(id);
                }
            },
            Command::UpdateProfile {
                user_id,
                display_name,
                bio,
            } => {
                let u = d.user_by_id(&user_id).ok_or_else(|| no_user(&user_id))?;
                let user = &mut d.users[u.0 as usize];
                if let Some(n) = display_name {
                    user.display_name = n;
                }
                if let Some(b) = bio {
                    user.bio = (!b.is_empty()).then_some(b);
                }
                changes.push(Change::User(user_id));
            }
            Command::UpdateChannel {
                channel_id,
                title,
                language,
                tags,
                category_id,
            } => {
                let c = d
                    .channel_by_id(&channel_id)
                    .ok_or_else(|| no_channel(&channel_id))?;
                let category = match category_id {
                    None => None,
                    Some(None) => Some(None),
                    Some(Some(id)) => Some(Some(d.category_by_id(&id).ok_or_else(|| {
                        StoreError::NotFound(format!("no category has id `{id}`"))
                    })?)),
                };
                let ch = &mut d.channels[c.0 as usize];
                let (mut visible, mut listed) = (false, false);
                if let Some(t) = title {
                    visible |= ch.title != t;
                    ch.title = t;
                }
                if let Some(l) = language {
                    listed |= ch.language != l;
                    ch.language = l;
                }
                if let Some(t) = tags {
                    ch.tags = t;
                }
                if let Some(k) = category {
                    visible |= ch.category != k;
                    listed |= ch.category != k;
                    ch.category = k;
                }
                let live = ch.stream.is_some();
                changes.push(Change::Channel(channel_id.clone()));
                if listed && live {
                    changes.push(Change::Live);
                }
                if visible {
                    changes.push(Change::Stream(channel_id));
                }
            }
            Command::StartStream {
                channel_id,
                title,
                category_id,
                now,
            } => {
                let c = d
                    .channel_by_id(&channel_id)
                    .ok_or_else(|| no_channel(&channel_id))?;
                let category = match category_id {
                    None => None,
                    Some(id) => Some(d.category_by_id(&id).ok_or_else(|| {
                        StoreError::NotFound(format!("no category has id `{id}`"))
                    })?),
                };
                if d.channel(c).stream.is_some() {
                    return Err(StoreError::Conflict("the channel is already live".into()));
                }
                let s = d.start_stream(c, &title, category, now);
                applied.created = Some(d.streams[s.0 as usize].id.clone());
                changes.push(Change::Channel(channel_id.clone()));
                changes.push(Change::Live);
                changes.push(Change::Stream(channel_id));
            }
            Command::EndStream { channel_id } => {
                let c = d
                    .channel_by_id(&channel_id)
                    .ok_or_else(|| no_channel(&channel_id))?;
                if d.end_stream(c) {
                    changes.push(Change::Channel(channel_id.clone()));
                    changes.push(Change::Live);
                    changes.push(Change::Stream(channel_id));
                }
            }
            Command::Follow {
                user_id,
                channel_id,
            } => {
                let (u, c) = user_and_channel(&d, &user_id, &channel_id)?;
                if d.follow(u, c) {
                    changes.push(Change::Channel(channel_id.clone()));
                    changes.push(Change::Follow {
                        user_id,
                        channel_id,
                    });
                }
            }
            Command::Unfollow {
                user_id,
                channel_id,
            } => {
                let (u, c) = user_and_channel(&d, &user_id, &channel_id)?;
                if d.unfollow(u, c) {
                    changes.push(Change::Channel(channel_id.clone()));
                    changes.push(Change::Follow {
                        user_id,
                        channel_id,
                    });
                }
            }
            Command::Ban {
                channel_id,
                user_id,
                until,
            } => {
                let (u, c) = user_and_channel(&d, &user_id, &channel_id)?;
                let bans = &mut d.channels[c.0 as usize].bans;
                bans.retain(|(b, _)| *b != u);
                bans.push((u, until));
                changes.push(Change::Membership {
                    user_id,
                    channel_id,
                });
            }
            Command::Unban {
                channel_id,
                user_id,
            } => {
                let (u, c) = user_and_channel(&d, &user_id, &channel_id)?;
                let bans = &mut d.channels[c.0 as usize].bans;
                let before = bans.len();
                bans.retain(|(b, _)| *b != u);
                if bans.len() != before {
                    changes.push(Change::Membership {
                        user_id,
                        channel_id,
                    });
                }
            }
            Command::AddModerator {
                channel_id,
                user_id,
            } => {
                let (u, c) = user_and_channel(&d, &user_id, &channel_id)?;
                let mods = &mut d.channels[c.0 as usize].moderators;
                if !mods.contains(&u) {
                    mods.push(u);
                    changes.push(Change::Channel(channel_id.clone()));
                    changes.push(Change::Membership {
                        user_id,
                        channel_id,
                    });
                }
            }
            Command::RemoveModerator {
                channel_id,
                user_id,
            } => {
                let (u, c) = user_and_channel(&d, &user_id, &channel_id)?;
                let mods = &mut d.channels[c.0 as usize].moderators;
                let before = mods.len();
                mods.retain(|&m| m != u);
                if mods.len() != before {
                    changes.push(Change::Channel(channel_id.clone()));
                    changes.push(Change::Membership {
                        user_id,
                        channel_id,
                    });
                }
            }
        }
        Ok(applied)
    }
}

fn user_and_channel(
    d: &Data,
    user_id: &str,
    channel_id: &str,
) -> Result<(data::UserIx, data::ChannelIx), StoreError> {
    let c = d
        .channel_by_id(channel_id)
        .ok_or_else(|| no_channel(channel_id))?;
    let u = d.user_by_id(user_id).ok_or_else(|| no_user(user_id))?;
    Ok((u, c))
}

impl Store for MemoryStore {
    fn users<'a>(&'a self, ids: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<User>>> {
        let d = self.read();
        done(Ok(ids
            .iter()
            .map(|id| d.user_by_id(id).map(|u| d.user_row(u)))
            .collect()))
    }

    fn user_by_login<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Option<User>> {
        let d = self.read();
        done(Ok(d.user_by_login(login).map(|u| d.user_row(u))))
    }

    fn channels<'a>(&'a self, ids: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Channel>>> {
        let d = self.read();
        done(Ok(ids
            .iter()
            .map(|id| d.channel_by_id(id).map(|c| d.channel_row(c)))
            .collect()))
    }

    fn streams<'a>(&'a self, ids: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Stream>>> {
        let d = self.read();
        done(Ok(ids
            .iter()
            .map(|id| d.stream_by_id(id).map(|s| d.streams[s.0 as usize].clone()))
            .collect()))
    }

    fn categories(&self) -> StoreFuture<'_, Vec<Category>> {
        done(Ok(self.read().categories.clone()))
    }

    fn live(&self) -> StoreFuture<'_, Vec<Live>> {
        let d = self.read();
        done(Ok(d.live.iter().filter_map(|&c| d.live_row(c)).collect()))
    }

    fn follows<'a>(
        &'a self,
        user_id: &'a str,
        channel_ids: &'a [&'a str],
    ) -> StoreFuture<'a, Vec<bool>> {
        let d = self.read();
        let following = d.user_by_id(user_id).map(|u| &d.user(u).following);
        done(Ok(channel_ids
            .iter()
            .map(|id| {
                let c = d.channel_by_id(id);
                following.is_some_and(|f| f.iter().any(|&(_, x)| Some(x) == c))
            })
            .collect()))
    }

    fn followers<'a>(
        &'a self,
        channel_id: &'a str,
        after: Option<u64>,
        first: usize,
    ) -> StoreFuture<'a, KeyPage> {
        let d = self.read();
        let Some(c) = d.channel_by_id(channel_id) else {
            return done(Err(no_channel(channel_id)));
        };
        let list = &d.channel(c).followers;
        done(Ok(key_page(list, after, first, |u| d.user(u).id.clone())))
    }

    fn following<'a>(
        &'a self,
        user_id: &'a str,
        after: Option<u64>,
        first: usize,
    ) -> StoreFuture<'a, KeyPage> {
        let d = self.read();
        let Some(u) = d.user_by_id(user_id) else {
            return done(Err(no_user(user_id)));
        };
        let list = &d.user(u).following;
        done(Ok(key_page(list, after, first, |c| {
            d.channel(c).id.clone()
        })))
    }

    fn messages<'a>(
        &'a self,
        channel_id: &'a str,
        last: usize,
        before_seq: Option<u64>,
    ) -> StoreFuture<'a, Vec<Message>> {
        let d = self.read();
        done(match d.channel_by_id(channel_id) {
            Some(c) => Ok(d.messages(c, last, before_seq, self.clock.now())),
            None => Err(no_channel(channel_id)),
        })
    }

    fn message<'a>(&'a self, channel_id: &'a str, seq: u64) -> StoreFuture<'a, Option<Message>> {
        let d = self.read();
        done(Ok(d
            .channel_by_id(channel_id)
            .and_then(|c| d.message(c, seq, self.clock.now()))))
    }

    fn membership<'a>(
        &'a self,
        channel_id: &'a str,
        user_id: Option<&'a str>,
    ) -> StoreFuture<'a, Option<Membership>> {
        let d = self.read();
        let u = user_id.and_then(|id| d.user_by_id(id));
        done(Ok(d
            .channel_by_id(channel_id)
            .map(|c| d.membership(c, u, self.clock.now()))))
    }

    fn search<'a>(&'a self, query: &'a str, first: usize) -> StoreFuture<'a, Vec<Found>> {
        let d = self.read();
        let hit = |s: &str| s.to_lowercase().contains(query);
        let users = d
            .users
            .iter()
            .filter(|u| hit(&u.login))
            .map(|u| Found::User(u.id.clone()));
        let channels = d
            .channels
            .iter()
            .filter(|c| hit(&c.title))
            .map(|c| Found::Channel(c.id.clone()));
        let categories = d
            .categories
            .iter()
            .filter(|k| hit(&k.name))
            .map(|k| Found::Category(k.id.clone()));
        done(Ok(users
            .chain(channels)
            .chain(categories)
            .take(first)
            .collect()))
    }

    fn apply(&self, command: Command) -> StoreFuture<'_, Applied> {
        done(self.run(command))
    }

    fn record<'a>(&'a self, event: &'a Event, at: crate::store::Millis) -> StoreFuture<'a, ()> {
        let mut d = self.write();
        done(match d.channel_by_id(&event.room) {
            Some(c) => {
                d.record(c, event.seq, Arc::clone(&event.payload), at);
                Ok(())
            }
            None => Err(no_channel(&event.room)),
        })
    }

    fn tail<'a>(&'a self, channel_id: &'a str, max: usize) -> StoreFuture<'a, Option<Tail>> {
        let d = self.read();
        let now = self.clock.now();
        done(Ok(d.channel_by_id(channel_id).map(|c| {
            let log = &d.channel(c).chat.events;
            let mut events: Vec<_> = log
                .before(u64::MAX, now)
                .take(max)
                .map(|(seq, e)| (seq, Arc::clone(e)))
                .collect();
            events.reverse();
            Tail {
                last_seq: log.last_seq(),
                events,
            }
        })))
    }

    fn ready(&self) -> StoreFuture<'_, ()> {
        done(Ok(()))
    }
}
