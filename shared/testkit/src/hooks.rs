//! Stores that run a hook before each put: crash tests lose, fail or park
//! chosen writes to see what a process that died there leaves behind.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bridge::error::StoreError;
use bridge::ports::{Condition, Item, Store};

/// What a [`HookedStore`] does before each put: `Ok(())` lets the put
/// through, an error fails it; it may also park the put forever (a process
/// that died mid-write).
#[async_trait]
pub trait PutHook: Send + Sync {
    async fn before_put(
        &self,
        inner: &dyn Store,
        pk: &str,
        sk: &str,
        body: &str,
        condition: &Condition,
    ) -> Result<(), StoreError>;
}

/// A store that passes everything to `inner`, running `hook` before each
/// put (crash tests).
pub struct HookedStore<H> {
    pub inner: Arc<dyn Store>,
    pub hook: H,
}

#[async_trait]
impl<H: PutHook> Store for HookedStore<H> {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.inner.get(pk, sk).await
    }
    async fn put(
        &self,
        pk: &str,
        sk: &str,
        body: &str,
        condition: Condition,
        expires_at: Option<i64>,
    ) -> Result<u64, StoreError> {
        self.hook
            .before_put(self.inner.as_ref(), pk, sk, body, &condition)
            .await?;
        self.inner.put(pk, sk, body, condition, expires_at).await
    }
    async fn query(
        &self,
        pk: &str,
        sk_prefix: &str,
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        self.inner.query(pk, sk_prefix, newest_first, limit).await
    }
    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        self.inner.delete(pk, sk).await
    }
    async fn scan_sort_key(&self, sk: &str) -> Result<Vec<Item>, StoreError> {
        self.inner.scan_sort_key(sk).await
    }
}

/// Armed with [`CrashingStore::refuse_put`], fails the `fail_at`-th put, as
/// if the store refused that write (the run lives on and sees the error); or,
/// armed with [`CrashingStore::park_on_put`], holds the `park_at`-th put
/// forever, so a test can drop the run right there (a process that died
/// before that write reached the store). Either way it keeps the put it
/// stopped, so the test can check it is the write it means.
pub struct CrashOnPut {
    puts: AtomicUsize,
    fail_at: AtomicUsize,
    refused: Mutex<Option<StoppedPut>>,
    park_at: AtomicUsize,
    parked: Mutex<Option<tokio::sync::oneshot::Sender<StoppedPut>>>,
}

/// A put a [`CrashingStore`] refused or holds: what would have been written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedPut {
    pub pk: String,
    pub sk: String,
    pub body: String,
}

#[async_trait]
impl PutHook for CrashOnPut {
    async fn before_put(
        &self,
        _: &dyn Store,
        pk: &str,
        sk: &str,
        body: &str,
        _: &Condition,
    ) -> Result<(), StoreError> {
        let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
        let stopped = || StoppedPut {
            pk: pk.to_owned(),
            sk: sk.to_owned(),
            body: body.to_owned(),
        };
        if n == self.fail_at.load(Ordering::SeqCst) {
            *self.refused.lock().unwrap() = Some(stopped());
            return Err(StoreError::Unavailable("injected write failure".into()));
        }
        if n == self.park_at.load(Ordering::SeqCst) {
            if let Some(parked) = self.parked.lock().unwrap().take() {
                let _ = parked.send(stopped());
            }
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

/// A store that refuses or holds a chosen put (see [`CrashOnPut`]).
pub type CrashingStore = HookedStore<CrashOnPut>;

impl CrashingStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            hook: CrashOnPut {
                puts: AtomicUsize::new(0),
                fail_at: AtomicUsize::new(usize::MAX),
                refused: Mutex::new(None),
                park_at: AtomicUsize::new(usize::MAX),
                parked: Mutex::new(None),
            },
        }
    }
    /// The `n`-th put from now on (1-based) fails; [`Self::refused_put`]
    /// then tells which put it was.
    pub fn refuse_put(&self, n: usize) {
        self.hook
            .fail_at
            .store(self.hook.puts.load(Ordering::SeqCst) + n, Ordering::SeqCst);
    }

    /// The put [`Self::refuse_put`] refused, once it was.
    pub fn refused_put(&self) -> Option<StoppedPut> {
        self.hook.refused.lock().unwrap().clone()
    }

    /// The `n`-th put from now on (1-based) never returns; the receiver
    /// resolves, with that put, when it is reached.
    pub fn park_on_put(&self, n: usize) -> tokio::sync::oneshot::Receiver<StoppedPut> {
        let (parked, reached) = tokio::sync::oneshot::channel();
        *self.hook.parked.lock().unwrap() = Some(parked);
        self.hook
            .park_at
            .store(self.hook.puts.load(Ordering::SeqCst) + n, Ordering::SeqCst);
        reached
    }
}
