//! Fields tried from the shard's cache alone: a field that loads rows is first run
//! once with every store read refused ([`Refused`]); when the cache held everything it
//! needed, it is done without an await, so a warm page never suspends and the
//! executor has nothing to await together. When a read needed the store, what the
//! trial wrote is taken back and the field is resolved for real, awaited with the
//! others of its level. A trial has no effect beyond its cache lookups (counted only
//! if it succeeds, so a miss is counted once).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use graphql_exec::exec::{Args, Out};
use graphql_exec::plan::PlannedField;

use super::{objects, Obj, Request};
use crate::store::{
    Applied, Category, Channel, Command, Found, KeyPage, Live, Membership, Message, Millis, Store,
    StoreError, StoreFuture, Stream, Tail, User,
};

/// Resolves `field` for `parents` from the shard's cache if it holds everything the
/// field reads: true when done, false (with nothing written) when it must be awaited.
pub(super) fn from_cache(
    cx: &Request<'_>,
    field: &PlannedField,
    args: &Args<'_>,
    parents: &[Obj],
    out: &mut Out<'_, Obj>,
) -> bool {
    let mark = out.mark();
    cx.trial.set(true);
    cx.cache.begin_trial();
    let done = {
        let resolve = pin!(objects::resolve(cx, field, args, parents, out));
        // A refused read answers at once, so the future never waits on anything: one
        // poll runs it to the end.
        resolve
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    };
    cx.trial.set(false);
    let held = done && !cx.missed.replace(false);
    cx.cache.end_trial(held);
    if !held {
        out.rewind(mark);
    }
    held
}

/// A store that answers nothing: what a trial reads instead of the store.
#[derive(Debug)]
pub(super) struct Refused;

fn refused<'a, T: Send + 'a>() -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(Err(StoreError::Unavailable(
        "a trial from the cache does not read the store".into(),
    ))))
}

impl Store for Refused {
    fn users<'a>(&'a self, _: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<User>>> {
        refused()
    }
    fn user_by_login<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<User>> {
        refused()
    }
    fn channels<'a>(&'a self, _: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Channel>>> {
        refused()
    }
    fn streams<'a>(&'a self, _: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Stream>>> {
        refused()
    }
    fn categories(&self) -> StoreFuture<'_, Vec<Category>> {
        refused()
    }
    fn live(&self) -> StoreFuture<'_, Vec<Live>> {
        refused()
    }
    fn follows<'a>(&'a self, _: &'a str, _: &'a [&'a str]) -> StoreFuture<'a, Vec<bool>> {
        refused()
    }
    fn followers<'a>(&'a self, _: &'a str, _: Option<u64>, _: usize) -> StoreFuture<'a, KeyPage> {
        refused()
    }
    fn following<'a>(&'a self, _: &'a str, _: Option<u64>, _: usize) -> StoreFuture<'a, KeyPage> {
        refused()
    }
    fn messages<'a>(
        &'a self,
        _: &'a str,
        _: usize,
        _: Option<u64>,
    ) -> StoreFuture<'a, Vec<Message>> {
        refused()
    }
    fn message<'a>(&'a self, _: &'a str, _: u64) -> StoreFuture<'a, Option<Message>> {
        refused()
    }
    fn membership<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a str>,
    ) -> StoreFuture<'a, Option<Membership>> {
        refused()
    }
    fn search<'a>(&'a self, _: &'a str, _: usize) -> StoreFuture<'a, Vec<Found>> {
        refused()
    }
    fn apply(&self, _: Command) -> StoreFuture<'_, Applied> {
        refused()
    }
    fn record<'a>(&'a self, _: &'a streamhub_pubsub::Event, _: Millis) -> StoreFuture<'a, ()> {
        refused()
    }
    fn tail<'a>(&'a self, _: &'a str, _: usize) -> StoreFuture<'a, Option<Tail>> {
        refused()
    }
    fn ready(&self) -> StoreFuture<'_, ()> {
        refused()
    }
}
