//! The `async-graphql` peer: StreamHub's schema built the way async-graphql's book
//! recommends (`#[Object]` types, `DataLoader`s for users, channels and categories over
//! the store's batch loads, the Apollo persisted-queries extension), over the same data
//! layer as the server (a [`DataLayer`]: the [`streamhub_server::store::Store`] trait,
//! the rooms that order chat events, presence for viewer counts) and the same demo data,
//! with the same field semantics as the server's domain (keyset cursors included), so
//! the corpus test can require equal results and the bench compares the same work.
//! Objects hold the store's rows (`Arc`), never anything of a store's internals.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{
    Context, EmptySubscription, Enum, Error, ErrorExtensions, InputObject, Interface,
    MaybeUndefined, Object, Result, Schema, SimpleObject, Union, ID,
};
use graphql_exec::exec::FieldError;
use streamhub_pubsub::{Chat, Event};
use streamhub_server::auth::policy::{can, Action, Denied};
use streamhub_server::auth::Viewer;
use streamhub_server::domain::values::date_time;
use streamhub_server::domain::{input, message_of, DataLayer, Roles};
use streamhub_server::store::cache::RECENT_MESSAGES;
use streamhub_server::store::cursor::Cursor;
use streamhub_server::store::{
    self as rows, Applied, Author, Command, Found, KeyPage, Live, Membership, Millis, SharedStore,
    StoreError,
};

/// The peer's schema type.
pub type PeerSchema = Schema<Query, Mutation, EmptySubscription>;

/// Who is asking (from a verified token).
#[derive(Debug, Clone)]
pub struct PeerViewer {
    /// The token's `sub`.
    pub id: String,
    /// The token's `login`.
    pub login: String,
    /// Whether `roles` holds `admin`.
    pub admin: bool,
}

/// The schema over `data`, with the APQ extension and the data loaders.
pub fn schema(data: DataLayer) -> PeerSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .extension(
            async_graphql::extensions::apollo_persisted_queries::ApolloPersistedQueries::new(
                async_graphql::extensions::apollo_persisted_queries::LruCacheStorage::new(1000),
            ),
        )
        .data(DataLoader::new(
            UserLoader(Arc::clone(&data.store)),
            tokio::spawn,
        ))
        .data(DataLoader::new(
            ChannelLoader(Arc::clone(&data.store)),
            tokio::spawn,
        ))
        .data(DataLoader::new(
            CategoryLoader(Arc::clone(&data.store)),
            tokio::spawn,
        ))
        .data(data)
        .finish()
}

/// The request data for `viewer`: its user's row, the user made sure of first through
/// [`Command::EnsureUser`] (created on first sight, its admin role recorded when it
/// changed), as the server does.
pub async fn viewer_data(data: &DataLayer, viewer: &PeerViewer) -> Result<ViewerRow, StoreError> {
    let found = data.store.users(&[&viewer.id]).await?.pop().flatten();
    if let Some(u) = found {
        if u.admin == viewer.admin {
            return Ok(ViewerRow(Arc::new(u), viewer.admin));
        }
    }
    data.store
        .apply(Command::EnsureUser {
            id: viewer.id.as_str().into(),
            login: viewer.login.as_str().into(),
            admin: viewer.admin,
            now: data.clock.now(),
        })
        .await?;
    let u = data
        .store
        .users(&[&viewer.id])
        .await?
        .pop()
        .flatten()
        .ok_or_else(|| StoreError::NotFound(format!("no user has id `{}`", viewer.id)))?;
    Ok(ViewerRow(Arc::new(u), viewer.admin))
}

/// The viewer of a request, as request data: its user's row and the token's admin role.
#[derive(Debug, Clone)]
pub struct ViewerRow(pub Arc<rows::User>, pub bool);

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    login: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// The viewer of an HS256 bearer token (claims `sub`, `login`, `roles`, `exp`), checked
/// as the server checks them: `exp` and `sub` required, 30 s of leeway, `sub` and
/// `login` not empty, `admin` in `roles` for the admin role.
pub fn verify_token(key: &jsonwebtoken::DecodingKey, token: &str) -> Result<PeerViewer, String> {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.leeway = 30;
    v.set_required_spec_claims(&["exp", "sub"]);
    let c = jsonwebtoken::decode::<Claims>(token, key, &v)
        .map_err(|e| e.to_string())?
        .claims;
    if c.sub.is_empty() || c.login.is_empty() {
        return Err("the token lacks a required claim (sub, login, exp)".to_owned());
    }
    Ok(PeerViewer {
        id: c.sub,
        login: c.login,
        admin: c.roles.iter().any(|r| r == "admin"),
    })
}

fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message.into()).extend_with(|_, e| e.set("code", code))
}

/// A store error as the server reports it: `NOT_FOUND`, `BAD_USER_INPUT` for a
/// conflict, `SERVICE_UNAVAILABLE`.
fn store_error(e: StoreError) -> Error {
    let code = match &e {
        StoreError::NotFound(_) => "NOT_FOUND",
        StoreError::Conflict(_) | StoreError::Invalid(_) => "BAD_USER_INPUT",
        StoreError::Unavailable(_) => "SERVICE_UNAVAILABLE",
    };
    coded(code, e.to_string())
}

fn data<'a>(ctx: &Context<'a>) -> &'a DataLayer {
    ctx.data_unchecked::<DataLayer>()
}

fn store<'a>(ctx: &Context<'a>) -> &'a SharedStore {
    &data(ctx).store
}

fn viewer<'a>(ctx: &Context<'a>) -> Option<&'a ViewerRow> {
    ctx.data_opt::<ViewerRow>()
}

fn viewers(ctx: &Context<'_>, channel_id: &str) -> u32 {
    data(ctx).presence.count(channel_id)
}

fn page_size(n: Option<i32>, default: usize, name: &str) -> Result<usize> {
    match n {
        None => Ok(default),
        Some(n @ 0..=100) => Ok(n as usize),
        Some(n) => Err(coded(
            "BAD_USER_INPUT",
            format!("`{name}` must be between 0 and 100, not {n}"),
        )),
    }
}

/// The `after` cursor, if given.
fn after_cursor(after: Option<&str>) -> Result<Option<Cursor>> {
    after
        .map(|c| Cursor::decode(c).map_err(|e| coded("BAD_USER_INPUT", e.to_string())))
        .transpose()
}

fn wrong_list(c: &Cursor) -> Error {
    coded(
        "BAD_USER_INPUT",
        format!("`{}` is not a cursor of this list", c.encode()),
    )
}

/// The key a follow list's page starts after.
fn follow_after(after: Option<&str>) -> Result<Option<u64>> {
    match after_cursor(after)? {
        None => Ok(None),
        Some(Cursor::Follow(key)) => Ok(Some(key)),
        Some(other) => Err(wrong_list(&other)),
    }
}

/// The (viewers, tie-break) a list by viewers starts after.
fn viewers_after(after: Option<&str>) -> Result<Option<(u64, String)>> {
    match after_cursor(after)? {
        None => Ok(None),
        Some(Cursor::Viewers(count, tie)) => Ok(Some((count, tie))),
        Some(other) => Err(wrong_list(&other)),
    }
}

/// Whether an item at (`count`, `tie`) of a list by viewers (most first, ties by
/// `tie`) comes after the cursor's place.
fn after_place(count: u64, tie: &str, cursor: &Option<(u64, String)>) -> bool {
    cursor
        .as_ref()
        .is_none_or(|(c, t)| count < *c || (count == *c && tie > t.as_str()))
}

/// Loads users by id, with the store's batch load.
pub struct UserLoader(SharedStore);
/// Loads channels by id, with the store's batch load.
pub struct ChannelLoader(SharedStore);
/// Loads categories by id, from the store's categories.
pub struct CategoryLoader(SharedStore);

/// The rows of a batch load, by id.
fn by_id<T>(keys: &[String], rows: Vec<Option<T>>) -> HashMap<String, Arc<T>> {
    keys.iter()
        .zip(rows)
        .filter_map(|(k, r)| Some((k.clone(), Arc::new(r?))))
        .collect()
}

impl Loader<String> for UserLoader {
    type Value = Arc<rows::User>;
    type Error = StoreError;
    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, StoreError> {
        let ids: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok(by_id(keys, self.0.users(&ids).await?))
    }
}

impl Loader<String> for ChannelLoader {
    type Value = Arc<rows::Channel>;
    type Error = StoreError;
    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, StoreError> {
        let ids: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok(by_id(keys, self.0.channels(&ids).await?))
    }
}

impl Loader<String> for CategoryLoader {
    type Value = Arc<rows::Category>;
    type Error = StoreError;
    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, StoreError> {
        let all = self.0.categories().await?;
        Ok(all
            .into_iter()
            .filter(|k| keys.iter().any(|id| *id == *k.id))
            .map(|k| (k.id.to_string(), Arc::new(k)))
            .collect())
    }
}

async fn load_user(ctx: &Context<'_>, id: &str) -> Result<Option<User>> {
    Ok(ctx
        .data_unchecked::<DataLoader<UserLoader>>()
        .load_one(id.to_owned())
        .await
        .map_err(store_error)?
        .map(User))
}

/// Users by id, in order, the missing ones left out.
async fn load_users(ctx: &Context<'_>, ids: &[&str]) -> Result<Vec<User>> {
    let map = ctx
        .data_unchecked::<DataLoader<UserLoader>>()
        .load_many(ids.iter().map(|id| (*id).to_owned()))
        .await
        .map_err(store_error)?;
    Ok(ids
        .iter()
        .filter_map(|id| map.get(*id).cloned().map(User))
        .collect())
}

async fn load_channel(ctx: &Context<'_>, id: &str) -> Result<Option<Channel>> {
    Ok(ctx
        .data_unchecked::<DataLoader<ChannelLoader>>()
        .load_one(id.to_owned())
        .await
        .map_err(store_error)?
        .map(Channel))
}

/// Channels by id, in order, the missing ones left out.
async fn load_channels(ctx: &Context<'_>, ids: &[&str]) -> Result<Vec<Channel>> {
    let map = ctx
        .data_unchecked::<DataLoader<ChannelLoader>>()
        .load_many(ids.iter().map(|id| (*id).to_owned()))
        .await
        .map_err(store_error)?;
    Ok(ids
        .iter()
        .filter_map(|id| map.get(*id).cloned().map(Channel))
        .collect())
}

async fn load_category(ctx: &Context<'_>, id: Option<&str>) -> Result<Option<Category>> {
    match id {
        None => Ok(None),
        Some(id) => Ok(ctx
            .data_unchecked::<DataLoader<CategoryLoader>>()
            .load_one(id.to_owned())
            .await
            .map_err(store_error)?
            .map(Category)),
    }
}

/// A to-one relation that must be there: the server's error when its row is gone.
fn present<T>(row: Option<T>, what: &str) -> Result<T> {
    row.ok_or_else(|| Error::new(format!("the {what} is gone")))
}

/// Every category, as rows.
async fn categories(ctx: &Context<'_>) -> Result<Vec<Category>> {
    Ok(store(ctx)
        .categories()
        .await
        .map_err(store_error)?
        .into_iter()
        .map(|k| Category(Arc::new(k)))
        .collect())
}

async fn live(ctx: &Context<'_>) -> Result<Vec<Live>> {
    store(ctx).live().await.map_err(store_error)
}

/// `Role`.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum Role {
    /// Everyone.
    Viewer,
    /// Global admins.
    Admin,
}

/// `Node`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID"))]
pub enum Node {
    /// A user.
    User(User),
    /// A channel.
    Channel(Channel),
    /// A stream.
    Stream(Stream),
    /// A category.
    Category(Category),
    /// A chat message.
    ChatMessage(ChatMessage),
}

/// `SearchResult`.
#[derive(Union)]
pub enum SearchResult {
    /// A user.
    User(User),
    /// A channel.
    Channel(Channel),
    /// A category.
    Category(Category),
}

/// A user: the store's row.
#[derive(Clone)]
pub struct User(Arc<rows::User>);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn login(&self) -> &str {
        &self.0.login
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn bio(&self) -> Option<&str> {
        self.0.bio.as_deref()
    }
    async fn roles(&self, ctx: &Context<'_>) -> Vec<Role> {
        let admin = match viewer(ctx) {
            Some(v) if v.0.id == self.0.id => v.1,
            _ => self.0.admin,
        };
        if admin {
            vec![Role::Viewer, Role::Admin]
        } else {
            vec![Role::Viewer]
        }
    }
    async fn created_at(&self) -> String {
        date_time(self.0.created_at)
    }
    async fn channel(&self, ctx: &Context<'_>) -> Result<Channel> {
        present(load_channel(ctx, &self.0.channel_id).await?, "channel")
    }
    async fn following(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<ChannelConnection> {
        let first = page_size(Some(first), 20, "first")?;
        let after = follow_after(after.as_deref())?;
        let page = store(ctx)
            .following(&self.0.id, after, first)
            .await
            .map_err(store_error)?;
        let ids: Vec<&str> = page.items.iter().map(|(_, id)| &**id).collect();
        let found = load_channels(ctx, &ids).await?;
        Ok(follow_page(&page, found, |c| &c.0.id).into())
    }
}

/// A page of a follow list: the rows found, each with its follow's cursor.
fn follow_page<T>(page: &KeyPage, found: Vec<T>, id: impl Fn(&T) -> &str) -> Connection<T> {
    let mut found = found.into_iter().peekable();
    let (mut nodes, mut cursors) = (Vec::new(), Vec::new());
    for (key, want) in &page.items {
        if found.peek().is_some_and(|f| id(f) == &**want) {
            nodes.extend(found.next());
            cursors.push(Cursor::Follow(*key).encode());
        }
    }
    Connection {
        page: PageMeta {
            cursors,
            has_next: page.has_next,
            total: page.total,
        },
        nodes,
    }
}

/// A page's cursors and position.
pub struct PageMeta {
    cursors: Vec<String>,
    has_next: bool,
    total: usize,
}

impl PageMeta {
    fn info(&self) -> PageInfo {
        PageInfo {
            has_next_page: self.has_next,
            end_cursor: self.cursors.last().cloned(),
        }
    }
}

/// `PageInfo`.
#[derive(SimpleObject)]
pub struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

/// A page of a list, before it is given its GraphQL type.
pub struct Connection<T> {
    page: PageMeta,
    nodes: Vec<T>,
}

macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ty) => {
        /// A page of a list.
        pub struct $conn {
            page: PageMeta,
            nodes: Vec<$node>,
        }

        impl From<Connection<$node>> for $conn {
            fn from(c: Connection<$node>) -> $conn {
                $conn {
                    page: c.page,
                    nodes: c.nodes,
                }
            }
        }

        /// An item of a page with its cursor.
        #[derive(SimpleObject)]
        pub struct $edge {
            cursor: String,
            node: $node,
        }

        #[Object]
        impl $conn {
            async fn edges(&self) -> Vec<$edge> {
                self.nodes
                    .iter()
                    .zip(&self.page.cursors)
                    .map(|(n, c)| $edge {
                        cursor: c.clone(),
                        node: n.clone(),
                    })
                    .collect()
            }
            async fn nodes(&self) -> &Vec<$node> {
                &self.nodes
            }
            async fn page_info(&self) -> PageInfo {
                self.page.info()
            }
            async fn total_count(&self) -> i32 {
                self.page.total as i32
            }
        }
    };
}

connection!(UserConnection, UserEdge, User);
connection!(ChannelConnection, ChannelEdge, Channel);
connection!(StreamConnection, StreamEdge, Stream);
connection!(CategoryConnection, CategoryEdge, Category);

/// A channel: the store's row.
#[derive(Clone)]
pub struct Channel(Arc<rows::Channel>);

#[Object]
impl Channel {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn login(&self) -> &str {
        &self.0.login
    }
    async fn owner(&self, ctx: &Context<'_>) -> Result<User> {
        present(load_user(ctx, &self.0.owner_id).await?, "user")
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn language(&self) -> &str {
        &self.0.language
    }
    async fn tags(&self) -> Vec<&str> {
        self.0.tags.iter().map(|t| &**t).collect()
    }
    async fn category(&self, ctx: &Context<'_>) -> Result<Option<Category>> {
        load_category(ctx, self.0.category_id.as_deref()).await
    }
    async fn stream(&self, ctx: &Context<'_>) -> Result<Option<Stream>> {
        match &self.0.stream_id {
            None => Ok(None),
            // A live channel's stream that is gone reads as offline.
            Some(id) => stream_by_id(ctx, id).await,
        }
    }
    async fn is_live(&self) -> bool {
        self.0.stream_id.is_some()
    }
    async fn follower_count(&self) -> i32 {
        self.0.follower_count as i32
    }
    async fn followers(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<UserConnection> {
        let first = page_size(Some(first), 20, "first")?;
        let after = follow_after(after.as_deref())?;
        let page = store(ctx)
            .followers(&self.0.id, after, first)
            .await
            .map_err(store_error)?;
        let ids: Vec<&str> = page.items.iter().map(|(_, id)| &**id).collect();
        let found = load_users(ctx, &ids).await?;
        Ok(follow_page(&page, found, |u| &u.0.id).into())
    }
    async fn moderators(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        let ids: Vec<&str> = self.0.moderator_ids.iter().map(|m| &**m).collect();
        load_users(ctx, &ids).await
    }
    async fn viewer_is_following(&self, ctx: &Context<'_>) -> Result<bool> {
        let Some(v) = viewer(ctx) else {
            return Ok(false);
        };
        let yes = store(ctx)
            .follows(&v.0.id, &[&self.0.id])
            .await
            .map_err(store_error)?;
        Ok(yes.first().copied().unwrap_or(false))
    }
    async fn recent_messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] last: i32,
    ) -> Result<Vec<ChatMessage>> {
        let last = page_size(Some(last), 20, "last")?;
        let all = store(ctx)
            .messages(&self.0.id, RECENT_MESSAGES, None)
            .await
            .map_err(store_error)?;
        let skip = all.len().saturating_sub(last);
        Ok(all
            .into_iter()
            .skip(skip)
            .map(|m| ChatMessage(Arc::new(m)))
            .collect())
    }
    async fn viewer_count(&self, ctx: &Context<'_>) -> i32 {
        viewers(ctx, &self.0.id) as i32
    }
}

async fn stream_by_id(ctx: &Context<'_>, id: &str) -> Result<Option<Stream>> {
    Ok(store(ctx)
        .streams(&[id])
        .await
        .map_err(store_error)?
        .pop()
        .flatten()
        .map(|s| Stream(Arc::new(s))))
}

/// A stream: the store's row.
#[derive(Clone)]
pub struct Stream(Arc<rows::Stream>);

#[Object]
impl Stream {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn channel(&self, ctx: &Context<'_>) -> Result<Channel> {
        present(load_channel(ctx, &self.0.channel_id).await?, "channel")
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn category(&self, ctx: &Context<'_>) -> Result<Option<Category>> {
        load_category(ctx, self.0.category_id.as_deref()).await
    }
    async fn language(&self) -> &str {
        &self.0.language
    }
    async fn started_at(&self) -> String {
        date_time(self.0.started_at)
    }
    /// Its channel's viewers while it is the channel's live stream, else 0.
    async fn viewer_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let c = load_channel(ctx, &self.0.channel_id).await?;
        let live = c.is_some_and(|c| c.0.stream_id.as_deref() == Some(&*self.0.id));
        Ok(if live {
            viewers(ctx, &self.0.channel_id) as i32
        } else {
            0
        })
    }
}

/// A category: the store's row.
#[derive(Clone)]
pub struct Category(Arc<rows::Category>);

/// A page of live streams (of one category or language), most viewers first, ties by
/// login, keyset-paged by (viewers, login).
async fn stream_page(
    ctx: &Context<'_>,
    category: Option<&str>,
    language: Option<&str>,
    first: i32,
    after: Option<&str>,
) -> Result<StreamConnection> {
    let first = page_size(Some(first), 20, "first")?;
    let after = viewers_after(after)?;
    let live = live(ctx).await?;
    let mut list: Vec<(u64, &Live)> = live
        .iter()
        .filter(|l| {
            category.is_none_or(|k| l.category_id.as_deref() == Some(k))
                && language.is_none_or(|lang| &*l.language == lang)
        })
        .map(|l| (u64::from(viewers(ctx, &l.channel_id)), l))
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
    let streams = store(ctx).streams(&ids).await.map_err(store_error)?;
    let (mut nodes, mut cursors) = (Vec::new(), Vec::new());
    for ((v, l), s) in chosen.iter().zip(streams) {
        if let Some(s) = s {
            nodes.push(Stream(Arc::new(s)));
            cursors.push(Cursor::Viewers(*v, l.login.to_string()).encode());
        }
    }
    Ok(StreamConnection {
        page: PageMeta {
            cursors,
            has_next,
            total,
        },
        nodes,
    })
}

/// The viewers of a category's live channels, and how many they are.
fn category_live(ctx: &Context<'_>, live: &[Live], id: &str) -> (u64, usize) {
    live.iter()
        .filter(|l| l.category_id.as_deref() == Some(id))
        .fold((0, 0), |(v, n), l| {
            (v + u64::from(viewers(ctx, &l.channel_id)), n + 1)
        })
}

#[Object]
impl Category {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn viewer_count(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(category_live(ctx, &live(ctx).await?, &self.0.id).0 as i32)
    }
    async fn live_stream_count(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(category_live(ctx, &live(ctx).await?, &self.0.id).1 as i32)
    }
    async fn streams(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<StreamConnection> {
        stream_page(ctx, Some(&self.0.id), None, first, after.as_deref()).await
    }
}

/// A chat message: the store's row.
#[derive(Clone)]
pub struct ChatMessage(Arc<rows::Message>);

#[Object]
impl ChatMessage {
    async fn id(&self) -> ID {
        ID(format!("msg_{}_{}", self.0.channel_id, self.0.seq))
    }
    async fn channel(&self, ctx: &Context<'_>) -> Result<Channel> {
        present(load_channel(ctx, &self.0.channel_id).await?, "channel")
    }
    async fn seq(&self) -> i32 {
        self.0.seq as i32
    }
    async fn author(&self, ctx: &Context<'_>) -> Result<User> {
        present(load_user(ctx, &self.0.author.id).await?, "user")
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn sent_at(&self) -> String {
        date_time(self.0.sent_at)
    }
}

/// The query root.
pub struct Query;

fn one_of<'a>(
    a: &'a Option<String>,
    b: &'a Option<String>,
    an: &str,
    bn: &str,
) -> Result<(Option<&'a str>, Option<&'a str>)> {
    match (a, b) {
        (Some(x), None) => Ok((Some(x), None)),
        (None, Some(y)) => Ok((None, Some(y))),
        _ => Err(coded(
            "BAD_USER_INPUT",
            format!("give exactly one of `{an}` and `{bn}`"),
        )),
    }
}

async fn user_by_login(ctx: &Context<'_>, login: &str) -> Result<Option<User>> {
    let lower = login.to_ascii_lowercase();
    Ok(store(ctx)
        .user_by_login(&lower)
        .await
        .map_err(store_error)?
        .map(|u| User(Arc::new(u))))
}

#[Object]
impl Query {
    async fn viewer(&self, ctx: &Context<'_>) -> Option<User> {
        viewer(ctx).map(|v| User(Arc::clone(&v.0)))
    }
    /// Any object by its id: a channel (`ch_`), a category (`cat_`), a stream (`st`), a
    /// chat message (`msg_`), else a user.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let id = id.0;
        if id.starts_with("ch_") {
            if let Some(c) = load_channel(ctx, &id).await? {
                return Ok(Some(Node::Channel(c)));
            }
        }
        if id.starts_with("cat_") {
            if let Some(k) = load_category(ctx, Some(&id)).await? {
                return Ok(Some(Node::Category(k)));
            }
        }
        if id.starts_with("st") {
            if let Some(s) = stream_by_id(ctx, &id).await? {
                return Ok(Some(Node::Stream(s)));
            }
        }
        if let Some((channel, seq)) = id.strip_prefix("msg_").and_then(|m| m.rsplit_once('_')) {
            if let Ok(seq) = seq.parse::<u64>() {
                let m = store(ctx)
                    .message(channel, seq)
                    .await
                    .map_err(store_error)?;
                if let Some(m) = m {
                    return Ok(Some(Node::ChatMessage(ChatMessage(Arc::new(m)))));
                }
            }
        }
        Ok(load_user(ctx, &id).await?.map(Node::User))
    }
    async fn user(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        login: Option<String>,
    ) -> Result<Option<User>> {
        let id = id.map(|i| i.0);
        match one_of(&id, &login, "id", "login")? {
            (Some(i), _) => load_user(ctx, i).await,
            (_, Some(l)) => user_by_login(ctx, l).await,
            _ => Ok(None),
        }
    }
    async fn channel(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        login: Option<String>,
    ) -> Result<Option<Channel>> {
        let id = id.map(|i| i.0);
        let channel_id = match one_of(&id, &login, "id", "login")? {
            (Some(i), _) => i.to_owned(),
            (_, Some(l)) => match user_by_login(ctx, l).await? {
                Some(u) => u.0.channel_id.to_string(),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        load_channel(ctx, &channel_id).await
    }
    async fn streams(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        category_id: Option<ID>,
        language: Option<String>,
    ) -> Result<StreamConnection> {
        // No such category: no streams in it.
        stream_page(
            ctx,
            category_id.as_ref().map(|k| k.as_str()),
            language.as_deref(),
            first,
            after.as_deref(),
        )
        .await
    }
    /// Every category, most viewers first, ties by name, keyset-paged by (viewers, name).
    async fn categories(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<CategoryConnection> {
        let first = page_size(Some(first), 20, "first")?;
        let after = viewers_after(after.as_deref())?;
        let all = categories(ctx).await?;
        let live = live(ctx).await?;
        let mut list: Vec<(u64, Category)> = all
            .into_iter()
            .map(|k| (category_live(ctx, &live, &k.0.id).0, k))
            .collect();
        list.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1 .0.name.cmp(&b.1 .0.name)));
        let total = list.len();
        let rest: Vec<(u64, Category)> = list
            .into_iter()
            .filter(|(v, k)| after_place(*v, &k.0.name, &after))
            .collect();
        let has_next = rest.len() > first;
        let (nodes, cursors) = rest
            .into_iter()
            .take(first)
            .map(|(v, k)| {
                let c = Cursor::Viewers(v, k.0.name.to_string()).encode();
                (k, c)
            })
            .unzip();
        Ok(CategoryConnection {
            page: PageMeta {
                cursors,
                has_next,
                total,
            },
            nodes,
        })
    }
    async fn category(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        slug: Option<String>,
    ) -> Result<Option<Category>> {
        let id = id.map(|i| i.0);
        let (i, s) = one_of(&id, &slug, "id", "slug")?;
        Ok(categories(ctx).await?.into_iter().find(|k| match (i, s) {
            (Some(i), _) => *k.0.id == *i,
            (_, Some(s)) => *k.0.slug == *s,
            _ => false,
        }))
    }
    async fn chat_history(
        &self,
        ctx: &Context<'_>,
        channel_id: ID,
        #[graphql(default = 50)] last: i32,
        before_seq: Option<i32>,
    ) -> Result<Vec<ChatMessage>> {
        let last = page_size(Some(last), 50, "last")?;
        let before = match before_seq {
            None => None,
            Some(s) if s >= 1 => Some(s as u64),
            Some(s) => {
                return Err(coded(
                    "BAD_USER_INPUT",
                    format!("`beforeSeq` must be at least 1, not {s}"),
                ))
            }
        };
        if load_channel(ctx, &channel_id).await?.is_none() {
            return Err(coded(
                "NOT_FOUND",
                format!("no channel has id `{}`", channel_id.0),
            ));
        }
        Ok(store(ctx)
            .messages(&channel_id, last, before)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|m| ChatMessage(Arc::new(m)))
            .collect())
    }
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(default = 10)] first: i32,
    ) -> Result<Vec<SearchResult>> {
        let q = query.trim().to_lowercase();
        let first = page_size(Some(first), 10, "first")?;
        if q.is_empty() {
            return Err(coded("BAD_USER_INPUT", "`query` must not be empty"));
        }
        let found = store(ctx).search(&q, first).await.map_err(store_error)?;
        let mut out = Vec::with_capacity(found.len());
        for f in found {
            let r = match f {
                Found::User(id) => load_user(ctx, &id).await?.map(SearchResult::User),
                Found::Channel(id) => load_channel(ctx, &id).await?.map(SearchResult::Channel),
                Found::Category(id) => load_category(ctx, Some(&id))
                    .await?
                    .map(SearchResult::Category),
            };
            out.extend(r);
        }
        Ok(out)
    }
}

/// `UpdateProfileInput`.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    display_name: Option<String>,
    bio: Option<String>,
}

/// `UpdateChannelInput`.
#[derive(InputObject)]
pub struct UpdateChannelInput {
    title: Option<String>,
    language: Option<String>,
    tags: Option<Vec<String>>,
    /// Absent: unchanged; null: no category.
    category_id: MaybeUndefined<ID>,
}

/// `StartStreamInput`.
#[derive(InputObject)]
pub struct StartStreamInput {
    title: String,
    category_id: Option<ID>,
}

/// The mutation root: every mutation of schema.graphql, with the server's input rules
/// ([`streamhub_server::domain::input`]) and authorization module
/// ([`streamhub_server::auth::policy`], through [`Roles`]), checked in the same order as
/// the server, then the same [`Command`]s; chat events are ordered by the rooms, then
/// kept by the store.
pub struct Mutation;

fn denied(e: Denied) -> Error {
    let code = match e {
        Denied::Unauthenticated => "UNAUTHENTICATED",
        Denied::Forbidden(_) => "FORBIDDEN",
    };
    coded(code, e.to_string())
}

/// The server's input rules' errors, as async-graphql errors.
fn input_error(e: FieldError) -> Error {
    coded(e.code.unwrap_or("BAD_USER_INPUT"), e.message)
}

fn signed_in<'a>(ctx: &Context<'a>) -> Result<&'a ViewerRow> {
    viewer(ctx).ok_or_else(|| denied(Denied::Unauthenticated))
}

/// A channel read from the store itself, or `NOT_FOUND`.
async fn channel_arg(ctx: &Context<'_>, id: &str) -> Result<Arc<rows::Channel>> {
    store(ctx)
        .channels(&[id])
        .await
        .map_err(store_error)?
        .pop()
        .flatten()
        .map(Arc::new)
        .ok_or_else(|| coded("NOT_FOUND", format!("no channel has id `{id}`")))
}

/// A user that must exist, or `NOT_FOUND`.
async fn user_arg(ctx: &Context<'_>, id: &str) -> Result<Arc<rows::User>> {
    store(ctx)
        .users(&[id])
        .await
        .map_err(store_error)?
        .pop()
        .flatten()
        .map(Arc::new)
        .ok_or_else(|| coded("NOT_FOUND", format!("no user has id `{id}`")))
}

/// A category id that must exist, or `BAD_USER_INPUT`.
async fn category_arg(ctx: &Context<'_>, id: &str) -> Result<Box<str>> {
    match load_category(ctx, Some(id)).await? {
        Some(k) => Ok(k.0.id.clone()),
        None => Err(coded(
            "BAD_USER_INPUT",
            format!("no category has id `{id}`"),
        )),
    }
}

/// Asks the policy whether the viewer may do `action` on `channel`, with what the
/// viewer is in it read from the store.
async fn check(ctx: &Context<'_>, action: Action<'_>, channel: &rows::Channel) -> Result<()> {
    let v = viewer(ctx);
    let m: Option<Membership> = match v {
        None => None,
        Some(v) => store(ctx)
            .membership(&channel.id, Some(&v.0.id))
            .await
            .map_err(store_error)?,
    };
    let token = v.map(|v| Viewer {
        id: Rc::from(&*v.0.id),
        login: Rc::from(&*v.0.login),
        admin: v.1,
    });
    let roles = Roles {
        channel,
        viewer: v.map(|v| &*v.0.id).zip(m.as_ref()),
    };
    can(token.as_ref(), action, &roles).map_err(denied)
}

async fn apply(ctx: &Context<'_>, command: Command) -> Result<Applied> {
    store(ctx).apply(command).await.map_err(store_error)
}

/// The channel, read again after a change.
async fn channel_value(ctx: &Context<'_>, id: &str) -> Result<Channel> {
    channel_arg(ctx, id).await.map(Channel)
}

/// Orders a room event of `channel_id` with the rooms, then has the store keep it.
async fn publish_room(ctx: &Context<'_>, channel_id: &str, chat: Chat) -> Result<Event> {
    let data = data(ctx);
    let room = data
        .rooms
        .open(channel_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| coded("NOT_FOUND", format!("no channel has id `{channel_id}`")))?;
    let now = data.clock.now();
    let event = data
        .rooms
        .order(&room, chat, now)
        .await
        .map_err(store_error)?;
    data.store.record(&event, now).await.map_err(store_error)?;
    Ok(event)
}

#[Object]
impl Mutation {
    async fn update_profile(&self, ctx: &Context<'_>, input: UpdateProfileInput) -> Result<User> {
        let v = signed_in(ctx)?;
        let own = channel_arg(ctx, &v.0.channel_id).await?;
        check(ctx, Action::UpdateProfile, &own).await?;
        let display_name = match &input.display_name {
            Some(n) => Some(input::display_name(n).map_err(input_error)?.into()),
            None => None,
        };
        let bio = match &input.bio {
            Some(b) => Some(input::bio(b).map_err(input_error)?.into()),
            None => None,
        };
        apply(
            ctx,
            Command::UpdateProfile {
                user_id: Box::from(&*v.0.id),
                display_name,
                bio,
            },
        )
        .await?;
        user_arg(ctx, &v.0.id).await.map(User)
    }

    async fn update_channel(
        &self,
        ctx: &Context<'_>,
        input: UpdateChannelInput,
    ) -> Result<Channel> {
        let v = signed_in(ctx)?;
        let own = channel_arg(ctx, &v.0.channel_id).await?;
        check(ctx, Action::ManageChannel, &own).await?;
        let title = input
            .title
            .as_deref()
            .map(input::title)
            .transpose()
            .map_err(input_error)?;
        let language = input
            .language
            .as_deref()
            .map(input::language)
            .transpose()
            .map_err(input_error)?;
        let tags = match &input.tags {
            Some(items) => {
                let tags: Vec<&str> = items.iter().map(String::as_str).collect();
                input::tags(&tags).map_err(input_error)?;
                Some(tags.into_iter().map(Box::from).collect::<Vec<_>>())
            }
            None => None,
        };
        let category_id = match &input.category_id {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(id) => Some(Some(category_arg(ctx, id).await?)),
        };
        apply(
            ctx,
            Command::UpdateChannel {
                channel_id: own.id.clone(),
                title: title.map(Box::from),
                language: language.map(Box::from),
                tags,
                category_id,
            },
        )
        .await?;
        channel_value(ctx, &own.id).await
    }

    async fn start_stream(&self, ctx: &Context<'_>, input: StartStreamInput) -> Result<Stream> {
        let v = signed_in(ctx)?;
        let own = channel_arg(ctx, &v.0.channel_id).await?;
        check(ctx, Action::ManageChannel, &own).await?;
        let title = input::title(&input.title).map_err(input_error)?;
        let category_id = match &input.category_id {
            Some(id) => Some(category_arg(ctx, id).await?),
            None => None,
        };
        let applied = apply(
            ctx,
            Command::StartStream {
                channel_id: own.id.clone(),
                title: title.into(),
                category_id,
                now: data(ctx).clock.now(),
            },
        )
        .await?;
        let id = applied.created.unwrap_or_default();
        present(stream_by_id(ctx, &id).await?, "stream")
    }

    async fn end_stream(&self, ctx: &Context<'_>) -> Result<Channel> {
        let v = signed_in(ctx)?;
        let own = channel_arg(ctx, &v.0.channel_id).await?;
        check(ctx, Action::ManageChannel, &own).await?;
        apply(
            ctx,
            Command::EndStream {
                channel_id: own.id.clone(),
            },
        )
        .await?;
        channel_value(ctx, &own.id).await
    }

    async fn follow(&self, ctx: &Context<'_>, channel_id: ID) -> Result<Channel> {
        self.follows(ctx, &channel_id, true).await
    }

    async fn unfollow(&self, ctx: &Context<'_>, channel_id: ID) -> Result<Channel> {
        self.follows(ctx, &channel_id, false).await
    }

    async fn send_chat_message(
        &self,
        ctx: &Context<'_>,
        channel_id: ID,
        body: String,
    ) -> Result<ChatMessage> {
        let c = present_or(
            load_channel(ctx, &channel_id).await?,
            "NOT_FOUND",
            format!("no channel has id `{}`", channel_id.0),
        )?;
        check(ctx, Action::SendChat, &c.0).await?;
        let v = signed_in(ctx)?;
        let body = input::chat_body(&body).map_err(input_error)?;
        let chat = Chat::Message {
            author: Author {
                id: Arc::clone(&v.0.id),
                login: Arc::clone(&v.0.login),
                display_name: Arc::clone(&v.0.display_name),
            },
            body: body.into(),
            sent_at: data(ctx).clock.now(),
        };
        let event = publish_room(ctx, &c.0.id, chat).await?;
        let m = message_of(&event).ok_or_else(|| Error::new("the message was not a message"))?;
        Ok(ChatMessage(Arc::new(m)))
    }

    async fn delete_chat_message(
        &self,
        ctx: &Context<'_>,
        channel_id: ID,
        message_seq: i32,
    ) -> Result<bool> {
        let c = channel_arg(ctx, &channel_id).await?;
        let message = match u64::try_from(message_seq) {
            Ok(s) => store(ctx).message(&c.id, s).await.map_err(store_error)?,
            Err(_) => None,
        };
        let Some(message) = message else {
            return Err(coded(
                "NOT_FOUND",
                format!("no message has seq {message_seq} in this channel"),
            ));
        };
        check(
            ctx,
            Action::DeleteMessage {
                author_id: &message.author.id,
            },
            &c,
        )
        .await?;
        publish_room(
            ctx,
            &c.id,
            Chat::Deleted {
                message_seq: message.seq,
            },
        )
        .await?;
        Ok(true)
    }

    async fn ban_user(
        &self,
        ctx: &Context<'_>,
        channel_id: ID,
        user_id: ID,
        duration_seconds: Option<i32>,
        reason: Option<String>,
    ) -> Result<bool> {
        let now = data(ctx).clock.now();
        let c = channel_arg(ctx, &channel_id).await?;
        let target = user_arg(ctx, &user_id).await?;
        check(
            ctx,
            Action::Ban {
                target_id: &target.id,
            },
            &c,
        )
        .await?;
        let until: Option<Millis> = match duration_seconds {
            Some(secs) => {
                Some(now + input::ban_seconds(i64::from(secs)).map_err(input_error)? * 1000)
            }
            None => None,
        };
        if let Some(reason) = &reason {
            input::text("reason", reason, 0, 300).map_err(input_error)?;
        }
        apply(
            ctx,
            Command::Ban {
                channel_id: c.id.clone(),
                user_id: Box::from(&*target.id),
                until,
            },
        )
        .await?;
        publish_room(
            ctx,
            &c.id,
            Chat::Banned {
                user_id: Box::from(&*target.id),
                until,
            },
        )
        .await?;
        Ok(true)
    }

    async fn unban_user(&self, ctx: &Context<'_>, channel_id: ID, user_id: ID) -> Result<bool> {
        let c = channel_arg(ctx, &channel_id).await?;
        let target = user_arg(ctx, &user_id).await?;
        check(ctx, Action::Unban, &c).await?;
        let applied = apply(
            ctx,
            Command::Unban {
                channel_id: c.id.clone(),
                user_id: Box::from(&*target.id),
            },
        )
        .await?;
        Ok(!applied.changes.is_empty())
    }

    async fn add_moderator(
        &self,
        ctx: &Context<'_>,
        channel_id: ID,
        user_id: ID,
    ) -> Result<Channel> {
        self.moderators(ctx, &channel_id, &user_id, true).await
    }

    async fn remove_moderator(
        &self,
        ctx: &Context<'_>,
        channel_id: ID,
        user_id: ID,
    ) -> Result<Channel> {
        self.moderators(ctx, &channel_id, &user_id, false).await
    }
}

fn present_or<T>(row: Option<T>, code: &'static str, message: String) -> Result<T> {
    row.ok_or_else(|| coded(code, message))
}

impl Mutation {
    async fn follows(&self, ctx: &Context<'_>, channel_id: &str, follow: bool) -> Result<Channel> {
        let v = signed_in(ctx)?;
        let c = channel_arg(ctx, channel_id).await?;
        check(ctx, Action::Follow, &c).await?;
        let (user_id, channel_id): (Box<str>, _) = ((*v.0.id).into(), c.id.clone());
        let command = if follow {
            if *c.owner_id == *v.0.id {
                return Err(coded(
                    "BAD_USER_INPUT",
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
        apply(ctx, command).await?;
        channel_value(ctx, &c.id).await
    }

    async fn moderators(
        &self,
        ctx: &Context<'_>,
        channel_id: &str,
        user_id: &str,
        add: bool,
    ) -> Result<Channel> {
        let c = channel_arg(ctx, channel_id).await?;
        let target = user_arg(ctx, user_id).await?;
        check(ctx, Action::ManageModerators, &c).await?;
        let (channel_id, user_id): (_, Box<str>) = (c.id.clone(), (*target.id).into());
        let command = if add {
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
        apply(ctx, command).await?;
        channel_value(ctx, &c.id).await
    }
}
