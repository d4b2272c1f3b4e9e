//! The read path: search (snapshot hit or miss) and page reads (of the
//! snapshot or of a derived view), over the ports in [`crate::ports`].

use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};

use crate::access::Identity;
use crate::ids::TreatyId;
use crate::pages::{decode_rows, page_json, Chunk, ChunkError, SnapshotBuilder, Total, PAGES_MAX, PAGE_SIZE};
use crate::ports::{BackendError, LedgerReader, ScopeMirror, SnapshotMeta, SnapshotStore};
use crate::snapshot::{SearchFilter, SnapshotId};
use crate::suggest::{SuggestRequest, SuggestionScan, Suggestions};
use crate::transaction::LedgerRow;
use crate::views::ViewSpec;

/// Chunks stored per batch while a snapshot is being built (DynamoDB's
/// BatchWriteItem takes 25 items).
const CHUNK_BATCH: usize = 25;
/// Chunks asked for in one read (DynamoDB's BatchGetItem answers at most
/// 16 MB: 40 chunks of at most 350 KB fit).
const CHUNKS_PER_READ: usize = 40;
/// Chunk reads in flight when a whole snapshot is read.
const CHUNK_READS_IN_FLIGHT: usize = 3;

#[derive(Debug, Clone, Copy)]
pub struct ReadConfig {
    /// How long a snapshot (and its views) lives after it is built. The
    /// eviction rule (ADR 0004): a snapshot is served until this expiry and
    /// never after, whatever DynamoDB's lazy TTL deletion has done.
    pub snapshot_ttl_secs: i64,
    pub page_size: usize,
}

impl Default for ReadConfig {
    fn default() -> Self {
        Self { snapshot_ttl_secs: 3_600, page_size: PAGE_SIZE }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The identity may not see this treaty (or it does not exist).
    #[error("not entitled to treaty {0}")]
    NotEntitled(TreatyId),
    /// No such snapshot for this operator, or it expired.
    #[error("snapshot not found")]
    SnapshotNotFound,
    #[error("page {number} is out of range: the snapshot has {page_count} pages")]
    PageOutOfRange { number: u32, page_count: u32 },
    #[error("backend unavailable: {0}")]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    Hit,
    Miss,
}

impl CacheState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
        }
    }
}

/// Where a cold search spent its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MissTimings {
    /// Waiting on PostgreSQL for rows (including the version-token read).
    pub sql: Duration,
    /// Encoding rows and compressing pages.
    pub encode: Duration,
    /// Writing chunks and the meta item to the store.
    pub store: Duration,
    /// Wall time of the whole miss path with the store's share taken out:
    /// the "SQL read + encode + compress" figure.
    pub read_encode_wall: Duration,
}

/// One page, its rows as the JSON array the API returns, with its view's
/// size and totals (the snapshot's, for the unfiltered view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub snapshot_id: SnapshotId,
    pub number: u32,
    pub page_count: u32,
    pub row_count: u64,
    pub totals: Vec<Total>,
    pub rows_json: Vec<u8>,
    pub stale: bool,
}

#[derive(Debug, Clone)]
pub struct SearchOutcome {
    pub meta: SnapshotMeta,
    pub cache: CacheState,
    pub page: Page,
    pub timings: MissTimings,
}

pub struct ReadService<L, S, M> {
    ledger: L,
    store: S,
    mirror: M,
    config: ReadConfig,
}

/// Every row of a stored snapshot, in its order, decoded from its chunks
/// (read a few at a time), for derived views. Never touches the ledger.
///
/// # Errors
/// Backend errors; [`ChunkError`] when a chunk is missing or corrupt.
pub(crate) async fn snapshot_rows<S: SnapshotStore>(
    store: &S,
    meta: &SnapshotMeta,
) -> Result<Vec<LedgerRow>, ReadError> {
    let mut rows = Vec::with_capacity(meta.row_count.min(10_000_000) as usize);
    each_snapshot_page(store, meta, |page| rows.extend(page)).await?;
    Ok(rows)
}

/// Hands each page of a snapshot, decoded, to `visit`, in order. Only the
/// reads in flight and the page being visited are in memory, so a caller
/// that keeps a little of each page (the write path resolving a selection)
/// stays small however large the snapshot.
///
/// # Errors
/// A page missing or corrupt, or the pages not holding the meta's row count.
pub(crate) async fn each_snapshot_page<S: SnapshotStore>(
    store: &S,
    meta: &SnapshotMeta,
    mut visit: impl FnMut(Vec<LedgerRow>),
) -> Result<(), ReadError> {
    let pages: Vec<u32> = (0..meta.page_count.min(PAGES_MAX)).collect();
    let reads: Vec<Vec<u32>> = pages.chunks(CHUNKS_PER_READ).map(<[u32]>::to_vec).collect();
    let id = &meta.id;
    let mut batches = futures_util::stream::iter(reads)
        .map(|numbers| async move { store.chunks(id, &numbers).await })
        .buffered(CHUNK_READS_IN_FLIGHT);
    let (mut n, mut seen) = (0_usize, 0_u64);
    while let Some(batch) = batches.try_next().await? {
        for chunk in batch {
            let chunk = chunk.ok_or_else(|| {
                ReadError::Chunk(ChunkError::Corrupt(format!("page {n} of {} is missing", meta.id)))
            })?;
            let page = decode_rows(&chunk)?;
            seen += page.len() as u64;
            visit(page);
            n += 1;
        }
    }
    if seen != meta.row_count {
        return Err(ReadError::Chunk(ChunkError::Corrupt(format!(
            "{} holds {seen} rows in its chunks, its meta says {}",
            meta.id, meta.row_count
        ))));
    }
    Ok(())
}

impl<L: LedgerReader, S: SnapshotStore, M: ScopeMirror> ReadService<L, S, M> {
    pub fn new(ledger: L, store: S, mirror: M, config: ReadConfig) -> Self {
        Self { ledger, store, mirror, config }
    }

    /// Runs a search: the current version token from the ledger (one
    /// primary-key read), then the snapshot from the store on a hit, or one
    /// streamed ledger read materialized into chunks on a miss.
    ///
    /// # Errors
    /// [`ReadError::NotEntitled`] before any IO; backend and chunk errors.
    pub async fn search(
        &self,
        who: &Identity,
        filter: &SearchFilter,
        now_secs: i64,
    ) -> Result<SearchOutcome, ReadError> {
        if let Some(treaty) = filter.treaty_ids().find(|t| !who.entitlement.allows(t)) {
            return Err(ReadError::NotEntitled(treaty.clone()));
        }
        let started = Instant::now();
        let token = self.ledger.version_token(filter).await?;
        let token_read = started.elapsed();
        let id = SnapshotId::derive(&who.operator, filter, &token);

        if let Some(meta) = self.live_meta(&id, who, now_secs).await? {
            let page = self.read_page(&meta, &id, 0, false).await?;
            return Ok(SearchOutcome { meta, cache: CacheState::Hit, page, timings: MissTimings::default() });
        }

        let mut timings = MissTimings { sql: token_read, ..MissTimings::default() };
        let reading = Instant::now();
        let (read_token, mut rows) = self.ledger.read_snapshot(filter).await?;
        timings.sql += reading.elapsed();
        // The scope moved between the two reads: the snapshot is the rows'
        // state, so it is named by their token.
        let (token, id) = if read_token == token {
            (token, id)
        } else {
            let id = SnapshotId::derive(&who.operator, filter, &read_token);
            (read_token, id)
        };
        let expires_at_secs = now_secs + self.config.snapshot_ttl_secs;
        let mut builder = SnapshotBuilder::new(self.config.page_size);
        let mut pending: Vec<Chunk> = Vec::with_capacity(CHUNK_BATCH);
        let mut first: Option<Chunk> = None;
        loop {
            let waited = Instant::now();
            let next = rows.next().await;
            timings.sql += waited.elapsed();
            let Some(row) = next else { break };
            let encoding = Instant::now();
            let sealed = builder.push(&row?)?;
            timings.encode += encoding.elapsed();
            if let Some(chunk) = sealed {
                self.stage(&id, chunk, &mut first, &mut pending, expires_at_secs, &mut timings).await?;
            }
        }
        drop(rows);
        let encoding = Instant::now();
        let (last, built) = builder.finish()?;
        timings.encode += encoding.elapsed();
        if let Some(chunk) = last {
            self.stage(&id, chunk, &mut first, &mut pending, expires_at_secs, &mut timings).await?;
        }
        timings.read_encode_wall = started.elapsed().saturating_sub(timings.store);
        let storing = Instant::now();
        if !pending.is_empty() {
            self.store.put_chunks(&id, &pending, expires_at_secs).await?;
        }
        let mut summary = built.summary;
        // Read after the rows: a close committed since shows here while
        // the token predates it, so the pages already say stale.
        summary.closed_periods = self.ledger.closed_periods(filter).await?;
        let meta = SnapshotMeta {
            id: id.clone(),
            owner: who.operator.clone(),
            filter: filter.canonical(),
            view_of: None,
            treaty_ids: filter.treaty_ids().cloned().collect(),
            version_token: token,
            row_count: built.row_count,
            page_count: built.page_count,
            page_size: self.config.page_size as u32,
            summary,
            created_at_secs: now_secs,
            expires_at_secs,
        };
        self.store.put_meta(&meta).await?;
        // A miss means the scope may have moved: raise the mirror the page
        // reads consult. Advisory: a failure here does not fail the search.
        if let Err(e) = self.mirror.publish(meta.version_token.versions()).await {
            crate::ports::mirror_not_raised(&e);
        }
        timings.store += storing.elapsed();

        let first = first.ok_or(ReadError::Chunk(ChunkError::Corrupt("a snapshot without page 0".into())))?;
        let page = Page {
            snapshot_id: id,
            number: 0,
            page_count: meta.page_count,
            row_count: meta.row_count,
            totals: meta.summary.totals.clone(),
            rows_json: page_json(&first.bytes)?,
            stale: false,
        };
        Ok(SearchOutcome { meta, cache: CacheState::Miss, page, timings })
    }

    async fn stage(
        &self,
        id: &SnapshotId,
        chunk: Chunk,
        first: &mut Option<Chunk>,
        pending: &mut Vec<Chunk>,
        expires_at_secs: i64,
        timings: &mut MissTimings,
    ) -> Result<(), ReadError> {
        if first.is_none() {
            *first = Some(chunk.clone());
        }
        pending.push(chunk);
        if pending.len() >= CHUNK_BATCH {
            let storing = Instant::now();
            self.store.put_chunks(id, pending, expires_at_secs).await?;
            pending.clear();
            timings.store += storing.elapsed();
        }
        Ok(())
    }

    /// The meta item of a snapshot the operator owns and that has not
    /// expired; `None` otherwise. Another operator's snapshot is reported as
    /// absent, so ids never leak whose they are.
    async fn live_meta(
        &self,
        id: &SnapshotId,
        who: &Identity,
        now_secs: i64,
    ) -> Result<Option<SnapshotMeta>, ReadError> {
        Ok(self.store.meta(id).await?.filter(|m| m.owner == who.operator && m.expires_at_secs > now_secs))
    }

    /// Reads page `number` of a snapshot, or of its view by `view`. No SQL:
    /// the meta, the chunk and the scope mirror all come from the store.
    ///
    /// # Errors
    /// [`ReadError::SnapshotNotFound`] for an unknown, expired or foreign
    /// snapshot; [`ReadError::PageOutOfRange`]; backend and chunk errors.
    pub async fn page(
        &self,
        who: &Identity,
        id: &SnapshotId,
        number: u32,
        view: &ViewSpec,
        now_secs: i64,
    ) -> Result<Page, ReadError> {
        let base = self.live_meta(id, who, now_secs).await?.ok_or(ReadError::SnapshotNotFound)?;
        // Entitlements can be withdrawn after a search: re-checked on every read.
        if let Some(treaty) = base.treaty_ids.iter().find(|t| !who.entitlement.allows(t)) {
            return Err(ReadError::NotEntitled(treaty.clone()));
        }
        if view.is_identity() {
            return self.read_page(&base, id, number, true).await;
        }
        let meta = view_meta(&self.store, &base, view, now_secs).await?;
        let mut page = self.read_page(&meta, &meta.id, number, true).await?;
        page.snapshot_id = id.clone();
        Ok(page)
    }

    /// Proposes which open rows of a snapshot a check pays (see
    /// [`crate::suggest`]): the snapshot's pages only, never the ledger.
    ///
    /// # Errors
    /// As [`Self::page`]: the snapshot unknown, expired or foreign, a
    /// treaty no longer entitled; backend and chunk errors.
    pub async fn suggestions(
        &self,
        who: &Identity,
        id: &SnapshotId,
        request: &SuggestRequest,
        now_secs: i64,
    ) -> Result<(SnapshotMeta, Suggestions), ReadError> {
        let meta = self.live_meta(id, who, now_secs).await?.ok_or(ReadError::SnapshotNotFound)?;
        if let Some(treaty) = meta.treaty_ids.iter().find(|t| !who.entitlement.allows(t)) {
            return Err(ReadError::NotEntitled(treaty.clone()));
        }
        let mut scan = SuggestionScan::new(request);
        each_snapshot_page(&self.store, &meta, |page| scan.take(&page)).await?;
        Ok((meta, scan.finish()))
    }

    async fn read_page(
        &self,
        meta: &SnapshotMeta,
        id: &SnapshotId,
        number: u32,
        check_stale: bool,
    ) -> Result<Page, ReadError> {
        if number >= meta.page_count {
            return Err(ReadError::PageOutOfRange { number, page_count: meta.page_count });
        }
        // The chunk and the scope mirror are independent reads: one round
        // trip of latency, not two.
        let chunk = async { self.store.chunk(id, number).await.map_err(ReadError::from) };
        let stale = async {
            if !check_stale {
                return Ok(false);
            }
            let mirrored = self.mirror.versions(&meta.treaty_ids).await?;
            Ok::<_, ReadError>(meta.treaty_ids.iter().zip(mirrored).any(|(treaty, current)| {
                let taken =
                    meta.version_token.versions().iter().find(|(t, _)| t == treaty).map_or(0, |(_, v)| *v);
                current > taken
            }))
        };
        let (chunk, stale) = futures_util::future::try_join(chunk, stale).await?;
        let chunk = chunk.ok_or_else(|| {
            ReadError::Chunk(ChunkError::Corrupt(format!("page {number} of {id} is missing")))
        })?;
        Ok(Page {
            snapshot_id: meta.id.clone(),
            number,
            page_count: meta.page_count,
            row_count: meta.row_count,
            totals: meta.summary.totals.clone(),
            rows_json: page_json(&chunk)?,
            stale,
        })
    }
}

/// The meta of a view of `base`: the cached one while it lives, else built
/// from the snapshot's chunks (never from the ledger) and cached under its
/// own id with the snapshot's expiry. The identity view is `base` itself.
///
/// # Errors
/// Backend errors; [`ChunkError`] when a chunk is missing or corrupt.
pub(crate) async fn view_meta<S: SnapshotStore>(
    store: &S,
    base: &SnapshotMeta,
    view: &ViewSpec,
    now_secs: i64,
) -> Result<SnapshotMeta, ReadError> {
    if view.is_identity() {
        return Ok(base.clone());
    }
    let view_id = view.view_id(&base.id);
    if let Some(meta) =
        store.meta(&view_id).await?.filter(|m| m.owner == base.owner && m.expires_at_secs > now_secs)
    {
        return Ok(meta);
    }
    materialize(store, base, view, view_id).await
}

async fn materialize<S: SnapshotStore>(
    store: &S,
    base: &SnapshotMeta,
    view: &ViewSpec,
    view_id: SnapshotId,
) -> Result<SnapshotMeta, ReadError> {
    let rows = snapshot_rows(store, base).await?;
    let order = view.order(&rows);
    // Chunks go to the store a batch at a time as they are built, so the
    // snapshot's rows and one batch of chunks are all that is held.
    let mut builder = SnapshotBuilder::new(base.page_size as usize);
    let mut out = Vec::with_capacity(CHUNK_BATCH);
    for &i in &order {
        out.extend(builder.push(&rows[i as usize])?);
        if out.len() == CHUNK_BATCH {
            store.put_chunks(&view_id, &out, base.expires_at_secs).await?;
            out.clear();
        }
    }
    drop(rows);
    let (last, built) = builder.finish()?;
    out.extend(last);
    if !out.is_empty() {
        store.put_chunks(&view_id, &out, base.expires_at_secs).await?;
    }
    let meta = SnapshotMeta {
        id: view_id,
        owner: base.owner.clone(),
        filter: base.filter.clone(),
        view_of: Some((base.id.clone(), view.canonical())),
        treaty_ids: base.treaty_ids.clone(),
        version_token: base.version_token.clone(),
        row_count: built.row_count,
        page_count: built.page_count,
        page_size: base.page_size,
        summary: built.summary,
        created_at_secs: base.created_at_secs,
        expires_at_secs: base.expires_at_secs,
    };
    store.put_meta(&meta).await?;
    Ok(meta)
}
