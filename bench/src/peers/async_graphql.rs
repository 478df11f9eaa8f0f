//! The `async-graphql` peer: StreamHub's schema built the way async-graphql's book
//! recommends (`#[Object]` types, `DataLoader`s for users, channels and categories, the
//! Apollo persisted-queries extension), over the same embedded store and demo data, with
//! the same field semantics as the server's domain, so the corpus test can require equal
//! results and the bench compares the same work.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{
    Context, EmptySubscription, Enum, Error, ErrorExtensions, InputObject, Interface,
    MaybeUndefined, Object, Result, Schema, SimpleObject, Union, ID,
};
use graphql_exec::exec::FieldError;
use streamhub_server::auth::policy::{can, Action, Denied};
use streamhub_server::auth::Viewer;
use streamhub_server::domain::values::date_time;
use streamhub_server::domain::{input, Roles};
use streamhub_server::store::{
    CategoryIx, ChannelIx, Data, Millis, RoomEvent, Store, StreamIx, UserIx,
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

/// The schema over `store`, with the APQ extension and the data loaders.
pub fn schema(store: Arc<Store>) -> PeerSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .extension(
            async_graphql::extensions::apollo_persisted_queries::ApolloPersistedQueries::new(
                async_graphql::extensions::apollo_persisted_queries::LruCacheStorage::new(1000),
            ),
        )
        .data(DataLoader::new(
            UserLoader(Arc::clone(&store)),
            tokio::spawn,
        ))
        .data(DataLoader::new(
            ChannelLoader(Arc::clone(&store)),
            tokio::spawn,
        ))
        .data(DataLoader::new(
            CategoryLoader(Arc::clone(&store)),
            tokio::spawn,
        ))
        .data(store)
        .finish()
}

/// The request data for `viewer`: its user index (created on first sight, as the
/// server does).
pub fn viewer_data(store: &Store, viewer: &PeerViewer) -> ViewerIx {
    {
        let d = store.read();
        if let Some(u) = d.user_by_id(&viewer.id) {
            if d.user(u).admin == viewer.admin {
                return ViewerIx(u, viewer.admin);
            }
        }
    }
    let mut d = store.write();
    if let Some(u) = d.user_by_id(&viewer.id) {
        d.users[u.0 as usize].admin = viewer.admin;
        return ViewerIx(u, viewer.admin);
    }
    let login = d.free_login(&viewer.login);
    let u = d.add_user(&viewer.id, &login, &viewer.login, viewer.admin, now());
    ViewerIx(u, viewer.admin)
}

/// The viewer of a request, as request data.
#[derive(Debug, Clone, Copy)]
pub struct ViewerIx(pub UserIx, pub bool);

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

fn now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message.into()).extend_with(|_, e| e.set("code", code))
}

fn store<'a>(ctx: &Context<'a>) -> &'a Arc<Store> {
    ctx.data_unchecked::<Arc<Store>>()
}

fn viewer(ctx: &Context<'_>) -> Option<ViewerIx> {
    ctx.data_opt::<ViewerIx>().copied()
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

fn after(cursor: Option<&str>) -> Result<usize> {
    match cursor {
        None => Ok(0),
        Some(c) => c
            .strip_prefix('o')
            .and_then(|n| n.parse::<usize>().ok())
            .map(|i| i + 1)
            .ok_or_else(|| coded("BAD_USER_INPUT", format!("`{c}` is not a cursor"))),
    }
}

/// Loads users by index.
pub struct UserLoader(Arc<Store>);
/// Loads channels by index.
pub struct ChannelLoader(Arc<Store>);
/// Loads categories by index.
pub struct CategoryLoader(Arc<Store>);

impl Loader<u32> for UserLoader {
    type Value = User;
    type Error = Arc<Error>;
    async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, User>, Self::Error> {
        let d = self.0.read();
        Ok(keys
            .iter()
            .map(|&k| (k, User::row(&d, UserIx(k))))
            .collect())
    }
}

impl Loader<u32> for ChannelLoader {
    type Value = Channel;
    type Error = Arc<Error>;
    async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, Channel>, Self::Error> {
        let d = self.0.read();
        Ok(keys
            .iter()
            .map(|&k| (k, Channel::row(&d, ChannelIx(k))))
            .collect())
    }
}

impl Loader<u32> for CategoryLoader {
    type Value = Category;
    type Error = Arc<Error>;
    async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, Category>, Self::Error> {
        let d = self.0.read();
        Ok(keys
            .iter()
            .map(|&k| {
                let c = d.category(CategoryIx(k));
                (
                    k,
                    Category {
                        ix: CategoryIx(k),
                        id: c.id.to_string(),
                        slug: c.slug.to_string(),
                        name: c.name.to_string(),
                    },
                )
            })
            .collect())
    }
}

async fn load_user(ctx: &Context<'_>, u: UserIx) -> Result<User> {
    ctx.data_unchecked::<DataLoader<UserLoader>>()
        .load_one(u.0)
        .await
        .map_err(|e| (*e).clone())?
        .ok_or_else(|| Error::new("no such user"))
}

async fn load_users(ctx: &Context<'_>, us: &[UserIx]) -> Result<Vec<User>> {
    let map = ctx
        .data_unchecked::<DataLoader<UserLoader>>()
        .load_many(us.iter().map(|u| u.0))
        .await
        .map_err(|e| (*e).clone())?;
    Ok(us.iter().filter_map(|u| map.get(&u.0).cloned()).collect())
}

async fn load_channel(ctx: &Context<'_>, c: ChannelIx) -> Result<Channel> {
    ctx.data_unchecked::<DataLoader<ChannelLoader>>()
        .load_one(c.0)
        .await
        .map_err(|e| (*e).clone())?
        .ok_or_else(|| Error::new("no such channel"))
}

async fn load_channels(ctx: &Context<'_>, cs: &[ChannelIx]) -> Result<Vec<Channel>> {
    let map = ctx
        .data_unchecked::<DataLoader<ChannelLoader>>()
        .load_many(cs.iter().map(|c| c.0))
        .await
        .map_err(|e| (*e).clone())?;
    Ok(cs.iter().filter_map(|c| map.get(&c.0).cloned()).collect())
}

async fn load_category(ctx: &Context<'_>, k: Option<CategoryIx>) -> Result<Option<Category>> {
    match k {
        None => Ok(None),
        Some(k) => ctx
            .data_unchecked::<DataLoader<CategoryLoader>>()
            .load_one(k.0)
            .await
            .map_err(|e| (*e).clone()),
    }
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

/// A user row.
#[derive(Clone)]
pub struct User {
    ix: UserIx,
    id: String,
    login: String,
    display_name: String,
    bio: Option<String>,
    admin: bool,
    created_at: Millis,
    channel: ChannelIx,
}

impl User {
    fn row(d: &Data, u: UserIx) -> User {
        let r = d.user(u);
        User {
            ix: u,
            id: r.id.to_string(),
            login: r.login.to_string(),
            display_name: r.display_name.to_string(),
            bio: r.bio.as_ref().map(|b| b.to_string()),
            admin: r.admin,
            created_at: r.created_at,
            channel: r.channel,
        }
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn login(&self) -> &str {
        &self.login
    }
    async fn display_name(&self) -> &str {
        &self.display_name
    }
    async fn bio(&self) -> Option<&str> {
        self.bio.as_deref()
    }
    async fn roles(&self, ctx: &Context<'_>) -> Vec<Role> {
        let admin = match viewer(ctx) {
            Some(v) if v.0 == self.ix => v.1,
            _ => self.admin,
        };
        if admin {
            vec![Role::Viewer, Role::Admin]
        } else {
            vec![Role::Viewer]
        }
    }
    async fn created_at(&self) -> String {
        date_time(self.created_at)
    }
    async fn channel(&self, ctx: &Context<'_>) -> Result<Channel> {
        load_channel(ctx, self.channel).await
    }
    async fn following(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<ChannelConnection> {
        let first = page_size(Some(first), 20, "first")?;
        let start = after_cursor(after)?;
        let list: Vec<ChannelIx> = store(ctx).read().user(self.ix).following.clone();
        let total = list.len();
        let (items, start, has_next) = window(total, start, first, |i| list[total - 1 - i]);
        Ok(ChannelConnection {
            page: PageMeta::new(start, items.len(), has_next, total),
            nodes: load_channels(ctx, &items).await?,
        })
    }
}

fn after_cursor(a: Option<String>) -> Result<usize> {
    after(a.as_deref())
}

/// The items of a page: (items, start, has_next).
fn window<T>(
    total: usize,
    start: usize,
    first: usize,
    item: impl Fn(usize) -> T,
) -> (Vec<T>, usize, bool) {
    let end = start.saturating_add(first).min(total);
    let start = start.min(end);
    ((start..end).map(item).collect(), start, end < total)
}

/// A page's position.
#[derive(Clone, Copy)]
struct PageMeta {
    start: usize,
    len: usize,
    has_next: bool,
    total: usize,
}

impl PageMeta {
    fn new(start: usize, len: usize, has_next: bool, total: usize) -> PageMeta {
        PageMeta {
            start,
            len,
            has_next,
            total,
        }
    }
    fn cursor(&self, i: usize) -> String {
        format!("o{}", self.start + i)
    }
    fn info(&self) -> PageInfo {
        PageInfo {
            has_next_page: self.has_next,
            end_cursor: (self.len > 0).then(|| self.cursor(self.len - 1)),
        }
    }
}

/// `PageInfo`.
#[derive(SimpleObject)]
pub struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ty) => {
        /// A page of a list.
        pub struct $conn {
            page: PageMeta,
            nodes: Vec<$node>,
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
                    .enumerate()
                    .map(|(i, n)| $edge {
                        cursor: self.page.cursor(i),
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

/// A channel row.
#[derive(Clone)]
pub struct Channel {
    ix: ChannelIx,
    id: String,
    login: String,
    owner: UserIx,
    title: String,
    language: String,
    tags: Vec<String>,
    category: Option<CategoryIx>,
    stream: Option<StreamIx>,
    follower_count: usize,
    viewers: u32,
}

impl Channel {
    fn row(d: &Data, c: ChannelIx) -> Channel {
        let r = d.channel(c);
        Channel {
            ix: c,
            id: r.id.to_string(),
            login: d.channel_login(c).to_owned(),
            owner: r.owner,
            title: r.title.to_string(),
            language: r.language.to_string(),
            tags: r.tags.iter().map(|t| t.to_string()).collect(),
            category: r.category,
            stream: r.stream,
            follower_count: r.followers.len(),
            viewers: r.viewers,
        }
    }
}

#[Object]
impl Channel {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn login(&self) -> &str {
        &self.login
    }
    async fn owner(&self, ctx: &Context<'_>) -> Result<User> {
        load_user(ctx, self.owner).await
    }
    async fn title(&self) -> &str {
        &self.title
    }
    async fn language(&self) -> &str {
        &self.language
    }
    async fn tags(&self) -> &Vec<String> {
        &self.tags
    }
    async fn category(&self, ctx: &Context<'_>) -> Result<Option<Category>> {
        load_category(ctx, self.category).await
    }
    async fn is_live(&self) -> bool {
        self.stream.is_some()
    }
    async fn stream(&self, ctx: &Context<'_>) -> Option<Stream> {
        self.stream.map(|s| Stream::row(&store(ctx).read(), s))
    }
    async fn follower_count(&self) -> i32 {
        self.follower_count as i32
    }
    async fn followers(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<UserConnection> {
        let first = page_size(Some(first), 20, "first")?;
        let start = after_cursor(after)?;
        let list: Vec<UserIx> = store(ctx).read().channel(self.ix).followers.clone();
        let total = list.len();
        let (items, start, has_next) = window(total, start, first, |i| list[total - 1 - i]);
        Ok(UserConnection {
            page: PageMeta::new(start, items.len(), has_next, total),
            nodes: load_users(ctx, &items).await?,
        })
    }
    async fn moderators(&self, ctx: &Context<'_>) -> Result<Vec<User>> {
        let mods = store(ctx).read().channel(self.ix).moderators.clone();
        load_users(ctx, &mods).await
    }
    async fn viewer_is_following(&self, ctx: &Context<'_>) -> bool {
        viewer(ctx).is_some_and(|v| store(ctx).read().user(v.0).following.contains(&self.ix))
    }
    async fn recent_messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] last: i32,
    ) -> Result<Vec<ChatMessage>> {
        let last = page_size(Some(last), 20, "last")?;
        let d = store(ctx).read();
        Ok(d.messages(self.ix, last, None)
            .into_iter()
            .filter_map(|seq| ChatMessage::row(&d, self.ix, seq))
            .collect())
    }
    async fn viewer_count(&self) -> i32 {
        self.viewers as i32
    }
}

/// A stream row.
#[derive(Clone)]
pub struct Stream {
    id: String,
    channel: ChannelIx,
    title: String,
    category: Option<CategoryIx>,
    language: String,
    started_at: Millis,
    viewers: u32,
}

impl Stream {
    fn row(d: &Data, s: StreamIx) -> Stream {
        let r = d.stream(s);
        let live = d.channel(r.channel).stream == Some(s);
        Stream {
            id: r.id.to_string(),
            channel: r.channel,
            title: r.title.to_string(),
            category: r.category,
            language: r.language.to_string(),
            started_at: r.started_at,
            viewers: if live {
                d.channel(r.channel).viewers
            } else {
                0
            },
        }
    }
}

#[Object]
impl Stream {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn channel(&self, ctx: &Context<'_>) -> Result<Channel> {
        load_channel(ctx, self.channel).await
    }
    async fn title(&self) -> &str {
        &self.title
    }
    async fn category(&self, ctx: &Context<'_>) -> Result<Option<Category>> {
        load_category(ctx, self.category).await
    }
    async fn language(&self) -> &str {
        &self.language
    }
    async fn started_at(&self) -> String {
        date_time(self.started_at)
    }
    async fn viewer_count(&self) -> i32 {
        self.viewers as i32
    }
}

/// A category row.
#[derive(Clone)]
pub struct Category {
    ix: CategoryIx,
    id: String,
    slug: String,
    name: String,
}

fn stream_page(
    d: &Data,
    live: &[ChannelIx],
    first: Option<i32>,
    after: Option<String>,
) -> Result<StreamConnection> {
    let first = page_size(first, 20, "first")?;
    let start = after_cursor(after)?;
    let total = live.len();
    let (items, start, has_next) = window(total, start, first, |i| {
        Stream::row(
            d,
            d.channel(live[i])
                .stream
                .expect("live channels have a stream"),
        )
    });
    Ok(StreamConnection {
        page: PageMeta::new(start, items.len(), has_next, total),
        nodes: items,
    })
}

#[Object]
impl Category {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn slug(&self) -> &str {
        &self.slug
    }
    async fn name(&self) -> &str {
        &self.name
    }
    async fn viewer_count(&self, ctx: &Context<'_>) -> i32 {
        store(ctx).read().category_viewers(self.ix) as i32
    }
    async fn live_stream_count(&self, ctx: &Context<'_>) -> i32 {
        let d = store(ctx).read();
        d.live
            .iter()
            .filter(|&&c| d.channel(c).category == Some(self.ix))
            .count() as i32
    }
    async fn streams(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<StreamConnection> {
        let d = store(ctx).read();
        let live = d.live_sorted(Some(self.ix), None);
        stream_page(&d, &live, Some(first), after)
    }
}

/// A chat message.
#[derive(Clone)]
pub struct ChatMessage {
    channel: ChannelIx,
    channel_id: String,
    seq: u32,
    author: UserIx,
    body: String,
    sent_at: Millis,
}

impl ChatMessage {
    fn row(d: &Data, c: ChannelIx, seq: u32) -> Option<ChatMessage> {
        match d.channel(c).log.get(seq)? {
            RoomEvent::Message {
                author,
                body,
                sent_at,
                ..
            } => Some(ChatMessage {
                channel: c,
                channel_id: d.channel(c).id.to_string(),
                seq,
                author: *author,
                body: body.to_string(),
                sent_at: *sent_at,
            }),
            _ => None,
        }
    }
}

#[Object]
impl ChatMessage {
    async fn id(&self) -> ID {
        ID(format!("msg_{}_{}", self.channel_id, self.seq))
    }
    async fn channel(&self, ctx: &Context<'_>) -> Result<Channel> {
        load_channel(ctx, self.channel).await
    }
    async fn seq(&self) -> i32 {
        self.seq as i32
    }
    async fn author(&self, ctx: &Context<'_>) -> Result<User> {
        load_user(ctx, self.author).await
    }
    async fn body(&self) -> &str {
        &self.body
    }
    async fn sent_at(&self) -> String {
        date_time(self.sent_at)
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

#[Object]
impl Query {
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match viewer(ctx) {
            Some(v) => load_user(ctx, v.0).await.map(Some),
            None => Ok(None),
        }
    }
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let id = id.0;
        let found = {
            let d = store(ctx).read();
            if let Some(c) = d.channel_by_id(&id) {
                Some(Node::Channel(Channel::row(&d, c)))
            } else if let Some(k) = d.category_by_id(&id) {
                let c = d.category(k);
                Some(Node::Category(Category {
                    ix: k,
                    id: c.id.to_string(),
                    slug: c.slug.to_string(),
                    name: c.name.to_string(),
                }))
            } else if let Some(s) = d.stream_by_id(&id) {
                Some(Node::Stream(Stream::row(&d, s)))
            } else if let Some(m) = id
                .strip_prefix("msg_")
                .and_then(|r| r.rsplit_once('_'))
                .and_then(|(ch, seq)| Some((d.channel_by_id(ch)?, seq.parse::<u32>().ok()?)))
                .and_then(|(c, seq)| match d.channel(c).log.get(seq)? {
                    RoomEvent::Message { deleted: false, .. } => ChatMessage::row(&d, c, seq),
                    _ => None,
                })
            {
                Some(Node::ChatMessage(m))
            } else {
                d.user_by_id(&id).map(|u| Node::User(User::row(&d, u)))
            }
        };
        Ok(found)
    }
    async fn user(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        login: Option<String>,
    ) -> Result<Option<User>> {
        let id = id.map(|i| i.0);
        let (i, l) = one_of(&id, &login, "id", "login")?;
        let d = store(ctx).read();
        let u = match (i, l) {
            (Some(i), _) => d.user_by_id(i),
            (_, Some(l)) => d.user_by_login(l),
            _ => None,
        };
        Ok(u.map(|u| User::row(&d, u)))
    }
    async fn channel(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        login: Option<String>,
    ) -> Result<Option<Channel>> {
        let id = id.map(|i| i.0);
        let (i, l) = one_of(&id, &login, "id", "login")?;
        let c = {
            let d = store(ctx).read();
            match (i, l) {
                (Some(i), _) => d.channel_by_id(i),
                (_, Some(l)) => d.user_by_login(l).map(|u| d.user(u).channel),
                _ => None,
            }
        };
        match c {
            Some(c) => load_channel(ctx, c).await.map(Some),
            None => Ok(None),
        }
    }
    async fn streams(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        category_id: Option<ID>,
        language: Option<String>,
    ) -> Result<StreamConnection> {
        let d = store(ctx).read();
        let category = match category_id {
            None => None,
            Some(id) => match d.category_by_id(&id) {
                Some(k) => Some(k),
                None => return stream_page(&d, &[], Some(first), after),
            },
        };
        let live = d.live_sorted(category, language.as_deref());
        stream_page(&d, &live, Some(first), after)
    }
    async fn categories(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> Result<CategoryConnection> {
        let first = page_size(Some(first), 20, "first")?;
        let start = after_cursor(after)?;
        let d = store(ctx).read();
        let all = d.categories_by_viewers();
        let total = all.len();
        let (items, start, has_next) = window(total, start, first, |i| {
            let k = all[i];
            let c = d.category(k);
            Category {
                ix: k,
                id: c.id.to_string(),
                slug: c.slug.to_string(),
                name: c.name.to_string(),
            }
        });
        Ok(CategoryConnection {
            page: PageMeta::new(start, items.len(), has_next, total),
            nodes: items,
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
        let k = {
            let d = store(ctx).read();
            match (i, s) {
                (Some(i), _) => d.category_by_id(i),
                (_, Some(s)) => d.category_by_slug(s),
                _ => None,
            }
        };
        load_category(ctx, k).await
    }
    async fn chat_history(
        &self,
        ctx: &Context<'_>,
        channel_id: ID,
        #[graphql(default = 50)] last: i32,
        before_seq: Option<i32>,
    ) -> Result<Vec<ChatMessage>> {
        let d = store(ctx).read();
        let c = d
            .channel_by_id(&channel_id)
            .ok_or_else(|| coded("NOT_FOUND", format!("no channel has id `{}`", channel_id.0)))?;
        let last = page_size(Some(last), 50, "last")?;
        let before = match before_seq {
            None => None,
            Some(s) if s >= 1 => Some(s as u32),
            Some(s) => {
                return Err(coded(
                    "BAD_USER_INPUT",
                    format!("`beforeSeq` must be at least 1, not {s}"),
                ))
            }
        };
        Ok(d.messages(c, last, before)
            .into_iter()
            .filter_map(|seq| ChatMessage::row(&d, c, seq))
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
        let d = store(ctx).read();
        let hit = |s: &str| s.to_lowercase().contains(&q);
        let users = d
            .users
            .iter()
            .enumerate()
            .filter(|(_, u)| hit(&u.login))
            .map(|(i, _)| SearchResult::User(User::row(&d, UserIx(i as u32))));
        let channels = d
            .channels
            .iter()
            .enumerate()
            .filter(|(_, c)| hit(&c.title))
            .map(|(i, _)| SearchResult::Channel(Channel::row(&d, ChannelIx(i as u32))));
        let categories = d
            .categories
            .iter()
            .enumerate()
            .filter(|(_, k)| hit(&k.name))
            .map(|(i, k)| {
                SearchResult::Category(Category {
                    ix: CategoryIx(i as u32),
                    id: k.id.to_string(),
                    slug: k.slug.to_string(),
                    name: k.name.to_string(),
                })
            });
        Ok(users
            .chain(channels)
            .chain(categories)
            .take(first)
            .collect())
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
/// ([`streamhub_server::auth::policy`]), checked in the same order as the server.
pub struct Mutation;

/// Asks the policy whether the viewer may do `action` on `c`.
fn check(
    d: &Data,
    v: Option<ViewerIx>,
    action: Action<'_>,
    c: ChannelIx,
    now: Millis,
) -> Result<()> {
    let viewer = v.map(|v| {
        let u = d.user(v.0);
        Viewer {
            id: Rc::from(&*u.id),
            login: Rc::from(&*u.login),
            admin: v.1,
        }
    });
    can(viewer.as_ref(), action, &Roles { d, c, now }).map_err(denied)
}

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

fn signed_in(ctx: &Context<'_>) -> Result<ViewerIx> {
    viewer(ctx).ok_or_else(|| denied(Denied::Unauthenticated))
}

fn channel_arg(d: &Data, id: &str) -> Result<ChannelIx> {
    d.channel_by_id(id)
        .ok_or_else(|| coded("NOT_FOUND", format!("no channel has id `{id}`")))
}

fn user_arg(d: &Data, id: &str) -> Result<UserIx> {
    d.user_by_id(id)
        .ok_or_else(|| coded("NOT_FOUND", format!("no user has id `{id}`")))
}

fn category_arg(d: &Data, id: &str) -> Result<CategoryIx> {
    d.category_by_id(id)
        .ok_or_else(|| coded("BAD_USER_INPUT", format!("no category has id `{id}`")))
}

#[Object]
impl Mutation {
    async fn update_profile(&self, ctx: &Context<'_>, input: UpdateProfileInput) -> Result<User> {
        let v = signed_in(ctx)?;
        let s = store(ctx);
        let mut d = s.write();
        check(
            &d,
            Some(v),
            Action::UpdateProfile,
            d.user(v.0).channel,
            now(),
        )?;
        let name = match &input.display_name {
            Some(n) => Some(input::display_name(n).map_err(input_error)?.to_owned()),
            None => None,
        };
        let bio = match &input.bio {
            Some(b) => Some(input::bio(b).map_err(input_error)?.to_owned()),
            None => None,
        };
        let user = &mut d.users[v.0 .0 as usize];
        if let Some(n) = name {
            user.display_name = n.into();
        }
        if let Some(b) = bio {
            user.bio = (!b.is_empty()).then(|| b.into());
        }
        Ok(User::row(&d, v.0))
    }

    async fn update_channel(
        &self,
        ctx: &Context<'_>,
        input: UpdateChannelInput,
    ) -> Result<Channel> {
        let v = signed_in(ctx)?;
        let s = store(ctx);
        let mut d = s.write();
        let c = d.user(v.0).channel;
        check(&d, Some(v), Action::ManageChannel, c, now())?;
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
        let category = match &input.category_id {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(id) => Some(Some(category_arg(&d, id)?)),
        };
        let ch = &mut d.channels[c.0 as usize];
        if let Some(t) = title {
            ch.title = t.into();
        }
        if let Some(l) = language {
            ch.language = l.into();
        }
        if let Some(t) = tags {
            ch.tags = t;
        }
        if let Some(k) = category {
            ch.category = k;
        }
        Ok(Channel::row(&d, c))
    }

    async fn start_stream(&self, ctx: &Context<'_>, input: StartStreamInput) -> Result<Stream> {
        let v = signed_in(ctx)?;
        let t = now();
        let s = store(ctx);
        let mut d = s.write();
        let c = d.user(v.0).channel;
        check(&d, Some(v), Action::ManageChannel, c, t)?;
        let title = input::title(&input.title).map_err(input_error)?;
        let category = match &input.category_id {
            Some(id) => Some(category_arg(&d, id)?),
            None => None,
        };
        if d.channel(c).stream.is_some() {
            return Err(coded("BAD_USER_INPUT", "the channel is already live"));
        }
        let st = d.start_stream(c, title, category, t);
        Ok(Stream::row(&d, st))
    }

    async fn end_stream(&self, ctx: &Context<'_>) -> Result<Channel> {
        let v = signed_in(ctx)?;
        let s = store(ctx);
        let mut d = s.write();
        let c = d.user(v.0).channel;
        check(&d, Some(v), Action::ManageChannel, c, now())?;
        d.end_stream(c);
        Ok(Channel::row(&d, c))
    }

    async fn follow(&self, ctx: &Context<'_>, channel_id: ID) -> Result<Channel> {
        let v = signed_in(ctx)?;
        let s = store(ctx);
        let mut d = s.write();
        let c = channel_arg(&d, &channel_id)?;
        check(&d, Some(v), Action::Follow, c, now())?;
        if d.channel(c).owner == v.0 {
            return Err(coded(
                "BAD_USER_INPUT",
                "you cannot follow your own channel",
            ));
        }
        d.follow(v.0, c);
        Ok(Channel::row(&d, c))
    }

    async fn unfollow(&self, ctx: &Context<'_>, channel_id: ID) -> Result<Channel> {
        let v = signed_in(ctx)?;
        let s = store(ctx);
        let mut d = s.write();
        let c = channel_arg(&d, &channel_id)?;
        check(&d, Some(v), Action::Follow, c, now())?;
        d.unfollow(v.0, c);
        Ok(Channel::row(&d, c))
    }

    async fn send_chat_message(
        &self,
        ctx: &Context<'_>,
        channel_id: ID,
        body: String,
    ) -> Result<ChatMessage> {
        let t = now();
        let s = store(ctx);
        let mut d = s.write();
        let c = channel_arg(&d, &channel_id)?;
        check(&d, viewer(ctx), Action::SendChat, c, t)?;
        let v = signed_in(ctx)?;
        let body = input::chat_body(&body).map_err(input_error)?;
        let seq = d.append(
            c,
            RoomEvent::Message {
                author: v.0,
                body: body.into(),
                sent_at: t,
                deleted: false,
            },
        );
        ChatMessage::row(&d, c, seq).ok_or_else(|| Error::new("the message is gone"))
    }

    async fn delete_chat_message(
        &self,
        ctx: &Context<'_>,
        channel_id: ID,
        message_seq: i32,
    ) -> Result<bool> {
        let t = now();
        let s = store(ctx);
        let mut d = s.write();
        let c = channel_arg(&d, &channel_id)?;
        let seq = i64::from(message_seq);
        let Some(author) = u32::try_from(seq).ok().and_then(|s| d.message_author(c, s)) else {
            return Err(coded(
                "NOT_FOUND",
                format!("no message has seq {seq} in this channel"),
            ));
        };
        let author_id = d.user(author).id.clone();
        check(
            &d,
            viewer(ctx),
            Action::DeleteMessage {
                author_id: &author_id,
            },
            c,
            t,
        )?;
        d.delete_message(c, seq as u32);
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
        let t = now();
        let s = store(ctx);
        let mut d = s.write();
        let c = channel_arg(&d, &channel_id)?;
        let target = user_arg(&d, &user_id)?;
        let target_id = d.user(target).id.clone();
        check(
            &d,
            viewer(ctx),
            Action::Ban {
                target_id: &target_id,
            },
            c,
            t,
        )?;
        let until = match duration_seconds {
            Some(secs) => {
                Some(t + input::ban_seconds(i64::from(secs)).map_err(input_error)? * 1000)
            }
            None => None,
        };
        if let Some(reason) = &reason {
            input::text("reason", reason, 0, 300).map_err(input_error)?;
        }
        let bans = &mut d.channels[c.0 as usize].bans;
        bans.retain(|(u, _)| *u != target);
        bans.push((target, until));
        d.append(
            c,
            RoomEvent::Banned {
                user: target,
                until,
            },
        );
        Ok(true)
    }

    async fn unban_user(&self, ctx: &Context<'_>, channel_id: ID, user_id: ID) -> Result<bool> {
        let s = store(ctx);
        let mut d = s.write();
        let c = channel_arg(&d, &channel_id)?;
        let target = user_arg(&d, &user_id)?;
        check(&d, viewer(ctx), Action::Unban, c, now())?;
        let bans = &mut d.channels[c.0 as usize].bans;
        let before = bans.len();
        bans.retain(|(u, _)| *u != target);
        Ok(bans.len() != before)
    }

    async fn add_moderator(
        &self,
        ctx: &Context<'_>,
        channel_id: ID,
        user_id: ID,
    ) -> Result<Channel> {
        self.moderators(ctx, &channel_id, &user_id, true)
    }

    async fn remove_moderator(
        &self,
        ctx: &Context<'_>,
        channel_id: ID,
        user_id: ID,
    ) -> Result<Channel> {
        self.moderators(ctx, &channel_id, &user_id, false)
    }
}

impl Mutation {
    fn moderators(
        &self,
        ctx: &Context<'_>,
        channel_id: &str,
        user_id: &str,
        add: bool,
    ) -> Result<Channel> {
        let s = store(ctx);
        let mut d = s.write();
        let c = channel_arg(&d, channel_id)?;
        let target = user_arg(&d, user_id)?;
        check(&d, viewer(ctx), Action::ManageModerators, c, now())?;
        let mods = &mut d.channels[c.0 as usize].moderators;
        if add {
            if !mods.contains(&target) {
                mods.push(target);
            }
        } else {
            mods.retain(|&m| m != target);
        }
        Ok(Channel::row(&d, c))
    }
}
