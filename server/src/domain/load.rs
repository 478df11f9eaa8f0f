//! Loading rows for a level of the executor: the shard's cache first, then what this
//! request loaded already ([`Loaded`]), then one store call for every miss of the
//! batch, whose rows fill the cache. Each loader answers one entry per id, in order.

use std::rc::Rc;

use graphql_exec::exec::FieldError;

use super::Request;
use crate::store::cache::{Fill, FollowList, Key, FOLLOW_PAGE, RECENT_MESSAGES};
use crate::store::{
    Category, Channel, KeyPage, Live, Membership, Message, StoreError, Stream, User,
};

/// A store error as a field error: `NOT_FOUND`, `BAD_USER_INPUT` for a conflict,
/// `SERVICE_UNAVAILABLE`.
pub fn field_error(e: StoreError) -> FieldError {
    let code = match &e {
        StoreError::NotFound(_) => super::values::NOT_FOUND,
        StoreError::Conflict(_) | StoreError::Invalid(_) => super::values::BAD_USER_INPUT,
        StoreError::Unavailable(_) => "SERVICE_UNAVAILABLE",
    };
    FieldError::new(code, e.to_string())
}

/// The users, channels and categories one request loaded from the store: a row it
/// needs twice (the channel page's owner is the user its login named; a stream's
/// channel is the page's channel) is read once even when the shard's cache keeps
/// nothing (`STREAMHUB_CACHE_ENTRIES=0`), as a GraphQL data loader keeps what it loaded
/// for the request. Forgotten when the request writes.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    users: Vec<Rc<User>>,
    channels: Vec<Rc<Channel>>,
    categories: Option<Rc<[Rc<Category>]>>,
}

impl Loaded {
    fn user(&self, id: &str) -> Option<Rc<User>> {
        self.users.iter().find(|u| &*u.id == id).cloned()
    }

    fn channel(&self, id: &str) -> Option<Rc<Channel>> {
        self.channels.iter().find(|c| &*c.id == id).cloned()
    }
}

/// Looks `ids` up with `hit`; loads the misses with `load` in one call and keeps them
/// with `keep`. One entry per id, in order.
async fn through<T>(
    ids: &[&str],
    hit: impl Fn(&str) -> Option<Rc<T>>,
    load: impl AsyncFnOnce(&[&str]) -> Result<Vec<Option<T>>, StoreError>,
    keep: impl Fn(&Rc<T>),
) -> Result<Vec<Option<Rc<T>>>, StoreError> {
    let mut out: Vec<Option<Rc<T>>> = ids.iter().map(|id| hit(id)).collect();
    let mut misses: Vec<&str> = Vec::new();
    for (id, found) in ids.iter().zip(&out) {
        if found.is_none() && !misses.contains(id) {
            misses.push(id);
        }
    }
    if misses.is_empty() {
        return Ok(out);
    }
    let loaded = load(&misses).await?;
    for (id, row) in misses.iter().zip(loaded) {
        let Some(row) = row.map(Rc::new) else {
            continue;
        };
        keep(&row);
        for (want, slot) in ids.iter().zip(out.iter_mut()) {
            if want == id {
                *slot = Some(Rc::clone(&row));
            }
        }
    }
    Ok(out)
}

impl Request<'_> {
    /// Users by id.
    pub async fn users(&self, ids: &[&str]) -> Result<Vec<Option<Rc<User>>>, StoreError> {
        self.users_from(ids, true).await
    }

    /// Keeps a user loaded in `fill` in the shard's cache and for this request.
    fn keep_user(&self, row: &Rc<User>, fill: Fill) {
        self.cache.put_user(row, self.now, fill);
        self.loaded.borrow_mut().users.push(Rc::clone(row));
    }

    /// Keeps a channel loaded in `fill` in the shard's cache and for this request.
    fn keep_channel(&self, row: &Rc<Channel>, fill: Fill) {
        self.cache.put_channel(row, self.now, fill);
        self.loaded.borrow_mut().channels.push(Rc::clone(row));
    }

    /// Forgets what this request loaded (it wrote: what it reads next must see that).
    pub(super) fn forget_loaded(&self) {
        *self.loaded.borrow_mut() = Loaded::default();
    }

    /// Users by id, looked up in the cache first when `cached` (else: known misses).
    async fn users_from(
        &self,
        ids: &[&str],
        cached: bool,
    ) -> Result<Vec<Option<Rc<User>>>, StoreError> {
        let (cache, now, fill) = (self.cache, self.now, self.cache.fill());
        through(
            ids,
            |id| {
                cached
                    .then(|| cache.user(id, now))
                    .flatten()
                    .or_else(|| self.loaded.borrow().user(id))
            },
            async |misses: &[&str]| {
                let store = self.reader_of(misses, Key::User);
                store.users(misses).await
            },
            |row| self.keep_user(row, fill),
        )
        .await
    }

    /// One user by id: a cache hit without a batch (and one lookup counted).
    pub async fn user(&self, id: &str) -> Result<Option<Rc<User>>, StoreError> {
        match self.cache.user(id, self.now) {
            Some(u) => Ok(Some(u)),
            None => Ok(self.users_from(&[id], false).await?.pop().flatten()),
        }
    }

    /// The user with a login (case-insensitive).
    pub async fn user_by_login(&self, login: &str) -> Result<Option<Rc<User>>, StoreError> {
        let lower = lowercase(login);
        if let Some(u) = self.cached_login(&lower).await? {
            return Ok(Some(u));
        }
        let fill = self.cache.fill();
        let user = self
            .reader(Key::Other)
            .user_by_login(&lower)
            .await?
            .map(Rc::new);
        if let Some(u) = &user {
            self.keep_user(u, fill);
        }
        Ok(user)
    }

    /// The channel of the user with a login (case-insensitive): one store call for
    /// both when the cache knows neither.
    pub async fn channel_by_login(&self, login: &str) -> Result<Option<Rc<Channel>>, StoreError> {
        let lower = lowercase(login);
        if let Some(u) = self.cached_login(&lower).await? {
            return self.channel(&u.channel_id).await;
        }
        let fill = self.cache.fill();
        let Some((user, channel)) = self
            .reader(Key::Other)
            .user_and_channel_by_login(&lower)
            .await?
        else {
            return Ok(None);
        };
        let user = Rc::new(user);
        self.keep_user(&user, fill);
        match channel {
            // Read where a changed channel must be read (the primary, with a replica).
            Some(c)
                if self.primary.is_none() || !self.cache.changed(Key::Channel(&c.id), self.now) =>
            {
                let c = Rc::new(c);
                self.keep_channel(&c, fill);
                Ok(Some(c))
            }
            _ => self.channel(&user.channel_id).await,
        }
    }

    /// The user the cache files under a lowercase login, if it knows it.
    async fn cached_login(&self, lower: &str) -> Result<Option<Rc<User>>, StoreError> {
        match self.cache.login(lower, self.now) {
            Some(id) => self.user(&id).await,
            None => Ok(None),
        }
    }

    /// Channels by id.
    pub async fn channels(&self, ids: &[&str]) -> Result<Vec<Option<Rc<Channel>>>, StoreError> {
        self.channels_from(ids, true).await
    }

    /// Channels by id, looked up in the cache first when `cached` (else: known misses).
    async fn channels_from(
        &self,
        ids: &[&str],
        cached: bool,
    ) -> Result<Vec<Option<Rc<Channel>>>, StoreError> {
        let (cache, now, fill) = (self.cache, self.now, self.cache.fill());
        through(
            ids,
            |id| {
                cached
                    .then(|| cache.channel(id, now))
                    .flatten()
                    .or_else(|| self.loaded.borrow().channel(id))
            },
            async |misses: &[&str]| {
                let store = self.reader_of(misses, Key::Channel);
                store.channels(misses).await
            },
            |row| self.keep_channel(row, fill),
        )
        .await
    }

    /// One channel by id: a cache hit without a batch (and one lookup counted).
    pub async fn channel(&self, id: &str) -> Result<Option<Rc<Channel>>, StoreError> {
        match self.cache.channel(id, self.now) {
            Some(c) => Ok(Some(c)),
            None => Ok(self.channels_from(&[id], false).await?.pop().flatten()),
        }
    }

    /// A channel by id, read from the store itself (for a mutation's checks).
    pub async fn fresh_channel(&self, id: &str) -> Result<Option<Rc<Channel>>, StoreError> {
        Ok(self
            .writer_reads()
            .channels(&[id])
            .await?
            .pop()
            .flatten()
            .map(Rc::new))
    }

    /// Streams by id.
    pub async fn streams(&self, ids: &[&str]) -> Result<Vec<Option<Rc<Stream>>>, StoreError> {
        let (cache, now, fill) = (self.cache, self.now, self.cache.fill());
        through(
            ids,
            |id| cache.stream(id, now),
            async |misses: &[&str]| self.reader(Key::Other).streams(misses).await,
            |row| cache.put_stream(row, now, fill),
        )
        .await
    }

    /// Every category.
    pub async fn categories(&self) -> Result<Rc<[Rc<Category>]>, StoreError> {
        if let Some(all) = self.cache.categories(self.now) {
            return Ok(all);
        }
        if let Some(all) = &self.loaded.borrow().categories {
            return Ok(Rc::clone(all));
        }
        let fill = self.cache.fill();
        let all: Rc<[Rc<Category>]> = self
            .reader(Key::Other)
            .categories()
            .await?
            .into_iter()
            .map(Rc::new)
            .collect();
        self.cache.put_categories(&all, self.now, fill);
        self.loaded.borrow_mut().categories = Some(Rc::clone(&all));
        Ok(all)
    }

    /// The category with an id.
    pub async fn category(&self, id: &str) -> Result<Option<Rc<Category>>, StoreError> {
        Ok(self
            .categories()
            .await?
            .iter()
            .find(|k| &*k.id == id)
            .cloned())
    }

    /// The live channels, in no order.
    pub async fn live(&self) -> Result<Rc<[Live]>, StoreError> {
        if let Some(live) = self.cache.live(self.now) {
            return Ok(live);
        }
        let fill = self.cache.fill();
        let live: Rc<[Live]> = self.reader(Key::Live).live().await?.into();
        self.cache.put_live(&live, self.now, fill);
        Ok(live)
    }

    /// Whether `user_id` follows each of `channel_ids`.
    pub async fn follows(
        &self,
        user_id: &str,
        channel_ids: &[&str],
    ) -> Result<Vec<bool>, StoreError> {
        let mut out: Vec<Option<bool>> = channel_ids
            .iter()
            .map(|c| self.cache.follows(user_id, c, self.now))
            .collect();
        let misses: Vec<&str> = channel_ids
            .iter()
            .zip(&out)
            .filter(|(_, f)| f.is_none())
            .map(|(c, _)| *c)
            .collect();
        if !misses.is_empty() {
            let fill = self.cache.fill();
            let store = self.reader_of(&misses, |c| Key::Follow(user_id, c));
            let loaded = store.follows(user_id, &misses).await?;
            for (c, yes) in misses.iter().zip(loaded) {
                self.cache.put_follows(user_id, c, yes, self.now, fill);
                for (want, slot) in channel_ids.iter().zip(out.iter_mut()) {
                    if want == c {
                        *slot = Some(yes);
                    }
                }
            }
        }
        Ok(out.into_iter().map(|f| f.unwrap_or(false)).collect())
    }

    /// What `user_id` is in a channel (None: nothing).
    pub async fn membership(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<Option<Rc<Membership>>, StoreError> {
        if let Some(m) = self.cache.membership(user_id, channel_id, self.now) {
            return Ok(m);
        }
        let fill = self.cache.fill();
        let m = self
            .reader(Key::Membership(user_id, channel_id))
            .membership(channel_id, Some(user_id))
            .await?
            .map(Rc::new);
        self.cache
            .put_membership(user_id, channel_id, m.clone(), self.now, fill);
        Ok(m)
    }

    /// A page of a follow list (of the channel or user `id`) and how many of its items
    /// to show: a first page from the cache's entry, a later one from the store.
    pub async fn follow_list(
        &self,
        list: FollowList,
        id: &str,
        after: Option<u64>,
        first: usize,
    ) -> Result<(Rc<KeyPage>, usize), StoreError> {
        // The store is chosen when a load happens (a trial from the cache must not
        // ask for it on a hit).
        // The users (channels) a page of followers (followed channels) shows come with it.
        let load = async |n| {
            let store = self.reader(Key::FollowList(list, id));
            match list {
                FollowList::Followers => {
                    let fill = self.cache.fill();
                    let (page, users) = store.followers_with_users(id, after, n, first).await?;
                    self.keep_joined(&page, users, |id| Key::User(id), fill, Self::keep_user);
                    Ok(page)
                }
                FollowList::Following => {
                    let fill = self.cache.fill();
                    let (page, channels) =
                        store.following_with_channels(id, after, n, first).await?;
                    self.keep_joined(
                        &page,
                        channels,
                        |id| Key::Channel(id),
                        fill,
                        Self::keep_channel,
                    );
                    Ok(page)
                }
            }
        };
        if after.is_some() || first > FOLLOW_PAGE {
            let page = Rc::new(load(first).await?);
            let n = page.items.len();
            return Ok((page, n));
        }
        let page = match self.cache.follow_list(list, id, self.now) {
            Some(page) => page,
            None => {
                let fill = self.cache.fill();
                let page = Rc::new(load(FOLLOW_PAGE).await?);
                self.cache.put_follow_list(list, id, &page, self.now, fill);
                page
            }
        };
        let n = page.items.len().min(first);
        Ok((page, n))
    }

    /// Keeps the rows that came with a follow page (in its order), except where the
    /// cache marks a row changed and a replica may have read it stale.
    fn keep_joined<T>(
        &self,
        page: &KeyPage,
        rows: Vec<Option<T>>,
        key: for<'k> fn(&'k str) -> Key<'k>,
        fill: Fill,
        keep: fn(&Self, &Rc<T>, Fill),
    ) {
        for (row, (_, id)) in rows.into_iter().zip(&page.items) {
            let fresh = || self.primary.is_none() || !self.cache.changed(key(id), self.now);
            if let Some(row) = row.filter(|_| fresh()) {
                keep(self, &Rc::new(row), fill);
            }
        }
    }

    /// The newest messages of a channel (at most [`RECENT_MESSAGES`]), oldest first,
    /// and how many of the oldest to skip to leave the `last` newest.
    pub async fn recent_messages(
        &self,
        channel_id: &str,
        last: usize,
    ) -> Result<(Rc<[Rc<Message>]>, usize), StoreError> {
        let all = match self.cache.messages(channel_id, self.now) {
            Some(all) => all,
            None => {
                let fill = self.cache.fill();
                let all: Rc<[Rc<Message>]> = self
                    .reader(Key::Messages(channel_id))
                    .messages(channel_id, RECENT_MESSAGES, None)
                    .await?
                    .into_iter()
                    .map(Rc::new)
                    .collect();
                self.cache.put_messages(channel_id, &all, self.now, fill);
                all
            }
        };
        let skip = all.len().saturating_sub(last);
        Ok((all, skip))
    }
}

/// `login` in lowercase (borrowed when it is).
fn lowercase(login: &str) -> std::borrow::Cow<'_, str> {
    if login.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(login.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(login)
    }
}
