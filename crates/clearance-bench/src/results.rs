//! The results file of a run (`docs/bench/results.json`) and the README
//! table rendered from it: each figure beside its DESIGN.md target and
//! whether this run met it. `make bench` writes both; `clearance-bench
//! readme` renders the table again from the file alone.

use serde::{Deserialize, Serialize};

use crate::batch_figures::BatchFigure;
use crate::concurrency_run::ConcurrencyFigures;
use crate::init_figures::InitFigure;
use crate::read_figures::ColdSearch;
use crate::write_figures::SyncClears;

/// The README's table lives between these two lines.
pub const TABLE_BEGIN: &str =
    "<!-- bench-table:begin (rendered from docs/bench/results.json by make bench) -->";
pub const TABLE_END: &str = "<!-- bench-table:end -->";

#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    pub date: String,
    pub machine: String,
    pub rows: u64,
    /// Wall time of the whole run, loads to clean-up.
    pub run_secs: f64,
    pub lambda_init: Vec<InitFigure>,
    pub load: LoadFigures,
    pub pruned_read: Vec<ReadFigures>,
    pub read_path: ReadResults,
    pub concurrency: ConcurrencyFigures,
    /// Time to a 503 under a frozen DynamoDB (runs before this figure
    /// existed have none).
    #[serde(default)]
    pub frozen_dependency: Option<crate::frozen_figures::FrozenFigures>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LoadFigures {
    pub runs_secs: Vec<f64>,
    pub median_secs: f64,
    pub median_rows_per_sec: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReadFigures {
    pub query: String,
    pub rows: i64,
    pub partitioned_median_ms: f64,
    pub unpartitioned_median_ms: f64,
    pub leaves_scanned: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReadResults {
    pub treaty: String,
    pub rows: u64,
    pub cold_searches: Vec<ColdSearch>,
    pub cold_median: ColdSearch,
    pub warm_reads: u32,
    pub warm_page_p50_ms: f64,
    pub warm_page_p99_ms: f64,
    pub naive_all_pages_ms: f64,
    pub naive_page_median_ms: f64,
    pub copy_to_stdout_ms: f64,
    pub copy_to_stdout_bytes: u64,
    pub large: Option<ColdSearch>,
    /// The large search again, then page 0 of its view sorted by amount,
    /// in one process.
    pub large_view: Option<ColdSearch>,
    /// The grid's API (runs before this figure existed have none).
    #[serde(default)]
    pub grid: Option<crate::grid_figures::GridFigures>,
    /// The reference grid in Chromium (runs before it existed have none).
    #[serde(default)]
    pub browser: Option<crate::browser_figures::BrowserFigures>,
    pub clear_100k_ms: f64,
    pub clear_100k_rows: u64,
    pub clear_retry_ms: f64,
    pub clear_retry_rows_changed: u64,
    /// The reversal of that clearance (runs before it was measured have none).
    #[serde(default)]
    pub clear_100k_reversal_ms: Option<f64>,
    /// The floor, same run: a COPY of as many narrow rows with a primary key.
    #[serde(default)]
    pub write_floor_100k_ms: Option<f64>,
    pub sync_clears: SyncClears,
    pub batch: BatchFigure,
    pub batch_large: Option<BatchFigure>,
}

fn verdict(met: bool, measured: String) -> String {
    if met {
        format!("**{measured}**")
    } else {
        format!("**{measured}: not met**")
    }
}

/// A peak RSS in MB, as the table writes it.
fn rss(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// A peak RSS against its target in MB.
fn rss_within(kb: u64, target_mb: f64) -> String {
    verdict(kb as f64 / 1024.0 <= target_mb, rss(kb))
}

/// `1234.5` as `1,235`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The README table of a run.
pub fn table(r: &Results) -> String {
    let mut rows: Vec<[String; 3]> = Vec::new();
    let mut row =
        |figure: String, target: &str, measured: String| rows.push([figure, target.to_owned(), measured]);
    let load = &r.load;
    row(
        format!(
            "load {} generated rows with COPY into a fresh ledger, then ANALYZE (median of {})",
            thousands(r.rows as f64),
            load.runs_secs.len()
        ),
        ">= 200K rows/s",
        verdict(
            load.median_rows_per_sec >= 200_000.0,
            format!("{:.2} s, {:.0}K rows/s", load.median_secs, load.median_rows_per_sec / 1e3),
        ),
    );
    for p in &r.pruned_read {
        let ratio = p.unpartitioned_median_ms / p.partitioned_median_ms;
        row(
            format!(
                "`{}`, {} rows: `EXPLAIN ANALYZE` partitioned ({} leaves) vs unpartitioned copy",
                p.query,
                thousands(p.rows as f64),
                p.leaves_scanned
            ),
            "faster",
            verdict(
                ratio > 1.0,
                format!(
                    "{:.1} ms vs {:.1} ms ({ratio:.1}x)",
                    p.partitioned_median_ms, p.unpartitioned_median_ms
                ),
            ),
        );
    }
    let rp = &r.read_path;
    let c = &rp.cold_median;
    row(
        format!(
            "cold search, {} rows, SQL read + encode + compress, store excluded (wall, median of {})",
            thousands(rp.rows as f64),
            rp.cold_searches.len()
        ),
        "<= 200 ms",
        verdict(c.read_encode_wall_ms <= 200.0, format!("{:.0} ms", c.read_encode_wall_ms))
            + &format!(" (SQL wait {:.0}, encode+compress {:.0})", c.sql_ms, c.encode_ms),
    );
    row(
        format!(
            "cold search, {} rows, end to end in the service: SQL / encode / store",
            thousands(rp.rows as f64)
        ),
        "reported",
        format!("{:.0} / {:.0} / {:.0} ms, total {:.0} ms", c.sql_ms, c.encode_ms, c.store_ms, c.total_ms),
    );
    row(
        format!("warm page, server side ({} random pages)", rp.warm_reads),
        "p99 <= 25 ms",
        verdict(
            rp.warm_page_p99_ms <= 25.0,
            format!("p50 {:.1} ms, p99 {:.1} ms", rp.warm_page_p50_ms, rp.warm_page_p99_ms),
        ),
    );
    row(
        format!("peak RSS of a {}-row search (own process)", thousands(rp.rows as f64)),
        "<= 64 MB",
        rss_within(c.peak_rss_kb, 64.0),
    );
    if let Some(l) = &rp.large {
        row(
            format!("peak RSS of a {}-row search (own process)", thousands(l.rows as f64)),
            "<= 256 MB",
            rss_within(l.peak_rss_kb, 256.0)
                + &format!(
                    " (SQL {} / encode {} / store {} ms)",
                    thousands(l.sql_ms),
                    thousands(l.encode_ms),
                    thousands(l.store_ms)
                ),
        );
    }
    if let Some(v) = &rp.large_view {
        row(
            format!(
                "peak RSS of a {}-row search and then its first page sorted by amount (a view built from the snapshot), own process",
                thousands(v.rows as f64)
            ),
            "<= 256 MB",
            rss_within(v.peak_rss_kb, 256.0)
                + &format!(" (the view's first page in {} ms)", thousands(v.view_ms.unwrap_or(f64::NAN))),
        );
    }
    row(
        format!(
            "naive baseline: the same {} pages as OFFSET/LIMIT on the unpartitioned copy",
            rp.rows.div_ceil(1_000)
        ),
        "",
        format!(
            "{} ms (median page {:.0} ms): **ours is {:.1}x faster**",
            thousands(rp.naive_all_pages_ms),
            rp.naive_page_median_ms,
            rp.naive_all_pages_ms / c.read_encode_wall_ms
        ),
    );
    row(
        "floor: `COPY ... TO STDOUT` of the same rows".to_owned(),
        "",
        format!(
            "{:.0} ms ({:.1} MB): **ours is {:.2}x the floor**",
            rp.copy_to_stdout_ms,
            rp.copy_to_stdout_bytes as f64 / 1e6,
            c.read_encode_wall_ms / rp.copy_to_stdout_ms
        ),
    );
    let s = &rp.sync_clears;
    row(
        format!("sync clear of {} rows, {} concurrent operators on one treaty, through the router ({} clears)", thousands(s.rows_per_clear as f64), s.operators, s.clears),
        "p99 <= 250 ms, 0 duplicates, 0 deadlocks",
        verdict(s.p99_ms <= 250.0, format!("p50 {:.0} ms, p99 {:.0} ms", s.p50_ms, s.p99_ms))
            + &format!(
                "; {} refused; server split p50: snapshot {:.0} / PostgreSQL {:.0} (p99 {:.0}) / read-back {:.0} ms",
                s.refused, s.snapshot_p50_ms, s.ledger_p50_ms, s.ledger_p99_ms, s.read_back_p50_ms
            ),
    );
    row(
        "the same clears one at a time".to_owned(),
        "",
        format!(
            "**p50 {:.0} ms** (snapshot {:.0} / PostgreSQL {:.0} / read-back {:.0})",
            s.single_p50_ms, s.single_split_p50_ms[0], s.single_split_p50_ms[1], s.single_split_p50_ms[2]
        ),
    );
    row(
        format!(
            "one clear of {} rows in PostgreSQL (guard, ledger, journal, one transaction)",
            thousands(rp.clear_100k_rows as f64)
        ),
        "<= 0.5 s",
        verdict(rp.clear_100k_ms <= 500.0, format!("{} ms", thousands(rp.clear_100k_ms))),
    );
    row(
        "its identical retry (same idempotency key)".to_owned(),
        "changes 0 rows",
        verdict(
            rp.clear_retry_rows_changed == 0,
            format!("{:.0} ms, {} rows changed", rp.clear_retry_ms, rp.clear_retry_rows_changed),
        ),
    );
    if let (Some(reversal), Some(floor)) = (rp.clear_100k_reversal_ms, rp.write_floor_100k_ms) {
        row(
            "its reversal (rows open again with new versions, the mirror journal)".to_owned(),
            "<= 1 s",
            verdict(reversal <= 1_000.0, format!("{} ms", thousands(reversal))),
        );
        row(
            format!(
                "floor, same run: `COPY` of {} narrow rows into a table with a primary key",
                thousands(rp.clear_100k_rows as f64)
            ),
            "",
            format!("{} ms: **the clear is {:.1}x the floor**", thousands(floor), rp.clear_100k_ms / floor),
        );
    }
    row(
        "peak RSS of the write path: the 16 operators' searches and 1,000-row clears (own process)"
            .to_owned(),
        "reported",
        rss(s.peak_rss_kb),
    );
    let b = &rp.batch;
    row(
        format!(
            "batch clear of {} rows ({} chunks) end to end: POST to 202 / workflow / total",
            thousands(b.rows as f64),
            b.chunks
        ),
        "<= 5 s",
        verdict(
            b.end_to_end_ms <= 5_000.0,
            format!("{:.0} / {} / {} ms", b.accept_ms, thousands(b.run_ms), thousands(b.end_to_end_ms)),
        ),
    );
    row(
        "its PostgreSQL time (reserve + finalize)".to_owned(),
        "<= 0.5 s",
        verdict(
            b.db_ms <= 500.0,
            format!("{} ms ({} + {})", thousands(b.db_ms), thousands(b.reserve_ms), thousands(b.finalize_ms)),
        ),
    );
    row(
        "peak RSS of that job's path: POST to 202, then every batch step (own process)".to_owned(),
        "reported",
        rss(b.peak_rss_kb),
    );
    if let Some(b) = &rp.batch_large {
        row(
            format!(
                "batch clear of {} rows ({} chunks) on the large ledger",
                thousands(b.rows as f64),
                b.chunks
            ),
            "reported",
            format!(
                "{} / {} / {} ms; PostgreSQL {:.1} s; peak RSS {}",
                thousands(b.accept_ms),
                thousands(b.run_ms),
                thousands(b.end_to_end_ms),
                b.db_ms / 1e3,
                rss(b.peak_rss_kb)
            ),
        );
    }
    let k = &r.concurrency;
    row(
        format!(
            "{} operators x {} actions on one treaty's open rows: overlapping sync clears (every other one replayed), batch jobs, reversals, interleaved; the bus refusing connections for {:.0} s, every finalize failing after its commit (once or always)",
            k.operators, k.rounds, k.faults.bus_down_ms as f64 / 1e3
        ),
        "0 violations",
        verdict(k.violations.is_empty(), format!("{} violations", k.violations.len()))
            + &format!(
                " of the audit (no row cleared twice, all-or-nothing, journals balanced, check = cleared + difference, none pending; no event lost, no job failed with its clearance posted); events: {} committed, {} delivered ({} by the closing drain), {} lost, {} duplicate deliveries; {} finalize failures after commit; {} jobs failed with a posted clearance; {} attempts, {} commits, {} conflicts (sync {}/{}/{}, batch {}/{}/{}, reversals {}/{}), {} replays answered once, {} rounds skipped (too few open rows), {:.1} s",
                k.faults.events_committed,
                k.faults.events_delivered,
                k.faults.events_left_for_the_schedule,
                k.faults.events_lost,
                k.faults.duplicate_deliveries,
                k.faults.finalize_failures_after_commit,
                k.faults.jobs_failed_with_posted_clearance,
                k.attempts,
                k.commits,
                k.conflicts,
                k.sync.attempts,
                k.sync.commits,
                k.sync.conflicts,
                k.batch.attempts,
                k.batch.commits,
                k.batch.conflicts,
                k.reversal.attempts,
                k.reversal.commits,
                k.replays,
                k.skipped,
                k.wall_ms / 1e3
            ),
    );
    let init: Vec<String> = r.lambda_init.iter().map(|f| format!("{:.1}", f.init_median_ms)).collect();
    let names: Vec<&str> =
        r.lambda_init.iter().map(|f| f.function.trim_start_matches("clearance-")).collect();
    row(
        format!(
            "Lambda init, release build, start to first Runtime API call (median of {}): {}",
            r.lambda_init.first().map_or(0, |f| f.runs_ms.len()),
            names.join(" / ")
        ),
        "<= 50 ms",
        verdict(r.lambda_init.iter().all(|f| f.init_median_ms <= 50.0), format!("{} ms", init.join(" / "))),
    );
    if let Some(f) = &r.frozen_dependency {
        row(
            format!(
                "time to a 503 `backend_unavailable` with DynamoDB frozen (SIGSTOP), median of {}: search / page / job{}",
                f.runs,
                if f.recovered { "; served again after SIGCONT" } else { "; NOT served again after SIGCONT" }
            ),
            "<= 5 s (reads)",
            verdict(
                f.max_ms <= 5_000.0 && f.recovered,
                format!(
                    "{:.2} / {:.2} / {:.2} s (slowest {:.2} s)",
                    f.search_503_median_ms / 1e3,
                    f.page_503_median_ms / 1e3,
                    f.job_503_median_ms / 1e3,
                    f.max_ms / 1e3
                ),
            ),
        );
    }
    if let Some(g) = &r.read_path.grid {
        rows.extend(grid_rows(g));
    }
    if let Some(b) = &r.read_path.browser {
        rows.extend(browser_rows(b));
    }

    let mut out = format!(
        "Run of {} on {}: {} rows, {:.1} min in all.\n\n| figure | target | measured |\n|---|---|---|\n",
        r.date.get(..16).unwrap_or(&r.date).replace('T', " "),
        r.machine,
        thousands(r.rows as f64),
        r.run_secs / 60.0
    );
    for [figure, target, measured] in rows {
        out.push_str(&format!("| {figure} | {target} | {measured} |\n"));
    }
    out
}

/// The reference grid's rows: Chromium headless against the local server.
fn browser_rows(b: &crate::browser_figures::BrowserFigures) -> Vec<[String; 3]> {
    let med = |v: &[f64]| crate::median(v.to_vec());
    let (cold, cached, scroll) = (med(&b.cold_ms), med(&b.cached_ms), med(&b.scroll_page_50_ms));
    vec![
        [
            format!(
                "reference grid, Chromium headless: Search click -> first rows painted, {} ({} rows), cold / cached (median of {})",
                b.treaty,
                thousands(b.rows as f64),
                b.cold_ms.len()
            ),
            "<= 1.5 s / <= 300 ms".to_owned(),
            verdict(cold <= 1_500.0 && cached <= 300.0, format!("{cold:.0} / {cached:.0} ms")),
        ],
        [
            "reference grid: scroll to page 50 -> its rows painted".to_owned(),
            "<= 200 ms".to_owned(),
            verdict(scroll <= 200.0, format!("{scroll:.0} ms")),
        ],
        [
            "reference grid: JavaScript bundle (React, AG Grid Community, the app)".to_owned(),
            "reported".to_owned(),
            format!("{:.0} KB gzip ({:.0} KB plain)", b.js_gzip_bytes as f64 / 1e3, b.js_bytes as f64 / 1e3),
        ],
    ]
}

/// The grid's API rows: page bytes on the wire, a cold view build, the
/// selection summary.
fn grid_rows(g: &crate::grid_figures::GridFigures) -> Vec<[String; 3]> {
    let kb = |b: u64| format!("{:.1} KB", b as f64 / 1e3);
    let med = |v: &[f64]| crate::median(v.to_vec());
    let summary = med(&g.summary_view_ms);
    vec![
        [
            format!("a {}-row page on the wire: plain / gzip / br", thousands(g.page_rows as f64)),
            "<= 50 KB".to_owned(),
            verdict(
                g.page_gzip_bytes <= 50_000,
                format!("{} / {} / {}", kb(g.page_plain_bytes), kb(g.page_gzip_bytes), kb(g.page_br_bytes)),
            ),
        ],
        [
            format!(
                "view of a {}-row snapshot built from its chunks (`{}`: 2-key sort, 3 filters; {} rows), first page, cold (median of {})",
                thousands(g.snapshot_rows as f64),
                g.view_query,
                thousands(g.view_rows as f64),
                g.view_build_ms.len()
            ),
            "reported".to_owned(),
            format!("{:.0} ms", med(&g.view_build_ms)),
        ],
        [
            format!(
                "selection summary, server side, of every open row of the snapshot ({} rows) / of the view above ({} rows), the view built (median of {})",
                thousands(g.summary_rows as f64),
                thousands(g.summary_filtered_rows as f64),
                g.summary_view_ms.len()
            ),
            "<= 100 ms".to_owned(),
            verdict(
                summary <= 100.0 && med(&g.summary_filtered_ms) <= 100.0,
                format!("{summary:.1} / {:.1} ms", med(&g.summary_filtered_ms)),
            ),
        ],
        [
            "selection summary resolved over the snapshot's pages: the view but 10 rows / 1,000 named ids (median)"
                .to_owned(),
            "reported".to_owned(),
            format!("{:.0} / {:.0} ms", med(&g.summary_except_ms), med(&g.summary_ids_ms)),
        ],
    ]
}

/// `readme` with the text between [`TABLE_BEGIN`] and [`TABLE_END`]
/// replaced by `table`.
///
/// # Errors
/// When the markers are missing or out of order.
pub fn with_table(readme: &str, table: &str) -> anyhow::Result<String> {
    let begin = readme.find(TABLE_BEGIN).ok_or_else(|| anyhow::anyhow!("README has no {TABLE_BEGIN}"))?;
    let end = readme.find(TABLE_END).ok_or_else(|| anyhow::anyhow!("README has no {TABLE_END}"))?;
    anyhow::ensure!(begin < end, "the README's table markers are out of order");
    Ok(format!("{}{TABLE_BEGIN}\n{table}{}", &readme[..begin], &readme[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_is_the_one_rendered_from_the_results_file() -> anyhow::Result<()> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let results: Results =
            serde_json::from_str(&std::fs::read_to_string(root.join("docs/bench/results.json"))?)?;
        let readme = std::fs::read_to_string(root.join("README.md"))?;
        assert_eq!(
            with_table(&readme, &table(&results))?,
            readme,
            "run `clearance-bench readme` (or make bench)"
        );
        Ok(())
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(1234.4), "1,234");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
    }
}
